//! The token a command sends to a server it calls (`freshet status --url`, the `bench`
//! load generators): `FRESHET_TOKEN`, as `Authorization: Bearer <token>`. Only from the
//! environment, never a flag, so that it stays out of shell history and process lists.

use anyhow::bail;

/// The variable commands read the token they send from.
pub const CLIENT_TOKEN_ENV: &str = "FRESHET_TOKEN";

/// The `Authorization` header value for `FRESHET_TOKEN`, if it is set and not empty.
pub fn authorization_from_env() -> anyhow::Result<Option<String>> {
    match std::env::var(CLIENT_TOKEN_ENV) {
        Ok(token) if token.trim().is_empty() => Ok(None),
        Ok(token) => bearer(token.trim()).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{CLIENT_TOKEN_ENV} is not valid UTF-8")
        }
    }
}

/// `Bearer <token>`, refusing characters a header cannot carry (they would split it or be
/// sent mangled).
pub fn bearer(token: &str) -> anyhow::Result<String> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{CLIENT_TOKEN_ENV} holds characters a token cannot have (only visible ASCII)");
    }
    Ok(format!("Bearer {token}"))
}

/// `request` with the `Authorization` header, if there is one.
pub fn authorize<B>(
    request: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_become_bearer_headers_and_bad_characters_are_refused() {
        assert_eq!(bearer("fsh_abc-_").unwrap(), "Bearer fsh_abc-_");
        for bad in ["a b", "a\r\nx-injected: 1", "é"] {
            assert!(bearer(bad).is_err(), "{bad:?}");
        }
    }
}
