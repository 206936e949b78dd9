//! Rotating the ingest key and the signing key while `routerctl serve` runs: the secret
//! holds `{"current", "next"}` during the change, both ingest keys are accepted and every
//! delivery carries both signatures; no restart, no request refused on the way.

use crate::common::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use router_tests::targets::{Delivery, Targets};

const NEW_KEY: &str = "the-next-ingest-key";
const NEW_SIGNING_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";

fn whsec(key: &[u8]) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The keys among `keys` whose signature the delivery carries (checked by an independent HMAC).
fn signed_with(d: &Delivery, keys: &[&[u8]]) -> Vec<usize> {
    let sigs: Vec<&str> = d.headers["webhook-signature"].split(' ').collect();
    let content = format!(
        "{}.{}.{}",
        d.headers["webhook-id"], d.headers["webhook-timestamp"], d.body
    );
    keys.iter()
        .enumerate()
        .filter(|(_, key)| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(content.as_bytes());
            let expected =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            sigs.contains(&format!("v1,{expected}").as_str())
        })
        .map(|(i, _)| i)
        .collect()
}

async fn trigger_with(serve: &Serve, key: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v2/webhooks/trigger", serve.base))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"id": "{id}", "event_type": "intent", "name": "handover"}}"#
        ))
        .send()
        .await
        .expect("serve answers")
        .status()
        .as_u16()
}

/// Triggers `id` with `key` (expecting 202) and returns its delivery as received.
async fn delivered(serve: &Serve, targets: &Targets, key: &str, id: &str) -> Delivery {
    assert_eq!(trigger_with(serve, key, id).await, 202, "{}", serve.log());
    let body = format!("\"event\": \"{id}\"");
    assert!(
        targets
            .wait_for(|r| r.iter().any(|d| d.body.contains(&body)))
            .await,
        "{}",
        serve.log()
    );
    targets
        .received_at("crm")
        .into_iter()
        .find(|d| d.body.contains(&body))
        .unwrap()
}

#[tokio::test]
async fn both_keys_rotate_while_serve_runs() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&routes_for(
        &targets,
        &[("crm", "triggers = [{ event_type = \"intent\" }]")],
    ));
    let serve = ws.serve(&["--secrets-reread", "0"]);
    let write_secrets = |ingest: &str, signing: &str| {
        std::fs::write(
            ws.path("secrets.toml"),
            format!("\"router/ingest-key\" = {ingest}\n\"router/signing-key\" = {signing}\n"),
        )
        .unwrap();
    };
    let (old_sig, new_sig) = (whsec(SIGNING_KEY), whsec(NEW_SIGNING_KEY));
    let keys: [&[u8]; 2] = [SIGNING_KEY, NEW_SIGNING_KEY];

    let d = delivered(&serve, &targets, KEY, "evt_r1").await;
    assert_eq!(signed_with(&d, &keys), [0]);
    assert_eq!(trigger_with(&serve, NEW_KEY, "evt_r0").await, 401);

    // The change begins: both keys in each secret.
    write_secrets(
        &format!("{{ current = \"{KEY}\", next = \"{NEW_KEY}\" }}"),
        &format!("{{ current = \"{old_sig}\", next = \"{new_sig}\" }}"),
    );
    for (key, id) in [(KEY, "evt_r2"), (NEW_KEY, "evt_r3")] {
        let d = delivered(&serve, &targets, key, id).await;
        assert_eq!(signed_with(&d, &keys), [0, 1], "{:?}", d.headers);
    }

    // The change ends: only the new keys.
    write_secrets(&format!("\"{NEW_KEY}\""), &format!("\"{new_sig}\""));
    let d = delivered(&serve, &targets, NEW_KEY, "evt_r4").await;
    assert_eq!(signed_with(&d, &keys), [1]);
    assert_eq!(trigger_with(&serve, KEY, "evt_r5").await, 401);

    // A broken edit stops every key at the next read (503, logged), as a cold start on
    // it would refuse to start; fixed, the flows are let in again.
    write_secrets("\"  \"", &format!("\"{new_sig}\""));
    assert_eq!(trigger_with(&serve, NEW_KEY, "evt_r6").await, 503);
    assert_eq!(trigger_with(&serve, KEY, "evt_r7").await, 503);
    assert!(serve.log().contains("secret unusable"), "{}", serve.log());
    write_secrets(&format!("\"{NEW_KEY}\""), &format!("\"{new_sig}\""));
    assert_eq!(trigger_with(&serve, NEW_KEY, "evt_r8").await, 202);
    // The same for the signing key: a broken one is not used on; the deliveries wait
    // (retried) and go out signed with the fixed key.
    write_secrets(&format!("\"{NEW_KEY}\""), "\"{oops\"");
    assert_eq!(trigger_with(&serve, NEW_KEY, "evt_r9").await, 202);
    assert!(
        wait_until(|| serve
            .log()
            .lines()
            .any(|l| l.contains("evt_r9") && l.contains("signing_key")))
        .await,
        "{}",
        serve.log()
    );
    write_secrets(&format!("\"{NEW_KEY}\""), &format!("\"{new_sig}\""));
    let body = "\"event\": \"evt_r9\"";
    assert!(
        targets
            .wait_for(|r| r.iter().any(|d| d.body.contains(body)))
            .await,
        "{}",
        serve.log()
    );
    let d = targets
        .received_at("crm")
        .into_iter()
        .find(|d| d.body.contains(body))
        .unwrap();
    assert_eq!(signed_with(&d, &keys), [1]);
}
