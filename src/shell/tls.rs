//! TLS for SIP: rustls (the `ring` provider) around the stream connections of `tcp.rs`.
//!
//! - Client side: the registrar's (or outbound proxy's) certificate is verified against
//!   `[sip] tls_ca_file` or the system trust store, and against the host of the URI — a host
//!   name through SNI and DNS SANs, an IP address through IP SANs (RFC 5922 §7.1 asks for
//!   the SIP domain; the URI host is what the user configured).
//! - Server side: `tls:` listeners present `tls_cert_file`/`tls_key_file`; clients are not
//!   asked for certificates.
//! - `tls_verify = false` swaps the verifier for one that accepts every certificate but still
//!   checks the handshake signatures: for lab PBXs with throwaway certificates only.
//!
//! Key material never reaches a message: errors about the key file name the file only.

use std::path::Path;
use std::sync::Arc;

use ringside_config::TlsSettings;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side: verifies servers per `settings` (see the module docs).
pub(crate) fn connector(settings: &TlsSettings) -> Result<TlsConnector, String> {
    Ok(TlsConnector::from(Arc::new(client_config(settings)?)))
}

/// The rustls client configuration behind [`connector`], also used by the HTTP client of
/// action URLs (`integration::outbox`).
pub(crate) fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = if settings.verify {
        let roots = match &settings.ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    };
    Ok(config)
}

/// The server side of `tls:` listeners: presents `cert_file` with `key_file`.
pub(crate) fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, String> {
    let cert_name = cert_file.display();
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("sip.tls_cert_file {cert_name:?}: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "sip.tls_cert_file {cert_name:?}: no certificate in it"
        ));
    }
    // The pem error can quote a line of the file: never show it for the key.
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
        format!(
            "sip.tls_key_file {:?}: no usable private key in it (expected PEM: PKCS#8, PKCS#1 or SEC1)",
            key_file.display()
        )
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate".to_owned()
                }
                other => other.to_string(),
            };
            format!(
                "sip.tls_cert_file {cert_name:?} with sip.tls_key_file {:?}: {why}",
                key_file.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The name to verify the server as: the URI host (`ServerName::IpAddress` for an IP, which
/// rustls checks against IP SANs and sends no SNI for).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let name = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("sip.tls_ca_file {name:?}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        tracing::warn!(file = %name, ignored, "sip.tls_ca_file: some certificates are unusable");
    }
    if added == 0 {
        return Err(format!(
            "sip.tls_ca_file {name:?}: no usable CA certificate in it"
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "system trust store");
    }
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(
            "no CA certificate in the system trust store (install ca-certificates or set sip.tls_ca_file)"
                .to_owned(),
        );
    }
    tracing::debug!(certificates = added, "TLS: system trust store loaded");
    Ok(roots)
}

/// A handshake or TLS I/O error in words a user can act on.
pub(crate) fn describe(error: &std::io::Error) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return error.to_string();
    };
    match tls {
        rustls::Error::InvalidCertificate(certificate) => {
            format!(
                "server certificate rejected: {}",
                describe_certificate(certificate)
            )
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the peer refused the TLS handshake (alert: {alert:?})")
        }
        other => other.to_string(),
    }
}

fn describe_certificate(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            "unknown CA: the certificate is not signed by a trusted CA (see sip.tls_ca_file)"
                .to_owned()
        }
        CertificateError::NotValidForName => {
            "certificate name mismatch: it is not valid for the registrar's host".to_owned()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "certificate name mismatch: expected {}, the certificate names {}",
            expected.to_str(),
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                // rustls renders them as `DnsName("host")`: keep the name.
                presented
                    .iter()
                    .map(|p| {
                        p.split_once("(\"")
                            .and_then(|(_, rest)| rest.strip_suffix("\")"))
                            .unwrap_or(p)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("certificate expired ({error})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("certificate not valid yet ({error})")
        }
        other => format!("bad certificate ({other})"),
    }
}

/// `tls_verify = false`: any certificate for any name, handshake signatures still checked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
