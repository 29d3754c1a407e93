//! Connecting (TLS, password from its source) and turning driver errors into
//! `ConnectorError`s with the right kind and a one-line message without secrets.

use std::sync::Arc;
use std::time::Duration;

use connector_sdk::{ConnectorError, ConnectorErrorKind};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::config::{PostgresConfig, SslMode};

/// Settings of every session, sent in the startup packet (they take precedence over the
/// role's and the database's own).
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c standard_conforming_strings=on -c default_transaction_read_only=on";

/// Open a connection; the connection task runs in the background until the client drops.
pub(crate) async fn connect(config: &PostgresConfig) -> Result<Client, ConnectorError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.database)
        .user(&config.user)
        .application_name("postgres-connector")
        .connect_timeout(Duration::from_secs(config.connect_timeout_secs.max(1)))
        .keepalives(true)
        // Text rendered by the server (cursor values) must not depend on the role's settings;
        // literals the connector writes (resume keys) are quoted for
        // standard_conforming_strings = on, whatever the role or database sets; and every
        // transaction, planning included, is read-only: an extract never writes.
        .options(SESSION_OPTIONS);
    if let Some(source) = &config.password {
        use connector_sdk::ExposeSecret;
        // Exposed only here, into the driver's config (whose `Debug` redacts it).
        pg.password(source.resolve("password")?.expose_secret());
    }
    let target = format!(
        "{}:{} (database `{}`, user `{}`)",
        config.host, config.port, config.database, config.user
    );
    let connect_timeout = Duration::from_secs(config.connect_timeout_secs.max(1) + 5);
    let attempt = async {
        match config.sslmode {
            SslMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, conn) = pg.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "postgres connection closed");
                    }
                });
                Ok(client)
            }
            mode => {
                pg.ssl_mode(if mode == SslMode::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(config)?);
                let (client, conn) = pg.connect(tls).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "postgres connection closed");
                    }
                });
                Ok(client)
            }
        }
    };
    let result: Result<Result<Client, ConnectError>, _> =
        tokio::time::timeout(connect_timeout, attempt).await;
    match result {
        Err(_) => Err(ConnectorError::new(
            ConnectorErrorKind::Unreachable,
            format!("cannot connect to {target}: timed out"),
        )),
        Ok(Ok(client)) => Ok(client),
        Ok(Err(ConnectError::Setup(e))) => Err(e),
        Ok(Err(ConnectError::Pg(e))) => Err(match tls_problem(config, &e) {
            Some(problem) => ConnectorError::new(
                ConnectorErrorKind::Config,
                format!("cannot connect to {target}: {problem}"),
            )
            .with_source(e),
            None => pg_error(&format!("cannot connect to {target}"), e),
        }),
    }
}

/// What is wrong with TLS when a connection failed because of it, in words that say what
/// to set: a server without TLS, or a certificate that does not verify.
fn tls_problem(config: &PostgresConfig, e: &tokio_postgres::Error) -> Option<String> {
    if config.sslmode == SslMode::Disable || config.sslmode == SslMode::Prefer {
        return None;
    }
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        src = inner.source();
    }
    let mode = match config.sslmode {
        SslMode::VerifyFull => "sslmode = \"verify-full\" (the default)",
        _ => "sslmode = \"require\"",
    };
    if text.contains("server does not support TLS") {
        return Some(format!(
            "the server does not offer TLS, and {mode} needs it; enable TLS on the server, or for a local source on a trusted network set sslmode = \"disable\""
        ));
    }
    if config.sslmode == SslMode::VerifyFull && text.contains("invalid peer certificate") {
        let trusted = match &config.sslrootcert {
            Some(p) => format!("the CA certificates in sslrootcert {}", p.display()),
            None => "the system's root certificates (no sslrootcert set)".to_string(),
        };
        let why = text
            .rsplit(": ")
            .next()
            .map(connector_sdk::one_line)
            .unwrap_or_default();
        return Some(format!(
            "the server's TLS certificate does not verify against {trusted} for host `{}` ({why}); set sslrootcert to the PEM of the CA that signed it and connect by a name the certificate holds, or set sslmode = \"require\" to encrypt without verifying the server (not on an untrusted network)",
            config.host
        ));
    }
    None
}

enum ConnectError {
    Setup(ConnectorError),
    Pg(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<ConnectorError> for ConnectError {
    fn from(e: ConnectorError) -> Self {
        Self::Setup(e)
    }
}

fn tls_config(config: &PostgresConfig) -> Result<rustls::ClientConfig, ConnectorError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::internal(format!("TLS setup failed: {e}")))?;
    if config.sslmode != SslMode::VerifyFull {
        // libpq semantics for `prefer`/`require`: encrypted, certificate not verified.
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match &config.sslrootcert {
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                ConnectorError::config(format!("cannot read sslrootcert {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    ConnectorError::config(format!(
                        "sslrootcert {} is not valid PEM: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    ConnectorError::config(format!(
                        "sslrootcert {} has an invalid certificate: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any server certificate (sslmode `prefer`/`require`), still checking signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A driver error as a `ConnectorError`: `context` says what was being done.
pub(crate) fn pg_error(context: &str, e: tokio_postgres::Error) -> ConnectorError {
    let kind = match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD => ConnectorErrorKind::Auth,
        Some(c) if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => ConnectorErrorKind::Auth,
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => ConnectorErrorKind::Auth,
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => ConnectorErrorKind::Config,
        Some(c)
            if *c == SqlState::UNDEFINED_TABLE
                || *c == SqlState::UNDEFINED_COLUMN
                || *c == SqlState::SYNTAX_ERROR
                || *c == SqlState::UNDEFINED_FUNCTION
                || *c == SqlState::DATATYPE_MISMATCH
                || *c == SqlState::AMBIGUOUS_COLUMN
                || *c == SqlState::INVALID_TEXT_REPRESENTATION =>
        {
            ConnectorErrorKind::Config
        }
        Some(c)
            if *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::ADMIN_SHUTDOWN =>
        {
            ConnectorErrorKind::Unreachable
        }
        Some(_) => ConnectorErrorKind::Source,
        None => {
            let text = e.to_string();
            if text.contains("password missing") {
                ConnectorErrorKind::Auth
            } else if is_io(&e) || text.contains("error connecting") || e.is_closed() {
                ConnectorErrorKind::Unreachable
            } else {
                ConnectorErrorKind::Source
            }
        }
    };
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                let t = inner.to_string();
                if !s.contains(&t) {
                    s.push_str(": ");
                    s.push_str(&t);
                }
                src = inner.source();
            }
            s
        }
    };
    let detail = connector_sdk::one_line(&detail);
    let hint = match kind {
        ConnectorErrorKind::Auth => {
            " (check `user` and the password its `password` source provides)"
        }
        ConnectorErrorKind::Unreachable => " (check `host`, `port` and the network path)",
        _ => "",
    };
    ConnectorError::new(kind, format!("{context}: {detail}{hint}")).with_source(e)
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        if inner.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        src = inner.source();
    }
    false
}
