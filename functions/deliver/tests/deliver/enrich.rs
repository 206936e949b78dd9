//! The `enrich` lookup: its JSON answer is `external` in the template; a failed lookup
//! is classified like a failed delivery.

use crate::support::*;
use std::time::Duration;

fn enrich_routes(target_url: &str, crm_url: &str) -> String {
    format!(
        "[auth.crm]\ntype = \"header\"\nheader = \"Authorization\"\nprefix = \"Bearer \"\nsecret = \"crm/token\"\n\n{}",
        one_route(
            target_url,
            &format!(
                "template = '{{\"user\": {{{{ event.user_id | tojson }}}}, \"tier\": {{{{ external.tier | tojson }}}}}}'\n\
                 enrich = {{ url = \"{crm_url}/users/{{{{ event.user_id }}}}\", auth = \"crm\", timeout_seconds = 2 }}"
            ),
        )
    )
}

#[tokio::test]
async fn the_lookups_answer_appears_in_the_body() {
    let crm = TestServer::start(|req, _| {
        if req.path == "/users/usr_1" {
            Canned::json(r#"{"tier": "gold", "id": "usr_1"}"#)
        } else {
            Canned::status(404)
        }
    })
    .await;
    let target = TestServer::always(200).await;
    let h = Harness::new(&enrich_routes(&target.url("/hook"), &crm.url("")));
    h.secrets.set_sequence("crm/token", &["crm-key"]);
    assert!(!h.run_one(message(&job("evt_enrich", ROUTE), 1)).await);

    let lookup = &crm.requests()[0];
    assert_eq!(
        (lookup.method.as_str(), lookup.path.as_str()),
        ("GET", "/users/usr_1")
    );
    assert_eq!(lookup.header("authorization"), Some("Bearer crm-key"));
    assert_eq!(lookup.header("accept"), Some("application/json"));
    assert_eq!(
        target.requests()[0].json(),
        serde_json::json!({"user": "usr_1", "tier": "gold"})
    );
}

#[tokio::test]
async fn a_lookup_answering_503_is_retried_and_nothing_is_delivered() {
    let crm = TestServer::always(503).await;
    let target = TestServer::always(200).await;
    let h = Harness::new(&enrich_routes(&target.url("/hook"), &crm.url("")));
    h.secrets.set_sequence("crm/token", &["crm-key"]);
    assert!(h.run_one(message(&job("evt_crm_down", ROUTE), 1)).await);
    assert_eq!(h.delays(), [Duration::from_secs(5)]);
    assert!(h.dlq.sent().is_empty());
    assert_eq!(crm.requests().len(), 1);
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_lookup_answering_404_is_permanent_and_says_it_was_the_lookup() {
    let crm = TestServer::always(404).await;
    let target = TestServer::always(200).await;
    let h = Harness::new(&enrich_routes(&target.url("/hook"), &crm.url("")));
    h.secrets.set_sequence("crm/token", &["crm-key"]);
    assert!(!h.run_one(message(&job("evt_nouser", ROUTE), 1)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["last_status"].as_str()),
        ("http_status", "404")
    );
    assert_eq!(a["last_error"], "enrich lookup: answered 404 Not Found");
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_lookup_answer_that_is_not_json_is_a_render_failure() {
    let crm = TestServer::scripted(vec![Canned::status(200).body("<html>login</html>")]).await;
    let target = TestServer::always(200).await;
    let h = Harness::new(&enrich_routes(&target.url("/hook"), &crm.url("")));
    h.secrets.set_sequence("crm/token", &["crm-key"]);
    assert!(!h.run_one(message(&job("evt_html", ROUTE), 1)).await);
    assert_eq!(h.dead_letter().attributes["failure"], "render");
    assert!(target.requests().is_empty());
}
