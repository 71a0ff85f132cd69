//! The PostgreSQL wire protocol beside the HTTP API (`serve --pg-listen`), over the
//! `pgwire` crate: psql, drivers and BI tools query views and streams, read each view's
//! freshness (`freshet_freshness`) and run DDL, with the HTTP API's tokens and roles.
//! docs/pgwire.md says what is supported.
//!
//! - `auth`: startup, passwords (API tokens) and the role each statement needs;
//! - `query`: the simple and extended query protocols;
//! - `types`: Arrow values as PostgreSQL values;
//! - `freshness`: the `freshet_freshness` table;
//! - `error`: SQLSTATEs.
//!
//! At most [`PG_CONNECTIONS_MAX`] connections are served at once; one more is told so
//! (SQLSTATE 53300) and closed. When the server stops, it stops accepting and closes every
//! connection (a query in flight on the blocking pool finishes first: the runtime waits
//! for it).

mod auth;
mod error;
mod freshness;
mod query;
mod types;

use super::state::App;
use freshet_types::limits::{PG_CONNECTIONS_MAX, PG_REFUSAL_TIMEOUT};
use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::StartupHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Every connection's handlers.
struct Handlers {
    startup: Arc<auth::Startup>,
    queries: Arc<query::Queries>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Serves connections from `listener` until `stop` turns true, then closes them all.
pub async fn serve(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let handlers = Arc::new(Handlers {
        startup: Arc::new(auth::Startup::new(app.credentials.clone())),
        queries: Arc::new(query::Queries::new(app)),
    });
    let slots = Arc::new(Semaphore::new(PG_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    let stopping = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let handlers = handlers.clone();
                        connections.spawn(async move {
                            let _slot = slot;
                            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                                tracing::debug!(%peer, error = %e, "PostgreSQL connection ended");
                            }
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, limit = PG_CONNECTIONS_MAX,
                            "PostgreSQL connection refused: too many connections");
                        connections.spawn(refuse(socket));
                    }
                },
                // Out of file descriptors, or a connection reset before it was accepted:
                // pause a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a PostgreSQL connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    tracing::info!("stopped serving the PostgreSQL protocol");
}

/// Tells a connection over [`PG_CONNECTIONS_MAX`] why it is refused, as PostgreSQL does:
/// an SSL or GSS encryption request is declined (`N`), the startup message read, then a
/// FATAL `ErrorResponse` with SQLSTATE 53300 sent and the connection closed; all within
/// [`PG_REFUSAL_TIMEOUT`].
async fn refuse(mut socket: TcpStream) {
    let _ = tokio::time::timeout(PG_REFUSAL_TIMEOUT, async {
        read_startup(&mut socket).await?;
        socket.write_all(&too_many_connections()).await?;
        socket.shutdown().await
    })
    .await;
}

/// The codes of the requests that may precede the startup message (SSLRequest,
/// GSSENCRequest), sent with a length of 8.
const ENCRYPTION_REQUESTS: [u32; 2] = [80_877_103, 80_877_104];

/// Longest startup message read from a connection being refused (PostgreSQL's own limit).
const STARTUP_BYTES_MAX: usize = 10_000;

/// Reads the client's first messages up to and including its startup message.
async fn read_startup(socket: &mut TcpStream) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    for _ in 0..=ENCRYPTION_REQUESTS.len() {
        let length = usize::try_from(socket.read_u32().await?).unwrap_or(usize::MAX);
        let code = socket.read_u32().await?;
        if length == 8 && ENCRYPTION_REQUESTS.contains(&code) {
            socket.write_all(b"N").await?;
            continue;
        }
        let rest = length.saturating_sub(8).min(STARTUP_BYTES_MAX);
        let mut body = vec![0; rest];
        socket.read_exact(&mut body).await?;
        return Ok(());
    }
    Ok(())
}

/// A FATAL `ErrorResponse`, SQLSTATE 53300, as PostgreSQL words it.
fn too_many_connections() -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', error::TOO_MANY_CONNECTIONS),
        (b'M', "sorry, too many clients already"),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    let length = u32::try_from(fields.len() + 4).expect("a short message");
    message.extend_from_slice(&length.to_be_bytes());
    message.extend_from_slice(&fields);
    message
}
