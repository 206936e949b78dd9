//! The one cache of values made from secrets (the ingest keys, the signing key, an auth
//! header, a URL token, an oauth2 token's header), with one rule for a warm process and a
//! cold start: a value that cannot be made stops being used.
//!
//! - A value made from a secret is used for `reread` (or less, as its maker says: a token
//!   until shortly before it expires), then the secret is read again by the next use.
//! - A re-read whose value is unusable (blank, malformed, a typo) or whose secret is gone
//!   drops the value at once: the next uses fail, exactly as a cold start on that value
//!   refuses to start. Never "the old key forever".
//! - A re-read that cannot reach the store keeps the last good value for at most one more
//!   `reread` ([`OnFailure::GraceWhileUnreachable`]) and then drops it; with
//!   [`OnFailure::Drop`] it drops it at once.
//! - A failure is remembered for [`RETRY_AFTER_FAILURE`] (at most `reread`): meanwhile every
//!   use gets the same answer without a store call, and the failure is logged once per
//!   read (`secret unusable`, with the id and why, never the value).
//! - One use at a time reads a given secret; the others use the value in hand while it is
//!   usable, or wait for the read.

use crate::ports::{SecretError, SecretStore};
use crate::secrets::Secret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// After a failed read, how long before the next try.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Whether a use may take the value in hand or wants the secret read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The value in hand while it is fresh (a remembered failure while it is).
    Cached,
    /// Read the secret now (the value was refused somewhere, or this is the first use).
    Fresh,
}

/// What a re-read that cannot reach the store does to the value in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Drop it at once.
    Drop,
    /// Keep using it for at most one more re-read period (a store outage should not stop
    /// every delivery or lock every flow out at once).
    GraceWhileUnreachable,
}

/// Why no value could be had. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] SecretError),
    /// The secret was read, but no usable value can be made of it.
    #[error("secret `{id}`: {reason}")]
    Unusable { id: String, reason: String },
}

/// What a maker made of a secret: the value, and how long it may be used (`None`: the
/// cache's `reread`; zero: not kept at all).
pub type Made<T> = (T, Option<Duration>);

struct Entry<T> {
    /// The last good value, used until `fresh_until`; past it, while the store cannot be
    /// reached, until `usable_until`.
    good: Option<(T, Instant, Instant)>,
    /// The last failure and when to try again.
    failed: Option<(CacheError, Instant)>,
}

impl<T> Default for Entry<T> {
    fn default() -> Self {
        Self {
            good: None,
            failed: None,
        }
    }
}

/// Values made from secrets, by a key (a secret id, a profile name).
pub struct SecretCache<T> {
    store: Arc<dyn SecretStore>,
    reread: Duration,
    policy: OnFailure,
    entries: Mutex<HashMap<String, Entry<T>>>,
    reading: tokio::sync::Mutex<()>,
}

impl<T> std::fmt::Debug for SecretCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("reread", &self.reread)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What the cache holds for a key at `now`.
enum Look<T> {
    Fresh(T),
    /// A failure still remembered, and the value to use meanwhile (if still usable).
    Failed(CacheError, Option<T>),
    /// Due for a read; the value usable meanwhile, if any.
    Due(Option<T>),
}

impl<T: Clone> SecretCache<T> {
    pub fn new(store: Arc<dyn SecretStore>, reread: Duration, policy: OnFailure) -> Self {
        Self {
            store,
            reread,
            policy,
            entries: Mutex::new(HashMap::new()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn reread(&self) -> Duration {
        self.reread
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        crate::sync::lock(&self.entries)
    }

    fn look(&self, key: &str, now: Instant) -> Look<T> {
        let map = self.lock();
        let Some(e) = map.get(key) else {
            return Look::Due(None);
        };
        let usable = e
            .good
            .as_ref()
            .filter(|(_, _, until)| now < *until)
            .map(|(v, _, _)| v.clone());
        if let Some((v, fresh, _)) = &e.good
            && now < *fresh
        {
            return Look::Fresh(v.clone());
        }
        match &e.failed {
            Some((err, retry_at)) if now < *retry_at => Look::Failed(err.clone(), usable),
            _ => Look::Due(usable),
        }
    }

    /// The value for `key`, made by `make` from secret `id` when it is due (or at once with
    /// [`Read::Fresh`], which bypasses the failure memory too).
    pub async fn get(
        &self,
        key: &str,
        id: &str,
        read: Read,
        make: impl FnOnce(Secret) -> Result<Made<T>, String>,
    ) -> Result<T, CacheError> {
        let fresh = read == Read::Fresh;
        if !fresh {
            match self.look(key, Instant::now()) {
                Look::Fresh(v) | Look::Failed(_, Some(v)) => return Ok(v),
                Look::Failed(err, None) => return Err(err),
                Look::Due(in_hand) => {
                    // Another use is reading it: use the value in hand meanwhile.
                    if let Some(v) = in_hand
                        && self.reading.try_lock().is_err()
                    {
                        return Ok(v);
                    }
                }
            }
        }
        let _reading = self.reading.lock().await;
        if !fresh {
            // The use we waited for may have read it, or failed to: its answer is ours.
            match self.look(key, Instant::now()) {
                Look::Fresh(v) | Look::Failed(_, Some(v)) => return Ok(v),
                Look::Failed(err, None) => return Err(err),
                Look::Due(_) => {}
            }
        }
        let read = self.store.get(id).await;
        let outcome = match read {
            Ok(secret) => make(secret).map_err(|reason| CacheError::Unusable {
                id: id.to_owned(),
                reason,
            }),
            Err(e) => Err(CacheError::Store(e)),
        };
        self.remember(key, id, outcome, Instant::now())
    }

    /// Keeps what a read of secret `id` for `key` came to: the value until its re-read, or
    /// the failure (and, while the store is unreachable, the value in hand for a grace).
    fn remember(
        &self,
        key: &str,
        id: &str,
        outcome: Result<Made<T>, CacheError>,
        now: Instant,
    ) -> Result<T, CacheError> {
        let mut map = self.lock();
        let entry = map.entry(key.to_owned()).or_default();
        match outcome {
            Ok((value, keep)) => {
                let keep = keep.unwrap_or(self.reread).min(self.reread);
                entry.failed = None;
                entry.good = (!keep.is_zero()).then(|| {
                    let grace = match self.policy {
                        OnFailure::Drop => Duration::ZERO,
                        OnFailure::GraceWhileUnreachable => self.reread,
                    };
                    (value.clone(), now + keep, now + keep + grace)
                });
                Ok(value)
            }
            Err(err) => {
                let unreachable = matches!(err, CacheError::Store(SecretError::Unavailable(_)));
                let kept = entry
                    .good
                    .as_ref()
                    .filter(|(_, _, until)| unreachable && now < *until)
                    .map(|(v, _, _)| v.clone());
                if kept.is_none() {
                    entry.good = None;
                }
                entry.failed = Some((err.clone(), now + RETRY_AFTER_FAILURE.min(self.reread)));
                match &kept {
                    Some(_) => tracing::warn!(
                        secret = %id,
                        error = %err,
                        "secret unusable: cannot re-read it; the value in hand is used for at most one more re-read period"
                    ),
                    None => tracing::error!(
                        secret = %id,
                        error = %err,
                        "secret unusable: what depends on it fails until it is fixed"
                    ),
                }
                kept.ok_or(err)
            }
        }
    }

    /// Forgets `key`'s value and failure: the next use reads its secret.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a map that counts reads and can be made unreachable.
    #[derive(Debug, Default)]
    struct MemorySecrets {
        values: Mutex<HashMap<String, String>>,
        reads: Mutex<usize>,
        failure: Mutex<Option<SecretError>>,
    }

    impl MemorySecrets {
        fn with(pairs: &[(&str, &str)]) -> Self {
            let s = Self::default();
            for (k, v) in pairs {
                s.set(k, v);
            }
            s
        }
        fn set(&self, id: &str, v: &str) {
            self.values.lock().unwrap().insert(id.into(), v.into());
        }
        fn remove(&self, id: &str) {
            self.values.lock().unwrap().remove(id);
        }
        fn fail_with(&self, e: Option<SecretError>) {
            *self.failure.lock().unwrap() = e;
        }
        fn reads_of(&self, _id: &str) -> usize {
            *self.reads.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl SecretStore for MemorySecrets {
        async fn get(&self, id: &str) -> Result<Secret, SecretError> {
            *self.reads.lock().unwrap() += 1;
            // A read takes a moment, as a real store's does: other uses run meanwhile.
            tokio::time::sleep(Duration::from_millis(2)).await;
            if let Some(e) = self.failure.lock().unwrap().clone() {
                return Err(e);
            }
            self.values
                .lock()
                .unwrap()
                .get(id)
                .map(|v| Secret::new(v.clone()))
                .ok_or_else(|| SecretError::NotFound(id.into()))
        }
        async fn put(&self, id: &str, v: &Secret) -> Result<(), SecretError> {
            self.set(id, v.expose());
            Ok(())
        }
    }

    fn upper(s: Secret) -> Result<Made<String>, String> {
        let v = s.expose().trim();
        if v.is_empty() || v.contains("typo") {
            return Err("blank or malformed".to_owned());
        }
        Ok((v.to_uppercase(), None))
    }

    fn cache(
        store: &Arc<MemorySecrets>,
        reread: Duration,
        policy: OnFailure,
    ) -> SecretCache<String> {
        SecretCache::new(store.clone(), reread, policy)
    }

    const ZERO: Duration = Duration::ZERO;

    #[tokio::test]
    async fn a_value_is_reused_for_the_reread_period_then_read_again() {
        let store = Arc::new(MemorySecrets::with(&[("k", "a")]));
        let c = cache(&store, Duration::from_secs(3600), OnFailure::Drop);
        for _ in 0..5 {
            assert_eq!(c.get("k", "k", Read::Cached, upper).await.unwrap(), "A");
        }
        assert_eq!(store.reads_of("k"), 1);
        // `fresh` reads it again now.
        store.set("k", "b");
        assert_eq!(c.get("k", "k", Read::Fresh, upper).await.unwrap(), "B");
        // With a period of 0 every use reads.
        let every = cache(&store, ZERO, OnFailure::Drop);
        every.get("k", "k", Read::Cached, upper).await.unwrap();
        every.get("k", "k", Read::Cached, upper).await.unwrap();
        assert_eq!(store.reads_of("k"), 4);
    }

    #[tokio::test]
    async fn an_unusable_or_deleted_secret_drops_the_value_in_hand_at_once() {
        for bad in ["", "typo", "<deleted>"] {
            let store = Arc::new(MemorySecrets::with(&[("k", "a")]));
            let c = cache(&store, ZERO, OnFailure::GraceWhileUnreachable);
            assert_eq!(c.get("k", "k", Read::Cached, upper).await.unwrap(), "A");
            if bad == "<deleted>" {
                store.remove("k");
            } else {
                store.set("k", bad);
            }
            let err = c.get("k", "k", Read::Cached, upper).await.unwrap_err();
            assert!(!err.to_string().contains('a'.to_ascii_uppercase()), "{err}");
            // Fixed: the next read (its retry is due at once with a period of 0) works.
            store.set("k", "c");
            assert_eq!(
                c.get("k", "k", Read::Cached, upper).await.unwrap(),
                "C",
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_keeps_the_value_for_at_most_one_more_period() {
        let store = Arc::new(MemorySecrets::with(&[("k", "a")]));
        let period = Duration::from_millis(300);
        let c = cache(&store, period, OnFailure::GraceWhileUnreachable);
        c.get("k", "k", Read::Cached, upper).await.unwrap();
        store.fail_with(Some(SecretError::Unavailable("down".into())));
        let started = Instant::now();
        tokio::time::sleep(period).await;
        // Past its period, the store down: still the value in hand...
        assert_eq!(c.get("k", "k", Read::Cached, upper).await.unwrap(), "A");
        // ... but never past two periods after the good read.
        tokio::time::sleep((period * 2).saturating_sub(started.elapsed()) + period / 3).await;
        assert!(c.get("k", "k", Read::Fresh, upper).await.is_err());
        // Without grace it is dropped at once.
        let store = Arc::new(MemorySecrets::with(&[("k", "a")]));
        let c = cache(&store, ZERO, OnFailure::Drop);
        c.get("k", "k", Read::Cached, upper).await.unwrap();
        store.fail_with(Some(SecretError::Unavailable("down".into())));
        assert!(c.get("k", "k", Read::Cached, upper).await.is_err());
    }

    #[tokio::test]
    async fn a_failure_is_remembered_so_uses_do_not_turn_into_reads() {
        let store = Arc::new(MemorySecrets::with(&[("k", "typo")]));
        let c = cache(&store, Duration::from_secs(300), OnFailure::Drop);
        for _ in 0..40 {
            assert!(c.get("k", "k", Read::Cached, upper).await.is_err());
        }
        assert_eq!(store.reads_of("k"), 1, "one read for 40 uses");
        c.forget("k");
        assert!(c.get("k", "k", Read::Cached, upper).await.is_err());
        assert_eq!(store.reads_of("k"), 2);
    }

    #[tokio::test]
    async fn uses_waiting_for_one_failing_read_do_not_each_read_again() {
        let store = Arc::new(MemorySecrets::with(&[("k", "typo")]));
        let c = Arc::new(cache(&store, Duration::from_secs(300), OnFailure::Drop));
        let uses: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.get("k", "k", Read::Cached, upper).await })
            })
            .collect();
        for u in uses {
            assert!(u.await.unwrap().is_err());
        }
        assert_eq!(store.reads_of("k"), 1);
    }

    #[tokio::test]
    async fn a_maker_can_keep_its_value_shorter_or_not_at_all() {
        let store = Arc::new(MemorySecrets::with(&[("k", "a")]));
        let c = cache(&store, Duration::from_secs(300), OnFailure::Drop);
        let once = |s: Secret| Ok((s.expose().to_owned(), Some(ZERO)));
        c.get("k", "k", Read::Cached, once).await.unwrap();
        c.get("k", "k", Read::Cached, once).await.unwrap();
        assert_eq!(store.reads_of("k"), 2, "kept for zero: read every time");
    }
}
