//! The server's TLS: certificates from PEM files, or a self-signed one for `serve --dev`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Read(cert.display().to_string(), e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Read(key.display().to_string(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A self-signed certificate for `hostname` and its key, as PEM (for `serve --dev`).
pub fn self_signed(hostname: &str) -> Result<(String, String), TlsError> {
    let c = rcgen::generate_simple_self_signed(vec![hostname.to_owned(), "localhost".into()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((c.cert.pem(), c.signing_key.serialize_pem()))
}
