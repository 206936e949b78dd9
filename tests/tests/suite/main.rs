//! The cross-crate suite, one binary (each test binary links the whole workspace): the
//! functions against SQS and Secrets Manager on moto_server, the embedded queue's durability
//! and disk, and the queue contract on both adapters, a module per area.

mod support;

mod deliver_rate_limit;
mod deliver_sqs;
mod embedded_disk;
mod embedded_durability;
mod queue_contract;
mod token_refresh_logs;
mod token_refresh_moto;
mod trigger_moto;
