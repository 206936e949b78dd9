//! Function configuration from the environment (CONTRACT section 6), parsed once at cold
//! start. A missing or bad value is an error that names the variable.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Where the queues are, from `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL`: both set is SQS,
/// neither is the embedded queue (locally; the Lambda functions need SQS). The one place
/// that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueLocation {
    Sqs(SqsQueueUrls),
    Embedded,
}

/// The SQS queues' URLs: the standard pair and, when both of their variables are set, the
/// ordered routes' FIFO pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueueUrls {
    pub queue: String,
    pub dead_letters: String,
    /// `ORDERED_QUEUE_URL` and `ORDERED_DEAD_LETTER_QUEUE_URL`.
    pub ordered: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `ROUTES_FILE`, default `routes.toml`.
    pub routes_file: PathBuf,
    /// `QUEUE_URL`: the delivery queue (SQS). Unset locally means the embedded queue.
    pub queue_url: Option<String>,
    /// `DEAD_LETTER_QUEUE_URL`.
    pub dead_letter_queue_url: Option<String>,
    /// `ORDERED_QUEUE_URL`: the FIFO delivery queue of ordered routes.
    pub ordered_queue_url: Option<String>,
    /// `ORDERED_DEAD_LETTER_QUEUE_URL`: its FIFO dead-letter queue.
    pub ordered_dead_letter_queue_url: Option<String>,
    /// `ALLOW_PRIVATE_TARGETS=true` allows private targets whatever the routes file says.
    pub allow_private_targets: bool,
    /// `DLQ_DEGRADED_THRESHOLD`, default 10.
    pub dlq_degraded_threshold: u64,
    /// `SECRET_PREFIX`: put before every secret id of the routes file when reading Secrets
    /// Manager (the template sets the stack's name and `/`). Unset: the ids as written.
    pub secret_prefix: Option<String>,
    /// `ROUTER_BASE_URL`: where the router's own API is (the template sets the HTTP API's
    /// URL), for routes whose `target_url` is a path on it (the smoke check's).
    pub router_base_url: Option<url::Url>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let allow_private_targets =
            match non_empty("ALLOW_PRIVATE_TARGETS").as_deref().map(str::trim) {
                None | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(other) => {
                    return Err(ConfigError {
                        var: "ALLOW_PRIVATE_TARGETS",
                        reason: format!("must be true or false, got `{other}`"),
                    });
                }
            };
        let dlq_degraded_threshold = match non_empty("DLQ_DEGRADED_THRESHOLD") {
            None => 10,
            Some(v) => v.trim().parse().map_err(|_| ConfigError {
                var: "DLQ_DEGRADED_THRESHOLD",
                reason: format!("must be a whole number, got `{v}`"),
            })?,
        };
        let router_base_url = match non_empty("ROUTER_BASE_URL") {
            None => None,
            Some(v) => match url::Url::parse(v.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
                _ => {
                    return Err(ConfigError {
                        var: "ROUTER_BASE_URL",
                        reason: format!("must be an http(s) URL, got `{v}`"),
                    });
                }
            },
        };
        Ok(Self {
            router_base_url,
            routes_file: non_empty("ROUTES_FILE")
                .map_or_else(|| PathBuf::from("routes.toml"), PathBuf::from),
            queue_url: non_empty("QUEUE_URL"),
            dead_letter_queue_url: non_empty("DEAD_LETTER_QUEUE_URL"),
            ordered_queue_url: non_empty("ORDERED_QUEUE_URL"),
            ordered_dead_letter_queue_url: non_empty("ORDERED_DEAD_LETTER_QUEUE_URL"),
            allow_private_targets,
            dlq_degraded_threshold,
            secret_prefix: non_empty("SECRET_PREFIX").map(|p| p.trim().to_owned()),
        })
    }

    /// `QUEUE_URL`, for the functions that cannot run without it.
    pub fn require_queue_url(&self) -> Result<&str, ConfigError> {
        self.queue_url.as_deref().ok_or(ConfigError {
            var: "QUEUE_URL",
            reason: "is required (the delivery queue's URL)".to_owned(),
        })
    }

    /// SQS or the embedded queue (see [`QueueLocation`]); one URL of a pair without the
    /// other is an error naming the missing one.
    pub fn queue_location(&self) -> Result<QueueLocation, ConfigError> {
        let ordered = self
            .ordered_queue_urls()?
            .map(|(q, d)| (q.to_owned(), d.to_owned()));
        match (&self.queue_url, &self.dead_letter_queue_url) {
            (Some(queue), Some(dead_letters)) => Ok(QueueLocation::Sqs(SqsQueueUrls {
                queue: queue.clone(),
                dead_letters: dead_letters.clone(),
                ordered,
            })),
            (None, None) => Ok(QueueLocation::Embedded),
            (Some(_), None) => Err(ConfigError {
                var: "DEAD_LETTER_QUEUE_URL",
                reason: "is required with QUEUE_URL (set both to use SQS, or neither for the embedded queue)".to_owned(),
            }),
            (None, Some(_)) => Err(ConfigError {
                var: "QUEUE_URL",
                reason: "is required with DEAD_LETTER_QUEUE_URL (set both to use SQS, or neither for the embedded queue)".to_owned(),
            }),
        }
    }

    /// The SQS queues, for the Lambda functions (which have no embedded queue).
    pub fn sqs_queue_urls(&self) -> Result<SqsQueueUrls, ConfigError> {
        match self.queue_location()? {
            QueueLocation::Sqs(urls) => Ok(urls),
            QueueLocation::Embedded => Err(self.require_queue_url().expect_err("no QUEUE_URL")),
        }
    }

    /// The FIFO queue pair of ordered routes: both URLs, or neither.
    pub fn ordered_queue_urls(&self) -> Result<Option<(&str, &str)>, ConfigError> {
        match (&self.ordered_queue_url, &self.ordered_dead_letter_queue_url) {
            (Some(q), Some(d)) => Ok(Some((q, d))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError {
                var: "ORDERED_DEAD_LETTER_QUEUE_URL",
                reason: "is required with ORDERED_QUEUE_URL".to_owned(),
            }),
            (None, Some(_)) => Err(ConfigError {
                var: "ORDERED_QUEUE_URL",
                reason: "is required with ORDERED_DEAD_LETTER_QUEUE_URL".to_owned(),
            }),
        }
    }

    /// `DEAD_LETTER_QUEUE_URL`, for the functions that cannot run without it.
    pub fn require_dead_letter_queue_url(&self) -> Result<&str, ConfigError> {
        self.dead_letter_queue_url.as_deref().ok_or(ConfigError {
            var: "DEAD_LETTER_QUEUE_URL",
            reason: "is required (the dead-letter queue's URL)".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_router_base_url_must_be_an_http_url() {
        assert_eq!(config(&[]).unwrap().router_base_url, None);
        let c = config(&[(
            "ROUTER_BASE_URL",
            "https://abc.execute-api.eu-central-1.amazonaws.com",
        )]);
        assert_eq!(
            c.unwrap().router_base_url.unwrap().as_str(),
            "https://abc.execute-api.eu-central-1.amazonaws.com/"
        );
        for bad in ["nope", "ftp://x.example.com", "/api/v2"] {
            let e = config(&[("ROUTER_BASE_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "ROUTER_BASE_URL", "{bad}");
        }
    }

    #[test]
    fn the_secret_prefix_is_read_as_set() {
        assert_eq!(config(&[]).unwrap().secret_prefix, None);
        assert_eq!(
            config(&[("SECRET_PREFIX", " ")]).unwrap().secret_prefix,
            None
        );
        assert_eq!(
            config(&[("SECRET_PREFIX", "stack-dev/")])
                .unwrap()
                .secret_prefix
                .as_deref(),
            Some("stack-dev/")
        );
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.routes_file, PathBuf::from("routes.toml"));
        assert_eq!(
            (
                c.queue_url,
                c.allow_private_targets,
                c.dlq_degraded_threshold
            ),
            (None, false, 10)
        );
    }

    #[test]
    fn values_are_read_and_bad_ones_name_their_variable() {
        let c = config(&[
            ("ROUTES_FILE", "/var/task/routes.toml"),
            ("QUEUE_URL", "http://q"),
            ("DEAD_LETTER_QUEUE_URL", "http://d"),
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("DLQ_DEGRADED_THRESHOLD", "3"),
        ])
        .unwrap();
        assert_eq!(c.require_queue_url().unwrap(), "http://q");
        assert_eq!(c.require_dead_letter_queue_url().unwrap(), "http://d");
        assert!(c.allow_private_targets);
        assert_eq!(c.dlq_degraded_threshold, 3);

        let e = config(&[("ALLOW_PRIVATE_TARGETS", "yes")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable ALLOW_PRIVATE_TARGETS: must be true or false, got `yes`"
        );
        let e = config(&[("DLQ_DEGRADED_THRESHOLD", "ten")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("environment variable DLQ_DEGRADED_THRESHOLD")
        );
        let e = config(&[]).unwrap().require_queue_url().unwrap_err();
        assert!(e.to_string().contains("QUEUE_URL: is required"));
    }

    #[test]
    fn both_queue_urls_are_sqs_and_neither_is_the_embedded_queue() {
        assert_eq!(
            config(&[]).unwrap().queue_location().unwrap(),
            QueueLocation::Embedded
        );
        let both = [
            ("QUEUE_URL", "http://q"),
            ("DEAD_LETTER_QUEUE_URL", "http://d"),
        ];
        let want = SqsQueueUrls {
            queue: "http://q".into(),
            dead_letters: "http://d".into(),
            ordered: None,
        };
        let c = config(&both).unwrap();
        assert_eq!(
            c.queue_location().unwrap(),
            QueueLocation::Sqs(want.clone())
        );
        assert_eq!(c.sqs_queue_urls().unwrap(), want);

        let fifo = config(&[
            both[0],
            both[1],
            ("ORDERED_QUEUE_URL", "http://o.fifo"),
            ("ORDERED_DEAD_LETTER_QUEUE_URL", "http://od.fifo"),
        ])
        .unwrap();
        assert_eq!(
            fifo.sqs_queue_urls().unwrap().ordered,
            Some(("http://o.fifo".into(), "http://od.fifo".into()))
        );

        // Half a pair names what is missing; the Lambda functions need SQS.
        let e = config(&both[..1]).unwrap().queue_location().unwrap_err();
        assert_eq!(e.var, "DEAD_LETTER_QUEUE_URL");
        let e = config(&both[1..]).unwrap().queue_location().unwrap_err();
        assert_eq!(e.var, "QUEUE_URL");
        let e = config(&[both[0], both[1], ("ORDERED_QUEUE_URL", "http://o.fifo")])
            .unwrap()
            .queue_location()
            .unwrap_err();
        assert_eq!(e.var, "ORDERED_DEAD_LETTER_QUEUE_URL");
        let e = config(&[]).unwrap().sqs_queue_urls().unwrap_err();
        assert!(e.to_string().contains("QUEUE_URL: is required"), "{e}");
    }
}
