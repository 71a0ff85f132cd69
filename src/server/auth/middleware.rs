//! The check in front of every route (`axum::middleware::from_fn_with_state`, layered on
//! the whole router, fallback included). When tokens are required, a request without a
//! valid `Authorization: Bearer` token gets 401 `unauthorized` with `WWW-Authenticate:
//! Bearer`; one whose token's role does not allow the route gets 403 `forbidden` naming the
//! role needed. The token is hashed once per request and compared with every key in
//! constant time. Handlers never look at tokens.

use super::route_roles::{Need, RouteRoles};
use crate::app::auth::{Role, TokenHash};
use crate::server::credentials::Credentials;
use crate::server::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The challenge of a 401 for a request without a token (RFC 6750 §3).
const CHALLENGE: &str = "Bearer";

/// The challenge of a 401 for a request whose token is not accepted (RFC 6750 §3.1).
const CHALLENGE_INVALID: &str = "Bearer error=\"invalid_token\"";

/// What the check consults: the tokens accepted now, and what each route needs.
#[derive(Clone)]
pub struct Gate {
    pub credentials: Arc<Credentials>,
    pub routes: Arc<RouteRoles>,
}

/// Let the request through if its token allows the route, else answer 401 or 403.
pub async fn authorize(
    State(gate): State<Gate>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request.extensions().get::<MatchedPath>();
    let need = gate
        .routes
        .need(request.method(), route.map(MatchedPath::as_str));
    if need == Need::Open {
        return Ok(next.run(request).await);
    }
    let access = gate.credentials.access();
    if !access.required {
        return Ok(next.run(request).await);
    }
    let presented = bearer_token(request.headers())?;
    let role = access
        .keyring
        .role_of(&TokenHash::of(presented.as_bytes()))
        .ok_or_else(|| {
            unauthorized(
                CHALLENGE_INVALID,
                "the bearer token is not one this server accepts (unknown, or revoked)",
            )
        })?;
    if let Need::Role(needed) = need
        && !role.allows(needed)
    {
        let also = match needed {
            Role::Admin => "",
            Role::Ingest | Role::Query => " (or admin)",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {} needs a token with role {needed}{also}; this token has role {role}",
                request.method(),
                request.uri().path()
            ),
        ));
    }
    Ok(next.run(request).await)
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case), or a 401.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            CHALLENGE,
            "this server requires an API token: send `Authorization: Bearer <token>` \
             (`freshet token create` makes one)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    token.ok_or_else(|| {
        unauthorized(
            CHALLENGE_INVALID,
            "the Authorization header must be `Bearer <token>`",
        )
    })
}

fn unauthorized(challenge: &'static str, message: &str) -> ApiError {
    ApiError {
        challenge: Some(challenge),
        ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_read_and_other_schemes_refused() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(bearer_token(&with("Bearer fsh_x")).unwrap(), "fsh_x");
        assert_eq!(bearer_token(&with("bearer  fsh_x ")).unwrap(), "fsh_x");
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "fsh_x"] {
            let e = bearer_token(&with(bad)).expect_err(bad);
            assert_eq!(
                (e.status, e.code),
                (StatusCode::UNAUTHORIZED, "unauthorized")
            );
            assert_eq!(e.challenge, Some(CHALLENGE_INVALID), "{bad}");
        }
        let e = bearer_token(&HeaderMap::new()).expect_err("no header");
        assert_eq!(e.challenge, Some(CHALLENGE));
    }
}
