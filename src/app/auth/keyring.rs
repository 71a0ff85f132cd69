//! The tokens a server accepts, each a hash with a name and a role, and the lookup of a
//! presented token's role. The lookup compares the presented hash with every key in
//! constant time and never stops early, so neither how long it takes nor where it stops
//! depends on the secrets. No two keys have the same hash.

use super::error::TokenError;
use super::role::Role;
use super::secret::TokenHash;
use std::collections::HashMap;

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `<data dir>/tokens.json` (`freshet token create`).
    File,
    /// `FRESHET_TOKENS` in the server's environment.
    Env,
    /// This process made it for itself (the demo's feeder); it lives in memory only and
    /// does not count as a configured token.
    Process,
}

impl Source {
    /// Where a key of this source is configured, as an error names it.
    pub fn name(self) -> &'static str {
        match self {
            Source::File => "tokens.json",
            Source::Env => "FRESHET_TOKENS",
            Source::Process => "this process",
        }
    }
}

/// One accepted token.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub role: Role,
    pub hash: TokenHash,
    pub source: Source,
}

impl Key {
    /// The key as an error names it: its name, where it is configured and its role.
    fn describe(&self) -> String {
        format!(
            "'{}' ({}, role {})",
            self.name,
            self.source.name(),
            self.role
        )
    }
}

/// Every accepted token.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// The keyring of `keys`, refusing two keys with one hash: the same secret under two
    /// names, perhaps with two roles (one in `tokens.json`, one in `FRESHET_TOKENS`), would
    /// leave its role up to the order of the keys. The error names both keys, never the
    /// token.
    pub fn new(keys: Vec<Key>) -> Result<Keyring, TokenError> {
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if let Some(&first) = seen.get(&key.hash.to_hex()) {
                return Err(TokenError::SameToken {
                    first: keys[first].describe(),
                    second: key.describe(),
                });
            }
            seen.insert(key.hash.to_hex(), i);
        }
        Ok(Keyring { keys })
    }

    /// The role of the token whose hash is `presented`, if it is one of these. Every key
    /// is compared (in constant time), whichever matches.
    pub fn role_of(&self, presented: &TokenHash) -> Option<Role> {
        let mut found = None;
        for key in &self.keys {
            if key.hash.matches(presented) {
                found = Some(key.role);
            }
        }
        found
    }

    /// Whether anyone configured a token (in the token file or the environment): then the
    /// server requires one on every route but the open ones.
    pub fn configured(&self) -> bool {
        self.keys.iter().any(|k| k.source != Source::Process)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::auth::Secret;

    fn key(secret: &Secret, role: Role, source: Source) -> Key {
        Key {
            name: format!("{role}-test"),
            role,
            hash: secret.hash(),
            source,
        }
    }

    #[test]
    fn a_token_has_the_role_of_its_key_and_unknown_tokens_none() {
        let (a, q) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        let ring = Keyring::new(vec![
            key(&a, Role::Admin, Source::Env),
            key(&q, Role::Query, Source::File),
        ])
        .unwrap();
        assert_eq!(ring.role_of(&a.hash()), Some(Role::Admin));
        assert_eq!(ring.role_of(&q.hash()), Some(Role::Query));
        assert_eq!(ring.role_of(&TokenHash::of(b"fsh_guess")), None);
        let prefix = &q.expose()[..q.expose().len() - 1];
        assert_eq!(ring.role_of(&TokenHash::of(prefix.as_bytes())), None);
        assert!(ring.configured());
    }

    #[test]
    fn one_secret_under_two_keys_is_refused_naming_both_and_not_the_token() {
        let (a, q) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        let mut in_env = key(&a, Role::Admin, Source::Env);
        in_env.name = "env-2".into();
        let e = Keyring::new(vec![
            key(&a, Role::Query, Source::File),
            key(&q, Role::Query, Source::File),
            in_env,
        ])
        .expect_err("the same secret twice");
        let message = e.to_string();
        for says in [
            "'query-test' (tokens.json, role query)",
            "'env-2' (FRESHET_TOKENS, role admin)",
        ] {
            assert!(message.contains(says), "{message}");
        }
        assert!(!message.contains(a.expose()), "{message}");
        assert!(!message.contains(&a.hash().to_hex()[..8]), "{message}");
    }

    #[test]
    fn keys_and_keyrings_debug_without_their_hashes() {
        let secret = Secret::generate().unwrap();
        let ring = Keyring::new(vec![key(&secret, Role::Query, Source::File)]).unwrap();
        let hex = secret.hash().to_hex();
        for shown in [format!("{:?}", ring.keys()[0]), format!("{ring:?}")] {
            assert!(
                shown.contains(&format!("TokenHash({}…)", &hex[..4])),
                "{shown}"
            );
            assert!(!shown.contains(&hex[..8]), "{shown}");
        }
    }

    #[test]
    fn the_processs_own_keys_do_not_count_as_configured() {
        let own = Secret::generate().unwrap();
        let ring = Keyring::new(vec![key(&own, Role::Ingest, Source::Process)]).unwrap();
        assert!(!ring.configured());
        assert_eq!(ring.role_of(&own.hash()), Some(Role::Ingest));
        assert!(!Keyring::default().configured());
    }

    /// Comparisons go through `TokenHash::matches`, which is `subtle`'s constant-time
    /// equality: `TokenHash` has no `PartialEq` that a later change could use instead.
    #[test]
    fn hashes_are_compared_in_constant_time() {
        let source = include_str!("secret.rs");
        let matches = source
            .split("pub fn matches")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("TokenHash::matches");
        assert!(matches.contains(".ct_eq("), "{matches}");
        let derives = source
            .split("pub struct TokenHash")
            .next()
            .and_then(|before| before.lines().rev().find(|l| l.starts_with("#[derive")))
            .expect("TokenHash's derives");
        assert!(!derives.contains("PartialEq"), "{derives}");
        let here = include_str!("keyring.rs");
        let role_of = here
            .split("pub fn role_of")
            .nth(1)
            .and_then(|rest| rest.split("\n    }\n").next())
            .expect("role_of");
        assert!(role_of.contains(".matches("), "{role_of}");
        assert!(!role_of.contains("return"), "no early exit: {role_of}");
    }
}
