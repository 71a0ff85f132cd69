//! API tokens in `serve`: one axum middleware in front of every route checks the
//! request's `Authorization: Bearer` token against what the route needs. What each route
//! needs is declared with the route (`route_roles`); the tokens accepted are
//! `server::credentials`; roles and tokens themselves are `app::auth`.

mod middleware;
mod route_roles;

pub use middleware::{Gate, authorize};
pub use route_roles::{Need, Route, RouteRoles};
