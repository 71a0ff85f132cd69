//! The application layer: what every long-running command does with a process's views,
//! whichever surface (CLI or HTTP) drives it, and who may call the HTTP API. `commands`
//! and `server` both use it; it uses neither.

pub mod assignment;
pub mod auth;
pub mod batch_query;
pub mod listen;
pub mod prometheus;
pub mod query_output;
pub mod signals;
pub mod supervisor;
pub mod time_arg;
