//! `freshet token create | list | revoke`: the API tokens of a data directory. They
//! change only `<data dir>/tokens.json` (under its own lock), never the data directory's
//! `LOCK`, so they run beside a `freshet serve`, which picks the change up by itself.

use crate::app::auth::{self, Record};
use crate::cli::{ListArgs, TokenCreateArgs, TokenRevokeArgs};
use crate::output;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn create(data_dir: &Path, args: TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (record, secret) = auth::create(data_dir, args.role, args.name.as_deref(), created)?;
    output::line(format!(
        "created token {} with role {}; it is shown once, below, and only its SHA-256 hash \
         is kept in {}:",
        record.name,
        record.role,
        data_dir.join(auth::TOKENS_FILE).display()
    ));
    // Alone on the last line, so that `$(freshet token create ... | tail -1)` is the token.
    output::line(secret.expose());
    Ok(ExitCode::SUCCESS)
}

pub fn list(data_dir: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let tokens = auth::read(data_dir)?;
    if args.json {
        let listed: Vec<_> = tokens.iter().map(described).collect();
        output::json(&json!({ "tokens": listed }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| vec![t.name.clone(), t.role.to_string(), t.created.clone()])
        .collect();
    output::table(&["name", "role", "created"], &rows);
    if std::env::var_os(auth::TOKENS_ENV).is_some() {
        output::note(format!(
            "{} is set here too; a server started with it also accepts those tokens",
            auth::TOKENS_ENV
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(data_dir: &Path, args: TokenRevokeArgs) -> anyhow::Result<ExitCode> {
    let record = auth::revoke(data_dir, &args.name)?;
    output::line(format!(
        "revoked token {} (role {}); a running server refuses it within a few seconds",
        record.name, record.role
    ));
    Ok(ExitCode::SUCCESS)
}

/// What `token list --json` shows of a token: never its hash.
fn described(record: &Record) -> serde_json::Value {
    json!({ "name": record.name, "role": record.role, "created": record.created })
}
