//! The PostgreSQL result store: the same protocol as SQLite, in plain typed tables that any
//! PostgreSQL client can read.
//!
//! Everything lives in one schema (default `freshet`, or `?schema=` on the URL): the
//! store's own `freshet_*` tables, and one results table per view named exactly as the
//! view. A commit is one transaction: result rows are deduplicated by key (the last write
//! of a key wins, as it would row by row) and sent as one array per column through
//! `INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE`, a few statements per commit
//! whatever its size; state, late events and progress go the same way.
//!
//! # Connections and failures
//!
//! Every store opened from one [`PgLocation`] shares a bounded pool (`pool_max=`, default
//! [`STORE_CONNECTIONS_DEFAULT`](freshet_types::limits::STORE_CONNECTIONS_DEFAULT)): a
//! writer holds one connection for its life, a reader one for each call; a call that
//! finds every connection in use waits a bounded time, then fails as
//! [`StoreError::Busy`](crate::StoreError::Busy). Connections go over TLS as the URL's
//! `sslmode` and `sslrootcert` say (libpq's meanings, see [`tls`]). A connection is opened
//! lazily and opened again after it is lost. Errors
//! say whether a retry can help ([`StoreError::retriable`](crate::StoreError::retriable)); after a retriable error the
//! connection is dropped, so the next call starts on a fresh one. Statements time out after
//! [`STATEMENT_TIMEOUT`](location::STATEMENT_TIMEOUT).
//!
//! # One writer per view
//!
//! [`ResultStore::claim_writer`](crate::ResultStore::claim_writer) takes the view's lease
//! ([`lease`]): a row with an epoch, the fencing token every commit checks first. Another
//! process claiming the same view is refused with a message naming the holder; the lease
//! goes when the holder's session does (exit, crash, a terminated backend), when it
//! releases it, or, for a worker, when its heartbeat stops renewing it. A writer whose
//! connection was lost checks its leases again before it writes anything; if another
//! process took one meanwhile, it is fenced ([`StoreError::Fenced`](crate::StoreError::Fenced)).
//!
//! The tables are described for people who read them in `docs/store-schema.md`.
//!
//! - [`store`]: the handle;
//! - [`result_store`]: the [`ResultStore`](crate::ResultStore) interface over the modules
//!   below;
//! - [`location`]: the store URL and the connection settings;
//! - [`tls`]: `sslmode`, `sslrootcert` and the certificate checks;
//! - [`pool`]: the bound on connections, shared by a location's stores;
//! - [`connection`]: the connection, kept alive and opened again;
//! - [`lease`]: which process writes each view, and the fencing of the others;
//! - [`cluster`]: the workers that share the views, their heartbeats and the leases;
//! - [`catalog`]: views' stored definitions and the writer's cache of them;
//! - [`statements`]: the SQL that writes and orders result rows;
//! - [`open`]: the schema, the store's own tables and the schema version;
//! - [`ddl`]: results tables, creating and dropping views;
//! - [`read`]: pages of results, statuses and checkpoints;
//! - [`write`](mod@write): commits and repairs;
//! - [`types`]: how column types and values map to PostgreSQL's.

mod catalog;
mod cluster;
mod connection;
mod ddl;
mod lease;
mod location;
mod open;
mod pool;
mod read;
mod result_store;
mod statements;
mod store;
mod tls;
mod types;
mod write;

pub use cluster::{Cluster, LeaseRecord, WorkerRecord};
pub use lease::Holder;
pub use location::PgLocation;
pub use store::PgStore;
