//! TLS to the database with libpq's `PGSSLMODE` and `PGSSLROOTCERT` meanings. RDS for PostgreSQL 15 and later
//! refuses connections without TLS (`rds.force_ssl = 1`), so this is part of the function, not an extra. On
//! rustls with ring: pure Rust (no OpenSSL to cross-compile for arm64), and the smaller of rustls's two providers
//! (aws-lc-rs adds about 0.5 MB to the binary).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where the operating system keeps its CA bundle: Amazon Linux first (Lambda's provided.al2023), then Debian.
const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// libpq's `sslmode`, all five of them (tokio-postgres alone knows only disable, prefer and require).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            // libpq's allow (plain first, TLS if refused) is prefer's mirror; prefer is as safe and simpler.
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(format!(
                "must be disable, prefer, require, verify-ca or verify-full, got {value:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn for_postgres(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

/// `PGSSLROOTCERT`: a PEM file, or `system` (libpq 16's word for the operating system's store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    File(PathBuf),
    System,
}

impl RootCerts {
    /// A relative path is read from the function's root (`LAMBDA_TASK_ROOT`), so a CA bundle can ship in the zip.
    pub fn parse(value: &str, task_root: Option<&str>) -> Self {
        if value == "system" {
            return RootCerts::System;
        }
        let path = Path::new(value);
        match task_root {
            Some(root) if path.is_relative() => RootCerts::File(Path::new(root).join(path)),
            _ => RootCerts::File(path.to_owned()),
        }
    }

    fn load(&self) -> Result<RootCertStore, String> {
        let path = match self {
            RootCerts::File(path) => path.clone(),
            RootCerts::System => SYSTEM_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or("PGSSLROOTCERT=system: no CA bundle found on this system")?,
        };
        let pem =
            std::fs::read(&path).map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.display()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "PGSSLROOTCERT {}: no PEM certificate in it",
                path.display()
            ));
        }
        Ok(roots)
    }
}

/// What the server's certificate must prove, as libpq decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    /// prefer, require: encryption without authentication of the server.
    None,
    /// verify-ca, and require or prefer with a root bundle given (libpq checks the chain whenever it has a root
    /// file): a chain to a trusted root.
    Chain,
    /// verify-full: the chain and the host name.
    ChainAndHost,
}

/// The connector for every mode but disable; built on the first connection, not at start (cold start).
pub fn connector(mode: SslMode, roots: Option<&RootCerts>) -> Result<MakeRustlsConnect, String> {
    let verification = match (mode, roots) {
        (SslMode::VerifyFull, _) => Verification::ChainAndHost,
        (SslMode::VerifyCa, _) | (SslMode::Require | SslMode::Prefer, Some(_)) => {
            Verification::Chain
        }
        _ => Verification::None,
    };
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let algorithms = provider.signature_verification_algorithms;
    let config = match verification {
        Verification::ChainAndHost => {
            builder.with_webpki_verifier(webpki_verifier(roots, provider)?)
        }
        Verification::Chain => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                chain: Some(webpki_verifier(roots, provider)?),
                algorithms,
            })),
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                chain: None,
                algorithms,
            })),
    }
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn webpki_verifier(
    roots: Option<&RootCerts>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let roots = roots
        .ok_or("PGSSLMODE verify-ca and verify-full need PGSSLROOTCERT")?
        .load()?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("TLS setup: {e}"))
}

/// libpq's two modes that rustls has no word for. `chain: None` (prefer, require): any certificate. With a chain
/// verifier (verify-ca): the webpki verifier checks the chain before the name, so a name mismatch is the only
/// error that still means "the chain is good". Either way the handshake's signatures are checked: they prove the
/// peer holds the key of the certificate it sent, which channel binding builds on.
#[derive(Debug)]
struct LibpqVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
