//! Set-up shared by the token-refresh test binaries: a prefix of secret ids on moto's
//! Secrets Manager, routes with oauth2 profiles pointing at fake token servers.

use router_core::aws::SecretsManagerStore;
use router_core::ports::SecretStore;
use router_core::routes::Routes;
use router_core::secrets::{Secret, StoredToken};
use router_tests::moto_sdk_config;
use router_tests::token_server::TokenServer;
use std::time::Duration;
use token_refresh::{ProfileOutcome, refresh};
use tokio::time::Instant;

pub const CLIENT_SECRET: &str = "cs-very-secret-42";

pub struct Setup {
    pub store: SecretsManagerStore,
    pub prefix: String,
}

pub async fn setup() -> Setup {
    let sdk = moto_sdk_config().await;
    Setup {
        store: SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk)),
        prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
    }
}

impl Setup {
    pub fn token_id(&self, profile: &str) -> String {
        format!("{}/{profile}/token", self.prefix)
    }

    /// A routes file with one oauth2 profile per (name, server, extra settings).
    pub async fn routes(&self, profiles: &[(&str, &TokenServer, &str)]) -> Routes {
        let mut text = String::new();
        for (name, server, extra) in profiles {
            let creds = format!("{}/{name}/credentials", self.prefix);
            self.store
                .put(
                    &creds,
                    &Secret::new(format!(
                        r#"{{"client_id":"id-{name}","client_secret":"{CLIENT_SECRET}"}}"#
                    )),
                )
                .await
                .unwrap();
            text.push_str(&format!(
                "[auth.{name}]\ntype = \"oauth2\"\ntoken_url = \"{}\"\ncredentials_secret = \"{creds}\"\ntoken_secret = \"{}\"\n{extra}\n",
                server.url,
                self.token_id(name)
            ));
        }
        Routes::parse(&text, std::path::Path::new("routes.toml")).unwrap()
    }

    pub async fn stored(&self, profile: &str) -> Option<StoredToken> {
        let s = self.store.get(&self.token_id(profile)).await.ok()?;
        Some(StoredToken::parse(&s).expect("a stored token is always complete JSON"))
    }

    pub async fn store_token(&self, profile: &str, token: &str, issued_ago: i64, expires_in: i64) {
        let now = now();
        let t = StoredToken {
            access_token: token.into(),
            token_type: "Bearer".into(),
            expires_at: now + expires_in,
            issued_at: Some(now - issued_ago),
        };
        self.store
            .put(
                &self.token_id(profile),
                &Secret::new(serde_json::to_string(&t).unwrap()),
            )
            .await
            .unwrap();
    }

    pub async fn refresh(&self, routes: &Routes) -> token_refresh::Report {
        let deadline = Instant::now() + Duration::from_secs(30);
        refresh(
            routes,
            &self.store,
            &token_refresh::http_client().unwrap(),
            deadline,
            None,
            token_refresh::Renew::IfDue,
        )
        .await
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn outcome(report: &token_refresh::Report, name: &str) -> ProfileOutcome {
    report
        .profiles
        .iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
        .clone()
}
