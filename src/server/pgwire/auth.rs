//! Who may connect, and what each statement needs: the rules of the HTTP API
//! (`server::auth`), told in PostgreSQL's terms.
//!
//! While tokens are required (`Credentials`), a connection must log in with cleartext
//! password authentication, the password being an API token (the user and database names
//! are not checked); an unknown token ends the connection with SQLSTATE 28P01. While none
//! is required (no token configured, loopback listeners only), any user and database is
//! accepted without a password. Either way, every statement is checked against the tokens
//! accepted at that moment, as every HTTP request is: a revoked token stops working on
//! connections already open, and once tokens become required a connection that logged in
//! without one can do nothing more.

use super::error::{self, INSUFFICIENT_PRIVILEGE, INVALID_AUTHORIZATION, INVALID_PASSWORD};
use crate::app::auth::{Role, TokenHash};
use crate::server::credentials::Credentials;
use async_trait::async_trait;
use futures::Sink;
use pgwire::api::ClientInfo;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, DefaultServerParameterProvider, LoginInfo, Password,
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::fmt::Debug;
use std::sync::Arc;

/// What a connection logged in with, kept for its lifetime.
pub struct Login {
    /// The token it gave as its password; `None` if none was required then.
    token: Option<TokenHash>,
}

/// The startup handler: protocol negotiation, then a password if tokens are required.
pub struct Startup {
    credentials: Arc<Credentials>,
    driver: AuthDriver<DefaultServerParameterProvider, TokenHash>,
    cleartext: CleartextPasswordAuth<Tokens>,
}

impl Startup {
    pub fn new(credentials: Arc<Credentials>) -> Startup {
        let mut parameters = DefaultServerParameterProvider::default();
        // Clients read the major version before the first non-digit.
        parameters.server_version = format!("16.6 (Freshet {})", env!("CARGO_PKG_VERSION"));
        parameters.is_superuser = false;
        Startup {
            driver: AuthDriver::new(parameters),
            cleartext: CleartextPasswordAuth::new(Arc::new(Tokens {
                credentials: credentials.clone(),
            })),
            credentials,
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.credentials.access().required {
                    let mechanism = AuthMechanismFactory::<TokenHash>::create(&self.cleartext);
                    self.driver.begin_authentication(client, mechanism).await?;
                } else {
                    client
                        .session_extensions()
                        .get_or_insert_with(|| Login { token: None });
                    self.driver.complete_authentication(client, None).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                if let AuthOutcome::Authenticated {
                    identity,
                    final_message,
                } = self.driver.advance_authentication(client, message).await?
                {
                    client
                        .session_extensions()
                        .get_or_insert_with(|| Login { token: identity });
                    self.driver
                        .complete_authentication(client, final_message)
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The API tokens as a password source: a password is accepted if it is a token the
/// server accepts now, and the connection's identity is its hash.
struct Tokens {
    credentials: Arc<Credentials>,
}

impl Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

#[async_trait]
impl AuthSource<TokenHash> for Tokens {
    /// Tokens are kept only as hashes, so there is no password to hand out: the check is
    /// [`Tokens::verify_password`], the only one cleartext authentication makes.
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<TokenHash>> {
        let hash = TokenHash::of(presented);
        match self.credentials.access().keyring.role_of(&hash) {
            Some(_) => Ok(Some(hash)),
            None => {
                tracing::info!(
                    user = login.user().unwrap_or_default(),
                    host = login.host(),
                    "PostgreSQL login refused: the password is not an API token this server \
                     accepts"
                );
                Err(error::fatal(
                    INVALID_PASSWORD,
                    "password authentication failed: the password must be an API token this \
                     server accepts (`freshet token create` makes one)",
                ))
            }
        }
    }
}

/// Checks that the connection may run a statement that needs `needed` (nothing if `None`),
/// by the tokens accepted now.
pub fn authorize(
    credentials: &Credentials,
    client: &(impl ClientInfo + ?Sized),
    needed: Option<Role>,
    what: &str,
) -> PgWireResult<()> {
    let Some(needed) = needed else { return Ok(()) };
    let access = credentials.access();
    if !access.required {
        return Ok(());
    }
    let login = client.session_extensions().get::<Login>();
    let Some(token) = login.as_ref().and_then(|l| l.token) else {
        return Err(error::fatal(
            INVALID_AUTHORIZATION,
            "this server requires an API token now: reconnect with a token as the password",
        ));
    };
    let Some(role) = access.keyring.role_of(&token) else {
        return Err(error::fatal(
            INVALID_PASSWORD,
            "the token this connection logged in with is no longer accepted (revoked); \
             reconnect with a valid token",
        ));
    };
    if !role.allows(needed) {
        let also = match needed {
            Role::Admin => "",
            Role::Ingest | Role::Query => " (or admin)",
        };
        return Err(error::error(
            INSUFFICIENT_PRIVILEGE,
            format!("{what} needs a token with role {needed}{also}; this token has role {role}"),
        ));
    }
    Ok(())
}
