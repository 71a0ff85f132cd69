//! The log's one integration-test binary (see STYLE.md: one test binary per crate).
//!
//! - `model`: a property test that runs random appends, syncs, failed fsyncs, crashes and
//!   reopens against the fault-injecting `MemStorage` and checks that nothing acknowledged
//!   is ever lost or altered.
//! - `recovery`: opening real directories damaged in specific ways.
//! - `append`, `reader`, `retention`, `verify`, `consumers`, `concurrency`: the rest of the
//!   public API.

mod log {
    pub mod common;

    mod append;
    mod concurrency;
    mod consumers;
    mod model;
    mod reader;
    mod recovery;
    mod retention;
    mod verify;
}
