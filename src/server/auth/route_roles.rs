//! Which role each route needs: the one table the middleware consults, by method and the
//! route as the router spells it (`/v1/views/{name}`). `/`, `/healthz` and `/readyz` are
//! open: the dashboard page is static (its script asks for a token when `/v1/status`
//! wants one), and probes have none. `/metrics` needs `query` unless `--metrics-open`.
//! Anything else (an unknown path, or a known path with another method) needs a valid
//! token of any role, so that it answers 404 or 405 only to a caller who may use the API.

use crate::app::auth::Role;
use axum::http::Method;

/// What a request needs to reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the route is open.
    Open,
    /// A token whose role allows this one.
    Role(Role),
    /// A valid token, whatever its role.
    AnyToken,
}

/// Every route the server serves: method, route, what it needs.
pub const ROUTES: [(&str, &str, Need); 10] = [
    ("GET", "/", Need::Open),
    ("GET", "/healthz", Need::Open),
    ("GET", "/readyz", Need::Open),
    ("GET", "/metrics", Need::Role(Role::Query)),
    (
        "POST",
        "/v1/streams/{name}/events",
        Need::Role(Role::Ingest),
    ),
    ("POST", "/v1/sql", Need::Role(Role::Admin)),
    ("GET", "/v1/views", Need::Role(Role::Query)),
    ("GET", "/v1/views/{name}", Need::Role(Role::Query)),
    ("GET", "/v1/views/{name}/results", Need::Role(Role::Query)),
    ("GET", "/v1/status", Need::Role(Role::Query)),
];

/// The route whose `/metrics` `--metrics-open` opens.
const METRICS: &str = "/metrics";

/// What a request with `method` needs for `route` (the matched route; `None` when no route
/// matched). `HEAD` is answered by `GET` routes and needs what they need.
pub fn need(method: &Method, route: Option<&str>, metrics_open: bool) -> Need {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let Some(route) = route else {
        return Need::AnyToken;
    };
    match ROUTES.iter().find(|(m, r, _)| *m == method && *r == route) {
        Some((_, METRICS, _)) if metrics_open => Need::Open,
        Some((_, _, need)) => *need,
        None => Need::AnyToken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(role: Role, method: &Method, route: &str, metrics_open: bool) -> bool {
        match need(method, Some(route), metrics_open) {
            Need::Open | Need::AnyToken => true,
            Need::Role(needed) => role.allows(needed),
        }
    }

    /// The table, as docs/http-api.md states it: per role, the routes it may call.
    #[test]
    fn each_role_may_call_its_routes_and_no_other() {
        let get = Method::GET;
        let post = Method::POST;
        let guarded: [(&Method, &str); 7] = [
            (&post, "/v1/streams/{name}/events"),
            (&post, "/v1/sql"),
            (&get, "/v1/views"),
            (&get, "/v1/views/{name}"),
            (&get, "/v1/views/{name}/results"),
            (&get, "/v1/status"),
            (&get, "/metrics"),
        ];
        let may = |role: Role| -> Vec<&str> {
            guarded
                .iter()
                .filter(|(m, r)| allowed(role, m, r, false))
                .map(|(_, r)| *r)
                .collect()
        };
        assert_eq!(may(Role::Ingest), ["/v1/streams/{name}/events"]);
        assert_eq!(
            may(Role::Query),
            [
                "/v1/views",
                "/v1/views/{name}",
                "/v1/views/{name}/results",
                "/v1/status",
                "/metrics"
            ]
        );
        assert_eq!(may(Role::Admin).len(), guarded.len());
        for open in ["/", "/healthz", "/readyz"] {
            assert_eq!(need(&get, Some(open), false), Need::Open, "{open}");
            assert_eq!(need(&Method::HEAD, Some(open), false), Need::Open, "{open}");
        }
        assert_eq!(need(&get, Some("/metrics"), true), Need::Open);
        assert_eq!(
            need(&Method::HEAD, Some("/v1/status"), false),
            Need::Role(Role::Query)
        );
        // Unknown paths and other methods on known paths need some valid token.
        assert_eq!(need(&get, None, false), Need::AnyToken);
        assert_eq!(need(&get, Some("/v1/sql"), false), Need::AnyToken);
        assert_eq!(
            need(&Method::DELETE, Some("/v1/views"), false),
            Need::AnyToken
        );
        assert_eq!(need(&post, Some("/healthz"), true), Need::AnyToken);
    }

    /// The table lists exactly the routes `server::router` serves, with their methods.
    #[test]
    fn the_table_lists_every_route_of_the_router() {
        let source = include_str!("../mod.rs");
        let source = &source[..source.find("#[cfg(test)]").expect("its test module")];
        let mut served: Vec<(String, String)> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.trim_start().strip_prefix('"')?;
                let (route, after) = rest.split_once('"')?;
                let method = after
                    .trim_start_matches([',', ' ', '\n'])
                    .split('(')
                    .next()?
                    .to_uppercase();
                Some((method, route.to_string()))
            })
            .collect();
        served.sort();
        let mut listed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, r, _)| (m.to_string(), r.to_string()))
            .collect();
        listed.sort();
        assert_eq!(served, listed);
    }
}
