//! The headers of a delivery (CONTRACT section 4), the signature checked with an HMAC
//! computed here, independently of the signing code, and the outbound auth profiles.

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: &[u8] = b"an independent 32-byte test key!";

fn signed_routes(target_url: &str, extra: &str) -> String {
    format!(
        "[signing]\nsecret = \"router/signing-key\"\n\n\
         [auth.crm]\ntype = \"header\"\nheader = \"Authorization\"\nprefix = \"Bearer \"\nsecret = \"crm/token\"\n\n\
         [auth.partner]\ntype = \"api_key\"\nsecret = \"partner/key\"\n\n{}",
        one_route(target_url, extra)
    )
}

fn expected_signature(id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn every_delivery_carries_the_contract_headers_and_a_verifiable_signature() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&signed_routes(&target.url("/hook"), "auth = \"crm\""));
    h.secrets.set_sequence(
        "router/signing-key",
        &[&format!("whsec_{}", B64.encode(KEY))],
    );
    h.secrets.set_sequence("crm/token", &["crm-secret-token"]);
    let job = job("evt_signed", ROUTE);
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(!h.run_one(message(&job, 1)).await);
    let after = time::OffsetDateTime::now_utc().unix_timestamp();

    let req = &target.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("user-agent"),
        Some(format!("cognigy-webhook-router/{}", router_core::VERSION).as_str())
    );
    assert_eq!(req.header("webhook-id"), Some(job.delivery_id.as_str()));
    let ts = req.header("webhook-timestamp").unwrap();
    assert!((before..=after).contains(&ts.parse::<i64>().unwrap()));
    assert_eq!(
        req.header("webhook-signature").unwrap(),
        expected_signature(&job.delivery_id, ts, &req.body)
    );
    assert_eq!(req.header("authorization"), Some("Bearer crm-secret-token"));

    // A tampered body would not verify.
    assert_ne!(
        req.header("webhook-signature").unwrap(),
        expected_signature(&job.delivery_id, ts, &req.body.replace("usr_1", "usr_2"))
    );
}

#[tokio::test]
async fn without_signing_there_is_no_signature_but_id_and_timestamp_remain() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    h.run_one(message(&job("evt_plain", ROUTE), 1)).await;
    let req = &target.requests()[0];
    assert!(req.header("webhook-signature").is_none());
    assert!(req.header("webhook-id").is_some() && req.header("webhook-timestamp").is_some());
    assert!(req.header("authorization").is_none());
}

#[tokio::test]
async fn an_api_key_profile_sends_x_api_key_and_secrets_are_read_once() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&signed_routes(&target.url("/hook"), "auth = \"partner\""));
    h.secrets.set_sequence(
        "router/signing-key",
        &[&format!("whsec_{}", B64.encode(KEY))],
    );
    h.secrets.set_sequence("partner/key", &["k-123"]);
    for i in 0..3 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    assert!(
        target
            .requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some("k-123"))
    );
    assert_eq!(
        h.secrets.reads_of("partner/key"),
        1,
        "cached per cold start"
    );
    assert_eq!(h.secrets.reads_of("router/signing-key"), 1);
}

#[tokio::test]
async fn a_missing_secret_is_retried_not_dead_lettered() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&signed_routes(&target.url("/hook"), "auth = \"crm\""));
    h.secrets.set_sequence(
        "router/signing-key",
        &[&format!("whsec_{}", B64.encode(KEY))],
    );
    assert!(h.run_one(message(&job("evt_nosecret", ROUTE), 1)).await);
    assert_eq!(h.delays(), [std::time::Duration::from_secs(5)]);
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_403_on_a_static_header_route_is_permanent_at_once() {
    let target = TestServer::always(403).await;
    let h = Harness::new(&signed_routes(&target.url("/hook"), "auth = \"crm\""));
    h.secrets.set_sequence(
        "router/signing-key",
        &[&format!("whsec_{}", B64.encode(KEY))],
    );
    h.secrets.set_sequence("crm/token", &["rotated-away"]);
    assert!(!h.run_one(message(&job("evt_403", ROUTE), 1)).await);
    assert_eq!(target.requests().len(), 1, "no resend for a static key");
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["last_status"].as_str()),
        ("http_status", "403")
    );
    assert!(!a["last_error"].contains("rotated-away"));
}
