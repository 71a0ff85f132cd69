//! Which role each route needs, declared with the route: `server::routes` lists every
//! route as a [`Route`] (method, path, need, handler), and [`RouteRoles::router`] makes
//! both the router and the table the middleware consults from that one list, so a route
//! cannot be served without saying who may call it. `/`, `/healthz` and `/readyz` are
//! open: the dashboard page is static (its script asks for a token when `/v1/status` wants
//! one), and probes have none. `/metrics` needs `query` unless `--metrics-open`.
//!
//! Fail closed: a request that matched a route with a method the table does not list needs
//! `admin` (the router answers it 405, unless something was routed around the list). Only a
//! request that matched no route at all needs just a valid token, of any role, so that it
//! answers 404 only to a caller who may use the API.

use crate::app::auth::Role;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;

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

/// One route: its method, its path as the router spells it (`/v1/views/{name}`), what it
/// needs, and its handler.
pub struct Route<S> {
    method: Method,
    path: &'static str,
    need: Need,
    handler: MethodRouter<S>,
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    /// `GET path` (and so `HEAD path`), needing `need`.
    pub fn get<H: Handler<T, S>, T: 'static>(path: &'static str, need: Need, handler: H) -> Self {
        Route {
            method: Method::GET,
            path,
            need,
            handler: axum::routing::get(handler),
        }
    }

    /// `POST path`, needing `need`.
    pub fn post<H: Handler<T, S>, T: 'static>(path: &'static str, need: Need, handler: H) -> Self {
        Route {
            method: Method::POST,
            path,
            need,
            handler: axum::routing::post(handler),
        }
    }
}

/// What each route needs, by method and route: made with the router, from the same list.
#[derive(Debug)]
pub struct RouteRoles {
    routes: Vec<(Method, &'static str, Need)>,
}

impl RouteRoles {
    /// The router that serves `routes`, each at its path for its method only, and the
    /// table of what each needs.
    pub fn router<S: Clone + Send + Sync + 'static>(
        routes: Vec<Route<S>>,
    ) -> (Router<S>, RouteRoles) {
        let mut router = Router::new();
        let mut table = Vec::with_capacity(routes.len());
        for route in routes {
            router = router.route(route.path, route.handler);
            table.push((route.method, route.path, route.need));
        }
        (router, RouteRoles { routes: table })
    }

    /// What a request with `method` needs for `route`, the route it matched (`None` when
    /// it matched none). `HEAD` is answered by `GET` routes and needs what they need.
    pub fn need(&self, method: &Method, route: Option<&str>) -> Need {
        let Some(route) = route else {
            return Need::AnyToken;
        };
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.routes
            .iter()
            .find(|(m, r, _)| m == method && *r == route)
            .map_or(Need::Role(Role::Admin), |(_, _, need)| *need)
    }

    /// Every route's method, path and need, in the order they were declared (for tests
    /// that hold the router and the docs to the table).
    #[cfg(test)]
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str, Need)> {
        self.routes.iter().map(|(m, r, n)| (m, *r, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteRoles {
        let (_, table) = RouteRoles::router::<()>(vec![
            Route::get("/", Need::Open, || async {}),
            Route::get("/v1/things", Need::Role(Role::Query), || async {}),
            Route::post("/v1/things", Need::Role(Role::Ingest), || async {}),
            Route::post("/v1/sql", Need::Role(Role::Admin), || async {}),
        ]);
        table
    }

    #[test]
    fn a_route_needs_what_it_was_declared_with() {
        let table = table();
        let t = Some("/v1/things");
        assert_eq!(table.need(&Method::GET, Some("/"),), Need::Open);
        assert_eq!(table.need(&Method::HEAD, Some("/")), Need::Open);
        assert_eq!(table.need(&Method::GET, t), Need::Role(Role::Query));
        assert_eq!(table.need(&Method::HEAD, t), Need::Role(Role::Query));
        assert_eq!(table.need(&Method::POST, t), Need::Role(Role::Ingest));
        assert_eq!(
            table.need(&Method::POST, Some("/v1/sql")),
            Need::Role(Role::Admin)
        );
        let declared: Vec<(&Method, &str)> = table.routes().map(|(m, r, _)| (m, r)).collect();
        assert_eq!(
            declared,
            [
                (&Method::GET, "/"),
                (&Method::GET, "/v1/things"),
                (&Method::POST, "/v1/things"),
                (&Method::POST, "/v1/sql"),
            ]
        );
    }

    /// A matched route with a method the table does not list needs `admin`; only a
    /// request that matched no route needs any valid token.
    #[test]
    fn what_the_table_does_not_list_needs_admin_unless_no_route_matched() {
        let table = table();
        let probe = Method::from_bytes(b"PROBE").expect("a method");
        for method in [
            Method::DELETE,
            Method::PUT,
            Method::PATCH,
            Method::OPTIONS,
            probe,
        ] {
            for route in ["/", "/v1/things", "/v1/sql", "/v1/routed-around-the-list"] {
                assert_eq!(
                    table.need(&method, Some(route)),
                    Need::Role(Role::Admin),
                    "{method} {route}"
                );
            }
            assert_eq!(table.need(&method, None), Need::AnyToken, "{method}");
        }
        assert_eq!(
            table.need(&Method::GET, Some("/v1/sql")),
            Need::Role(Role::Admin)
        );
        assert_eq!(table.need(&Method::GET, None), Need::AnyToken);
    }
}
