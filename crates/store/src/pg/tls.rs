//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` say it, over rustls (with the
//! `ring` provider).
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (the default, as libpq's) | if the server offers TLS | no |
//! | `require` | always | no; with `sslrootcert`, its chain (as `verify-ca`) |
//! | `verify-ca` | always | its chain up to `sslrootcert` |
//! | `verify-full` | always | its chain and that it names the URL's host |
//!
//! The client's TLS stack knows only `disable`, `prefer` and `require`, so the store reads
//! `sslmode` and `sslrootcert` itself, hands the client the nearest mode, and checks
//! certificates in a rustls verifier of its own. `verify-ca` and `verify-full` need
//! `sslrootcert`: the store does not fall back to `~/.postgresql/root.crt` nor to the
//! system's roots, so that what is trusted is always written in the URL.
//!
//! Without verification the channel is encrypted but a machine in the middle can read it:
//! `prefer` and `require` protect against eavesdroppers only, as in libpq.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode as ClientSslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS always; verified as `VerifyCa` when a root certificate is given.
    Require,
    /// TLS always, the chain checked against the root certificate.
    VerifyCa,
    /// TLS always, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// Reads a `sslmode=` value.
    pub fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plaintext first: a downgrade the store does not offer.
            other => {
                return Err(StoreError::user(format!(
                    "the store URL has sslmode={other}; use disable, prefer, require, \
                     verify-ca or verify-full"
                )));
            }
        })
    }

    /// The mode as the URL writes it.
    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the client's own TLS negotiation must do.
    pub(super) fn client_mode(self) -> ClientSslMode {
        match self {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        }
    }
}

/// How the certificate a server shows is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The client's TLS connector for `mode` and the root certificate file, read now so that a
/// missing or bad file is a configuration error at startup, not a failure at each connect.
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<MakeRustlsConnect, StoreError> {
    let check = match (mode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(StoreError::user(
                "the store URL asks for sslmode=verify-ca or verify-full without \
                 sslrootcert=FILE: name the PEM file of the certificate authority that \
                 signed the server's certificate",
            ));
        }
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require | SslMode::VerifyCa, Some(_)) => Check::Chain,
        (SslMode::VerifyFull, Some(_)) => Check::ChainAndName,
    };
    let provider = Arc::new(ring_provider());
    let roots = match (check, root_cert) {
        (Check::Nothing, _) | (_, None) => None,
        (_, Some(path)) => Some(Arc::new(read_roots(path)?)),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(Unverified(provider.clone())),
        Some(roots) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| {
                    StoreError::user(format!("cannot check certificates with sslrootcert: {e}"))
                })?;
            Arc::new(Verified {
                webpki,
                names: check == Check::ChainAndName,
            })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::bug(format!("the TLS provider has no safe version: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// rustls with *ring*, chosen over its default aws-lc-rs, whose build needs cmake and a C
/// toolchain. rustls 0.23.48 deprecated *ring*'s provider for its lack of post-quantum key
/// exchange; classical key exchange is what PostgreSQL servers offer today.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::user(format!("cannot read sslrootcert {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(StoreError::user(format!(
            "sslrootcert {shown} holds no usable PEM certificate"
        )));
    }
    Ok(roots)
}

/// `sslrootcert`'s value: a path, percent-decoded as the rest of the URL is.
pub(super) fn root_cert_path(value: &str) -> Result<PathBuf, StoreError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    StoreError::user(format!("sslrootcert={value} has a bad %-escape"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(out)
        .map_err(|_| StoreError::user(format!("sslrootcert={value} is not UTF-8")))?;
    if path.is_empty() {
        return Err(StoreError::user("the store URL has an empty sslrootcert="));
    }
    Ok(PathBuf::from(path))
}

/// `verify-ca` and `verify-full`: rustls' WebPKI checks, the host name only if `names`.
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    names: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // WebPKI checks the name last, after the chain, so a name error means the
            // chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: any certificate, as libpq. The handshake's
/// signatures are still checked, so the session key belongs to whoever holds the
/// certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_libpqs_and_verification_needs_a_root() {
        assert_eq!(SslMode::parse("verify-full").unwrap(), SslMode::VerifyFull);
        assert_eq!(
            SslMode::parse("require").unwrap().client_mode(),
            ClientSslMode::Require
        );
        assert!(SslMode::parse("allow").is_err());
        let Err(e) = connector(SslMode::VerifyFull, None) else {
            panic!("refused")
        };
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        assert!(connector(SslMode::Require, None).is_ok());
        let Err(e) = connector(SslMode::VerifyCa, Some(Path::new("/no/such/root.pem"))) else {
            panic!("refused")
        };
        assert!(e.to_string().contains("/no/such/root.pem"), "{e}");
        assert_eq!(
            root_cert_path("/a%20b/root.pem").unwrap(),
            PathBuf::from("/a b/root.pem")
        );
        assert!(root_cert_path("%zz").is_err());
    }
}
