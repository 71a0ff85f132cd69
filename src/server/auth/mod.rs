//! API tokens in `serve`: one axum middleware in front of every route checks the
//! request's `Authorization: Bearer` token against what the route needs. The table of what
//! each route needs is `route_roles`; the tokens accepted are `server::credentials`; roles
//! and tokens themselves are `app::auth`.

mod middleware;
mod route_roles;

pub use middleware::authorize;
