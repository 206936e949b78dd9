//! `routerctl dlq show ID`.

use super::{DeadLetterRow, QueuePair, age, drain, release};
use crate::cli::Global;
use crate::error::{CliError, CliResult};
use router_core::domain::DeliveryJob;
use router_core::routes::Routes;

/// `dlq show ID`: the dead letter, why it failed, and the payload as it would render now.
pub(super) async fn show(
    pairs: &[(bool, QueuePair)],
    id: &str,
    routes: Option<&Routes>,
    global: &Global,
) -> CliResult {
    let now = time::OffsetDateTime::now_utc();
    let mut found = None;
    for (_, pair) in pairs {
        let dlq = pair.dead_letters.as_ref();
        let got = drain(dlq).await?;
        release(dlq, &got).await;
        if found.is_none() {
            found = got
                .into_iter()
                .find(|m| DeadLetterRow::from_message(m, now).delivery_id == id);
        }
    }
    let Some(m) = found else {
        return Err(CliError::problems(format!(
            "No dead letter with delivery id `{id}` (`routerctl dlq list` shows them)."
        )));
    };
    let row = DeadLetterRow::from_message(&m, now);
    println!("delivery id  {}", row.delivery_id);
    println!("route        {}", row.route);
    println!("failure      {}", row.failure);
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
        println!("last error   {e}");
    }
    let job = match DeliveryJob::parse(&m.body) {
        Ok(job) => job,
        Err(e) => {
            println!("\nThe message is not a delivery job ({e}); it cannot be redriven.");
            return Ok(());
        }
    };
    println!("event id     {}", job.event_id);
    println!(
        "received at  {}",
        router_core::time_fmt::rfc3339(job.received_at)
    );
    println!(
        "\nevent:\n{}",
        serde_json::to_string_pretty(&job.event).unwrap_or_default()
    );
    println!("\npayload as it would render now:");
    match routes {
        None => println!(
            "(no routes file at {}: pass --routes to render it)",
            global.routes.display()
        ),
        Some(routes) => match routes.get(job.route.as_str()) {
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
                let ctx = Routes::context(&job, 1, now, None);
                match routes.render_payload(route, &ctx) {
                    Ok(body) => println!("{body}"),
                    Err(e) => println!("(it does not render: {e})"),
                }
            }
        },
    }
    Ok(())
}
