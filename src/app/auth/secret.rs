//! A token's secret and its SHA-256 hash. A generated secret is `fsh_` followed by 32 bytes
//! from the OS's random source in base64url without padding; it exists in memory only to
//! be shown once (or, for the demo's feeder, sent). Everything that is kept or compared is
//! the hash. Hashes are compared in constant time, so that how long a comparison takes
//! says nothing about how much of a hash matched.

use super::error::TokenError;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// What every generated token starts with, so that a leaked one is recognisable (secret
/// scanners, logs) as a Freshet token.
pub const TOKEN_PREFIX: &str = "fsh_";

/// Random bytes in a generated token: 256 bits, beyond any guessing.
const TOKEN_RANDOM_BYTES: usize = 32;

/// A token in plain text. It has no `Display`, and its `Debug` hides the value, so that it
/// cannot end up in a log or an error by accident.
pub struct Secret(String);

impl Secret {
    /// A new token from the OS's random source.
    pub fn generate() -> Result<Secret, TokenError> {
        let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(Secret(format!("{TOKEN_PREFIX}{encoded}")))
    }

    /// The token itself, to show once or to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// The SHA-256 hash of a token: what the token file keeps and what a request's token is
/// compared by. It has no `PartialEq`: [`TokenHash::matches`] is the only comparison. Its
/// `Debug` shows only the first few hex digits, so that a key or record that ends up in a
/// log or an error does not hand out a hash to guess against.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a presented token (all of it, prefix included).
    pub fn of(token: &[u8]) -> TokenHash {
        TokenHash(Sha256::digest(token).into())
    }

    /// Whether two hashes are equal, compared in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, as the token file keeps it.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The hash written as 64 hex digits.
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(TokenHash(bytes))
    }
}

/// Hex digits of a hash that `Debug` shows: enough to tell two keys apart in a test or a
/// bug report, too few to test guesses against offline, as the whole hash would allow.
const DEBUG_HEX_DIGITS: usize = 4;

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..DEBUG_HEX_DIGITS])
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TokenHash, D::Error> {
        let text = String::deserialize(d)?;
        TokenHash::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a SHA-256 hash must be 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_random_and_header_safe() {
        let a = Secret::generate().expect("a token");
        let b = Secret::generate().expect("a token");
        assert_ne!(a.expose(), b.expose());
        let body = a.expose().strip_prefix(TOKEN_PREFIX).expect("the prefix");
        // 32 bytes in base64 without padding.
        assert_eq!(body.len(), 43, "{}", a.expose());
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "base64url only, so it fits a header unquoted: {}",
            a.expose()
        );
        assert_eq!(format!("{a:?}"), "Secret(<hidden>)");
    }

    #[test]
    fn hashes_match_only_the_same_token_and_round_trip_as_hex() {
        let secret = Secret::generate().expect("a token");
        let hash = secret.hash();
        assert!(hash.matches(&TokenHash::of(secret.expose().as_bytes())));
        assert!(!hash.matches(&TokenHash::of(b"fsh_something-else")));
        let hex = hash.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(!hex.contains(secret.expose()));
        assert!(TokenHash::from_hex(&hex).expect("hex").matches(&hash));
        assert!(TokenHash::from_hex(&hex[1..]).is_none());
        assert!(TokenHash::from_hex(&hex.replace(|c: char| c.is_ascii_digit(), "z")).is_none());
        // The SHA-256 of "abc", so the hash is SHA-256 and not some other function.
        assert_eq!(
            TokenHash::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_shows_a_hash_redacted() {
        let hash = TokenHash::of(b"abc");
        assert_eq!(format!("{hash:?}"), "TokenHash(ba78…)");
        let secret = Secret::generate().expect("a token");
        let shown = format!("{:?}", secret.hash());
        assert!(!shown.contains(&secret.hash().to_hex()[..8]), "{shown}");
    }
}
