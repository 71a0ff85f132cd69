//! Command-line flags, parsed by clap into plain structs. `main` converts them once into
//! validated settings before any work starts.

use crate::app::auth::Role;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Freshet: one engine for real-time and batch processing of event data.
#[derive(Debug, Parser)]
#[command(name = "freshet", version, about, long_about = None)]
pub struct Cli {
    /// Where streams, the catalog and results live.
    #[arg(
        long,
        global = true,
        env = "FRESHET_DATA_DIR",
        default_value = "./freshet-data"
    )]
    pub data_dir: PathBuf,

    /// Where view results are kept: a SQLite file path or a PostgreSQL URL
    /// (`postgres://user@host:5432/db?schema=freshet`). Default: `results.db` in the data
    /// directory.
    #[arg(long, global = true, env = "FRESHET_STORE")]
    pub store: Option<String>,

    /// Log filter (tracing syntax), e.g. `info` or `freshet=debug`.
    #[arg(long, global = true, env = "FRESHET_LOG", default_value = "warn")]
    pub log: String,

    /// Log lines as text (coloured only on a terminal) or as one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "FRESHET_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the main job on embedded defaults: ingest Nexmark history through the real ingest
    /// path, create three views with different SLAs, then serve them (API, metrics,
    /// dashboard) while live events arrive over HTTP, until Ctrl-C.
    Demo(DemoArgs),
    /// Generate events (Nexmark) into NDJSON files or straight into streams.
    Gen(GenArgs),
    /// Run SQL statements (CREATE/DROP STREAM, CREATE/DROP VIEW, SHOW STREAMS/VIEWS,
    /// DESCRIBE VIEW, COPY view TO 'file.parquet').
    Sql(SqlArgs),
    /// Run every view: read the log from each view's committed offsets, process, and
    /// commit results exactly once into the result store. Ctrl-C stops cleanly.
    Run(RunArgs),
    /// Show a view's results from the result store, with each row's state.
    Results(ResultsArgs),
    /// Run any SQL query in batch (DataFusion) over streams, read from the log, and views,
    /// read from the result store; `TUMBLE` and `HOP` work as in views.
    Query(QueryArgs),
    /// Recompute a windowed view in batch over a time range and compare it with its stored
    /// final results: matched, mismatched, missing, extra. Exit 3 on any difference, unless
    /// `--repair` wrote the batch values over them.
    Reconcile(ReconcileArgs),
    /// Recompute a windowed view in batch over a time range and write the result as its
    /// final rows (idempotent: a second run changes nothing), with a progress bar.
    Backfill(BackfillArgs),
    /// Why a view runs streaming, micro-batch or batch: the SLA and input rate, the modes
    /// measured on a sample of its input, the risk, its mitigation and when it would change.
    Explain(ExplainArgs),
    /// Ingest an NDJSON, CSV or Parquet file into a stream.
    Ingest(IngestArgs),
    /// List streams: partitions, end offsets, bytes, dead letters.
    Streams(ListArgs),
    /// Inspect the log.
    Log(LogArgs),
    /// Show a stream's dead-letter rows: reason, source position and raw bytes.
    Dlq(DlqArgs),
    /// Serve the HTTP API (ingest and health) and run every view until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Run views as one of several workers sharing a PostgreSQL result store: each view,
    /// or each partition of a view that splits by partition, is a task held by one worker
    /// under a lease with a fencing epoch; the live workers divide the tasks among
    /// themselves and take over a lost worker's tasks within the lease's time to live
    /// (docs/scale-out.md). Follows the catalog `freshet sql --store` published to the
    /// store. Reads streams on JetStream only.
    Worker(WorkerArgs),
    /// Show what a running `freshet serve` is doing: per stream and per view, events, lag,
    /// watermark, freshness against the SLA, late events and errors.
    Status(StatusArgs),
    /// Load generators used by the benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage the API tokens `serve` requires once any exists: create (the token is shown
    /// once), list, revoke. Works while `serve` runs, which sees a change
    /// within about a second.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script, e.g. `freshet completions bash >
    /// /etc/bash_completion.d/freshet`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `freshet man > freshet.1 && man ./freshet.1`.
    Man,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once, alone on the last line; only its SHA-256 hash is
    /// kept, in `<data dir>/tokens.json`.
    Create(TokenCreateArgs),
    /// List tokens: name, role, creation time (never the token or its hash).
    List(ListArgs),
    /// Remove a token; a running server refuses it within about a second.
    Revoke(TokenRevokeArgs),
}

/// `token create` arguments.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token may do: `ingest` (post events), `query` (read views, results,
    /// status, metrics) or `admin` (DDL and everything else).
    #[arg(long, value_enum)]
    pub role: Role,
    /// A unique name for it (letters, digits, '-', '_', '.'); default: the role and the
    /// next number, such as `query-2`.
    #[arg(long)]
    pub name: Option<String>,
}

/// `token revoke` arguments.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's name, as `token list` shows it.
    pub name: String,
}

/// Who may call a server: flags of `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// Serve `/metrics` without a token even when tokens are required, for a Prometheus
    /// that has none.
    #[arg(long)]
    pub metrics_open: bool,
    /// Listen on an address other machines can reach even though no token is configured,
    /// leaving the API open to anyone who reaches it.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// `query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query, e.g. "SELECT auction, count(*) FROM bid GROUP BY auction".
    pub sql: String,
    /// Output: an aligned table (at most 10,000 rows), CSV, JSON
    /// (`{"columns": [...], "rows": [{...}, ...]}`), Parquet (Snappy) or an Arrow IPC file;
    /// all but the table stream every row. Parquet and Arrow need `--out`.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// Write the result to this file instead of stdout. It appears whole or not at all: the
    /// rows go to a temporary file beside it, renamed once the query succeeded.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Files of a stream's events from before its log, as STREAM=PATH (a file, or a
    /// directory of .ndjson/.jsonl/.json, .csv and .parquet files); repeatable. A history row
    /// is read only if it is older than the log's first event.
    #[arg(long = "history", value_name = "STREAM=PATH")]
    pub history: Vec<String>,
}

/// A windowed view and the time range of its windows (`reconcile`, `backfill`).
#[derive(Debug, Args)]
pub struct ViewRange {
    /// The view.
    pub view: String,
    /// Windows starting at or after this instant (RFC 3339, e.g. 2015-07-15T00:00:00Z).
    #[arg(long)]
    pub from: String,
    /// Windows ending at or before this instant (RFC 3339); windows the view has not
    /// finalised yet are left out.
    #[arg(long)]
    pub to: String,
    /// Files of a stream's events from before its log, as STREAM=PATH (a file, or a
    /// directory of .ndjson/.jsonl/.json, .csv and .parquet files); repeatable. A history row
    /// is read only if it is older than the log's first event.
    #[arg(long = "history", value_name = "STREAM=PATH")]
    pub history: Vec<String>,
}

/// `reconcile` arguments.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub range: ViewRange,
    /// Write the recomputed rows over mismatched and missing ones and delete extra ones,
    /// in one transaction. Refused while another process writes the view (PostgreSQL).
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON (`matched`, `mismatched`, `missing`, `extra`, `ratio`,
    /// `samples`).
    #[arg(long)]
    pub json: bool,
}

/// `explain` arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The view.
    pub view: String,
    /// Input events per second to plan for (default: measured over the last minute of
    /// ingest).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Events of the log each mode is measured on (its first events).
    #[arg(long, default_value_t = 200_000)]
    pub sample: u64,
    /// Print the explanation as JSON (the chosen mode in `mode`).
    #[arg(long)]
    pub json: bool,
}

/// `backfill` arguments.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub range: ViewRange,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How `query` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
    Arrow,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nexmark events of history to generate and ingest from files first (all kinds).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Then feed live Nexmark events over HTTP at this many events per second.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:7478")]
    pub listen: String,
    /// Delete the data directory first if it already holds streams (its API tokens are
    /// kept).
    #[arg(long)]
    pub reset: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// `gen` sources.
#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// The Nexmark auction workload (person, auction and bid events).
    Nexmark(NexmarkArgs),
}

/// `gen` arguments.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// The generator.
    #[command(subcommand)]
    pub source: GenCommand,
}

/// Which Nexmark event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Person events.
    Person,
    /// Auction events.
    Auction,
    /// Bid events.
    Bid,
}

/// `gen nexmark` arguments.
#[derive(Debug, Args)]
pub struct NexmarkArgs {
    /// Number of events to write (of the kinds selected by --only; all kinds otherwise).
    #[arg(long)]
    pub events: Option<u64>,
    /// Write NDJSON here: a file with --only, else a directory that gets person.ndjson,
    /// auction.ndjson and bid.ndjson.
    #[arg(long, conflicts_with = "to_streams")]
    pub out: Option<PathBuf>,
    /// Append straight into the streams person, auction and bid of the data directory
    /// (created with the Nexmark schema if missing).
    #[arg(long)]
    pub to_streams: bool,
    /// Only this kind of event (the others still advance the event numbering).
    #[arg(long, value_enum)]
    pub only: Option<Kind>,
    /// Pace the output at this many events per second of wall time (default: as fast as
    /// possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Event-time rate: events per second of event time.
    #[arg(long, default_value_t = 10_000)]
    pub event_rate: u64,
    /// Event time of the first event: RFC 3339, epoch ms, or `now`.
    #[arg(long, default_value = "2015-07-15T00:00:00Z")]
    pub base_time: String,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Partitions for streams created by --to-streams.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sql` arguments.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement(s), separated by ';'.
    #[arg(required_unless_present = "file")]
    pub sql: Option<String>,
    /// Read statements from this file instead.
    #[arg(short = 'f', long = "file", conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process everything in the log now, commit, and exit.
    #[arg(long)]
    pub drain: bool,
    /// With --drain: treat the end of the log as the end of the streams, so the watermark
    /// goes to +infinity and every window becomes final. Events ingested later are late.
    #[arg(long, requires = "drain")]
    pub end_of_stream: bool,
    /// Run only these views (default: all).
    #[arg(long = "view")]
    pub views: Vec<String>,
    /// With --drain: compute the views but throw their results, state and progress away
    /// (the discard sink, for measuring the engine without the store). The result store is
    /// not touched; the next run starts from the same place.
    #[arg(long, requires = "drain")]
    pub discard: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `results` arguments.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The view.
    pub view: String,
    /// Only rows whose key column equals a value: `--key auction=1007` (repeatable).
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Only windows ending after this time (RFC 3339 or epoch ms).
    #[arg(long)]
    pub from: Option<String>,
    /// Only windows starting before this time (RFC 3339 or epoch ms).
    #[arg(long)]
    pub to: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Skip this many rows first.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ingest` arguments.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Target stream.
    pub stream: String,
    /// Input file.
    pub file: PathBuf,
    /// Input format (default: from the file extension).
    #[arg(long)]
    pub format: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of listing commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check every frame of every segment (CRC, offsets, indexes). Exit code 3 on damage.
    Verify(VerifyArgs),
    /// Apply every stream's retention policy now (`serve` does this every minute).
    Retention(ListArgs),
}

/// `log` arguments.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// What to inspect.
    #[command(subcommand)]
    pub command: LogCommand,
}

/// `log verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Stream to verify (default: all).
    pub stream: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `dlq` arguments.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The stream whose dead letters to show.
    pub stream: String,
    /// First dead-letter offset to show.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Most rows to show.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7478")]
    pub listen: String,
    /// `all`: hold the data directory, ingest, run every view and serve. `query`: only
    /// serve results and status, reading the data directory and the result store that an
    /// `all` server writes (a shared `--store` such as PostgreSQL, or the same SQLite file).
    #[arg(long, value_enum, default_value_t = ServeRole::All)]
    pub role: ServeRole,
    /// Also speak the PostgreSQL wire protocol on this address (`host:port`), so that
    /// psql, drivers and BI tools can query views and streams and run DDL: the API token
    /// is the password, roles as over HTTP; without tokens, only a loopback address is
    /// allowed (as for --listen). No TLS: see docs/pgwire.md.
    #[arg(long, env = "FRESHET_PG_LISTEN", value_name = "ADDR")]
    pub pg_listen: Option<String>,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// HTTPS for `serve`: both files, or neither for plaintext HTTP. SIGHUP reads them again.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Serve HTTPS with the certificate chain in this PEM file (the server's certificate
    /// first, then any intermediates). Needs --tls-key.
    #[arg(long, env = "FRESHET_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FRESHET_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// What a `serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeRole {
    /// Ingest, run the views, serve.
    All,
    /// Serve results, status and metrics only.
    Query,
}

/// `worker` arguments.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Address of the worker's HTTP endpoint: `/healthz`, `/metrics` and `/v1/status`
    /// (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// This worker's identity, unique among the workers of one store. Default: host and
    /// process id.
    #[arg(long)]
    pub id: Option<String>,
    /// How long a worker's leases last without a heartbeat (sent every third of it): after
    /// it, a paused or cut-off worker's tasks are taken over and its commits refused.
    #[arg(long, default_value = "10s", value_parser = freshet_streams::duration::parse_duration)]
    pub lease_ttl: std::time::Duration,
    /// The worker's own directory (its dead letters, its copy of the catalog). Default:
    /// `workers/<id>` in the data directory. The worker follows the catalog of streams
    /// and views that `freshet sql --store` published to the store, or, if the store holds
    /// none, the data directory's own.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Serve the endpoint on an address other machines can reach, although it has no
    /// tokens.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:7478")]
    pub url: String,
    /// Print the server's `/v1/status` answer as it is.
    #[arg(long)]
    pub json: bool,
    /// Instead of asking a server, show the workers sharing the PostgreSQL store given
    /// with --store and who holds each view (owner, lease epoch, expiry).
    #[arg(long, conflicts_with = "url")]
    pub workers: bool,
}

/// Benchmark load generators.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send NDJSON lines of a file to the HTTP ingest endpoint and report throughput and
    /// acknowledgement latency.
    Http(BenchHttpArgs),
    /// Measure the Nexmark generator alone (bids into Arrow batches).
    Gen(BenchGenArgs),
    /// GET a view's results by key from concurrent clients and report queries per second
    /// and latency.
    Query(BenchQueryArgs),
    /// End-to-end latency: post probe events one at a time and time each from the ingest
    /// acknowledgement to its result being visible through the query API.
    Latency(BenchLatencyArgs),
}

/// `bench http` arguments.
#[derive(Debug, Args)]
pub struct BenchHttpArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:7478")]
    pub url: String,
    /// Target stream.
    #[arg(long)]
    pub stream: String,
    /// NDJSON file whose lines are sent (cycled).
    #[arg(long)]
    pub file: PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 1000)]
    pub requests: u64,
    /// Requests per second in all (default: as fast as the server answers).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bench query` arguments.
#[derive(Debug, Clone, Args)]
pub struct BenchQueryArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:7478")]
    pub url: String,
    /// The path to GET, with `{key}` replaced by first-key, first-key + 1, ... in turn, e.g.
    /// `/v1/views/hot_auctions/results?auction={key}`.
    #[arg(long)]
    pub path: String,
    /// How many key values to cycle through.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// The first key value.
    #[arg(long, default_value_t = 0)]
    pub first_key: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Requests per second in all (default: as fast as the server answers).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bench latency` arguments.
#[derive(Debug, Args)]
pub struct BenchLatencyArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:7478")]
    pub url: String,
    /// The stream probes are posted to; its rows need `auction`, `bidder`, `price` and
    /// `date_time` (the Nexmark bid stream).
    #[arg(long, default_value = "bid")]
    pub stream: String,
    /// The view that shows a probe: results filtered by `auction={key}` must list it once it
    /// is reflected (e.g. `SELECT auction, COUNT(*) AS n FROM bid WHERE auction >= 1000000000
    /// GROUP BY auction`).
    #[arg(long)]
    pub view: String,
    /// Probes to send, one at a time.
    #[arg(long, default_value_t = 200)]
    pub probes: u64,
    /// Pause between probes, ms.
    #[arg(long, default_value_t = 50)]
    pub interval_ms: u64,
    /// Auction id of the first probe; each probe uses the next (ids no other event uses).
    #[arg(long, default_value_t = 1_000_000_000)]
    pub first_key: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bench gen` arguments.
#[derive(Debug, Args)]
pub struct BenchGenArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}
