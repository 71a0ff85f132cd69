//! A data directory with streams and views, a manual clock, and helpers to append rows to
//! chosen partitions and to dump a view's results table as text.

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use freshet_engine::{LazyStore, ManualClock, Statement, ViewCatalog, ViewRunner};
use freshet_store::{ResultQuery, StoreLocation};
use freshet_streams::DataDir;
use freshet_streams::ddl::split_statements;
use freshet_streams::stream::{Prepared, PreparedFrame};
use freshet_types::limits::RESULT_ROWS_PER_PAGE_MAX;
use std::sync::Arc;

/// Where a test keeps its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `results.db` in the data directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL server of `FRESHET_TEST_POSTGRES_URL`.
    Postgres,
}

use crate::pg::PgSchema;

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub data: DataDir,
    pub clock: Arc<ManualClock>,
    pub store: StoreLocation,
    pub pg: Option<PgSchema>,
}

impl Harness {
    /// A fresh data directory after running `sql` (streams and views), results in SQLite.
    pub fn new(sql: &str) -> Harness {
        Harness::on(Backend::Sqlite, sql).expect("SQLite is always there")
    }

    /// Like [`Harness::new`] with results in `backend`; `None` if it is not configured.
    pub fn on(backend: Backend, sql: &str) -> Option<Harness> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = DataDir::open(dir.path()).expect("open the data directory");
        let (store, pg) = match backend {
            Backend::Sqlite => (StoreLocation::sqlite_in(dir.path()), None),
            Backend::Postgres => {
                let schema = PgSchema::new("engine")?;
                let location = StoreLocation::parse(&schema.store_url()).expect("a store URL");
                (location, Some(schema))
            }
        };
        let h = Harness {
            _dir: dir,
            data,
            clock: Arc::new(ManualClock::new(chrono::Utc::now().timestamp_millis())),
            store,
            pg,
        };
        for statement in split_statements(sql).expect("split the statements") {
            h.execute(&statement).expect("setup statement");
        }
        Some(h)
    }

    /// Run one statement, as `freshet sql` does.
    pub fn execute(&self, statement: &str) -> Result<String, String> {
        let statement = Statement::parse(statement).map_err(|e| e.to_string())?;
        let mut store = LazyStore::new(&self.store);
        freshet_engine::statement::execute(&self.data, &mut store, statement)
            .map_err(|e| e.to_string())
    }

    pub fn views(&self) -> ViewCatalog {
        ViewCatalog::load(self.data.root()).expect("load the view catalog")
    }

    /// Open every view from the store's last commit.
    pub fn runners(&self) -> Vec<ViewRunner> {
        let catalog = self.views();
        catalog
            .views
            .iter()
            .map(|def| {
                let store = self.store.open().expect("open the store");
                ViewRunner::open(&self.data, &catalog, def, store, self.clock.clone())
                    .expect("open the view runner")
            })
            .collect()
    }

    /// Append NDJSON `lines` to `stream`'s `partition` as one frame.
    pub fn append(&self, stream: &str, partition: u32, lines: &[String]) {
        let s = self.data.stream(stream).expect("the stream");
        let text = lines.join("\n");
        let decoded = s
            .ndjson()
            .decode(text.as_bytes(), 1)
            .expect("decode the input rows");
        assert!(
            decoded.rejects.is_empty(),
            "bad test row: {:?}",
            decoded.rejects
        );
        let batch = decoded.batch.expect("decoded rows");
        let times = freshet_engine::source::times_ms(batch.column(s.def().event_time_index()))
            .expect("event times");
        let mut payload = Vec::new();
        freshet_streams::payload::encode(&batch, &mut payload).expect("encode the payload");
        let prepared = Prepared {
            frames: vec![PreparedFrame {
                partition,
                payload,
                rows: batch.num_rows() as u32,
                min_event_time: times
                    .values()
                    .iter()
                    .copied()
                    .min()
                    .expect("a smallest time"),
                max_event_time: times
                    .values()
                    .iter()
                    .copied()
                    .max()
                    .expect("a largest time"),
            }],
            accepted: batch.num_rows() as u64,
            ..Prepared::default()
        };
        s.commit(prepared, None).expect("append to the log");
    }

    /// Every stored row of `view`, a page at a time, in key order.
    pub fn stored(&self, view: &str) -> Vec<RecordBatch> {
        let store = self.store.open_read_only().expect("open the store");
        let mut pages = Vec::new();
        loop {
            let page = store
                .read_results(
                    view,
                    &ResultQuery {
                        limit: RESULT_ROWS_PER_PAGE_MAX,
                        offset: pages.len() * RESULT_ROWS_PER_PAGE_MAX,
                        ..ResultQuery::default()
                    },
                )
                .expect("read the results");
            let more = page.has_more;
            pages.push(page.batch);
            if !more {
                return pages;
            }
        }
    }

    /// The results table of `view` as text: a header, then one line per row in key order,
    /// without `_updated_at`.
    pub fn dump(&self, view: &str) -> String {
        let pages = self.stored(view);
        let names: Vec<String> = pages[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "_updated_at")
            .collect();
        let mut out = names.join(",");
        out.push('\n');
        let options = FormatOptions::default().with_null("NULL");
        for batch in &pages {
            let cols: Vec<_> = names
                .iter()
                .map(|n| batch.column_by_name(n).expect("the column").clone())
                .collect();
            let fmts: Vec<_> = cols
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("a formatter"))
                .collect();
            for i in 0..batch.num_rows() {
                let cells: Vec<String> = fmts.iter().map(|f| f.value(i).to_string()).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            }
        }
        out
    }

    /// Operator state entries stored for `view`.
    pub fn state_entries(&self, view: &str) -> u64 {
        if let Some(pg) = &self.pg {
            let n: i64 = pg
                .client()
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE view = $1",
                        pg.table("freshet_state")
                    ),
                    &[&view],
                )
                .expect("count the state entries")
                .get(0);
            return n as u64;
        }
        let StoreLocation::Sqlite(path) = &self.store else {
            unreachable!("a store is SQLite or PostgreSQL")
        };
        let conn = rusqlite::Connection::open(path).expect("open the store");
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM freshet_state WHERE view = ?1",
                [view],
                |r| r.get(0),
            )
            .expect("count the state entries");
        n as u64
    }

    /// Rows of `freshet_late_events` for `view`: partition, offset, reason.
    pub fn late_events(&self, view: &str) -> Vec<(u32, u64, String)> {
        if let Some(pg) = &self.pg {
            return pg
                .client()
                .query(
                    &format!(
                        "SELECT \"partition\", \"offset\", reason FROM {} \
                         WHERE view = $1 ORDER BY \"partition\", \"offset\"",
                        pg.table("freshet_late_events")
                    ),
                    &[&view],
                )
                .expect("read the late events")
                .into_iter()
                .map(|r| {
                    let partition: i32 = r.get(0);
                    let offset: i64 = r.get(1);
                    (partition as u32, offset as u64, r.get(2))
                })
                .collect();
        }
        let StoreLocation::Sqlite(path) = &self.store else {
            unreachable!("a store is SQLite or PostgreSQL")
        };
        let conn = rusqlite::Connection::open(path).expect("open the store");
        let mut stmt = conn
            .prepare(
                "SELECT partition, offset, reason FROM freshet_late_events WHERE view = ?1 \
                 ORDER BY partition, offset",
            )
            .expect("prepare");
        stmt.query_map([view], |r| {
            let offset: i64 = r.get(1)?;
            Ok((r.get(0)?, offset as u64, r.get(2)?))
        })
        .expect("query")
        .map(Result::unwrap)
        .collect()
    }
}

/// `batches` as sorted text lines of `columns` (comma-separated, NULL for nulls).
pub fn lines(batches: &[RecordBatch], columns: &[String]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = columns
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .unwrap_or_else(|| panic!("no column {c}"))
                    .clone()
            })
            .collect();
        let fmts: Vec<_> = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("a formatter"))
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    out.sort();
    out
}
