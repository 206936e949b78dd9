//! `routerctl dlq show ID`.

use super::{DeadLetterRow, Pair, QueuePair, age, page, release};
use crate::cli::Global;
use crate::error::{CliError, CliResult};
use router_core::domain::DeliveryJob;
use router_core::ports::ReceivedMessage;
use router_core::routes::Routes;
use router_core::text::escaped;

/// `dlq show ID`: the dead letter, why it failed, and the payload as it would render now.
pub(super) async fn show(
    pairs: &[(Pair, QueuePair)],
    id: &str,
    routes: Option<&Routes>,
    global: &Global,
) -> CliResult {
    let now = time::OffsetDateTime::now_utc();
    let Some(m) = find(pairs, id, now).await? else {
        return Err(CliError::problems(format!(
            "No dead letter with delivery id `{id}` (`routerctl dlq list` shows them)."
        )));
    };
    print_row(&DeadLetterRow::from_message(&m, now));
    let job = match DeliveryJob::parse(&m.body) {
        Ok(job) => job,
        Err(e) => {
            println!(
                "\nThe message is not a delivery job ({}); it cannot be redriven.",
                safe(&e.to_string())
            );
            return Ok(());
        }
    };
    println!("event id     {}", job.event_id);
    println!(
        "received at  {}",
        router_core::time_fmt::rfc3339(job.received_at)
    );
    // Pretty JSON escapes C0 controls in its strings; C1 controls, DEL and bidirectional
    // overrides it leaves raw: they are escaped here (its own newlines stay).
    let event = serde_json::to_string_pretty(&job.event).unwrap_or_default();
    println!("\nevent:\n{}", escaped(&event, true));
    println!("\npayload as it would render now:");
    print_payload(&job, routes, global, now);
    Ok(())
}

/// A text the sender chose, on one line with its controls escaped.
fn safe(s: &str) -> String {
    escaped(s, false).into_owned()
}

/// The dead letter with delivery id `id`, read page by page (keeping only receipts, which
/// are released) until it is found.
async fn find(
    pairs: &[(Pair, QueuePair)],
    id: &str,
    now: time::OffsetDateTime,
) -> CliResult<Option<ReceivedMessage>> {
    let mut found = None;
    for (_, pair) in pairs {
        let dlq = pair.dead_letters.as_ref();
        let (mut held, mut read) = (Vec::new(), 0);
        while found.is_none() {
            let got = page(dlq, &mut read).await?;
            if got.is_empty() {
                break;
            }
            for m in got {
                held.push(m.receipt_handle.clone());
                if found.is_none() && DeadLetterRow::from_message(&m, now).delivery_id == id {
                    found = Some(m);
                }
            }
        }
        release(dlq, &held).await;
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}

fn print_row(row: &DeadLetterRow) {
    println!("delivery id  {}", safe(&row.delivery_id));
    println!("route        {}", safe(&row.route));
    println!("failure      {}", safe(&row.failure));
    println!(
        "last status  {}",
        row.last_status.map_or("-".into(), |s| s.to_string())
    );
    println!(
        "attempts     {}",
        row.attempts.map_or("-".into(), |a| a.to_string())
    );
    println!("age          {}", age(row.age_s));
    if let Some(e) = &row.last_error {
        println!("last error   {}", safe(e));
    }
}

/// The payload as the job's route renders it now, or why it cannot be shown.
fn print_payload(
    job: &DeliveryJob,
    routes: Option<&Routes>,
    global: &Global,
    now: time::OffsetDateTime,
) {
    let Some(routes) = routes else {
        println!(
            "(no routes file at {}: pass --routes to render it)",
            global.routes.display()
        );
        return;
    };
    match routes.get(job.route.as_str()) {
        None => println!(
            "(route `{}` is no longer in {}: a redrive would dead-letter it again)",
            job.route,
            global.routes.display()
        ),
        Some(route) if route.enrich.is_some() => println!(
            "(route `{}` enriches its payload with a lookup made at delivery time: `routerctl render {} --event FILE --external FILE` shows it for a given answer)",
            job.route, job.route
        ),
        Some(route) => {
            let ctx = Routes::context(job, 1, now, None);
            match routes.render_payload(route, &ctx) {
                Ok(body) => println!("{}", escaped(&body, true)),
                Err(e) => println!("(it does not render: {})", safe(&e.to_string())),
            }
        }
    }
}
