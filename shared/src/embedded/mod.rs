//! Local adapters: a durable SQLite queue with SQS semantics and a secrets file.

mod queue;
mod secrets_file;

pub use queue::{EmbeddedQueue, EmbeddedStore, QueueSettings, Redrive};
pub use secrets_file::FileSecrets;
