//! The engine's integration tests: one binary (it links DataFusion), modules below.

#[path = "../../../tests/common/postgres.rs"]
mod pg;

#[path = "engine/support.rs"]
mod support;

#[path = "engine/golden.rs"]
mod golden;

#[path = "engine/errors.rs"]
mod errors;

#[path = "engine/oracle.rs"]
mod oracle;

#[path = "engine/modes.rs"]
mod modes;

#[path = "engine/nexmark.rs"]
mod nexmark;
