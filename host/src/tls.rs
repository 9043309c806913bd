//! TLS settings shared by every network edge: the MQTT, NATS and email sinks
//! as clients, the HTTP API as a server. One stack (rustls with ring), so
//! every edge checks certificates the same way and names the same causes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;

/// `tls:` on a client (a sink). Present = TLS on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM file of the CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Name the server's certificate must carry; default: the host of the
    /// address.
    pub server_name: Option<String>,
    /// Labs only: accept any server certificate (no CA, name or expiry
    /// check). Logged as an error at every start.
    pub insecure_skip_verify: bool,
}

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {source}", path.display())]
    NoKey { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("{} is not a usable CA certificate: {source}", path.display())]
    BadCa { path: PathBuf, source: rustls::Error },
    #[error("no system CA certificates found (install ca-certificates, or set tls.ca_file)")]
    NoSystemRoots,
    #[error("`{0}` is not a valid TLS server name (set tls.server_name)")]
    ServerName(String),
    #[error("cert_file and key_file go together (mutual TLS needs both)")]
    HalfIdentity,
    #[error("the certificate and key do not make a TLS identity: {0}")]
    Identity(rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates from a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| TlsError::NoKey { path: path.to_path_buf(), source })
}

impl ClientTlsConfig {
    /// Problems found without touching the network (files must exist).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.cert_file.is_some() != self.key_file.is_some() {
            problems.push(("tls.cert_file".into(), "cert_file and key_file go together (mutual TLS)".into()));
        }
        for (field, path) in
            [("tls.ca_file", &self.ca_file), ("tls.cert_file", &self.cert_file), ("tls.key_file", &self.key_file)]
        {
            if let Some(path) = path {
                if !path.is_file() {
                    problems.push((field.into(), format!("{} does not exist or is not a file", path.display())));
                }
            }
        }
        if let Some(name) = &self.server_name {
            if ServerName::try_from(name.as_str()).is_err() {
                problems.push(("tls.server_name".into(), format!("`{name}` is not a DNS name or IP address")));
            }
        }
        problems
    }

    /// The name to check the server's certificate against.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        // `[::1]` from a URL is the address ::1.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
    }

    /// A rustls client configuration: roots, optional client identity, and
    /// (labs only) no verification. `what` names the edge in the warning.
    pub fn client_config(&self, what: &str) -> Result<rustls::ClientConfig, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Identity)?;
        let builder = if self.insecure_skip_verify {
            tracing::error!(
                edge = what,
                "tls.insecure_skip_verify is on: the server's certificate is NOT checked (no CA, name or expiry check); for labs only"
            );
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(read_certificates(cert)?, read_key(key)?).map_err(TlsError::Identity)
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(TlsError::HalfIdentity),
        }
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for certificate in read_certificates(path)? {
                    roots.add(certificate).map_err(|source| TlsError::BadCa { path: path.clone(), source })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(TlsError::NoSystemRoots);
                }
            }
        }
        Ok(roots)
    }
}

/// `monitoring.http.tls`: the server's certificate chain and key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl ServerTlsConfig {
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Identity)?
            .with_no_client_auth()
            .with_single_cert(read_certificates(&self.cert)?, read_key(&self.key)?)
            .map_err(TlsError::Identity)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A TLS failure in words an operator can act on: what is wrong with the
/// server's certificate and which setting to look at. `None` when the error
/// is not from TLS.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(tls));
        }
        // An io::Error's source() skips the error it wraps: look inside.
        if let Some(inner) = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(explain_rustls(tls));
            }
        }
        cause = current.source();
    }
    None
}

fn explain_rustls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "TLS: the server's certificate is not signed by a trusted CA (check tls.ca_file)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired (renew it on the server)".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (check the clocks)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "TLS: the server's certificate is not valid for the name dshost connected to (check the address or tls.server_name): {error}"
            ),
            other => format!("TLS: the server's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("TLS: the server refused the handshake ({alert:?}; does it require a client certificate, tls.cert_file?)")
        }
        other => format!("TLS: {other}"),
    }
}

/// `insecure_skip_verify`: accepts any certificate, but still checks that
/// the handshake is signed by the key in it.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_half_identities_are_named() {
        let config = ClientTlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            cert_file: Some("/nonexistent/c.pem".into()),
            ..Default::default()
        };
        let fields: Vec<String> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["tls.cert_file", "tls.ca_file", "tls.cert_file"]);
        match config.client_config("test") {
            Err(TlsError::Read { path, .. }) => assert_eq!(path, Path::new("/nonexistent/ca.pem")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn a_file_without_pem_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("dshost-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-cert.pem");
        std::fs::write(&path, "hello").unwrap();
        let error = read_certificates(&path).unwrap_err();
        assert!(error.to_string().contains("not-a-cert.pem holds no PEM certificate"), "{error}");
        let error = read_key(&path).unwrap_err();
        assert!(error.to_string().contains("holds no PEM private key"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn server_names_default_to_the_host_and_accept_addresses() {
        let config = ClientTlsConfig::default();
        assert!(matches!(config.server_name("127.0.0.1").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(config.server_name("[::1]").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(config.server_name("broker.example").unwrap(), ServerName::DnsName(_)));
        let named = ClientTlsConfig { server_name: Some("mqtt.example".into()), ..Default::default() };
        assert_eq!(named.server_name("127.0.0.1").unwrap().to_str(), "mqtt.example");
        assert!(ClientTlsConfig { server_name: Some("a b".into()), ..Default::default() }.server_name("x").is_err());
    }

    #[test]
    fn certificate_errors_become_advice() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(explain(&unknown).unwrap().contains("tls.ca_file"));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(explain(&io).unwrap().contains("expired"));
        assert!(explain(&std::io::Error::other("refused")).is_none());
    }
}
