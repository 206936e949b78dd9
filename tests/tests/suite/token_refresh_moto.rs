//! token-refresh against a fake token server on 127.0.0.1 and Secrets Manager on moto.

use crate::support::*;
use base64::Engine;
use router_core::ports::SecretStore;
use router_core::routes::Routes;
use router_core::secrets::{Secret, StoredToken};
use router_tests::token_server::{Scripted, TokenServer};
use std::time::Duration;
use token_refresh::{ProfileOutcome, refresh};
use tokio::time::Instant;

#[tokio::test]
async fn the_first_run_creates_the_token_with_a_form_request_and_basic_auth() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s
        .routes(&[("cognigy", &server, "scope = \"flows:read\"")])
        .await;
    let report = s.refresh(&routes).await;
    assert!(
        matches!(
            outcome(&report, "cognigy"),
            ProfileOutcome::Refreshed { .. }
        ),
        "{report:?}"
    );
    let t = s.stored("cognigy").await.unwrap();
    assert_eq!(
        (t.access_token.as_str(), t.token_type.as_str()),
        ("tok-1", "Bearer")
    );
    assert!((now() + 3590..=now() + 3600).contains(&t.expires_at));

    let seen = &server.seen()[0];
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("id-cognigy:{CLIENT_SECRET}"));
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.body,
        "grant_type=client_credentials&scope=flows%3Aread"
    );
}

#[tokio::test]
async fn form_requests_can_carry_the_credentials_in_the_body() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s
        .routes(&[("crm", &server, "client_auth = \"body\"")])
        .await;
    s.refresh(&routes).await;
    let seen = &server.seen()[0];
    assert_eq!(seen.authorization, None);
    assert_eq!(
        seen.body,
        format!("grant_type=client_credentials&client_id=id-crm&client_secret={CLIENT_SECRET}")
    );
}

#[tokio::test]
async fn json_basic_requests_send_a_json_body_with_basic_auth() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s
        .routes(&[("legacy", &server, "request = \"json_basic\"")])
        .await;
    let report = s.refresh(&routes).await;
    assert!(matches!(
        outcome(&report, "legacy"),
        ProfileOutcome::Refreshed { .. }
    ));
    let seen = &server.seen()[0];
    assert!(seen.authorization.as_deref().unwrap().starts_with("Basic "));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen.body).unwrap(),
        serde_json::json!({"grant_type": "client_credentials"})
    );
}

#[tokio::test]
async fn a_fresh_token_is_left_alone() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    s.store_token("cognigy", "still-good", 60, 3600).await;
    let report = s.refresh(&routes).await;
    assert!(matches!(
        outcome(&report, "cognigy"),
        ProfileOutcome::Fresh { .. }
    ));
    assert!(server.seen().is_empty(), "the token server is not called");
    assert_eq!(
        s.stored("cognigy").await.unwrap().access_token,
        "still-good"
    );
}

#[tokio::test]
async fn a_near_expiry_token_is_replaced() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    s.store_token("cognigy", "old", 3300, 300).await;
    let report = s.refresh(&routes).await;
    assert!(matches!(
        outcome(&report, "cognigy"),
        ProfileOutcome::Refreshed { .. }
    ));
    assert_eq!(s.stored("cognigy").await.unwrap().access_token, "tok-1");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let s = setup().await;
    let server = TokenServer::start(vec![Scripted {
        status: 429,
        retry_after: Some("1"),
        body: String::new(),
    }])
    .await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    let started = std::time::Instant::now();
    let report = s.refresh(&routes).await;
    assert!(
        matches!(
            outcome(&report, "cognigy"),
            ProfileOutcome::Refreshed { .. }
        ),
        "{report:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited Retry-After"
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_429_longer_than_the_time_left_fails_without_waiting() {
    let s = setup().await;
    let server = TokenServer::start(vec![Scripted {
        status: 429,
        retry_after: Some("3600"),
        body: String::new(),
    }])
    .await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    // Ten minutes left, an hour asked for: it gives up at once instead of sleeping until
    // the deadline (which a broken run would reach; a loaded machine never comes close).
    let started = std::time::Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let http = token_refresh::http_client().unwrap();
    let report = refresh(
        &routes,
        &s.store,
        &http,
        deadline,
        None,
        token_refresh::Renew::IfDue,
    )
    .await;
    assert!(
        matches!(outcome(&report, "cognigy"), ProfileOutcome::Failed(e) if e.contains("rate limiting")),
        "{report:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(300));
    assert_eq!(server.seen().len(), 1, "asked once");
}

#[tokio::test]
async fn two_500s_then_a_token() {
    let s = setup().await;
    let server =
        TokenServer::start(vec![Scripted::status(500, ""), Scripted::status(503, "")]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    let report = s.refresh(&routes).await;
    assert!(
        matches!(
            outcome(&report, "cognigy"),
            ProfileOutcome::Refreshed { .. }
        ),
        "{report:?}"
    );
    assert_eq!(server.seen().len(), 3);
    assert_eq!(s.stored("cognigy").await.unwrap().access_token, "tok-1");
}

#[tokio::test]
async fn a_401_is_reported_and_the_old_token_kept() {
    let s = setup().await;
    let server =
        TokenServer::start(vec![Scripted::status(401, r#"{"error":"invalid_client"}"#)]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    s.store_token("cognigy", "old", 3300, 300).await;
    let report = s.refresh(&routes).await;
    match outcome(&report, "cognigy") {
        ProfileOutcome::Failed(e) => assert!(
            e.contains("HTTP 401") && e.contains("invalid_client"),
            "{e}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(server.seen().len(), 1, "no retry on 401");
    assert_eq!(s.stored("cognigy").await.unwrap().access_token, "old");
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_and_nothing_is_stored() {
    let s = setup().await;
    let server = TokenServer::start(vec![Scripted::status(200, r#"{"token":"x"}"#)]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    let report = s.refresh(&routes).await;
    assert!(
        matches!(outcome(&report, "cognigy"), ProfileOutcome::Failed(e) if e.contains("not a usable token"))
    );
    assert!(s.stored("cognigy").await.is_none());
}

#[tokio::test]
async fn one_bad_profile_among_three_leaves_the_other_two_refreshed() {
    let s = setup().await;
    let good = TokenServer::start(vec![]).await;
    let bad =
        TokenServer::start(vec![Scripted::status(400, r#"{"error":"invalid_client"}"#)]).await;
    let routes = s
        .routes(&[
            ("alpha", &good, ""),
            ("bravo", &bad, ""),
            ("charlie", &good, ""),
        ])
        .await;
    let report = s.refresh(&routes).await;
    assert_eq!(report.failures().len(), 1);
    assert_eq!(report.failures()[0].0, "bravo");
    assert!(s.stored("alpha").await.is_some());
    assert!(s.stored("charlie").await.is_some());
    assert!(s.stored("bravo").await.is_none());
}

#[tokio::test]
async fn a_fresher_stored_token_is_never_replaced_by_an_older_one() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    // Past half its lifetime (so a refresh runs) but expiring later than the new token would.
    s.store_token("cognigy", "long-lived", 7300, 7200).await;
    let report = s.refresh(&routes).await;
    assert!(
        matches!(
            outcome(&report, "cognigy"),
            ProfileOutcome::Superseded { .. }
        ),
        "{report:?}"
    );
    assert_eq!(
        s.stored("cognigy").await.unwrap().access_token,
        "long-lived"
    );
}

#[tokio::test]
async fn racing_refreshers_leave_one_complete_unexpired_token() {
    let s = setup().await;
    let server = TokenServer::start(vec![]).await;
    let routes = s.routes(&[("cognigy", &server, "")]).await;
    let (a, b) = tokio::join!(s.refresh(&routes), s.refresh(&routes));
    assert!(
        a.failures().is_empty() && b.failures().is_empty(),
        "{a:?} {b:?}"
    );
    let t = s.stored("cognigy").await.unwrap();
    assert!(t.access_token.starts_with("tok-"));
    assert!(t.expires_at > now() + 3000);
}

#[tokio::test]
async fn the_invocation_fails_naming_the_profile_when_any_profile_failed() {
    let s = setup().await;
    let good = TokenServer::start(vec![]).await;
    let bad = TokenServer::start(vec![Scripted::status(401, "")]).await;
    let routes = s.routes(&[("alpha", &good, ""), ("bravo", &bad, "")]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = token_refresh::invoke(
        &routes,
        &s.store,
        &token_refresh::http_client().unwrap(),
        deadline,
    )
    .await
    .unwrap_err();
    assert!(err.contains("bravo") && !err.contains("alpha"), "{err}");
    let ok = token_refresh::invoke(
        &routes,
        &s.store,
        &token_refresh::http_client().unwrap(),
        deadline,
    )
    .await;
    assert!(
        ok.is_ok(),
        "the second run succeeds once the endpoint accepts: {ok:?}"
    );
}

#[tokio::test]
async fn a_hostile_token_server_cannot_store_a_broken_token() {
    let s = setup().await;
    let huge = format!(
        r#"{{"access_token":"{}","expires_in":3600}}"#,
        "a".repeat(100 * 1024)
    );
    for body in [
        // 1e19 s would overflow `expires_at` into the past.
        r#"{"access_token":"t","expires_in":1e19}"#.to_owned(),
        r#"{"access_token":"t","expires_in":31536001}"#.to_owned(),
        r#"{"access_token":"t","expires_in":-1}"#.to_owned(),
        r#"{"access_token":"line\nbreak","expires_in":3600}"#.to_owned(),
        // More than the 64 KiB an answer may have.
        huge,
    ] {
        let server = TokenServer::start(vec![Scripted::status(200, &body)]).await;
        let routes = s.routes(&[("hostile", &server, "")]).await;
        let report = s.refresh(&routes).await;
        assert!(
            matches!(outcome(&report, "hostile"), ProfileOutcome::Failed(_)),
            "{body:.80}: {report:?}"
        );
        assert!(s.stored("hostile").await.is_none(), "{body:.80} was stored");
    }
}

/// Two refreshers (as `serve` and `routerctl token refresh` are) on one secrets file: the
/// one holding the shorter-lived token never puts it over the longer-lived one, and an
/// entry another writer added meanwhile survives.
#[tokio::test]
async fn on_a_secrets_file_racing_refreshers_keep_the_freshest_token_and_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.toml");
    std::fs::write(
        &path,
        format!(
            "\"c/credentials\" = '{{\"client_id\":\"id\",\"client_secret\":\"{CLIENT_SECRET}\"}}'\n"
        ),
    )
    .unwrap();
    let long = TokenServer::start(vec![Scripted::status(
        200,
        r#"{"access_token":"long","expires_in":86400}"#,
    )])
    .await;
    let short = TokenServer::start(vec![Scripted::status(
        200,
        r#"{"access_token":"short","expires_in":600}"#,
    )])
    .await;
    let routes_for = |server: &TokenServer| {
        Routes::parse(
            &format!(
                "[auth.c]\ntype = \"oauth2\"\ntoken_url = \"{}\"\ncredentials_secret = \"c/credentials\"\ntoken_secret = \"c/token\"\n",
                server.url
            ),
            std::path::Path::new("routes.toml"),
        )
        .unwrap()
    };
    let (a, b) = (routes_for(&long), routes_for(&short));
    let http = token_refresh::http_client().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The long-lived token lands first; the short-lived one comes later and must lose.
    let store_a = router_core::embedded::FileSecrets::open(&path).unwrap();
    let report = refresh(
        &a,
        &store_a,
        &http,
        deadline,
        None,
        token_refresh::Renew::IfDue,
    )
    .await;
    assert!(matches!(
        outcome(&report, "c"),
        ProfileOutcome::Refreshed { .. }
    ));
    let store_b = router_core::embedded::FileSecrets::open(&path).unwrap();
    store_b
        .put("operator/added", &Secret::new("kept".into()))
        .await
        .unwrap();
    let report = refresh(
        &b,
        &store_b,
        &http,
        deadline,
        None,
        token_refresh::Renew::Always,
    )
    .await;
    assert!(
        matches!(outcome(&report, "c"), ProfileOutcome::Superseded { .. }),
        "{report:?}"
    );
    let token = StoredToken::parse(&store_a.get("c/token").await.unwrap()).unwrap();
    assert_eq!(token.access_token, "long");
    assert_eq!(
        store_a.get("operator/added").await.unwrap().expose(),
        "kept"
    );
    assert!(store_a.get("c/credentials").await.is_ok());
}
