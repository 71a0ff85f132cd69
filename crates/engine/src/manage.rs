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
            let warning = publish_catalog(data, store, &next)?;
            next.save(data.root())?;
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
            // Workers learn the view is gone before its results are: none takes it again.
            let warning = publish_catalog(data, store, &catalog)?;
            catalog.save(data.root())?;
            store.drop_view(&name)?;
            // The embedded log's consumer positions pin what the view needed; a log on
            // JetStream keeps none for it (and need not be reachable to drop a view).
            for s in data.streams() {
                if mentions(&def.query, &s.name) && s.options.jetstream.is_none() {
                    for p in data.stream(&s.name)?.partitions() {
                        p.consumers().remove(&consumer_name(&name))?;
                    }
                }
            }
            Ok(format!("dropped view {name}{warning}"))
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
/// it; a store in the data directory ignores it), naming this data directory as its
/// origin. Returns a warning line to show (empty if none): the store's copy is another
/// data directory's, which it keeps.
pub fn publish_catalog(
    data: &DataDir,
    store: &mut dyn ResultStore,
    views: &ViewCatalog,
) -> Result<String> {
    let root = data.catalog_root();
    let mut files = vec![(crate::views::FILE.to_owned(), views.to_bytes())];
    let path = root.join(freshet_streams::catalog::FILE);
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
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let path = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let origin = format!("{host}:{}", path.display());
    Ok(match store.publish_catalog(&origin, &files)? {
        None => String::new(),
        Some(theirs) => format!(
            "\nwarning: the catalog workers follow in this store is declared in the data \
             directory {theirs}, not this one ({origin}); it was left as it is, so workers \
             do not see this change (one data directory declares the streams and views \
             workers run)"
        ),
    })
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
