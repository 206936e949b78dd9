//! The queue contract, run against the embedded queue and against SQS on moto_server.

use router_tests::queue_contract::{self, MAX_RECEIVE_COUNT, VISIBILITY};
use router_tests::{embedded_queue_pair, moto_fifo_queue_pair, moto_queue_pair};

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (q, dlq, _dir) = embedded_queue_pair(VISIBILITY, MAX_RECEIVE_COUNT);
                    queue_contract::$case(&q, &dlq).await;
                }
            )*
        }
        mod sqs_on_moto {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (q, dlq) = moto_queue_pair(VISIBILITY, MAX_RECEIVE_COUNT).await;
                    queue_contract::$case(&q, &dlq).await;
                }
            )*
        }
    };
}

/// The FIFO cases, on the embedded queue and on a FIFO queue on moto.
macro_rules! fifo_contract {
    ($($case:ident),* $(,)?) => {
        mod fifo_embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (q, dlq, _dir) = embedded_queue_pair(VISIBILITY, MAX_RECEIVE_COUNT);
                    queue_contract::$case(&q, &dlq).await;
                }
            )*
        }
        mod fifo_sqs_on_moto {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (q, dlq) = moto_fifo_queue_pair(VISIBILITY, MAX_RECEIVE_COUNT).await;
                    queue_contract::$case(&q, &dlq).await;
                }
            )*
        }
    };
}

fifo_contract!(
    fifo_groups_come_in_send_order,
    fifo_an_unfinished_message_holds_back_only_its_group,
    fifo_a_repeated_deduplication_id_is_dropped,
    fifo_a_released_message_keeps_its_place,
);

contract!(
    messages_round_trip_with_attributes,
    a_received_message_is_hidden_until_its_visibility_expires,
    visibility_zero_releases_a_message_at_once,
    change_visibility_extends_the_hiding,
    a_deleted_message_is_gone_for_good,
    a_message_moves_to_the_dead_letter_queue_after_max_receives,
    depth_counts_visible_and_in_flight,
    a_delayed_message_appears_after_its_delay,
    batches_hold_at_most_ten,
    batch_visibility_and_delete_report_each_entry,
    a_long_poll_returns_when_a_message_arrives,
    content_sqs_refuses_is_refused_for_good,
    a_released_message_keeps_its_attempt_number,
);
