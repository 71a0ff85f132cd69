//! Every statement Freshet understands, parsed once into one type, and executed in one
//! place: `freshet sql`, `POST /v1/sql` and the tests all come here.
//!
//! Stream statements change the data directory's catalog (`freshet_streams`); view
//! statements go to [`crate::manage`]. What a running process must do around a statement
//! (stop a view before it is dropped, start one once it is created) is its supervisor's
//! business, not this module's.

use crate::error::{EngineError, Result};
use crate::manage;
use crate::views::{ViewCatalog, ViewStatement, parse_view_statement};
use freshet_store::{ResultStore, StoreLocation};
use freshet_streams::DataDir;
use freshet_streams::ddl::{StreamStatement, parse_stream_statement};

/// What `SHOW STREAMS` answers when there is no stream.
pub const NO_STREAMS: &str = "(no streams)";

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE STREAM` or `DROP STREAM`.
    Stream(StreamStatement),
    /// `CREATE VIEW`, `DROP VIEW`, `SHOW VIEWS` or `DESCRIBE VIEW`.
    View(ViewStatement),
    /// `SHOW STREAMS`.
    ShowStreams,
}

impl Statement {
    /// Parses one statement; an error names what is wrong or what is understood.
    pub fn parse(sql: &str) -> Result<Statement> {
        if let Some(view) = parse_view_statement(sql)? {
            return Ok(Statement::View(view));
        }
        if let Some(stream) = parse_stream_statement(sql)? {
            return Ok(Statement::Stream(stream));
        }
        let words: Vec<String> = sql
            .split_whitespace()
            .take(2)
            .map(|w| w.to_ascii_uppercase())
            .collect();
        if words == ["SHOW", "STREAMS"] {
            return Ok(Statement::ShowStreams);
        }
        Err(EngineError::Sql(
            "unsupported statement: this version understands CREATE/DROP STREAM, CREATE/DROP \
             VIEW, SHOW STREAMS, SHOW VIEWS, DESCRIBE VIEW and COPY ... TO 'file'"
                .into(),
        ))
    }

    /// The view a `DROP VIEW` removes.
    pub fn dropped_view(&self) -> Option<&str> {
        match self {
            Statement::View(ViewStatement::Drop { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// The view a `CREATE VIEW` adds.
    pub fn created_view(&self) -> Option<&str> {
        match self {
            Statement::View(ViewStatement::Create { def, .. }) => Some(&def.name),
            _ => None,
        }
    }
}

/// The result store a statement may need, opened on first use.
pub struct LazyStore<'a> {
    location: &'a StoreLocation,
    store: Option<Box<dyn ResultStore>>,
}

impl<'a> LazyStore<'a> {
    /// The store at `location`, not opened yet.
    pub fn new(location: &'a StoreLocation) -> LazyStore<'a> {
        LazyStore {
            location,
            store: None,
        }
    }

    fn get(&mut self) -> Result<&mut dyn ResultStore> {
        if self.store.is_none() {
            self.store = Some(self.location.open()?);
        }
        Ok(self.store.as_mut().expect("opened above").as_mut())
    }
}

/// Runs `statement` against the data directory and the result store; returns the text to
/// show. `CREATE`/`DROP` statements publish the catalog to a store that other machines
/// read (PostgreSQL: workers follow it): `DROP VIEW` as part of the statement, before the
/// view's results go; the others afterwards, standing if that fails (saying so).
pub fn execute(dir: &DataDir, store: &mut LazyStore<'_>, statement: Statement) -> Result<String> {
    let changes_streams = matches!(statement, Statement::Stream(_));
    let shown = run(dir, store, statement)?;
    if !changes_streams || !store.location.is_shared() {
        return Ok(shown);
    }
    let warning = match (ViewCatalog::load(dir.catalog_root()), store.get()) {
        (Ok(views), Ok(store)) => manage::publish_or_warn(dir, store, &views),
        (Err(e), _) | (_, Err(e)) => manage::unpublished(&e),
    };
    Ok(format!("{shown}{warning}"))
}

fn run(dir: &DataDir, store: &mut LazyStore<'_>, statement: Statement) -> Result<String> {
    match statement {
        Statement::View(view) => manage::execute(dir, store.get()?, view),
        Statement::Stream(StreamStatement::Create { def, if_not_exists }) => {
            let name = def.name.clone();
            Ok(if dir.create_stream(def, if_not_exists)? {
                format!("CREATE STREAM {name}")
            } else {
                format!("stream {name} already exists, skipped")
            })
        }
        Statement::Stream(StreamStatement::Drop { name, if_exists }) => {
            manage::check_stream_drop(dir, &name)?;
            Ok(if dir.drop_stream(&name, if_exists)? {
                format!("DROP STREAM {name}")
            } else {
                format!("stream {name} does not exist, skipped")
            })
        }
        Statement::ShowStreams => {
            let names: Vec<String> = dir.streams().into_iter().map(|s| s.name).collect();
            Ok(if names.is_empty() {
                NO_STREAMS.into()
            } else {
                names.join("\n")
            })
        }
    }
}
