//! oauth2 routes: the token is read from its secret and cached; a 401/403 re-reads it
//! once and resends at once, within the same attempt.

use crate::support::*;

fn oauth2_routes(target_url: &str) -> String {
    format!(
        "[auth.cognigy]\ntype = \"oauth2\"\ntoken_url = \"https://auth.example.com/token\"\n\
         credentials_secret = \"cognigy/credentials\"\ntoken_secret = \"cognigy/token\"\n\n{}",
        one_route(target_url, "auth = \"cognigy\"")
    )
}

/// A target that accepts only `Bearer fresh`.
async fn wants_fresh_token() -> TestServer {
    TestServer::start(|req, _| {
        if req.header("authorization") == Some("Bearer fresh") {
            Canned::status(200)
        } else {
            Canned::status(401)
        }
    })
    .await
}

#[tokio::test]
async fn a_401_rereads_the_token_and_resends_at_once_spending_one_attempt() {
    let target = wants_fresh_token().await;
    let h = Harness::new(&oauth2_routes(&target.url("/hook")));
    // token-refresh rotated the token after this cold start cached the old one.
    h.secrets.set_sequence(
        "cognigy/token",
        &[&stored_token("stale"), &stored_token("fresh")],
    );
    let job = job("evt_oauth", ROUTE);
    assert!(
        !h.run_one(message(&job, 1)).await,
        "delivered on this receive"
    );
    h.assert_nothing_queued();

    let reqs = target.requests();
    let auths: Vec<_> = reqs
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(auths, ["Bearer stale", "Bearer fresh"]);
    assert!(
        reqs.iter().all(|r| r.json()["attempt"] == 1),
        "the resend is the same attempt"
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("webhook-id") == Some(job.delivery_id.as_str()))
    );
    assert_eq!(h.secrets.reads_of("cognigy/token"), 2);

    // The fresh token is cached for the next delivery.
    assert!(
        !h.run_one(message(&super::support::job("evt_oauth2", ROUTE), 1))
            .await
    );
    assert_eq!(h.secrets.reads_of("cognigy/token"), 2);
    assert_eq!(target.requests().len(), 3);
}

#[tokio::test]
async fn a_second_401_is_permanent() {
    let target = wants_fresh_token().await;
    let h = Harness::new(&oauth2_routes(&target.url("/hook")));
    h.secrets
        .set_sequence("cognigy/token", &[&stored_token("stale")]);
    assert!(!h.run_one(message(&job("evt_denied", ROUTE), 1)).await);
    assert_eq!(target.requests().len(), 2, "one resend, no more");
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "http_status");
    assert_eq!(
        (a["attempts"].as_str(), a["last_status"].as_str()),
        ("1", "401")
    );
    assert!(!a["last_error"].contains("stale"));
}

#[tokio::test]
async fn an_expired_stored_token_is_retried_until_token_refresh_catches_up() {
    let target = wants_fresh_token().await;
    let h = Harness::new(&oauth2_routes(&target.url("/hook")));
    let expired = r#"{"access_token":"old","token_type":"Bearer","expires_at":1000}"#;
    h.secrets.set_sequence("cognigy/token", &[expired]);
    assert!(h.run_one(message(&job("evt_wait", ROUTE), 1)).await);
    assert!(target.requests().is_empty());
    assert_eq!(h.delays(), [std::time::Duration::from_secs(5)]);
}
