//! TLS to PostgreSQL, with libpq's meanings of `sslmode`, so that a URL that works with `psql`
//! works here:
//!
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS when the server offers it, else plain; the certificate is not
//!   checked (it protects against eavesdropping, not against a server that impersonates).
//! - `require`: TLS or no connection; the certificate is not checked either.
//! - `verify-ca`: TLS, and the certificate must chain to a trusted root: the PEM file named by
//!   `sslrootcert`, or the system's roots.
//! - `verify-full`: as `verify-ca`, and the certificate must also name the host connected to.
//!
//! The driver knows only the first three, so the verifying modes and `sslrootcert` are taken
//! out of the URL before it is parsed ([`split`]).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

/// How a connection is encrypted and its server checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verify {
    /// No TLS (`sslmode=disable`).
    Plain,
    /// TLS without checking the certificate (`prefer`, `require`).
    Encrypt,
    /// TLS, the certificate checked against these roots (`None`: the system's), and with
    /// `host`, against the host's name too.
    Certificate { roots: Option<String>, host: bool },
}

/// The URL the driver parses (the verifying modes become `require`, `sslrootcert` goes) and
/// how to verify the server.
pub(crate) fn split(url: &str) -> Result<(String, Verify)> {
    let mut mode = None;
    let mut roots = None;
    let driver_url = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_string()),
                Some(("sslrootcert", value)) => roots = Some(percent_decode(value)),
                _ => kept.push(pair),
            }
        }
        if let Some(m) = &mode {
            kept.push(driver_mode(m));
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        // The key=value form: `host=db sslmode=verify-full sslrootcert=/etc/ca.pem`.
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_string()),
                Some(("sslrootcert", value)) => roots = Some(value.to_string()),
                _ => kept.push(pair.to_string()),
            }
        }
        if let Some(m) = &mode {
            kept.push(format!("sslmode={}", &driver_mode(m)["sslmode=".len()..]));
        }
        kept.join(" ")
    };
    let verify = match mode.as_deref().unwrap_or("prefer") {
        "disable" => Verify::Plain,
        "prefer" | "require" => Verify::Encrypt,
        "verify-ca" => Verify::Certificate { roots, host: false },
        "verify-full" => Verify::Certificate { roots, host: true },
        other => {
            return Err(StoreError::Database(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    Ok((driver_url, verify))
}

/// The driver's `sslmode` for ours.
fn driver_mode(mode: &str) -> &'static str {
    match mode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    }
}

/// `%2F` and friends in a URL's query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The driver's TLS connector for `verify` (`None`: no TLS).
pub(crate) fn connector(verify: &Verify) -> Result<Option<MakeRustlsConnect>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("TLS: {e}")))?;
    let config = match verify {
        Verify::Plain => return Ok(None),
        Verify::Encrypt => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Verify::Certificate { roots, host } => {
            let roots = Arc::new(root_store(roots.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| StoreError::Database(format!("TLS: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if *host {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The roots in the PEM file at `path`, or the system's.
fn root_store(path: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match path {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Database(format!("sslrootcert `{path}` cannot be read: {e}"))
                })?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(StoreError::Database(format!(
                    "sslrootcert `{path}` holds no certificate"
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(StoreError::Database(
                    "no trusted root certificates on this system: give sslrootcert".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `prefer` and `require`: any certificate (libpq checks none in these modes), the handshake
/// still signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
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
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
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

/// `verify-ca`: the chain checked, whatever host the certificate names.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
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
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifying_modes_and_the_root_file_are_ours_the_rest_goes_to_the_driver() {
        assert_eq!(
            split("postgres://u@db/w").unwrap(),
            ("postgres://u@db/w".into(), Verify::Encrypt)
        );
        assert_eq!(
            split("postgres://u@db/w?sslmode=disable&options=-c%20x").unwrap(),
            (
                "postgres://u@db/w?options=-c%20x&sslmode=disable".into(),
                Verify::Plain
            )
        );
        assert_eq!(
            split("postgres://u@db/w?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap(),
            (
                "postgres://u@db/w?sslmode=require".into(),
                Verify::Certificate {
                    roots: Some("/etc/ca.pem".into()),
                    host: true
                }
            )
        );
        assert_eq!(
            split("host=db sslmode=verify-ca user=u").unwrap(),
            (
                "host=db user=u sslmode=require".into(),
                Verify::Certificate {
                    roots: None,
                    host: false
                }
            )
        );
        let err = split("postgres://db/w?sslmode=allow").unwrap_err();
        assert!(err.to_string().contains("sslmode `allow`"), "{err}");
    }

    /// Against the test server, when it offers TLS (Debian's PostgreSQL does, with its
    /// self-signed "snakeoil" certificate).
    #[test]
    fn each_mode_connects_as_libpq_would() {
        use super::super::PgStore;
        use super::super::test_support::TestDatabase;
        let Some(db) = TestDatabase::create("tls_modes") else {
            return;
        };
        let url = db.url();
        let store = db.open();
        let mut conn = store.conn().unwrap();
        let (ssl, certificate): (String, String) = {
            let row = conn
                .query_one(
                    "SELECT current_setting('ssl'), current_setting('ssl_cert_file')",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        drop(conn);
        if ssl != "on" {
            eprintln!("skipped: the test server does not offer TLS");
            return;
        }
        let encrypted = |url: &str| -> Result<bool> {
            let store = PgStore::open(url)?;
            let mut conn = store.conn()?;
            Ok(conn
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .get(0))
        };
        assert!(encrypted(&url).unwrap(), "prefer: encrypted when offered");
        assert!(encrypted(&format!("{url}&sslmode=require")).unwrap());
        assert!(!encrypted(&format!("{url}&sslmode=disable")).unwrap());
        // A self-signed certificate is nobody's CA on this system...
        let Err(refused) = encrypted(&format!("{url}&sslmode=verify-full")) else {
            panic!("verify-full accepted a certificate no root vouches for");
        };
        assert!(
            refused.to_string().to_lowercase().contains("certificate"),
            "{refused}"
        );
        // ... but it is its own root when given as `sslrootcert`.
        if std::fs::read(&certificate).is_ok() {
            let own_root = format!("{url}&sslmode=verify-ca&sslrootcert={certificate}");
            assert!(encrypted(&own_root).unwrap(), "verify-ca with its root");
        }
    }
}
