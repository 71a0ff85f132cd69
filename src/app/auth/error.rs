//! Errors of the token commands and of loading tokens, named by who must act: the user
//! (a bad name, an unknown token, a bad `FRESHET_TOKENS` entry, a `tokens.json` edited into
//! something unreadable), a limit, or the outside world (I/O, the OS's random source).
//! No message ever contains a secret.

use std::path::PathBuf;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// An entry of `FRESHET_TOKENS` is not `ROLE:TOKEN` with a known role and a usable
    /// token. `entry` counts from 1.
    #[error("FRESHET_TOKENS entry {entry} {problem}")]
    BadEnv { entry: usize, problem: String },
    /// `FRESHET_TOKENS` is set to something that is not text.
    #[error("FRESHET_TOKENS is not valid UTF-8")]
    EnvNotUnicode,
    /// A token name is not allowed.
    #[error("bad token name '{name}': {problem}")]
    BadName { name: String, problem: String },
    /// `token create --name` with a name another token has.
    #[error("a token named '{0}' exists already; pick another name, or revoke it first")]
    NameTaken(String),
    /// `token revoke` of a name no token has.
    #[error("no token named '{name}' in {path}; `freshet token list` shows the names")]
    UnknownName { name: String, path: PathBuf },
    /// `tokens.json` is not a token file this version can read (edited by hand, or
    /// written by a newer version).
    #[error("{path} cannot be read as a token file: {problem}")]
    BadFile { path: PathBuf, problem: String },
    /// Two configured tokens are the same secret (a token in `tokens.json` also listed in
    /// `FRESHET_TOKENS`, say). Each is named with where it is configured and its role.
    #[error(
        "the tokens {first} and {second} are the same secret; a secret has one name and one \
         role: revoke one of them, or take it out of FRESHET_TOKENS"
    )]
    SameToken { first: String, second: String },
    /// A bound from `freshet_types::limits` was reached.
    #[error("{what}: at most {max} ({limit})")]
    Limit {
        what: &'static str,
        max: usize,
        limit: &'static str,
    },
    /// Another `token` command kept the token file's lock for too long.
    #[error("{path} is still locked by another `freshet token` command after {waited_s} s")]
    Locked { path: PathBuf, waited_s: u64 },
    /// A `token` command run by another user than the token file's could not give the
    /// rewritten file back to its owner, so it changed nothing.
    #[error(
        "{path} belongs to uid {uid} (gid {gid}), and this user may not give a rewritten \
         copy back to them, so it was left as it was: a server running as its owner could \
         not read the copy. Run `freshet token` as that user, or as root"
    )]
    OwnerNotKept { path: PathBuf, uid: u32, gid: u32 },
    /// The file system failed.
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The OS's random source failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// A closure that wraps an I/O error with what was being done to which path.
pub fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> TokenError {
    let path = path.to_path_buf();
    move |source| TokenError::Io {
        action,
        path,
        source,
    }
}
