//! Delivery metrics in CloudWatch Embedded Metric Format, written once per batch: one
//! JSON line per route (`Delivered`, `Retried`, `DeadLettered`, `CircuitOpen` (deliveries
//! refused by an open circuit: they wait, no attempt spent), `DeliveryLatency` in ms,
//! dimension `Route`) and one
//! per route and failure (`DeadLettered`, dimensions `Route`, `Failure`); and one line
//! when a circuit opens (`CircuitOpened`, dimension `Route`, with the circuit and its
//! scope as properties); and, when the batch put any message back for later (a retry, a
//! wait for a circuit, a delivery held behind its session, a deferred one),
//! `RetryAge` without dimensions: how long the oldest of them has been in its queue, in
//! seconds (the retry-age alarm's metric: SQS's own `ApproximateAgeOfOldestMessage`
//! stops counting a message after its third receive, which every retry is). CloudWatch Logs
//! turns those lines into metrics; nothing is called.

use router_core::retry::Failure;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;
use std::time::Duration;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "CognigyWebhookRouter";

/// Where metric lines go: stdout on Lambda (the log stream), anything in tests.
pub trait MetricsSink: Send + Sync + Debug {
    fn emit(&self, line: &str);

    /// Whether lines are wanted at all: when not, a batch's documents are not built.
    fn enabled(&self) -> bool {
        true
    }
}

/// One line per metric document on stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[derive(Debug, Default)]
struct RouteCounts {
    delivered: u64,
    retried: u64,
    dead_lettered: BTreeMap<&'static str, u64>,
    circuit_open: u64,
    latency_ms: Vec<f64>,
}

/// The counts of one batch, by route.
#[derive(Debug, Default)]
pub struct BatchMetrics {
    routes: BTreeMap<String, RouteCounts>,
    /// The oldest put-back message's time in its queue.
    retry_age: Option<Duration>,
}

impl BatchMetrics {
    fn route(&mut self, route: &str) -> &mut RouteCounts {
        self.routes.entry(route.to_owned()).or_default()
    }

    pub fn delivered(&mut self, route: &str) {
        self.route(route).delivered += 1;
    }

    pub fn retried(&mut self, route: &str) {
        self.route(route).retried += 1;
    }

    /// A message put back for later has been in its queue for `age`.
    pub fn put_back(&mut self, age: Duration) {
        self.retry_age = Some(self.retry_age.map_or(age, |a| a.max(age)));
    }

    /// A delivery failed at once because its target's circuit was open.
    pub fn circuit_open(&mut self, route: &str) {
        self.route(route).circuit_open += 1;
    }

    pub fn dead_lettered(&mut self, route: &str, failure: Failure) {
        *self
            .route(route)
            .dead_lettered
            .entry(failure.as_str())
            .or_default() += 1;
    }

    /// The latency of one delivery request (the POST, whatever its answer).
    pub fn latency(&mut self, route: &str, latency: Duration) {
        let ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
        self.route(route).latency_ms.push(ms);
    }

    /// The EMF documents, one per line, stamped `timestamp_ms` (Unix milliseconds).
    pub fn lines(&self, timestamp_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for (route, c) in &self.routes {
            let dead: u64 = c.dead_lettered.values().sum();
            let mut metrics = vec![
                json!({"Name": "Delivered", "Unit": "Count"}),
                json!({"Name": "Retried", "Unit": "Count"}),
                json!({"Name": "DeadLettered", "Unit": "Count"}),
            ];
            let mut doc = json!({
                "Route": route,
                "Delivered": c.delivered,
                "Retried": c.retried,
                "DeadLettered": dead,
            });
            if c.circuit_open > 0 {
                metrics.push(json!({"Name": "CircuitOpen", "Unit": "Count"}));
                doc["CircuitOpen"] = json!(c.circuit_open);
            }
            if !c.latency_ms.is_empty() {
                metrics.push(json!({"Name": "DeliveryLatency", "Unit": "Milliseconds"}));
                doc["DeliveryLatency"] = json!(c.latency_ms);
            }
            doc["_aws"] = envelope(timestamp_ms, &["Route"], metrics);
            out.push(doc.to_string());
            for (failure, n) in &c.dead_lettered {
                let mut doc = json!({"Route": route, "Failure": failure, "DeadLettered": n});
                doc["_aws"] = envelope(
                    timestamp_ms,
                    &["Route", "Failure"],
                    vec![json!({"Name": "DeadLettered", "Unit": "Count"})],
                );
                out.push(doc.to_string());
            }
        }
        if let Some(age) = self.retry_age {
            let mut doc = json!({"RetryAge": age.as_secs()});
            doc["_aws"] = envelope(
                timestamp_ms,
                &[],
                vec![json!({"Name": "RetryAge", "Unit": "Seconds"})],
            );
            out.push(doc.to_string());
        }
        out
    }
}

/// The line written when a route's target circuit opens.
pub fn circuit_opened_line(route: &str, circuit: &str, scope: &str, timestamp_ms: i64) -> String {
    let mut doc = json!({"Route": route, "Circuit": circuit, "Scope": scope, "CircuitOpened": 1});
    doc["_aws"] = envelope(
        timestamp_ms,
        &["Route"],
        vec![json!({"Name": "CircuitOpened", "Unit": "Count"})],
    );
    doc.to_string()
}

fn envelope(timestamp_ms: i64, dimensions: &[&str], metrics: Vec<Value>) -> Value {
    json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_oldest_put_back_message_is_one_undimensioned_retry_age() {
        let mut m = BatchMetrics::default();
        m.retried("crm");
        m.put_back(Duration::from_secs(40));
        m.put_back(Duration::from_millis(7_200_900));
        m.put_back(Duration::from_secs(5));
        let docs = parse(&m.lines(1_700_000_000_000));
        let age: Vec<_> = docs
            .iter()
            .filter(|d| d.get("RetryAge").is_some())
            .collect();
        assert_eq!(age.len(), 1);
        assert_eq!(age[0]["RetryAge"], 7200);
        let directive = &age[0]["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "RetryAge", "Unit": "Seconds"}])
        );
        // Nothing put back, no RetryAge.
        let mut m = BatchMetrics::default();
        m.delivered("crm");
        assert!(
            parse(&m.lines(0))
                .iter()
                .all(|d| d.get("RetryAge").is_none())
        );
    }

    #[test]
    fn one_line_per_route_and_one_per_failure() {
        let mut m = BatchMetrics::default();
        m.delivered("crm");
        m.delivered("crm");
        m.latency("crm", Duration::from_micros(12_345));
        m.latency("crm", Duration::from_millis(3));
        m.retried("crm");
        m.dead_lettered("crm", Failure::HttpStatus);
        m.dead_lettered("crm", Failure::HttpStatus);
        m.dead_lettered("crm", Failure::Render);
        m.dead_lettered("other", Failure::UnknownRoute);
        let docs = parse(&m.lines(1_700_000_000_000));
        assert_eq!(docs.len(), 5);

        let crm = &docs[0];
        assert_eq!(crm["Route"], "crm");
        assert_eq!(
            (&crm["Delivered"], &crm["Retried"], &crm["DeadLettered"]),
            (&json!(2), &json!(1), &json!(3))
        );
        assert_eq!(crm["DeliveryLatency"], json!([12.345, 3.0]));
        let directive = &crm["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(crm["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Route"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Delivered", "Retried", "DeadLettered", "DeliveryLatency"]
        );

        assert_eq!(
            (&docs[1]["Failure"], &docs[1]["DeadLettered"]),
            (&json!("http_status"), &json!(2))
        );
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Route", "Failure"]])
        );
        assert_eq!(docs[2]["Failure"], "render");

        // A route without a delivery request declares no latency metric.
        let other = &docs[3];
        assert_eq!(other["Route"], "other");
        assert!(other.get("DeliveryLatency").is_none());
        assert_eq!(
            other["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(docs[4]["Failure"], "unknown_route");
    }

    #[test]
    fn open_circuits_are_counted() {
        let mut m = BatchMetrics::default();
        m.circuit_open("crm");
        m.circuit_open("crm");
        m.retried("crm");
        let docs = parse(&m.lines(0));
        assert_eq!(docs[0]["CircuitOpen"], 2);
        let names = docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("CircuitOpen"), "{names}");
        let opened: Value =
            serde_json::from_str(&circuit_opened_line("crm", "http://x:80", "host", 5)).unwrap();
        assert_eq!(
            (&opened["CircuitOpened"], &opened["Route"]),
            (&json!(1), &json!("crm"))
        );
        assert_eq!(
            opened["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Route"]])
        );
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        assert!(BatchMetrics::default().lines(0).is_empty());
    }
}
