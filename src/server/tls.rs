//! HTTPS for `freshet serve`: a certificate chain and its private key read from PEM files
//! (`--tls-cert`, `--tls-key`), served with rustls, and read again on SIGHUP.
//!
//! Invariants: once TLS is configured the port speaks TLS only, whatever happens to the
//! files; a reload that fails (unreadable file, bad PEM, a key that does not match the
//! certificate) is logged as an error and the pair in use stays, so a mistake never takes
//! the server down nor drops it to plaintext. A reload applies to new handshakes;
//! connections already open keep the certificate they shook hands with.
//!
//! Handshakes run in tasks of their own, at most [`TLS_HANDSHAKES_MAX`] at once and each for
//! at most [`TLS_HANDSHAKE_TIMEOUT`], so that a client that connects and says nothing holds
//! one slot for a few seconds, not the accept loop. (Enough silent clients can still fill
//! every slot for that long: a per-address limit, and idle timeouts after the handshake,
//! are not built.) Finished connections go to axum through [`TlsListener`], so the server
//! keeps axum's graceful shutdown; handshakes under way when it stops run on until they
//! finish or time out, and their connections are not served.
//!
//! It does not ask clients for certificates (authentication is by API token), and speaks
//! HTTP/1.1 only, as the plaintext server does.

use anyhow::Context;
use freshet_types::limits::{TLS_HANDSHAKE_TIMEOUT, TLS_HANDSHAKES_MAX};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Connections whose handshake finished, waiting for axum to take them.
const READY_MAX: usize = 64;

/// Where the certificate chain and its key are read from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `--tls-cert` and `--tls-key`: both (TLS) or neither (plaintext).
    pub fn from_args(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "--tls-cert was given without --tls-key (FRESHET_TLS_KEY): HTTPS needs both \
                 the certificate and its private key"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--tls-key was given without --tls-cert (FRESHET_TLS_CERT): HTTPS needs both \
                 the certificate and its private key"
            ),
        }
    }
}

/// The certificate handshakes present now, replaced by [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the pair; a server with TLS asked for does not start without a good one.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(ring_provider());
        let pair = read_pair(&files, &provider)?;
        Ok(Arc::new(Certificates {
            files,
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again: new handshakes use the new pair if it is good; if not, the
    /// error is logged and the pair in use stays.
    pub fn reload(&self) {
        match read_pair(&self.files, &self.provider) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded; new connections use it"
                );
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "TLS certificate not reloaded; the previous certificate stays in use"
            ),
        }
    }

    /// The rustls server configuration that asks `self` for its certificate at every
    /// handshake.
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<TlsAcceptor> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no safe protocol version")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// rustls with *ring*, chosen over its default aws-lc-rs, whose build needs cmake and a C
/// toolchain. rustls 0.23.48 deprecated *ring*'s provider for its lack of post-quantum key
/// exchange: clients that offer it fall back to X25519 or the NIST curves.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The chain of `files.cert` with the key of `files.key`, checked to belong together.
fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert = &files.cert;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "the TLS certificate file {} holds no PEM certificate",
            cert.display()
        );
    }
    let key = read_key(&files.key)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "the TLS key {} does not go with the certificate {}: {e}",
            files.key.display(),
            cert.display()
        )
    })
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    // The error names the file only: its bytes are a secret.
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("cannot read a PEM private key from {}: {e}", path.display()))
}

/// Connections that finished their TLS handshake, as axum accepts them.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts TCP connections on `tcp` and shakes hands on each in a task of its own.
    /// The accepting task ends when the listener is dropped.
    pub fn spawn(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_MAX);
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(TLS_HANDSHAKES_MAX));
    loop {
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = ready.closed() => return,
        };
        let (socket, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        // Small responses must not wait for Nagle's algorithm and the client's delayed ACK.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                // A client speaking plaintext, or one that does not trust the certificate.
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task holds a sender for as long as the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        let some = |s: &str| Some(PathBuf::from(s));
        assert!(TlsFiles::from_args(None, None).unwrap().is_none());
        assert!(TlsFiles::from_args(some("c"), some("k")).unwrap().is_some());
        let e = TlsFiles::from_args(some("c"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tls-key"), "{e}");
        let e = TlsFiles::from_args(None, some("k"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tls-cert"), "{e}");
    }

    #[test]
    fn a_bad_pair_is_refused_and_a_reload_keeps_the_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let first = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&files.cert, first.cert.pem()).unwrap();
        std::fs::write(&files.key, first.signing_key.serialize_pem()).unwrap();
        let certificates = Certificates::load(files.clone()).unwrap();
        let in_use = |c: &Certificates| c.current.read().unwrap().cert[0].clone();
        assert_eq!(in_use(&certificates), *first.cert.der());

        // A key of another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
        let e = format!("{:#}", Certificates::load(files.clone()).unwrap_err());
        assert!(e.contains("does not go with"), "{e}");
        certificates.reload();
        assert_eq!(in_use(&certificates), *first.cert.der());

        std::fs::write(&files.cert, "not a certificate").unwrap();
        let e = format!("{:#}", Certificates::load(files.clone()).unwrap_err());
        assert!(e.contains("holds no PEM certificate"), "{e}");

        std::fs::write(&files.cert, other.cert.pem()).unwrap();
        certificates.reload();
        assert_eq!(in_use(&certificates), *other.cert.der());
    }
}
