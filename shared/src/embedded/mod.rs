//! Local adapters: a durable SQLite queue with SQS semantics and a secrets file.

mod db;
mod ops;
mod queue;
mod secrets_file;
mod store;
mod upkeep;

#[cfg(test)]
mod tests;

pub use queue::{EmbeddedQueue, QueueSettings, Redrive};
pub use secrets_file::FileSecrets;
pub use store::{EmbeddedStore, StoreSettings, WAL_LIMIT_BYTES};
