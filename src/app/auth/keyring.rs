//! The tokens a server accepts, each a hash with a name and a role, and the lookup of a
//! presented token's role. The lookup compares the presented hash with every key in
//! constant time and never stops early, so neither how long it takes nor where it stops
//! depends on the secrets.

use super::role::Role;
use super::secret::TokenHash;

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

/// One accepted token.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub role: Role,
    pub hash: TokenHash,
    pub source: Source,
}

/// Every accepted token.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    pub fn new(keys: Vec<Key>) -> Keyring {
        Keyring { keys }
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
        ]);
        assert_eq!(ring.role_of(&a.hash()), Some(Role::Admin));
        assert_eq!(ring.role_of(&q.hash()), Some(Role::Query));
        assert_eq!(ring.role_of(&TokenHash::of(b"fsh_guess")), None);
        let prefix = &q.expose()[..q.expose().len() - 1];
        assert_eq!(ring.role_of(&TokenHash::of(prefix.as_bytes())), None);
        assert!(ring.configured());
    }

    #[test]
    fn keys_and_keyrings_debug_without_their_hashes() {
        let secret = Secret::generate().unwrap();
        let ring = Keyring::new(vec![key(&secret, Role::Query, Source::File)]);
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
        let ring = Keyring::new(vec![key(&own, Role::Ingest, Source::Process)]);
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
