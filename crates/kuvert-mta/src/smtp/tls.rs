//! TLS for outbound SMTP. STARTTLS between mail servers is opportunistic (RFC 7435): most
//! servers present certificates no one can check (self-signed, or for another name), and the
//! alternative to accepting them is sending in clear. So the certificate is not judged, but
//! the handshake is still verified (the server proves it holds the key it presented), and the
//! negotiated version is recorded with each delivery. Certificate checking belongs to
//! MTA-STS (`crate::mta_sts`), which judges the
//! certificate with [`CertificateCheck`] where a domain's policy asks for it.
//!
//! A smarthost is different: it is configured, it takes a password, and its certificate
//! is checked ([`verified`]).

use std::sync::Arc;

use kuvert_core::mta_sts::ResultType;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct Opportunistic(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Opportunistic {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The client configuration of opportunistic STARTTLS.
pub fn opportunistic() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let config = ClientConfig::builder_with_provider(provider.clone() as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Opportunistic(algorithms)))
        .with_no_client_auth();
    Arc::new(config)
}

/// The certificates of a PEM file.
fn pem_certs(file: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{file}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{file} holds no certificate"));
    }
    Ok(certs)
}

/// The client configuration for a smarthost: its certificate must chain to `ca_file` (PEM)
/// or, when that is empty, to the public web roots, and name the host.
pub fn verified(ca_file: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for c in pem_certs(ca_file)? {
            roots.add(c).map_err(|e| format!("{ca_file}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The public web roots, and the authorities of `extra` (PEM) when it is set: whom MTA-STS
/// trusts, for MX hosts and policy hosts alike.
pub fn roots(extra: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !extra.is_empty() {
        for c in pem_certs(extra)? {
            roots.add(c).map_err(|e| format!("{extra}: {e}"))?;
        }
    }
    Ok(roots)
}

/// Judges certificates as a verified connection would: chained to `roots`, in date, naming
/// the host.
pub struct CertificateCheck(Arc<rustls::client::WebPkiServerVerifier>);

impl CertificateCheck {
    pub fn new(roots: rustls::RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Self(
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a verifier of a root store"),
        )
    }

    /// Checks what a server presented (its certificate first) against `host`. The handshake
    /// already proved the server holds the first certificate's key; this is the rest of what
    /// a verified connection checks, done after an opportunistic one, so that a policy in
    /// `testing` mode can learn what `enforce` would have refused.
    pub fn check(
        &self,
        host: &str,
        presented: &[CertificateDer<'_>],
    ) -> Result<(), (ResultType, String)> {
        let Some((leaf, intermediates)) = presented.split_first() else {
            return Err((
                ResultType::ValidationFailure,
                "no certificate presented".into(),
            ));
        };
        let name = ServerName::try_from(host.trim_end_matches('.').to_owned())
            .map_err(|e| (ResultType::CertificateHostMismatch, format!("{host}: {e}")))?;
        self.0
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| (result_type(&e), format!("certificate of {host}: {e}")))
    }
}

/// What RFC 8460 calls a certificate's failure.
fn result_type(e: &rustls::Error) -> ResultType {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                ResultType::CertificateHostMismatch
            }
            C::Expired | C::ExpiredContext { .. } => ResultType::CertificateExpired,
            C::UnknownIssuer => ResultType::CertificateNotTrusted,
            _ => ResultType::ValidationFailure,
        },
        _ => ResultType::ValidationFailure,
    }
}
