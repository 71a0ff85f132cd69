//! `freshet status`: the running server's `/v1/status`, as tables. It sends
//! `FRESHET_TOKEN` (a token with role `query` or `admin`) when that is set.

use crate::app::auth::client;
use crate::cli::StatusArgs;
use crate::output;
use anyhow::{Context, bail};
use freshet_store::{Cluster, StoreLocation};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(store: &StoreLocation, args: StatusArgs) -> anyhow::Result<ExitCode> {
    if args.workers {
        return workers(store, args.json);
    }
    let url = format!("{}/v1/status", args.url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let authorization = client::authorization_from_env()?;
    let mut response = client::authorize(agent.get(&url), authorization.as_deref())
        .call()
        .with_context(|| format!("cannot reach freshet serve at {url}; is it running?"))?;
    let status: Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("{url} did not answer JSON"))?;
    if response.status() == 401 || response.status() == 403 {
        let hint = match authorization {
            None => "this server requires a token: set FRESHET_TOKEN to one with role query",
            Some(_) => "FRESHET_TOKEN must hold a query or admin token this server accepts",
        };
        bail!("{url} answered {}: {status}; {hint}", response.status());
    }
    if !response.status().is_success() {
        bail!("{url} answered {}: {status}", response.status());
    }
    if args.json {
        output::json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let empty = Vec::new();
    let streams: Vec<Vec<String>> = status["streams"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| {
            vec![
                text(&s["name"]),
                text(&s["partitions"]),
                text(&s["events"]),
                text(&s["dead_letters"]),
            ]
        })
        .collect();
    output::table(
        &["stream", "partitions", "events", "dead letters"],
        &streams,
    );
    output::line("");
    let views: Vec<Vec<String>> = status["views"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|v| {
            let f = &v["freshness"];
            let s = &v["stats"];
            let late = format!(
                "{}/{}/{}",
                text(&s["late_dropped"]),
                text(&s["late_dead_lettered"]),
                text(&s["late_updated"])
            );
            let sla = match f["sla_met"].as_bool() {
                Some(true) => "met",
                _ => "MISSED",
            };
            vec![
                text(&v["name"]),
                text(&v["mode"]),
                text(&s["input_events"]),
                text(&f["lag_events"]),
                text(&f["watermark"]),
                format!("{} ms", text(&f["staleness_ms"])),
                format!("{} ms {sla}", text(&f["sla_ms"])),
                late,
            ]
        })
        .collect();
    output::table(
        &[
            "view",
            "mode",
            "events",
            "lag",
            "watermark",
            "staleness",
            "SLA",
            "late drop/dlq/upd",
        ],
        &views,
    );
    if let Some(error) = status["views_error"].as_str() {
        output::line(format!("\nviews stopped: {error}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--workers`: the workers and the leases, as the store holds them.
fn workers(store: &StoreLocation, json: bool) -> anyhow::Result<ExitCode> {
    let StoreLocation::Postgres(pg) = store else {
        bail!("workers share a PostgreSQL store: give it with --store postgres://...");
    };
    let mut cluster = Cluster::open_read_only(pg)?;
    // Every registered worker: a stopped one is removed, a lost one stays, not live.
    let (workers, leases) = cluster.snapshot()?;
    if json {
        output::json(&serde_json::json!({
            "workers": workers.iter().map(|w| serde_json::json!({
                "worker": w.worker, "listen": w.listen, "started_at": w.started_at,
                "heartbeat_age_ms": w.heartbeat_age_ms, "alive": w.alive,
            })).collect::<Vec<_>>(),
            "views": leases.iter().map(|l| serde_json::json!({
                "view": l.view, "task": l.task, "owner": l.owner, "epoch": l.epoch,
                "expires_in_ms": l.expires_in_ms, "held": l.held(),
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            vec![
                w.worker.clone(),
                w.listen.clone(),
                w.started_at.clone(),
                format!("{:.1}s ago", w.heartbeat_age_ms as f64 / 1000.0),
                if w.alive { "live" } else { "lost" }.to_owned(),
            ]
        })
        .collect();
    output::table(
        &["worker", "listen", "started", "heartbeat", "state"],
        &rows,
    );
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.view.clone(),
                l.task.clone(),
                match (&l.owner, l.held()) {
                    (Some(owner), true) => owner.clone(),
                    (Some(owner), false) => format!("{owner} (lapsed)"),
                    (None, _) => "-".to_owned(),
                },
                l.epoch.to_string(),
                l.expires_in_ms.map_or("with its session".to_owned(), |ms| {
                    format!("{:.1}s", ms as f64 / 1000.0)
                }),
            ]
        })
        .collect();
    output::table(&["view", "task", "held by", "epoch", "lease left"], &rows);
    Ok(ExitCode::SUCCESS)
}
