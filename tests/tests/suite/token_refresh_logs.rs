//! No secret reaches the logs of a token refresh, at any level. (`LogCapture` sees every
//! line of this test's thread while other tests log on theirs.)

use crate::support::*;
use base64::Engine;
use router_tests::token_server::{Scripted, TokenServer};

#[tokio::test]
async fn no_secret_appears_in_the_logs_of_a_refresh() {
    let (capture, _guard) = router_core::testing::LogCapture::everything();

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
