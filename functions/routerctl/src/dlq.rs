//! `routerctl dlq list | show | discard | redrive`: dead letters on the embedded queue or on
//! SQS. Each reads the dead-letter queue through the queue port a page (10) at a time,
//! holding what it has read hidden so no page comes twice, and keeps only what it needs of
//! each page (a row, a receipt handle): memory stays a page of bodies whatever the queue
//! holds. `show ID` and `discard ID...` stop once they found theirs; at the end what was
//! held is released. Only `show` uses the routes file (to render), and only when there is
//! one. Everything printed that a caller chose is escaped (`router_core::text::escaped`).

use crate::cli::{DlqCommand, Global};
use crate::error::{CliError, CliResult, SetupContext};
use crate::setup;
use router_core::backends::{Pair, QueuePair};
use router_core::domain::DeliveryJob;
use router_core::ports::{MAX_BATCH, OutgoingMessage, Queue, ReceivedMessage};
use router_core::wire::dead_letter::{self, Failure};
use router_core::wire::queue::{job_message, ordered_job_message};
use serde::Serialize;
use std::time::Duration;

mod discard;
mod show;

/// How long messages stay hidden while a command holds them.
const HOLD: Duration = Duration::from_secs(300);
/// Progress is printed every this many messages.
const PROGRESS_EVERY: usize = 100;

#[derive(Debug, Serialize, PartialEq)]
pub struct DeadLetterRow {
    pub delivery_id: String,
    pub route: String,
    pub failure: String,
    pub last_status: Option<u16>,
    pub attempts: Option<u32>,
    pub age_s: Option<i64>,
    pub last_error: Option<String>,
}

impl DeadLetterRow {
    pub fn from_message(m: &ReceivedMessage, now: time::OffsetDateTime) -> Self {
        let job = DeliveryJob::parse(&m.body).ok();
        let recorded = dead_letter::read(&m.attributes);
        let age_s = job
            .as_ref()
            .map(|j| (now - j.received_at).whole_seconds())
            .or_else(|| (m.sent_at_ms > 0).then(|| now.unix_timestamp() - m.sent_at_ms / 1000));
        Self {
            delivery_id: recorded
                .delivery_id
                .or_else(|| job.as_ref().map(|j| j.delivery_id.clone()))
                .unwrap_or_else(|| "-".into()),
            route: recorded
                .route
                .or_else(|| job.as_ref().map(|j| j.route.to_string()))
                .unwrap_or_else(|| "-".into()),
            // A message the queue itself moved here (a crash loop) carries no failure.
            failure: recorded
                .failure
                .unwrap_or_else(|| dead_letter::REDRIVEN_BY_QUEUE.into()),
            last_status: recorded.last_status,
            attempts: recorded.attempts.or(Some(m.receive_count)),
            age_s,
            last_error: recorded.last_error,
        }
    }
}

pub async fn run(global: &Global, command: &DlqCommand) -> CliResult {
    let config = setup::config()?;
    // Only `show` needs the routes (to render); the others work without a routes file.
    let routes = setup::load_routes_if_present(&global.routes)?;
    let (standard, ordered) = setup::queues(
        &config,
        global,
        routes.as_deref(),
        Duration::from_secs(60),
        None,
    )
    .await?;
    // The standard pair, and the ordered routes' FIFO pair when there is one.
    let pairs: Vec<(Pair, QueuePair)> = std::iter::once((Pair::Standard, standard))
        .chain(ordered.map(|o| (Pair::Ordered, o)))
        .collect();
    match command {
        DlqCommand::List { json } => list(&pairs, *json).await,
        DlqCommand::Show { id } => show::show(&pairs, id, routes.as_deref(), global).await,
        DlqCommand::Discard {
            ids,
            route,
            failure,
            all,
            yes,
        } => {
            check_failure(failure.as_deref())?;
            if ids.is_empty() && route.is_none() && failure.is_none() && !all {
                return Err(CliError::setup(
                    "Name the dead letters to discard: delivery ids, --route, --failure, or --all for every one.",
                ));
            }
            let pick = discard::Pick {
                ids: ids.clone(),
                filter: Filter {
                    route: route.clone(),
                    failure: failure.clone(),
                    limit: usize::MAX,
                },
            };
            discard::discard(&pairs, &pick, *yes).await
        }
        DlqCommand::Redrive {
            route,
            failure,
            limit,
        } => {
            check_failure(failure.as_deref())?;
            let mut filter = Filter {
                route: route.clone(),
                failure: failure.clone(),
                limit: limit.unwrap_or(usize::MAX),
            };
            let mut moved = Redriven::default();
            for (which, pair) in &pairs {
                moved.add(redrive(pair, *which, &mut filter).await?);
            }
            moved.report()
        }
    }
}

fn check_failure(failure: Option<&str>) -> CliResult {
    if let Some(f) = failure
        && Failure::parse(f).is_none()
    {
        let known: Vec<&str> = Failure::ALL.iter().map(|f| f.as_str()).collect();
        return Err(CliError::setup(format!(
            "Unknown failure `{f}`. Use one of: {}.",
            known.join(", ")
        )));
    }
    Ok(())
}

/// The next page of dead letters (up to 10), each held hidden until it is released or
/// deleted; empty once every one has been read. `read` counts them for the progress line.
async fn page(dlq: &dyn Queue, read: &mut usize) -> CliResult<Vec<ReceivedMessage>> {
    let got = dlq
        .receive(MAX_BATCH, Duration::from_secs(1), Some(HOLD))
        .await
        .or_setup(|| "Cannot read the dead-letter queue".into())?;
    let before = *read;
    *read += got.len();
    if *read / PROGRESS_EVERY > before / PROGRESS_EVERY {
        eprintln!("... {} dead letters read", *read);
    }
    Ok(got)
}

/// Makes held dead letters visible again.
async fn release(dlq: &dyn Queue, receipts: &[String]) {
    let entries: Vec<(String, Duration)> = receipts
        .iter()
        .map(|r| (r.clone(), Duration::ZERO))
        .collect();
    for chunk in entries.chunks(MAX_BATCH) {
        for r in dlq.change_visibility_batch(chunk).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not release a dead letter; it reappears after its hold");
            }
        }
    }
}

async fn list(pairs: &[(Pair, QueuePair)], json: bool) -> CliResult {
    let now = time::OffsetDateTime::now_utc();
    let mut count = 0;
    if !json {
        print_row(&HEADER.map(str::to_owned), &WIDTHS);
    }
    for (_, pair) in pairs {
        let dlq = pair.dead_letters.as_ref();
        let (mut held, mut read) = (Vec::new(), 0);
        loop {
            let got = page(dlq, &mut read).await?;
            if got.is_empty() {
                break;
            }
            for m in got {
                let row = DeadLetterRow::from_message(&m, now);
                if json {
                    println!("{}", serde_json::to_string(&row).unwrap_or_default());
                } else {
                    print_row(&cells(&row), &WIDTHS);
                }
                held.push(m.receipt_handle);
                count += 1;
            }
        }
        release(dlq, &held).await;
    }
    if !json {
        println!("{count} dead letter{}", if count == 1 { "" } else { "s" });
    }
    Ok(())
}

fn age(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

const HEADER: [&str; 6] = [
    "DELIVERY ID",
    "ROUTE",
    "FAILURE",
    "LAST STATUS",
    "ATTEMPTS",
    "AGE",
];
/// Column widths of a list printed as it is read (a delivery id is 36 characters; a longer
/// route name pushes its row's later columns right).
const WIDTHS: [usize; 6] = [36, 24, 18, 11, 8, 0];

/// A row's cells, each escaped (a malformed message's attributes are anyone's text).
fn cells(r: &DeadLetterRow) -> [String; 6] {
    let safe = |s: &str| router_core::text::escaped(s, false).into_owned();
    [
        safe(&r.delivery_id),
        safe(&r.route),
        safe(&r.failure),
        r.last_status.map_or("-".into(), |s| s.to_string()),
        r.attempts.map_or("-".into(), |a| a.to_string()),
        age(r.age_s),
    ]
}

fn print_row(cells: &[String; 6], widths: &[usize; 6]) {
    let parts: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect();
    println!("{}", parts.join("  ").trim_end());
}

/// A table of rows already in hand, its columns as wide as their widest cell.
fn print_table(rows: &[DeadLetterRow]) {
    let cells: Vec<[String; 6]> = rows.iter().map(cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    print_row(&HEADER.map(str::to_owned), &widths);
    for row in &cells {
        print_row(row, &widths);
    }
}

#[derive(Debug)]
struct Filter {
    route: Option<String>,
    failure: Option<String>,
    limit: usize,
}

impl Filter {
    fn matches(&self, row: &DeadLetterRow) -> bool {
        self.route.as_ref().is_none_or(|r| *r == row.route)
            && self.failure.as_ref().is_none_or(|f| *f == row.failure)
    }
}

/// The message a dead letter goes back as: same body and delivery id, a fresh schedule
/// (a new message starts at receive count 1; `received_at` restarts `max_age`). From the
/// ordered routes' DLQ it goes back to the FIFO queue in its session's group, with a fresh
/// deduplication id (a redrive within 5 minutes of the first send is not a duplicate).
pub fn redriven(m: &ReceivedMessage, pair: Pair) -> Option<OutgoingMessage> {
    let mut job = DeliveryJob::parse(&m.body).ok()?;
    job.received_at = time::OffsetDateTime::now_utc();
    if pair == Pair::Ordered {
        let dedup = format!("{}:{}", job.delivery_id, router_core::time_fmt::now_ms());
        return Some(ordered_job_message(&job, &dedup));
    }
    Some(job_message(&job))
}

/// What redrives moved, across the dead-letter queues.
#[derive(Debug, Default)]
struct Redriven {
    moved: usize,
    left: usize,
    unparseable: usize,
    failed: usize,
}

impl Redriven {
    fn add(&mut self, other: Redriven) {
        self.moved += other.moved;
        self.left += other.left;
        self.unparseable += other.unparseable;
        self.failed += other.failed;
    }

    fn report(self) -> CliResult {
        println!(
            "Redrove {} dead letter{} to the delivery queue; {} left in the dead-letter queue.",
            self.moved,
            if self.moved == 1 { "" } else { "s" },
            self.left
        );
        if self.unparseable > 0 {
            println!(
                "{} could not be redriven: their body is not a delivery job (failure `malformed`).",
                self.unparseable
            );
        }
        if self.failed > 0 {
            return Err(CliError::problems(format!(
                "{} dead letters could not be sent back to the delivery queue; run the command again.",
                self.failed
            )));
        }
        Ok(())
    }
}

/// Redrives the dead letters of one pair that `filter` picks (its `limit` counts down), a
/// page at a time; stops reading once the limit is reached.
async fn redrive(pair: &QueuePair, which: Pair, filter: &mut Filter) -> CliResult<Redriven> {
    let (queue, dlq) = (pair.queue.as_ref(), pair.dead_letters.as_ref());
    let now = time::OffsetDateTime::now_utc();
    let (mut keep, mut read) = (Vec::new(), 0);
    let mut done = Redriven::default();
    while filter.limit > 0 {
        let got = page(dlq, &mut read).await?;
        if got.is_empty() {
            break;
        }
        let mut sendable = Vec::new();
        for m in got {
            let row = DeadLetterRow::from_message(&m, now);
            if filter.limit == 0 || !filter.matches(&row) {
                keep.push(m.receipt_handle);
                continue;
            }
            match redriven(&m, which) {
                Some(out) => {
                    filter.limit -= 1;
                    sendable.push((m.receipt_handle, out));
                }
                None => {
                    done.unparseable += 1;
                    keep.push(m.receipt_handle);
                }
            }
        }
        if sendable.is_empty() {
            continue;
        }
        let (receipts, out): (Vec<String>, Vec<OutgoingMessage>) = sendable.into_iter().unzip();
        let results = queue.send(&out).await;
        let mut delete = Vec::new();
        for (receipt, result) in receipts.into_iter().zip(results) {
            match result {
                Ok(()) => delete.push(receipt),
                Err(e) => {
                    tracing::warn!(error = %e, "a dead letter could not be sent back to the delivery queue");
                    done.failed += 1;
                    keep.push(receipt);
                }
            }
        }
        for r in dlq.delete_batch(&delete).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "a redriven dead letter could not be deleted; it may be redriven twice");
            }
        }
        let before = done.moved;
        done.moved += delete.len();
        if done.moved / PROGRESS_EVERY > before / PROGRESS_EVERY {
            eprintln!("... {} redriven", done.moved);
        }
    }
    release(dlq, &keep).await;
    // What the scan did not reach (a limit) is still there too.
    let depth = dlq
        .depth()
        .await
        .map(|d| (d.visible + d.in_flight) as usize);
    done.left = depth.unwrap_or(keep.len());
    Ok(done)
}
