//! What a view is made from (its definition, the streams and the views before it, where
//! its streams' data lives), compiling it into operators, and the results table it writes.

use crate::compile::{Compiled, ResultKey, compile, origin_key};
use crate::error::Result;
use crate::sql::SqlPlanner;
use crate::views::{ViewCatalog, ViewDef};
use freshet_store::ResultTable;
use freshet_streams::{DataDir, StreamDef};
use std::path::PathBuf;

/// What a view is made from: its definition, the streams and the views before it, and
/// where its streams' data lives (for batch runs).
pub(super) struct Blueprint {
    pub(super) def: ViewDef,
    pub(super) streams: Vec<StreamDef>,
    pub(super) earlier: Vec<ViewDef>,
    pub(super) root_dir: PathBuf,
}

impl Blueprint {
    /// A fresh operator tree of the view, without state.
    pub(super) fn compile(&self) -> Result<Compiled> {
        compile_after(&self.streams, &self.earlier, &self.def)
    }
}

/// Plans and compiles `def` given the views created before it (those it may read).
pub(super) fn compile_after(
    streams: &[StreamDef],
    earlier: &[ViewDef],
    def: &ViewDef,
) -> Result<Compiled> {
    let planner = SqlPlanner::new(streams, earlier)?;
    let plan = planner.plan(&def.query)?;
    compile(&plan, &def.options, &planner.execution_props())
}

/// Plan and compile `def` against the data directory's streams and the views before it.
pub fn compile_view(data: &DataDir, views: &ViewCatalog, def: &ViewDef) -> Result<Compiled> {
    compile_view_over(&data.streams(), views, def)
}

/// Like [`compile_view`] over the stream definitions `streams` (read without the data
/// directory's lock).
pub fn compile_view_over(
    streams: &[StreamDef],
    views: &ViewCatalog,
    def: &ViewDef,
) -> Result<Compiled> {
    compile_after(streams, &views.earlier_than(&def.name), def)
}

/// The results table a compiled view writes.
pub fn result_table(def: &ViewDef, compiled: &Compiled) -> ResultTable {
    ResultTable {
        view: def.name.clone(),
        schema: compiled.result_schema.clone(),
        key: match &compiled.key {
            ResultKey::Columns(c) => c.clone(),
            ResultKey::Origin(positions) => {
                origin_key(*positions).into_iter().map(|(n, _)| n).collect()
            }
        },
    }
}

/// The consumer name a view registers on the partitions it reads (pins retention).
pub fn consumer_name(view: &str) -> String {
    format!("view:{view}")
}
