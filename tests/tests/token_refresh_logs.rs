//! No secret reaches the logs of a token refresh. In a test binary of its own: tracing's
//! per-callsite interest cache races with thread-local subscribers when other tests log
//! on other threads at the same time, and this test must see every line.

#[path = "support/token_refresh.rs"]
mod support;

use base64::Engine;
use router_tests::token_server::{Scripted, TokenServer};
use support::*;

#[tokio::test]
async fn no_secret_appears_in_the_logs_of_a_refresh() {
    let capture = router_core::testing::LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup().await;
    let good = TokenServer::start(vec![Scripted::status(500, "")]).await;
    let bad = TokenServer::start(vec![Scripted::status(
        401,
        r#"{"error":"invalid_client","error_description":"cs-very-secret-42 is wrong"}"#,
    )])
    .await;
    let routes = s.routes(&[("alpha", &good, ""), ("bravo", &bad, "")]).await;
    let report = s.refresh(&routes).await;
    assert_eq!(report.failures().len(), 1);

    let logs = capture.text();
    assert!(logs.contains("token refresh"), "the refresh logged: {logs}");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("id-alpha:{CLIENT_SECRET}"));
    for secret in [CLIENT_SECRET, "tok-1", basic.as_str()] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
    let errors = format!("{report:?}");
    assert!(
        !errors.contains(CLIENT_SECRET) && !errors.contains("tok-1"),
        "{errors}"
    );
}
