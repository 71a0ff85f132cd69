//! `freshet demo`: the main job on embedded defaults. Generates Nexmark history as NDJSON
//! files, creates the three streams, ingests the files through the same path as
//! `freshet ingest`, creates three views with different freshness SLAs, then serves: the
//! views run, a feeder posts live Nexmark events over HTTP at a steady rate, and the
//! dashboard and API show it all until Ctrl-C. If the data directory holds API tokens,
//! the server requires them, and the feeder posts with an ingest token of its own that
//! only this process knows (in memory, never written).

use crate::app::auth::{self, Key, Role, Secret, Source};
use crate::app::listen;
use crate::cli::{DemoArgs, NexmarkArgs, ServeArgs, ServeRole, TlsArgs};
use crate::output;
use anyhow::{Context, bail};
use freshet_engine::statement::{self, LazyStore, Statement};
use freshet_nexmark::{EventKind, Generator, GeneratorConfig, write_ndjson};
use freshet_store::StoreLocation;
use freshet_streams::DataDir;
use freshet_streams::ingest::{Format, ingest_file};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Event-time rate of the generated history: 10,000 events per second of event time.
const HISTORY_EVENT_RATE: u64 = 10_000;

/// The demo's views: one per freshness SLA, tight to loose.
const VIEWS: &str = "
CREATE VIEW hot_auctions WITH (freshness = '1s') AS
  SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top_price
  FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
  GROUP BY auction, window_start, window_end;
CREATE VIEW channel_minutes WITH (freshness = '1m') AS
  SELECT channel, window_start, window_end, COUNT(*) AS bids, AVG(price) AS avg_price
  FROM TUMBLE(bid, date_time, INTERVAL '1' MINUTE)
  GROUP BY channel, window_start, window_end;
CREATE VIEW hourly_volume WITH (freshness = '1h', emit = 'on_update', emit_interval = '10s') AS
  SELECT window_start, window_end, COUNT(*) AS bids, SUM(price) AS volume
  FROM TUMBLE(bid, date_time, INTERVAL '1' HOUR)
  GROUP BY window_start, window_end";

pub fn run(data_dir: &Path, location: &StoreLocation, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.rate == 0 {
        bail!("--rate must be at least 1 event per second");
    }
    // The server checks this again; checked here too so that a listen address it would
    // refuse fails before minutes of generating and ingesting.
    let tokens_configured = !auth::read(data_dir)?.is_empty() || !auth::keys_from_env()?.is_empty();
    listen::check(
        &args.listen,
        &listen::resolve(&args.listen)?,
        tokens_configured,
        args.access.insecure_no_auth,
    )?;
    let catalog = freshet_streams::catalog::Catalog::load(data_dir)?;
    if !catalog.streams.is_empty() {
        if !args.reset {
            bail!(
                "{} already holds streams; pass --reset to start over, or --data-dir NEW_DIR",
                data_dir.display()
            );
        }
        reset(data_dir)?;
    }
    // The history ends now, so that the live events continue its timeline.
    let now = freshet_types::IngestTime::now().0;
    let history_ms = (args.events.saturating_mul(1000) / HISTORY_EVENT_RATE) as i64;
    let input = data_dir.join("demo-input");
    std::fs::create_dir_all(&input)?;
    output::line(format!(
        "1/4 generating {} Nexmark events of history into {}",
        args.events,
        input.display()
    ));
    super::gen_nexmark::run(
        data_dir,
        NexmarkArgs {
            events: Some(args.events),
            out: Some(input.clone()),
            to_streams: false,
            only: None,
            rate: None,
            event_rate: HISTORY_EVENT_RATE,
            base_time: (now - history_ms).to_string(),
            seed: 0,
            partitions: 4,
            json: false,
        },
    )?;
    output::line("2/4 creating streams person, auction, bid (4 partitions each)");
    let dir = DataDir::open(data_dir)?;
    let mut store = LazyStore::new(location);
    for statement in freshet_streams::ddl::split_statements(&freshet_nexmark::ddl(4))? {
        let parsed = Statement::parse(&statement)?;
        output::line(format!(
            "    {}",
            statement::execute(&dir, &mut store, parsed)?
        ));
    }
    output::line("3/4 ingesting the history (decode, validate, partition, append, fsync)");
    for kind in EventKind::ALL {
        let path = &input.join(format!("{}.ndjson", kind.stream_name()));
        let stream = dir.stream(kind.stream_name())?;
        let s = ingest_file(&stream, path, Format::Ndjson, &mut |_| {})?;
        output::line(format!(
            "    {:<8} accepted {:>9} rejected {} in {:.2}s ({:.0} events/s)",
            kind.stream_name(),
            s.accepted,
            s.rejected,
            s.seconds,
            s.accepted as f64 / s.seconds.max(1e-9)
        ));
    }
    output::line("4/4 creating views with three freshness SLAs");
    for statement in freshet_streams::ddl::split_statements(VIEWS)? {
        let parsed = Statement::parse(&statement)?;
        output::line(format!(
            "    {}",
            statement::execute(&dir, &mut store, parsed)?
        ));
    }
    drop(store);
    drop(dir);
    let rate = args.rate;
    // The feeder's own token: accepted by this server only, for as long as it runs.
    let feeder = Secret::generate()?;
    let feeder_key = Key {
        name: "demo-feeder".into(),
        role: Role::Ingest,
        hash: feeder.hash(),
        source: Source::Process,
    };
    crate::server::run_with(
        data_dir,
        location,
        ServeArgs {
            listen: args.listen,
            role: ServeRole::All,
            pg_listen: None,
            access: args.access,
            tls: TlsArgs::default(),
        },
        vec![feeder_key],
        move |addr| {
            print_guide(addr, rate, tokens_configured);
            std::thread::Builder::new()
                .name("demo-feeder".into())
                .spawn(move || feed(addr, rate, &feeder))
                .map(|_| ())
                .context("cannot start the demo feeder")
        },
    )
}

/// Empty the data directory for `--reset`, keeping its API tokens: they are credentials
/// handed out to people and programs, not demo data.
fn reset(data_dir: &Path) -> anyhow::Result<()> {
    const KEPT: [&str; 2] = [auth::TOKENS_FILE, auth::TOKENS_LOCK_FILE];
    let entries = std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot list {}", data_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", data_dir.display()))?;
        if KEPT.iter().any(|k| entry.file_name() == *k) {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn print_guide(addr: SocketAddr, rate: u64, tokens_required: bool) {
    let u = format!("http://{addr}");
    output::line("");
    output::line(format!(
        "Running: every view follows the log; live Nexmark events arrive over HTTP at {rate}/s."
    ));
    output::line(format!("    dashboard   {u}/"));
    output::line(format!("    metrics     {u}/metrics"));
    output::line("Try:");
    output::line(format!("    curl -s {u}/v1/views"));
    output::line(format!(
        "    curl -s '{u}/v1/views/hot_auctions/results?limit=5'"
    ));
    output::line(format!(
        "    curl -s '{u}/v1/views/channel_minutes/results?channel=Google&limit=5'"
    ));
    output::line(format!("    curl -s {u}/v1/views/hourly_volume/results"));
    output::line(format!("    freshet status --url {u}"));
    if tokens_required {
        output::line(
            "API tokens are required (this data directory or FRESHET_TOKENS has some): add",
        );
        output::line(
            "-H 'Authorization: Bearer <token>' to curl, set FRESHET_TOKEN for freshet status,",
        );
        output::line("and give the dashboard a query token when it asks.");
    }
    output::line("The planner runs each view streaming, micro-batch or batch, chosen from");
    output::line("its SLA and measured costs and revisited every 10 s; the dashboard shows");
    output::line("each view's mode and period. Ctrl-C stops.");
}

/// Post live Nexmark events to the server at `rate` events per second (event time = wall
/// time), in batches every 100 ms, until the server stops answering. Each request carries
/// the feeder's own token, accepted whether or not the server requires tokens.
fn feed(addr: SocketAddr, rate: u64, token: &Secret) {
    let authorization = format!("Bearer {}", token.expose());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let config = GeneratorConfig {
        seed: 1,
        base_time_ms: freshet_types::IngestTime::now().0,
        events_per_second: rate,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config, 0, 1);
    let started = Instant::now();
    let mut body = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let n = due.saturating_sub(generator.events_generated());
        if n == 0 {
            continue;
        }
        let Some(batches) = generator.next_batches(n as usize, None) else {
            return;
        };
        for (kind, batch) in batches.iter() {
            body.clear();
            write_ndjson(kind, batch, &mut body);
            let url = format!("http://{addr}/v1/streams/{}/events", kind.stream_name());
            match agent
                .post(&url)
                .header("authorization", &authorization)
                .send(&body[..])
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(status = %r.status(), "the demo feeder's request was refused")
                }
                // The server is shutting down.
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_empties_the_data_directory_but_keeps_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        auth::create(data, Role::Admin, None, "2026-12-06T06:44:00.000Z".into()).unwrap();
        std::fs::create_dir_all(data.join("streams/bid/0")).unwrap();
        std::fs::write(data.join("catalog.json"), "{}").unwrap();
        std::fs::write(data.join("streams/bid/0/00000.log"), "x").unwrap();
        reset(data).expect("reset");
        let mut left: Vec<String> = std::fs::read_dir(data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [auth::TOKENS_FILE, auth::TOKENS_LOCK_FILE]);
        assert_eq!(auth::read(data).unwrap().len(), 1);
    }
}
