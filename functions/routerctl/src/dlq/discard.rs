//! `routerctl dlq discard`.

use super::{DeadLetterRow, Filter, Pair, QueuePair, page, print_table, release};
use crate::error::{CliError, CliResult};
use router_core::ports::{MAX_BATCH, Queue};

/// Which dead letters `discard` takes: these delivery ids, or what the filter picks.
#[derive(Debug)]
pub(super) struct Pick {
    pub(super) ids: Vec<String>,
    pub(super) filter: Filter,
}

impl Pick {
    fn matches(&self, row: &DeadLetterRow) -> bool {
        if self.ids.is_empty() {
            self.filter.matches(row)
        } else {
            self.ids.contains(&row.delivery_id) && self.filter.matches(row)
        }
    }
}

/// Per queue, the receipts of the picked dead letters (held until deleted or released).
type Held<'a> = Vec<(&'a dyn Queue, Vec<String>)>;

/// `dlq discard`: deletes the picked dead letters after a confirmation.
pub(super) async fn discard(pairs: &[(Pair, QueuePair)], pick: &Pick, yes: bool) -> CliResult {
    let (held, rows) = collect(pairs, pick).await?;
    let missing: Vec<&str> = pick
        .ids
        .iter()
        .filter(|id| !rows.iter().any(|r| &r.delivery_id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        eprintln!("Not in the dead-letter queue: {}", missing.join(", "));
    }
    if rows.is_empty() {
        println!("Nothing to discard.");
        return Ok(());
    }
    print_table(&rows);
    let n = rows.len();
    let plural = if n == 1 { "" } else { "s" };
    if !yes
        && !confirm(&format!(
            "Discard these {n} dead letter{plural} for good? Type `yes`: "
        ))
    {
        for (dlq, picked) in &held {
            release(*dlq, picked).await;
        }
        println!("Nothing discarded.");
        return Ok(());
    }
    let mut failed = 0;
    for (dlq, receipts) in &held {
        for chunk in receipts.chunks(MAX_BATCH) {
            failed += dlq
                .delete_batch(chunk)
                .await
                .into_iter()
                .filter(Result::is_err)
                .count();
        }
    }
    if failed > 0 {
        return Err(CliError::problems(format!(
            "{failed} of {n} dead letters could not be deleted; run the command again."
        )));
    }
    println!("Discarded {n} dead letter{plural}.");
    Ok(())
}

/// The picked dead letters' rows, and their receipts held per queue (the others are
/// released). Page by page; named ids stop the scan once all are found.
async fn collect<'a>(
    pairs: &'a [(Pair, QueuePair)],
    pick: &Pick,
) -> CliResult<(Held<'a>, Vec<DeadLetterRow>)> {
    let now = time::OffsetDateTime::now_utc();
    let mut held: Held<'a> = Vec::new();
    let mut rows = Vec::new();
    let all_found = |rows: &[DeadLetterRow]| {
        !pick.ids.is_empty()
            && pick
                .ids
                .iter()
                .all(|id| rows.iter().any(|r| &r.delivery_id == id))
    };
    for (_, pair) in pairs {
        let dlq = pair.dead_letters.as_ref();
        let (mut picked, mut kept, mut read) = (Vec::new(), Vec::new(), 0);
        while !all_found(&rows) {
            let got = page(dlq, &mut read).await?;
            if got.is_empty() {
                break;
            }
            for m in got {
                let row = DeadLetterRow::from_message(&m, now);
                if pick.matches(&row) {
                    picked.push(m.receipt_handle);
                    rows.push(row);
                } else {
                    kept.push(m.receipt_handle);
                }
            }
        }
        release(dlq, &kept).await;
        held.push((dlq, picked));
    }
    Ok((held, rows))
}

/// Asks on stderr and reads one line from stdin: only `yes` (or `y`) confirms.
fn confirm(question: &str) -> bool {
    use std::io::Write;
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y")
}
