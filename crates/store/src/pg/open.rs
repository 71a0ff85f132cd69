//! Opening a PostgreSQL store: a writer creates the schema and the store's own tables if
//! they are missing (under an advisory lock, since several processes may do so at once) and
//! records the schema version in `freshet_meta`; a reader only checks that a writer did.
//! Either refuses a schema written by a newer Freshet rather than guess.

use postgres::Transaction;

use super::connection::ddl_lock_key;
use super::location::PgLocation;
use super::store::PgStore;
use crate::StoreError;
use crate::error::PostgresContext;
use crate::schema::SCHEMA_VERSION;

impl PgStore {
    /// Connects for writing, creating the schema and the store's tables if needed (several
    /// processes may do so at once). A schema written by a newer Freshet is refused.
    pub fn open(location: &PgLocation) -> Result<PgStore, StoreError> {
        let store = PgStore::new(location, false);
        store.with_client(|client, _| {
            let at = || format!("creating the result store in {}", store.location);
            let mut tx = client.transaction().context(at)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&ddl_lock_key(&store.location.schema)],
            )
            .context(at)?;
            tx.batch_execute(&internal_ddl(&store.schema)).context(at)?;
            // The DDL is idempotent: a schema of an older version has just gained the
            // tables added since, and is recorded as this version.
            let version = stored_version(&mut tx, &store.schema, &store.location)?;
            add_tasks(&mut tx, &store.schema, &store.location)?;
            if version != Some(SCHEMA_VERSION) {
                tx.execute(
                    &format!(
                        "INSERT INTO {}.freshet_meta (key, value) VALUES ('schema_version', $1) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        store.schema
                    ),
                    &[&SCHEMA_VERSION.to_string()],
                )
                .context(at)?;
            }
            tx.commit().context(at)
        })?;
        tracing::info!(store = %location, schema_version = SCHEMA_VERSION, "result store opened");
        Ok(store)
    }

    /// Connects for reading only, to a schema a writer created.
    pub fn open_read_only(location: &PgLocation) -> Result<PgStore, StoreError> {
        let store = PgStore::new(location, true);
        store.with_client(|client, _| {
            let at = || format!("opening the result store {} read-only", store.location);
            let mut tx = client.transaction().context(at)?;
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&format!("{}.freshet_meta", store.schema)],
                )
                .context(at)?
                .get(0);
            if !exists {
                return Err(StoreError::user(format!(
                    "there is no result store in {}: no writer has created it yet",
                    store.location
                )));
            }
            stored_version(&mut tx, &store.schema, &store.location)?;
            tx.commit().context(at)
        })?;
        Ok(store)
    }
}

fn internal_ddl(s: &str) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.freshet_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_views (
    view          text PRIMARY KEY,
    key_columns   text NOT NULL,
    schema        text NOT NULL,
    created_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_progress (
    view         text NOT NULL,
    stream       text NOT NULL,
    "partition"  integer NOT NULL,
    next_offset  bigint NOT NULL,
    watermark_ms bigint,
    PRIMARY KEY (view, stream, "partition")
);
CREATE TABLE IF NOT EXISTS {s}.freshet_view_status (
    view            text NOT NULL,
    task            text NOT NULL DEFAULT 'view',
    tasks           integer NOT NULL DEFAULT 1,
    watermark_ms    bigint,
    committed_at_ms bigint NOT NULL,
    stats           jsonb NOT NULL,
    PRIMARY KEY (view, task)
);
CREATE TABLE IF NOT EXISTS {s}.freshet_state (
    view  text NOT NULL,
    task  text NOT NULL DEFAULT 'view',
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (view, task, key)
);
-- State entries are rewritten at every commit: room on each page lets PostgreSQL update
-- them in place (HOT) without touching the index.
ALTER TABLE {s}.freshet_state SET (fillfactor = 70);
CREATE TABLE IF NOT EXISTS {s}.freshet_late_events (
    view        text NOT NULL,
    stream      text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    event_time  timestamptz NOT NULL,
    reason      text NOT NULL,
    "row"       text NOT NULL,
    PRIMARY KEY (view, stream, "partition", "offset")
);
CREATE TABLE IF NOT EXISTS {s}.freshet_changes (
    view            text NOT NULL,
    seq             bigint NOT NULL,
    committed_at_ms bigint NOT NULL,
    kind            text NOT NULL,
    progress        jsonb,
    deletes         bytea,
    upserts         bytea,
    PRIMARY KEY (view, seq)
);
CREATE TABLE IF NOT EXISTS {s}.freshet_leases (
    view          text NOT NULL,
    task          text NOT NULL,
    owner         text,
    epoch         bigint NOT NULL,
    expires_at    timestamptz,
    backend_pid   integer,
    backend_start timestamptz,
    acquired_at   timestamptz NOT NULL,
    PRIMARY KEY (view, task)
);
CREATE TABLE IF NOT EXISTS {s}.freshet_catalog (
    name          text PRIMARY KEY,
    doc           bytea NOT NULL,
    updated_at_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.freshet_workers (
    worker       text PRIMARY KEY,
    listen        text NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    lease_ttl_ms  bigint NOT NULL,
    backend_pid   integer,
    backend_start timestamptz
);
"#
    )
}

/// Brings `freshet_state` and `freshet_view_status` of a store written before version 4
/// to it, if they are not yet: they gain a `task` column (every row they hold is a whole
/// view's, `view`) in their keys, and the status its `tasks`. A store this build created
/// has them already.
fn add_tasks(
    tx: &mut Transaction<'_>,
    schema: &str,
    location: &PgLocation,
) -> Result<(), StoreError> {
    let at = || format!("keying state and status by task in {location}");
    let (state, status): (bool, bool) = tx
        .query_one(
            "SELECT bool_or(table_name = 'freshet_state'), \
             bool_or(table_name = 'freshet_view_status') \
             FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'task'",
            &[&location.schema],
        )
        .context(at)
        .map(|row| {
            (
                row.get::<_, Option<bool>>(0).unwrap_or(false),
                row.get::<_, Option<bool>>(1).unwrap_or(false),
            )
        })?;
    if !state {
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}.freshet_state ADD COLUMN task text NOT NULL DEFAULT 'view', \
             DROP CONSTRAINT freshet_state_pkey, ADD PRIMARY KEY (view, task, key)"
        ))
        .context(at)?;
    }
    if !status {
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}.freshet_view_status \
             ADD COLUMN task text NOT NULL DEFAULT 'view', \
             ADD COLUMN tasks integer NOT NULL DEFAULT 1, \
             DROP CONSTRAINT freshet_view_status_pkey, ADD PRIMARY KEY (view, task)"
        ))
        .context(at)?;
    }
    Ok(())
}

/// The stored schema version, refusing one newer than this build's.
fn stored_version(
    tx: &mut Transaction<'_>,
    schema: &str,
    location: &PgLocation,
) -> Result<Option<i64>, StoreError> {
    let at = || format!("reading the schema version of {location}");
    let row = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.freshet_meta WHERE key = 'schema_version'"),
            &[],
        )
        .context(at)?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.get(0);
    let version: i64 = text.parse().map_err(|_| {
        StoreError::corrupt(format!(
            "{location} holds schema version '{text}', which is not a number"
        ))
    })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::user(format!(
            "the result store {location} has schema version {version}, written by a newer \
             Freshet; this build knows version {SCHEMA_VERSION}"
        )));
    }
    Ok(Some(version))
}
