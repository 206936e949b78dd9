//! The target guard end to end: a real server listens on 127.0.0.1, and every spelling
//! of a private or local target is refused (`blocked_target`) before it sees a request.

use crate::support::*;
use deliver::guard::{Lookup, LookupFuture};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A routes file WITHOUT the private-target opt-in.
fn guarded(target_url: &str) -> String {
    route_block(ROUTE, target_url, "")
}

async fn assert_blocked(h: &Harness, target: &TestServer, what: &str) {
    let failed = h.run(vec![message(&job("evt_blocked", ROUTE), 1)]).await;
    assert!(failed.is_empty(), "{what}: dead-lettered, not retried");
    let sent = h.dlq.sent();
    let last = sent
        .last()
        .unwrap_or_else(|| panic!("{what}: no dead letter"));
    assert_eq!(last.attributes["failure"], "blocked_target", "{what}");
    assert!(!last.attributes.contains_key("last_status"));
    assert!(
        target.requests().is_empty(),
        "{what}: the target saw a request"
    );
}

#[tokio::test]
async fn ip_literals_in_every_spelling_are_refused() {
    let target = TestServer::always(200).await;
    let p = target.port;
    for url in [
        format!("http://127.0.0.1:{p}/hook"),
        format!("http://2130706433:{p}/hook"), // decimal
        format!("http://0177.0.0.1:{p}/hook"), // octal
        format!("http://0x7f.0.0.1:{p}/hook"), // hex
        format!("http://0x7f000001:{p}/hook"), // hex, one number
        format!("http://[::ffff:127.0.0.1]:{p}/hook"), // IPv4-mapped IPv6
        format!("http://[::1]:{p}/hook"),
        format!("http://0.0.0.0:{p}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/".to_owned(),
        "http://10.1.2.3/hook".to_owned(),
        "http://192.168.0.10/hook".to_owned(),
        "http://[fd00:ec2::254]/hook".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
    ] {
        let h = Harness::new(&guarded(&url));
        assert_blocked(&h, &target, &url).await;
    }
}

#[tokio::test]
async fn localhost_is_refused_after_resolution() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&guarded(
        &target.url("/hook").replace("127.0.0.1", "localhost"),
    ));
    assert_blocked(&h, &target, "localhost").await;
}

/// Resolves names from a table, as a DNS server under someone else's control might.
struct Table(HashMap<&'static str, &'static str>);

impl Lookup for Table {
    fn lookup(&self, host: String) -> LookupFuture {
        let ip = self.0.get(host.as_str()).map(|ip| ip.parse().unwrap());
        Box::pin(async move {
            ip.map(|ip| vec![SocketAddr::new(ip, 0)])
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown"))
        })
    }
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused() {
    let target = TestServer::always(200).await;
    let lookup: Arc<dyn Lookup> = Arc::new(Table(HashMap::from([
        ("hooks.example.test", "127.0.0.1"),
        ("metadata.example.test", "169.254.169.254"),
    ])));
    for host in ["hooks.example.test", "metadata.example.test"] {
        let url = format!("http://{host}:{}/hook", target.port);
        let h = Harness::build(&guarded(&url), false, Some(lookup.clone()));
        assert_blocked(&h, &target, host).await;
    }
    // The same name with the opt-in reaches the target: the resolver is really in use.
    let url = format!("http://hooks.example.test:{}/hook", target.port);
    let h = Harness::build(&guarded(&url), true, Some(lookup));
    assert!(
        h.run(vec![message(&job("evt_allowed", ROUTE), 1)])
            .await
            .is_empty()
    );
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn the_enrich_lookup_is_guarded_too() {
    let target = TestServer::always(200).await;
    let toml = route_block(
        ROUTE,
        "https://example.com/hook",
        "template = '{\"t\": {{ external.tier | tojson }}}'\n\
         enrich = { url = \"http://169.254.169.254/latest/{{ event.user_id }}\" }",
    );
    let h = Harness::new(&toml);
    assert_blocked(&h, &target, "enrich").await;
    assert!(h.dead_letter().attributes["last_error"].starts_with("enrich lookup: "));
}

#[tokio::test]
async fn the_environment_opt_in_allows_private_targets() {
    let target = TestServer::always(200).await;
    let h = Harness::build(&guarded(&target.url("/hook")), true, None);
    assert!(h.deliverer.allow_private_targets());
    assert!(
        h.run(vec![message(&job("evt_env", ROUTE), 1)])
            .await
            .is_empty()
    );
    assert_eq!(target.requests().len(), 1);
    assert!(
        !Harness::new(&guarded(&target.url("/hook")))
            .deliverer
            .allow_private_targets()
    );
}
