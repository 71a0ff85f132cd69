//! End-to-end tests of the `freshet` binary: each test runs the real executable against its
//! own temporary data directory (and, for HTTP, its own `freshet serve` on an ephemeral
//! port), so no test depends on another's state. One test binary, as STYLE.md asks.
//!
//! - `cli_ingest`: `freshet ingest` of NDJSON, CSV and Parquet files mixing good and bad rows.
//! - `http_ingest`: the same through `POST /v1/streams/{name}/events`, and the HTTP limits.
//! - `idempotency`: `Idempotency-Key` applies a request at most once, across restarts.
//! - `jetstream`: a stream whose log is NATS JetStream (the cluster of
//!   `scripts/nats-cluster.sh`): publish, other publishers, dead letters, views equal to
//!   batch, idempotent retries across processes, a recreated JetStream stream refused.
//! - `ddl`: `freshet sql` errors, scripts, DROP STREAM and the persisted catalog.
//! - `views`: views created over history, drained, read back by `results` and SQLite.
//! - `batch`: `freshet query` and `freshet reconcile` (batch runs over the log).
//! - `crash`: SIGKILL of `freshet run` at random moments loses and doubles nothing.
//! - `durability`: acknowledged events survive a SIGKILL of the server; damage is found.
//! - `auth`: API tokens: the `token` commands, roles, 401/403, reloading, the loopback rule.
//! - `operators`: shell completions, the man page and JSON logs.
//! - `pg_store`: the PostgreSQL result store: typed tables, one writer per view, SIGKILLs
//!   and terminated connections lose and double nothing.
//! - `changes`: the change feed over Server-Sent Events, followed by a real SSE client
//!   across a server restart; resets and the limit on feeds.
//! - `tls`: `serve` over HTTPS with a certificate the test makes, reloaded on SIGHUP.
//! - `workers`: `freshet worker` processes sharing views through PostgreSQL leases over
//!   JetStream, through joins, SIGKILL, SIGSTOP past the lease, terminated sessions and
//!   a clean stop; the results equal batch.
//! - `pg_tls`: the PostgreSQL store over TLS (`sslmode`) against a private server with TLS
//!   on, its bounded connection pool, and passwords that are never printed.

#[path = "common/postgres.rs"]
mod pg;

mod e2e {
    pub mod support;

    pub mod auth;
    pub mod batch;
    pub mod certs;
    mod changes;
    mod cli_ingest;
    pub mod crash;
    mod dashboard;
    mod ddl;
    mod demo;
    mod durability;
    mod http_ingest;
    pub mod http_views;
    mod idempotency;
    pub mod jetstream;
    mod operators;
    mod pg_store;
    mod pg_tls;
    mod pgwire;
    mod tls;
    mod views;
    mod workers;
}
