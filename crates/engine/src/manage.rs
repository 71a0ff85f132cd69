//! Executing view statements against a data directory and its result store.
//!
//! `CREATE VIEW` plans and compiles the view before anything is written, so a bad query is
//! refused with DataFusion's or Freshet's message and leaves no trace; then the results
//! table is created and the view added to `views.json`. A new view starts from the
//! beginning of the log the next time views run (backfill), then follows the live tail.

use crate::error::{EngineError, Result};
use crate::parallelism::{Parallelism, parallelism};
use crate::runner::{compile_view, consumer_name, result_table};
use crate::views::{ViewCatalog, ViewDef, ViewStatement};
use freshet_store::ResultStore;
use freshet_streams::DataDir;
use std::fmt::Write;

/// Whether `query` mentions `name` as a whole word (a dependency on a view or stream).
pub fn mentions(query: &str, name: &str) -> bool {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case(name))
}

/// What `SHOW VIEWS` answers when there is no view.
pub const NO_VIEWS: &str = "(no views)";

/// Run one view statement; returns the text to print.
pub fn execute(
    data: &DataDir,
    store: &mut dyn ResultStore,
    statement: ViewStatement,
) -> Result<String> {
    let mut catalog = ViewCatalog::load(data.root())?;
    match statement {
        ViewStatement::Create { def, if_not_exists } => {
            if catalog.get(&def.name).is_some() {
                return if if_not_exists {
                    Ok(format!("view {} already exists", def.name))
                } else {
                    Err(EngineError::Sql(format!(
                        "view '{}' already exists",
                        def.name
                    )))
                };
            }
            if data.streams().iter().any(|s| s.name == def.name) {
                return Err(EngineError::Sql(format!(
                    "'{}' is already a stream; a view needs another name",
                    def.name
                )));
            }
            let mut next = catalog.clone();
            next.views.push(def.clone());
            let compiled = compile_view(data, &next, &def)?;
            store.create_view(&result_table(&def, &compiled))?;
            next.save(data.root())?;
            // Workers that miss a new view see it at the next statement that publishes.
            let warning = publish_or_warn(data, store, &next);
            Ok(format!("created view {}{warning}", def.name))
        }
        ViewStatement::Drop { name, if_exists } => {
            let Some(pos) = catalog.views.iter().position(|v| v.name == name) else {
                return if if_exists {
                    Ok(format!("view {name} does not exist"))
                } else {
                    Err(EngineError::Sql(format!("unknown view '{name}'")))
                };
            };
            if let Some(dep) = catalog.views[pos + 1..]
                .iter()
                .find(|v| mentions(&v.query, &name))
            {
                return Err(EngineError::Sql(format!(
                    "view '{}' reads view '{name}'; drop it first",
                    dep.name
                )));
            }
            let def = catalog.views.remove(pos);
            // Workers learn the view is gone before its results are (none takes it again);
            // the data directory last, so that a failure on the way can be retried.
            publish_catalog(data, store, &catalog)?;
            store.drop_view(&name)?;
            catalog.save(data.root())?;
            // The embedded log's consumer positions pin what the view needed; a log on
            // JetStream keeps none for it (and need not be reachable to drop a view).
            for s in data.streams() {
                if mentions(&def.query, &s.name) && s.options.jetstream.is_none() {
                    for p in data.stream(&s.name)?.partitions() {
                        p.consumers().remove(&consumer_name(&name))?;
                    }
                }
            }
            Ok(format!("dropped view {name}"))
        }
        ViewStatement::Show => Ok(if catalog.views.is_empty() {
            NO_VIEWS.into()
        } else {
            catalog
                .views
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
                .join("\n")
        }),
        ViewStatement::Describe(name) => {
            let def = catalog
                .get(&name)
                .ok_or_else(|| EngineError::Sql(format!("unknown view '{name}'")))?;
            describe(data, &catalog, def)
        }
    }
}

/// Copies the data directory's catalog, with `views` as its views, into a store that
/// processes on other machines read ([`ResultStore::publish_catalog`]: workers follow
/// it; a store in the data directory ignores it).
pub fn publish_catalog(
    data: &DataDir,
    store: &mut dyn ResultStore,
    views: &ViewCatalog,
) -> Result<()> {
    let mut files = vec![(crate::views::FILE.to_owned(), views.to_bytes())];
    let path = data.catalog_root().join(freshet_streams::catalog::FILE);
    match std::fs::read(&path) {
        Ok(bytes) => files.push((freshet_streams::catalog::FILE.to_owned(), bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(EngineError::Io {
                context: format!("read {}", path.display()),
                source,
            });
        }
    }
    store.publish_catalog(&files)?;
    Ok(())
}

/// [`publish_catalog`] after a statement that stands whether or not it is published:
/// a line to show if it could not be (empty if it was).
pub fn publish_or_warn(data: &DataDir, store: &mut dyn ResultStore, views: &ViewCatalog) -> String {
    match publish_catalog(data, store, views) {
        Ok(()) => String::new(),
        Err(e) => unpublished(&e),
    }
}

/// The line a statement that stands shows when its catalog could not be published.
pub fn unpublished(e: &EngineError) -> String {
    tracing::warn!(error = %e, "the catalog could not be published to the result store");
    format!(
        "\nwarning: the catalog could not be published to the result store ({e}); workers \
         follow the last one published until a statement publishes it again"
    )
}

/// `DESCRIBE VIEW`: the statement, options, results table and operator plan.
pub fn describe(data: &DataDir, catalog: &ViewCatalog, def: &ViewDef) -> Result<String> {
    let compiled = compile_view(data, catalog, def)?;
    let table = result_table(def, &compiled);
    let mut out = String::new();
    let _ = writeln!(out, "view:    {}", def.name);
    let _ = writeln!(out, "options: {}", def.options.describe());
    let _ = writeln!(
        out,
        "parallelism: {}",
        describe_parallelism(&parallelism(&compiled.root, &data.streams()))
    );
    let _ = writeln!(out, "query:   {}", def.query);
    let _ = writeln!(
        out,
        "results table \"{}\" (key: {}):",
        def.name,
        table.key.join(", ")
    );
    for f in compiled.result_schema.fields() {
        let _ = writeln!(
            out,
            "  {} {}{}",
            f.name(),
            f.data_type(),
            if f.is_nullable() { "" } else { " NOT NULL" }
        );
    }
    let _ = writeln!(
        out,
        "  _state TEXT ('provisional' | 'final'), _updated_at TEXT"
    );
    let _ = writeln!(out, "plan:");
    let mut plan = String::new();
    compiled.root.describe(1, &mut plan);
    out.push_str(&plan);
    Ok(out.trim_end().to_string())
}

/// How a view divides, as `DESCRIBE VIEW` and `explain` say it: workers run a view that
/// splits as one task per partition (unless it has already committed whole), `freshet run`
/// and `serve` run each view whole unless workers divided it.
pub fn describe_parallelism(p: &Parallelism) -> String {
    match p {
        Parallelism::PerPartition { .. } => format!(
            "{p} (how `freshet worker` runs it; `run` and `serve` run it whole unless workers \
             divided it)"
        ),
        Parallelism::Single { .. } => p.to_string(),
    }
}

/// Refuse to drop a stream that a view reads.
pub fn check_stream_drop(data: &DataDir, stream: &str) -> Result<()> {
    let catalog = ViewCatalog::load(data.root())?;
    if let Some(v) = catalog.views.iter().find(|v| mentions(&v.query, stream)) {
        return Err(EngineError::Sql(format!(
            "view '{}' reads stream '{stream}'; drop the view first",
            v.name
        )));
    }
    Ok(())
}
