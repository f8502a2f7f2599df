//! TLS: a rustls server configuration from the PEM files a web configuration names.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{ClientAuth, TlsSettings, TlsVersion, WebConfigError};

fn file_error(key: &'static str, path: &Path, message: impl std::fmt::Display) -> WebConfigError {
    WebConfigError::Invalid {
        key,
        message: format!("{}: {message}", path.display()),
    }
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The acceptor for `settings`; every file is read now.
pub fn acceptor(settings: &TlsSettings) -> Result<tokio_rustls::TlsAcceptor, WebConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match (settings.min_version, settings.max_version) {
        (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
        (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
        (TlsVersion::Tls12, TlsVersion::Tls13) => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let invalid = |message: String| WebConfigError::Invalid {
        key: "tls_server_config",
        message,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| invalid(e.to_string()))?;
    let builder = match (settings.client_auth, &settings.client_ca_file) {
        (ClientAuth::NoClientCert, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca_file)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("tls_server_config.client_ca_file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("tls_server_config.client_ca_file", ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| invalid(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certs = certificates("tls_server_config.cert_file", &settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| file_error("tls_server_config.key_file", &settings.key_file, e))?;
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
