//! Running one view: read its streams' partitions from the committed offsets, push batches
//! and watermarks through the operator tree, and commit results, state and offsets in one
//! store transaction.
//!
//! The parts, each in a module of its own:
//! - `blueprint`: what a view is made from, compiling it, its results table;
//! - `machine`: [`ViewRunner`], the state machine (operators, batch runs, ended) and the
//!   one place that enters each state;
//! - `inputs`: the partitions read (through the input seam, `freshet_streams::input`),
//!   where the view is in each, and the streams' watermarks;
//! - `dataflow`: inputs → operators → checkpoint, and the reading step;
//! - `checkpoint`: building a commit, the commit thread's bookkeeping, restoring on open;
//! - `schedule`: the plan, when a periodic run is due, and the cost meter;
//! - `batch_run`: the batch mode as DataFusion batch runs.

mod batch_run;
mod blueprint;
mod checkpoint;
mod dataflow;
mod inputs;
mod machine;
mod schedule;

pub use checkpoint::{Progressed, RECENT_COMMITS};
pub use machine::ViewRunner;
pub use schedule::REPLAN_EVERY;

pub use blueprint::{compile_view, compile_view_over, consumer_name, result_table};
