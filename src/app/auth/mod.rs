//! Who may call the HTTP API: roles, API tokens and where they are kept. The `token`
//! commands and the server both use this module; the server's enforcement (which route
//! needs which role, the 401 and 403 answers, reloading) is in `server::auth`.
//!
//! A token is a secret shown once when it is created; only its SHA-256 hash is kept
//! (`<data dir>/tokens.json`), or, for tokens from `FRESHET_TOKENS` and the demo's own
//! feeder, held in memory. Nothing here ever writes or logs a secret.

pub mod client;
mod env;
mod error;
mod file;
mod keyring;
mod role;
mod secret;

pub use env::{TOKENS_ENV, keys_from_env};
pub use error::TokenError;
pub use file::{
    Record, Stamp, TOKENS_FILE, TOKENS_LOCK_FILE, create, read, revoke, stamp, withdraw,
};
pub use keyring::{Key, Keyring, Source};
pub use role::Role;
pub use secret::{Secret, TokenHash};
