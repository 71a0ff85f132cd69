//! `freshet token create | list | revoke`: the API tokens of a data directory. They
//! change only `<data dir>/tokens.json` (under its own lock), never the data directory's
//! `LOCK`, so they run beside a `freshet serve`, which picks the change up by itself.

use crate::app::auth::{self, Record};
use crate::cli::{ListArgs, TokenCreateArgs, TokenRevokeArgs};
use crate::output;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// How soon a running server sees a change (it looks once per `TOKENS_CHECK_INTERVAL`), as
/// this command, `freshet token --help`, the README and docs/http-api.md all say it.
const SEEN_WITHIN: &str = "within about a second";

pub fn create(data_dir: &Path, args: TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (record, secret) = auth::create(data_dir, args.role, args.name.as_deref(), created)?;
    let intro = format!(
        "created token {} with role {}; it is shown once, below, and only its SHA-256 hash \
         is kept in {}:",
        record.name,
        record.role,
        data_dir.join(auth::TOKENS_FILE).display()
    );
    // Alone on the last line, so that `$(freshet token create ... | tail -1)` is the token.
    // A token nobody saw must not stay valid: if it cannot be written (a closed pipe, a
    // full disk), it is removed again and the command fails.
    if let Err(e) = output::lines_checked(&[&intro, secret.expose()]) {
        let name = &record.name;
        return Err(match auth::withdraw(data_dir, &record) {
            Ok(()) => anyhow::Error::new(e).context(format!(
                "the new token {name} could not be written to the output, so it was removed \
                 again; run the command again where its output can be read"
            )),
            Err(removing) => anyhow::Error::new(removing).context(format!(
                "the new token {name} could not be written to the output ({e}), nor removed \
                 again: revoke it with `freshet token revoke {name}`"
            )),
        });
    }
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
        "revoked token {} (role {}); a running server refuses it {SEEN_WITHIN}",
        record.name, record.role
    ));
    Ok(ExitCode::SUCCESS)
}

/// What `token list --json` shows of a token: never its hash.
fn described(record: &Record) -> serde_json::Value {
    json!({ "name": record.name, "role": record.role, "created": record.created })
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_types::limits::TOKENS_CHECK_INTERVAL;
    use std::time::Duration;

    /// Every place that tells a user how soon a change applies says the same, and it is
    /// true of the server.
    #[test]
    fn the_cli_and_the_docs_agree_on_how_soon_a_change_is_seen() {
        assert!(TOKENS_CHECK_INTERVAL <= Duration::from_secs(1));
        let places = [
            ("src/cli.rs", include_str!("../cli.rs")),
            ("README.md", include_str!("../../README.md")),
            ("docs/http-api.md", include_str!("../../docs/http-api.md")),
        ];
        for (path, text) in places {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(text.contains(SEEN_WITHIN), "{path} says {SEEN_WITHIN:?}");
            for other in ["within a few seconds", "within ~1 s"] {
                assert!(!text.contains(other), "{path} says {other:?}");
            }
        }
    }
}
