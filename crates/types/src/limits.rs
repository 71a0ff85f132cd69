//! Every bound Freshet enforces, named once. Over-limit input gets a typed error that names
//! the limit; nothing here is silently truncated. The durations bound how long something
//! waits, or how long a change can go unseen.

use std::time::Duration;

/// Largest single encoded row accepted at ingest (one NDJSON line or CSV record), in bytes.
/// Larger rows go to the dead-letter stream with reason `row_too_large`.
pub const ROW_BYTES_MAX: usize = 1024 * 1024;

/// Largest HTTP request body accepted by the ingest endpoint, in bytes (413 above it).
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Most rows one HTTP ingest request may carry (413 above it; nothing is appended).
pub const HTTP_ROWS_PER_REQUEST_MAX: usize = 100_000;

/// Rows decoded into one Arrow batch at ingest. Also the most records in one log frame
/// written by file ingest.
pub const INGEST_BATCH_ROWS: usize = 16 * 1024;

/// Bytes of input text handed to one decoding task during file ingest.
pub const INGEST_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Decoded chunks waiting to be appended during file ingest (bounds memory).
pub const INGEST_PIPELINE_DEPTH: usize = 4;

/// Largest frame payload the log accepts, in bytes. A frame is read whole into memory.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Default size at which a log segment is sealed and a new one started, in bytes.
pub const SEGMENT_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// Bytes of log between two entries of a segment's sparse offset index.
pub const INDEX_INTERVAL_BYTES: u64 = 64 * 1024;

/// Most partitions a stream may declare.
pub const PARTITIONS_MAX: u32 = 1024;

/// Idempotency keys remembered per stream; the oldest are forgotten first.
pub const IDEMPOTENCY_KEYS_MAX: usize = 100_000;

/// Longest idempotency key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 256;

/// Raw bytes of a rejected row kept in the dead-letter stream; longer rows are cut here
/// and marked truncated (the reason and source position are always kept whole).
pub const DLQ_RAW_BYTES_MAX: usize = 64 * 1024;

/// Rejected rows listed one by one in an HTTP ingest response; the count is always exact.
pub const HTTP_REJECTS_LISTED_MAX: usize = 1_000;

/// Earliest event time accepted at ingest: 1900-01-01T00:00:00Z, in ms since the epoch.
pub const EVENT_TIME_MIN_MS: i64 = -2_208_988_800_000;

/// Latest event time accepted at ingest: 2999-12-31T23:59:59.999Z, in ms since the epoch.
pub const EVENT_TIME_MAX_MS: i64 = 32_503_679_999_999;

/// Default cap on one view's operator state (open windows, groups, join buffers); a view
/// over it stops with a clear error instead of exhausting memory. `state_bytes_max` overrides.
pub const VIEW_STATE_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;

/// Result rows a view buffers before it commits, whatever its commit interval: bounds the
/// memory between commits and the size of one store transaction.
pub const VIEW_ROWS_PER_COMMIT_MAX: usize = 200_000;

/// Events one batch run of a running view claims (DataFusion batch mode): more waiting in
/// the log are left to the next run, which follows at once. Bounds the rows one run holds
/// until its commit.
pub const BATCH_RUN_EVENTS_MAX: u64 = 20_000_000;

/// Bytes of log frames a view reads from one partition per step.
pub const VIEW_READ_BYTES: usize = 4 * 1024 * 1024;

/// Rows the `results` command and API return per page at most.
pub const RESULT_ROWS_PER_PAGE_MAX: usize = 10_000;

/// Most API tokens one data directory's `tokens.json` holds; `freshet token create` refuses
/// more, and a file with more is refused as damaged. A request's token hash is compared with
/// every one of them.
pub const TOKENS_MAX: usize = 1_000;

/// Largest `tokens.json` read, in bytes; a larger file is refused as damaged rather than
/// read into memory. [`TOKENS_MAX`] tokens with the longest names take about a quarter of it.
pub const TOKENS_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Most entries `FRESHET_TOKENS` may list; a server given more refuses to start. A
/// request's token hash is compared with every one of them, as with the file's.
pub const TOKENS_ENV_ENTRIES_MAX: usize = 100;

/// Longest a `freshet token` command waits for another to release `tokens.lock`. Each
/// holds it for a read, a small write and two fsyncs, so a longer wait means something is
/// stuck; the command then fails and says so.
pub const TOKENS_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How often a running server looks at `tokens.json`'s stamp (modification time, length,
/// inode): a token created or revoked is accepted or refused within about this long.
pub const TOKENS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often a running server re-reads `tokens.json` even though its stamp did not change:
/// the longest a rewrite that kept the stamp (within one tick of the file system's clock,
/// reusing the inode, with the same length) goes unseen.
pub const TOKENS_REREAD_INTERVAL: Duration = Duration::from_secs(30);

/// Longest token name (`freshet token create --name`), in bytes.
pub const TOKEN_NAME_BYTES_MAX: usize = 64;

/// Shortest token accepted from `FRESHET_TOKENS`, in bytes: a shorter secret could be
/// guessed. Generated tokens are far longer (`fsh_` and 43 characters).
pub const TOKEN_BYTES_MIN: usize = 16;

/// Branches one `UNION ALL` in a view may have: a branch's rows are keyed by their log
/// position with the branch folded into `_copy` (`copy * UNION_BRANCHES_MAX + branch`).
pub const UNION_BRANCHES_MAX: u32 = 64;

/// TLS handshakes `freshet serve` runs at once; further connections wait in the kernel's
/// accept queue, so clients that connect and say nothing cannot take every task.
pub const TLS_HANDSHAKES_MAX: usize = 256;

/// Longest a client may take to finish its TLS handshake before its connection is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections a process holds to one PostgreSQL store when its URL says no
/// `pool_max=` (each view's writer has its own besides): well under PostgreSQL's default
/// `max_connections` of 100, with room for a few processes.
pub const STORE_CONNECTIONS_DEFAULT: usize = 16;

/// The largest `pool_max=` a PostgreSQL store URL may give.
pub const STORE_CONNECTIONS_MAX: usize = 1_000;

/// Longest a store call waits for a connection when all of the pool's are in use; then it
/// fails as busy (HTTP 503 `store_busy`).
pub const STORE_CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// How often a running server samples its figures (streams' ingest, views' freshness and
/// counters) into its metric history (`GET /v1/history`, the dashboard's charts).
pub const HISTORY_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// How far back the metric history reaches: older points are forgotten.
pub const HISTORY_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Points kept per series of the metric history: one per sample over [`HISTORY_WINDOW`].
pub const HISTORY_POINTS_MAX: usize =
    (HISTORY_WINDOW.as_secs() / HISTORY_SAMPLE_INTERVAL.as_secs()) as usize;

/// Series the metric history holds at most (9 per view, 3 per stream); when it is full,
/// the series of dropped streams and views make room first, and a series beyond it is not
/// recorded, which the server logs once. With
/// [`HISTORY_POINTS_MAX`] points of 16 bytes each, the history holds at most about 15 MB.
pub const HISTORY_SERIES_MAX: usize = 512;

/// Dead letters `GET /v1/streams/{name}/dead-letters` lists at most (each keeps up to
/// [`DLQ_RAW_BYTES_MAX`] of its raw row).
pub const HTTP_DEAD_LETTERS_LISTED_MAX: usize = 100;

/// PostgreSQL-protocol connections `serve --pg-listen` holds at once. One more is answered
/// with SQLSTATE 53300 (too many connections) and closed. A connection may hold several
/// queries at once (suspended named portals), so [`PG_QUERIES_MAX`] bounds the queries.
pub const PG_CONNECTIONS_MAX: usize = 32;

/// Batch queries the PostgreSQL endpoint runs at once, over all its connections. A query
/// holds its place from its first row until its result ends or is dropped (a suspended
/// portal keeps it until the portal is closed or the connection ends); one more waits up
/// to [`PG_QUERIES_WAIT`], then fails with SQLSTATE 53000 (insufficient resources).
pub const PG_QUERIES_MAX: usize = 8;

/// Bytes of DataFusion memory (hash tables, sorts, aggregation state) one query of
/// `freshet query`, `COPY` or the PostgreSQL endpoint may reserve: sorts and aggregations
/// spill to disk beyond it, other operators (a hash join's build side) fail the query with
/// an error that says so (SQLSTATE 53000 on the PostgreSQL endpoint). With at most
/// [`PG_QUERIES_MAX`] queries at once, the endpoint's queries hold at most 8 times this.
/// The environment variable `FRESHET_QUERY_MEMORY_MAX` sets another number of bytes.
pub const QUERY_MEMORY_BYTES_DEFAULT: usize = 1024 * 1024 * 1024;

/// Longest a PostgreSQL-protocol query waits for one of the [`PG_QUERIES_MAX`] places.
pub const PG_QUERIES_WAIT: Duration = Duration::from_secs(2);

/// Encoded result batches one PostgreSQL-protocol query keeps ahead of its client: the
/// query waits while they are unsent, so a slow client holds at most this many batches
/// (DataFusion's batches are 8,192 rows) and never a whole result.
pub const PG_RESULT_BATCHES_IN_FLIGHT: usize = 4;

/// Longest the PostgreSQL endpoint spends telling a connection over
/// [`PG_CONNECTIONS_MAX`] why it is refused before closing it.
pub const PG_REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Commits with changed rows the change log keeps per view (`GET /v1/views/{name}/changes`);
/// older ones are pruned in the commit that passes the bound, so a client that resumes
/// from an older position is told to start over (410 `expired`, or `event: reset` when
/// streaming). The environment variable
/// `FRESHET_CHANGES_RETAIN_COMMITS` may lower it (never raise it).
pub const CHANGE_LOG_COMMITS_MAX: u64 = 10_000;

/// Longest the change log keeps a commit, in ms: older ones are pruned in the next commit
/// (the newest is always kept, so the position survives a quiet day).
pub const CHANGE_LOG_AGE_MAX_MS: i64 = 24 * 60 * 60 * 1_000;

/// Bytes of encoded rows (deleted keys plus upserted rows, as stored) the change log keeps
/// per view: a view that changes many rows per commit passes this long before the entry
/// count, so the oldest entries are pruned in the commit that passes it (the newest is
/// always kept). Bounds the store's disk use to this times the number of views.
pub const CHANGE_LOG_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Bytes of encoded rows (as stored) one change-log entry holds at most: a commit that
/// changes more (a batch run rewriting a large view) still commits, but its entry holds no
/// rows (`overflow`), and a change feed that reaches it tells its client to start over
/// (`event: reset`, `too_large`) instead of sending one event of unbounded size. The
/// environment variable `FRESHET_CHANGES_ENTRY_BYTES_MAX` may lower it (never raise it).
pub const CHANGE_ENTRY_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Change-log entries one read of the log returns at most (the feed reads again for more);
/// each entry holds one commit's changed rows, so this bounds a feed's memory to a few
/// commits.
pub const CHANGE_READ_ENTRIES_MAX: usize = 16;

/// Change feeds (`GET /v1/views/{name}/changes`) one server streams at once; more are
/// refused with 503 `too_many_feeds`.
pub const CHANGE_FEEDS_MAX: usize = 64;

/// Events a change feed holds for its client before the client reads them; when the buffer
/// stays full for [`CHANGE_FEED_SLOW_CLIENT`], the client is dropped.
pub const CHANGE_FEED_BUFFER_EVENTS: usize = 8;

/// How long a change feed waits for a slow client to take an event from a full buffer
/// before it drops the client with `event: dropped` (the client resumes from its last
/// position).
pub const CHANGE_FEED_SLOW_CLIENT: Duration = Duration::from_secs(30);

/// How often a change feed looks for new commits in the store (it is written by the views,
/// in this process or another).
pub const CHANGE_FEED_POLL: Duration = Duration::from_millis(200);

/// Interval of the comment lines that keep an idle change feed's connection open through
/// proxies.
pub const CHANGE_FEED_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Rows per `snapshot` event of a change feed opened with `?snapshot=true`; the snapshot
/// itself holds at most [`RESULT_ROWS_PER_PAGE_MAX`] rows.
pub const CHANGE_SNAPSHOT_ROWS_PER_EVENT: usize = 1_000;
