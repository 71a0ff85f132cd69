//! Tokens from the environment: `FRESHET_TOKENS`, a comma-separated list of `ROLE:TOKEN`,
//! for deployments that hand secrets to processes that way. They are held in memory as
//! hashes, named `env-1`, `env-2`, ... in order, and never written. A bad entry is an error
//! that names the entry by position and never repeats its token; so is an entry beyond
//! `TOKENS_ENV_ENTRIES_MAX`.

use super::error::TokenError;
use super::keyring::{Key, Source};
use super::role::Role;
use super::secret::TokenHash;
use freshet_types::limits::{TOKEN_BYTES_MIN, TOKENS_ENV_ENTRIES_MAX};

/// The variable a server reads its environment tokens from.
pub const TOKENS_ENV: &str = "FRESHET_TOKENS";

/// The keys of `FRESHET_TOKENS`, none if it is unset or empty.
pub fn keys_from_env() -> Result<Vec<Key>, TokenError> {
    match std::env::var(TOKENS_ENV) {
        Ok(text) => parse_env(&text),
        Err(std::env::VarError::NotPresent) => Ok(Vec::new()),
        Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::EnvNotUnicode),
    }
}

/// The keys of a `FRESHET_TOKENS` value. Spaces around entries are ignored, and so are
/// empty entries (a trailing comma).
pub fn parse_env(text: &str) -> Result<Vec<Key>, TokenError> {
    let mut keys = Vec::new();
    for (i, entry) in text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        if i == TOKENS_ENV_ENTRIES_MAX {
            return Err(TokenError::Limit {
                what: "entries in FRESHET_TOKENS",
                max: TOKENS_ENV_ENTRIES_MAX,
                limit: "TOKENS_ENV_ENTRIES_MAX",
            });
        }
        let bad = |problem: String| TokenError::BadEnv {
            entry: i + 1,
            problem,
        };
        let Some((role, token)) = entry.split_once(':') else {
            return Err(bad(
                "is not ROLE:TOKEN (ROLE is ingest, query or admin)".into()
            ));
        };
        let role = Role::parse(role.trim()).ok_or_else(|| {
            bad(format!(
                "has the unknown role '{}' (expected ingest, query or admin)",
                role.trim()
            ))
        })?;
        let token = token.trim();
        if token.len() < TOKEN_BYTES_MIN {
            return Err(bad(format!(
                "has a token of {} bytes; tokens must be at least {TOKEN_BYTES_MIN} \
                 (TOKEN_BYTES_MIN): `freshet token create` makes good ones",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "has a token with characters a header cannot carry (only visible ASCII \
                 without spaces)"
                    .into(),
            ));
        }
        keys.push(Key {
            name: format!("env-{}", i + 1),
            role,
            hash: TokenHash::of(token.as_bytes()),
            source: Source::Env,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "admin-secret-0123456789";
    const Q: &str = "query-secret-0123456789";

    #[test]
    fn entries_become_named_keys_in_order() {
        let keys = parse_env(&format!(" admin:{A} , query:{Q},")).expect("parses");
        let named: Vec<(&str, Role)> = keys.iter().map(|k| (k.name.as_str(), k.role)).collect();
        assert_eq!(named, [("env-1", Role::Admin), ("env-2", Role::Query)]);
        assert!(keys[0].hash.matches(&TokenHash::of(A.as_bytes())));
        assert!(keys[1].hash.matches(&TokenHash::of(Q.as_bytes())));
        assert!(keys.iter().all(|k| k.source == Source::Env));
        assert!(parse_env("").expect("empty").is_empty());
        // A token may contain ':' itself; only the first one separates the role.
        let keys = parse_env("ingest:a:b:c:0123456789abcdef").expect("parses");
        assert!(
            keys[0]
                .hash
                .matches(&TokenHash::of(b"a:b:c:0123456789abcdef"))
        );
    }

    #[test]
    fn at_most_tokens_env_entries_max_entries() {
        let entries = |n: usize| -> String {
            (0..n)
                .map(|i| format!("query:token-{i:0>16}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let most = parse_env(&entries(TOKENS_ENV_ENTRIES_MAX)).expect("at the bound");
        assert_eq!(most.len(), TOKENS_ENV_ENTRIES_MAX);
        let e = parse_env(&entries(TOKENS_ENV_ENTRIES_MAX + 1)).expect_err("one more");
        assert!(matches!(e, TokenError::Limit { .. }), "{e}");
        assert!(e.to_string().contains("TOKENS_ENV_ENTRIES_MAX"), "{e}");
    }

    #[test]
    fn bad_entries_are_named_by_position_without_their_token() {
        let cases = [
            (format!("admin:{A},{Q}"), 2, "is not ROLE:TOKEN"),
            (format!("reader:{Q}"), 1, "unknown role 'reader'"),
            (format!("Admin:{A}"), 1, "unknown role 'Admin'"),
            ("query:short".to_string(), 1, "at least 16"),
            (format!("query:{Q},admin:"), 2, "0 bytes"),
            (format!("admin:{A} x"), 1, "visible ASCII"),
        ];
        for (text, entry, says) in cases {
            let e = parse_env(&text).expect_err(&text);
            assert!(
                matches!(e, TokenError::BadEnv { entry: n, .. } if n == entry),
                "{text}: {e}"
            );
            let message = e.to_string();
            assert!(message.contains(says), "{text}: {message}");
            assert!(message.starts_with("FRESHET_TOKENS entry"), "{message}");
            for secret in [A, Q] {
                assert!(!message.contains(secret), "the token leaked: {message}");
            }
        }
    }
}
