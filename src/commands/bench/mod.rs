//! Load generators for the benchmarks: `bench http` drives the HTTP ingest endpoint from
//! a bounded pool of loopback clients; `bench gen` times the Nexmark generator alone.
//! Every loop is bounded by a request or event count. The HTTP generators send
//! `FRESHET_TOKEN` when it is set, for a server that requires tokens.

use crate::app::auth::client;
use crate::cli::{BenchGenArgs, BenchHttpArgs, BenchLatencyArgs, BenchQueryArgs};
use crate::output;

mod get_client;
use anyhow::{Context, bail};
use freshet_nexmark::{EventKind, Generator, GeneratorConfig};
use serde::Serialize;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most distinct request bodies prepared up front (cycled).
const BODIES_MAX: usize = 64;

#[derive(Serialize)]
struct HttpResult {
    requests: u64,
    events: u64,
    errors: u64,
    seconds: f64,
    events_per_second: f64,
    requests_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p90: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
}

pub fn http(args: BenchHttpArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 || args.concurrency == 0 {
        bail!("--batch and --concurrency must be positive");
    }
    let text = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        bail!("{} holds no lines", args.file.display());
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..BODIES_MAX)
            .map(|b| {
                let mut body = Vec::new();
                for i in 0..args.batch {
                    body.extend_from_slice(lines[(b * args.batch + i) % lines.len()]);
                    body.push(b'\n');
                }
                body
            })
            .collect(),
    );
    let url = format!(
        "{}/v1/streams/{}/events",
        args.url.trim_end_matches('/'),
        args.stream
    );
    let authorization = client::authorization_from_env()?;
    let load = drive(
        args.concurrency,
        args.requests,
        args.rate,
        move |agent, i| {
            let body = &bodies[i as usize % bodies.len()];
            let request = agent
                .post(&url)
                .header("content-type", "application/x-ndjson");
            succeeded(client::authorize(request, authorization.as_deref()).send(&body[..]))
        },
    );
    let (requests, errors, seconds) = (load.requests, load.errors, load.seconds);
    let events = (requests - errors) * args.batch as u64;
    let result = HttpResult {
        requests,
        events,
        errors,
        seconds,
        events_per_second: events as f64 / seconds,
        requests_per_second: requests as f64 / seconds,
        latency_ms_p50: load.percentile(0.50),
        latency_ms_p90: load.percentile(0.90),
        latency_ms_p99: load.percentile(0.99),
        latency_ms_max: load.latencies_ms.last().copied().unwrap_or(0.0),
    };
    if args.json {
        output::json(&result)?;
    } else {
        output::line(format!(
            "{} requests ({} errors), {} events in {:.2}s: {:.0} events/s, {:.0} req/s; \
             latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            result.requests,
            result.errors,
            result.events,
            result.seconds,
            result.events_per_second,
            result.requests_per_second,
            result.latency_ms_p50,
            result.latency_ms_p90,
            result.latency_ms_p99,
            result.latency_ms_max
        ));
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a request succeeded; its body is read so that the connection is reused.
fn succeeded(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> bool {
    response
        .map(|mut r| {
            let _ = r.body_mut().read_to_vec();
            r.status().is_success()
        })
        .unwrap_or(false)
}

/// What a load run measured.
struct Load {
    requests: u64,
    errors: u64,
    seconds: f64,
    /// Sorted.
    latencies_ms: Vec<f64>,
}

impl Load {
    fn percentile(&self, p: f64) -> f64 {
        let lat = &self.latencies_ms;
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1]
    }
}

/// Send `requests` requests from `concurrency` threads, each with its own connection;
/// `send(agent, i)` sends request `i` and says whether it succeeded. With `rate`, requests
/// are paced open-loop: latency counts from each request's scheduled time, so a slow
/// server cannot hide its queueing (no coordinated omission).
fn drive(
    concurrency: usize,
    requests: u64,
    rate: Option<u64>,
    send: impl Fn(&ureq::Agent, u64) -> bool + Send + Sync + 'static,
) -> Load {
    let send = Arc::new(send);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests as usize)));
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..concurrency {
        let (send, next, errors, latencies) = (
            send.clone(),
            next.clone(),
            errors.clone(),
            latencies.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let scheduled = match rate {
                    Some(r) => {
                        let at = started + Duration::from_secs_f64(i as f64 / r as f64);
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        at
                    }
                    None => Instant::now(),
                };
                if !send(&agent, i) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                mine.push(scheduled.elapsed().as_secs_f64() * 1e3);
            }
            latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(mine);
        }));
    }
    for t in threads {
        t.join().expect("a load thread does not panic");
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies_ms =
        std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies_ms.sort_by(f64::total_cmp);
    Load {
        requests: latencies_ms.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        latencies_ms,
    }
}

/// Longest a probe may take to become visible before the run fails.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// `bench latency`: post one probe event at a time (a fresh auction id, the current time)
/// and poll the view's results for it; each probe's latency runs from the ingest
/// acknowledgement to the first answer that lists it.
pub fn latency(args: BenchLatencyArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/').to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let ingest = format!("{base}/v1/streams/{}/events", args.stream);
    let authorization = client::authorization_from_env()?;
    let authorization = authorization.as_deref();
    let mut latencies = Vec::with_capacity(args.probes as usize);
    for i in 0..args.probes {
        let key = args.first_key + i;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = format!(
            r#"{{"auction":{key},"bidder":1,"price":1,"channel":"probe","url":"","date_time":"{now}","extra":""}}"#
        );
        let response = client::authorize(agent.post(&ingest), authorization)
            .send(body.as_bytes())
            .context("posting a probe")?;
        if !response.status().is_success() {
            bail!("the probe was refused: HTTP {}", response.status());
        }
        let acked = Instant::now();
        let url = format!("{base}/v1/views/{}/results?auction={key}", args.view);
        loop {
            let mut answer = client::authorize(agent.get(&url), authorization)
                .call()
                .context("querying the view")?;
            if !answer.status().is_success() {
                bail!("the view query failed: HTTP {}", answer.status());
            }
            let page: serde_json::Value = answer.body_mut().read_json()?;
            if page["rows"].as_array().is_some_and(|rows| !rows.is_empty()) {
                latencies.push(acked.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if acked.elapsed() > PROBE_DEADLINE {
                bail!("probe {key} was not visible after {PROBE_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
    latencies.sort_by(f64::total_cmp);
    let load = Load {
        requests: latencies.len() as u64,
        errors: 0,
        seconds: 0.0,
        latencies_ms: latencies,
    };
    let result = serde_json::json!({
        "probes": load.requests,
        "latency_ms_p50": load.percentile(0.50),
        "latency_ms_p99": load.percentile(0.99),
        "latency_ms_max": load.percentile(1.0),
    });
    if args.json {
        output::json(&result)?;
    } else {
        output::line(format!(
            "{} probes: ingest ack to visible result, ms p50 {:.1} p99 {:.1} max {:.1}",
            load.requests,
            load.percentile(0.50),
            load.percentile(0.99),
            load.percentile(1.0)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench query`: GET a results path with keys cycled through `--keys` values and report
/// queries per second and latency. The connections share one thread ([`get_client`]).
pub fn query(args: BenchQueryArgs) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 || args.keys == 0 {
        bail!("--concurrency and --keys must be positive");
    }
    if !args.path.contains("{key}") {
        bail!("--path must contain {{key}}, replaced by each key value in turn");
    }
    let authority = get_client::authority(&args.url)?;
    let authorization = client::authorization_from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load = runtime.block_on(drive_gets(authority, authorization, args.clone()))?;
    let result = serde_json::json!({
        "requests": load.requests,
        "errors": load.errors,
        "seconds": load.seconds,
        "queries_per_second": load.requests as f64 / load.seconds,
        "latency_ms_p50": load.percentile(0.50),
        "latency_ms_p99": load.percentile(0.99),
    });
    if args.json {
        output::json(&result)?;
    } else {
        output::line(format!(
            "{} queries ({} errors) in {:.2}s: {:.0} queries/s; latency ms p50 {:.2} p99 {:.2}",
            load.requests,
            load.errors,
            load.seconds,
            load.requests as f64 / load.seconds,
            load.percentile(0.50),
            load.percentile(0.99)
        ));
    }
    Ok(if load.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `bench query`'s load: `--concurrency` connections on the current thread, each sending
/// its next request when its last one is answered (or at its scheduled time with `--rate`;
/// latency then counts from that time, as in [`drive`]).
async fn drive_gets(
    authority: String,
    authorization: Option<String>,
    args: BenchQueryArgs,
) -> anyhow::Result<Load> {
    let next = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let mut client =
            get_client::GetClient::connect(&authority, authorization.as_deref()).await?;
        let (next, args) = (next.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut path = String::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.requests {
                    break;
                }
                let scheduled = match args.rate {
                    Some(r) => {
                        let at = started + Duration::from_secs_f64(i as f64 / r as f64);
                        tokio::time::sleep_until(at).await;
                        at
                    }
                    None => tokio::time::Instant::now(),
                };
                path.clear();
                path.push_str(
                    &args
                        .path
                        .replace("{key}", &(args.first_key + i % args.keys).to_string()),
                );
                let status = client.get(&path).await?;
                if !(200..300).contains(&status) {
                    errors += 1;
                }
                latencies.push(scheduled.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut latencies_ms = Vec::with_capacity(args.requests as usize);
    let mut errors = 0;
    for task in tasks {
        let (mine, failed) = task.await??;
        latencies_ms.extend(mine);
        errors += failed;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Load {
        requests: latencies_ms.len() as u64,
        errors,
        seconds,
        latencies_ms,
    })
}

pub fn generator(args: BenchGenArgs) -> anyhow::Result<ExitCode> {
    let config = GeneratorConfig {
        max_events: Some(args.events),
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config, 0, 1);
    let started = Instant::now();
    let mut bids = 0u64;
    while let Some(b) = generator.next_batches(8192, Some(EventKind::Bid)) {
        bids += b.get(EventKind::Bid).map_or(0, |b| b.num_rows() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    let result = serde_json::json!({
        "events": args.events, "bids": bids, "seconds": seconds,
        "bids_per_second": bids as f64 / seconds,
    });
    if args.json {
        output::json(&result)?;
    } else {
        output::line(format!(
            "{bids} bids in {seconds:.3}s: {:.0} bids/s (one thread)",
            bids as f64 / seconds
        ));
    }
    Ok(ExitCode::SUCCESS)
}
