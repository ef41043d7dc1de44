//! TLS to PostgreSQL, by rustls, with libpq's `sslmode`s: `disable`, `prefer` (the default),
//! `require`, `verify-ca` and `verify-full`.
//!
//! The `postgres` driver parses only `disable`, `prefer` and `require`, and checks no
//! certificate itself: `sslmode` and `sslrootcert` are taken out of the connection string
//! before the driver parses the rest, and the rustls configuration made here does the checks.
//! As in libpq, `prefer` and `require` check nothing unless a CA is given (then the chain, as
//! `verify-ca`); `verify-ca` checks the chain, not the host name; `verify-full` both. The CA
//! is a PEM file (`PostgresOptions::ca_file`, or `sslrootcert=PATH`); without one, Mozilla's
//! roots (`webpki-roots`; `sslrootcert=system` names them too). Every connection of the
//! backend (pool, migration, announcer, listener) connects through one [`ConnectSettings`].

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode as DriverSslMode;
use postgres::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pipeline;

use crate::values::error::{Error, Result};

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, else plain.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate chain checked against the CA; any host name.
    VerifyCa,
    /// TLS, the chain checked and the host name one the certificate names.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(Error::invalid(
                "database_url",
                format!(
                    "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or \
                     verify-full"
                ),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The driver's mode: whether it asks for TLS, and whether it goes on without.
    fn driver_mode(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// The certificates a server's chain must lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// A PEM file of one or more CA certificates, and the option that named it.
    File { path: PathBuf, field: &'static str },
    /// Mozilla's roots, as browsers trust them.
    Mozilla,
}

impl Roots {
    fn store(&self) -> Result<RootCertStore> {
        match self {
            Roots::File { path, field } => ca_file_roots(path, field),
            Roots::Mozilla => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Roots::File { path, .. } => format!("the CA file {}", path.display()),
            Roots::Mozilla => "Mozilla's root CAs".to_owned(),
        }
    }
}

/// The CA certificates of the PEM file at `path`, named by the option `field`.
fn ca_file_roots(path: &Path, field: &'static str) -> Result<RootCertStore> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::invalid(
            field,
            format!("cannot read the CA file {}: {e}", path.display()),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Error::invalid(
                field,
                format!("the CA file {} is not valid PEM: {e}", path.display()),
            )
        })?;
        roots.add(cert).map_err(|e| {
            Error::invalid(
                field,
                format!(
                    "the CA file {} holds a certificate that cannot be a CA: {e}",
                    path.display()
                ),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(Error::invalid(
            field,
            format!(
                "the CA file {} holds no certificate: give the PEM file of the CA that signed \
                 the server's certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(roots)
}

/// How every connection of a backend reaches the database: the driver's settings, and the
/// TLS that `sslmode` and the CA make.
#[derive(Clone)]
pub(super) struct ConnectSettings {
    /// The driver's settings, with its TLS mode set from `sslmode`.
    pub(super) config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    roots: Option<Roots>,
}

impl ConnectSettings {
    /// The settings of `url` (a `postgres://` URL or a `key=value` string), with the CA file
    /// `ca_file` if given (else the URL's `sslrootcert`, if any).
    pub(super) fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self> {
        let split = TlsParameters::take_out(url)?;
        let mode = match &split.sslmode {
            Some(mode) => SslMode::parse(mode)?,
            None => SslMode::Prefer,
        };
        let roots = roots(ca_file, split.sslrootcert.as_deref())?;
        let mut config: tokio_postgres::Config = split
            .rest
            .parse()
            .map_err(|e| Error::invalid("database_url", format!("{e}")))?;
        config.ssl_mode(mode.driver_mode());
        let tls = MakeRustlsConnect::new(client_config(mode, roots.as_ref())?);
        Ok(Self {
            config,
            tls,
            mode,
            roots,
        })
    }

    /// A new connection, for statements one at a time.
    pub(super) fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        postgres::Config::from(self.config.clone()).connect(self.tls.clone())
    }

    /// A new connection that sends statements together (a pooled one).
    pub(super) fn connect_pipelined(
        &self,
    ) -> std::result::Result<pipeline::Client, postgres::Error> {
        pipeline::Client::connect(&self.config, self.tls.clone())
    }

    /// The error of a connection that could not be made: when the server's certificate was
    /// refused, saying so, why, and what to change.
    pub(super) fn connect_error(&self, e: postgres::Error) -> Error {
        let Some(refusal) = certificate_refusal(&e) else {
            return Error::storage_caused("cannot connect to PostgreSQL", e);
        };
        let trusted = self.roots.as_ref().unwrap_or(&Roots::Mozilla).describe();
        let remedy = match refusal {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "; connect by a host name the certificate names, or check the chain alone with \
                 sslmode=verify-ca"
            }
            CertificateError::UnknownIssuer => {
                "; give the CA that signed it with --database-ca-file (or sslrootcert in the URL)"
            }
            _ => "",
        };
        // Holds the driver's own words, so that a chain of the error does not repeat them
        // after the remedy.
        let message = format!(
            "cannot connect to PostgreSQL ({e}): the server's certificate was refused \
             (sslmode={}, trusting {trusted}): {}{remedy}",
            self.mode.name(),
            rustls::Error::InvalidCertificate(refusal.clone()),
        );
        Error::storage_caused(message, e)
    }
}

/// Why rustls refused the server's certificate, if it did: the cause under the driver's TLS
/// error (an I/O error around rustls's).
fn certificate_refusal(e: &postgres::Error) -> Option<&CertificateError> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let rustls_error = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| c.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(refusal)) = rustls_error {
            return Some(refusal);
        }
        cause = c.source();
    }
    None
}

/// The CA: the option's file, else the URL's `sslrootcert` (`system`: Mozilla's roots).
fn roots(ca_file: Option<&Path>, sslrootcert: Option<&str>) -> Result<Option<Roots>> {
    match (ca_file, sslrootcert) {
        (Some(path), Some(in_url)) if Path::new(in_url) != path => Err(Error::invalid(
            "database_ca_file",
            format!(
                "the CA file is {} but the URL's sslrootcert is {in_url}: give it once",
                path.display()
            ),
        )),
        (Some(path), _) => Ok(Some(Roots::File {
            path: path.to_owned(),
            field: "database_ca_file",
        })),
        (None, Some("system")) => Ok(Some(Roots::Mozilla)),
        (None, Some(in_url)) => Ok(Some(Roots::File {
            path: PathBuf::from(in_url),
            field: "database_url",
        })),
        (None, None) => Ok(None),
    }
}

/// The rustls configuration of `mode` trusting `roots`.
fn client_config(mode: SslMode, roots: Option<&Roots>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        // With `disable` no handshake happens: the CA is not even read, as in libpq.
        (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => {
            Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            })
        }
        (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, roots) => Arc::new(ChainOnly {
            webpki: webpki_verifier(roots.unwrap_or(&Roots::Mozilla), &provider)?,
        }),
        (SslMode::VerifyFull, roots) => {
            webpki_verifier(roots.unwrap_or(&Roots::Mozilla), &provider)?
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::storage_caused("postgres: cannot set up TLS", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// rustls's verifier of the chain and the name against `roots`.
fn webpki_verifier(
    roots: &Roots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots.store()?), provider.clone())
        .build()
        .map_err(|e| Error::storage_caused("postgres: cannot set up TLS", e))
}

/// `verify-ca`: the chain checked as rustls checks it, the name not (a certificate valid for
/// another name passes; every other fault of it does not).
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // rustls checks the name last, once the chain is good.
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA, as libpq: any certificate, the handshake's signatures
/// still checked (the server holds the key of the certificate it sent). Encrypts, but does not
/// tell the server from someone in between.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A connection string with libpq's TLS parameters taken out: the rest, for the driver, and
/// the values of `sslmode` and `sslrootcert` (the last of each, as libpq).
#[derive(Debug, PartialEq, Eq)]
struct TlsParameters {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsParameters {
    fn take_out(url: &str) -> Result<Self> {
        let mut taken = TlsParameters {
            rest: String::new(),
            sslmode: None,
            sslrootcert: None,
        };
        let scheme = ["postgres://", "postgresql://"]
            .iter()
            .find(|scheme| url.starts_with(*scheme));
        match scheme {
            Some(scheme) => taken.take_from_url(url, scheme.len())?,
            None => taken.take_from_key_values(url),
        }
        Ok(taken)
    }

    /// Keeps `value` if `key` is a TLS parameter; whether it was.
    fn keep(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }

    /// A URL's query, found as the driver finds it: after the first `?` that follows the user
    /// part (up to the first `@`, if any).
    fn take_from_url(&mut self, url: &str, scheme_len: usize) -> Result<()> {
        let after_user = url[scheme_len..]
            .find('@')
            .map_or(scheme_len, |at| scheme_len + at + 1);
        let Some(query_at) = url[after_user..].find('?').map(|q| after_user + q) else {
            url.clone_into(&mut self.rest);
            return Ok(());
        };
        let mut kept = Vec::new();
        for pair in url[query_at + 1..].split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !self.keep(&percent_decoded(key)?, percent_decoded(value)?.into_owned()) {
                kept.push(pair);
            }
        }
        self.rest = url[..query_at].to_owned();
        if !kept.is_empty() {
            self.rest.push('?');
            self.rest.push_str(&kept.join("&"));
        }
        Ok(())
    }

    /// A `key=value` string, read as the driver reads it (values quoted with `'`, or
    /// unquoted up to a space; `\` escapes the next character). A string the driver cannot
    /// read either is left whole, for its error.
    fn take_from_key_values(&mut self, text: &str) {
        let mut kept = Vec::new();
        let mut parameters = KeyValues { text, at: 0 };
        while let Some((key, value, span)) = parameters.next_parameter() {
            if !self.keep(key, value) {
                kept.push(&text[span]);
            }
        }
        self.rest = kept.join(" ");
        if parameters.at < text.trim_end().len() {
            // Unreadable from here: the driver will say why.
            self.rest.push_str(&text[parameters.at..]);
        }
    }
}

fn percent_decoded(text: &str) -> Result<Cow<'_, str>> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|e| Error::invalid("database_url", format!("a parameter is not UTF-8: {e}")))
}

/// The parameters of a `key=value` connection string, one at a time.
struct KeyValues<'a> {
    text: &'a str,
    /// Where the next parameter starts (or spaces before it).
    at: usize,
}

impl<'a> KeyValues<'a> {
    /// The next parameter's key, value and where it is in the text; `None` at the end or at
    /// something unreadable.
    fn next_parameter(&mut self) -> Option<(&'a str, String, std::ops::Range<usize>)> {
        let bytes = self.text.as_bytes();
        let mut i = self.skip_spaces(self.at);
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' {
            i += 1;
        }
        let key = &self.text[start..i];
        i = self.skip_spaces(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return None;
        }
        i = self.skip_spaces(i + 1);
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let mut value = String::new();
        let mut chars = self.text[i..].char_indices();
        let end = loop {
            let Some((offset, c)) = chars.next() else {
                // An unquoted value may end the text; a quoted one must be closed.
                break (!quoted).then_some(self.text.len())?;
            };
            match c {
                '\'' if quoted => break i + offset + 1,
                c if c.is_whitespace() && !quoted => break i + offset,
                '\\' => value.push(chars.next()?.1),
                c => value.push(c),
            }
        };
        self.at = end;
        Some((key, value, start..end))
    }

    fn skip_spaces(&self, mut i: usize) -> usize {
        let bytes = self.text.as_bytes();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(url: &str) -> TlsParameters {
        TlsParameters::take_out(url).unwrap()
    }

    #[test]
    fn the_tls_parameters_are_taken_out_of_a_url() {
        assert_eq!(
            taken("postgres://u:p%3F@db.example.com:5432/app?sslmode=verify-full&sslrootcert=%2Fca%20dir%2Fca.pem&application_name=x"),
            TlsParameters {
                rest: "postgres://u:p%3F@db.example.com:5432/app?application_name=x".into(),
                sslmode: Some("verify-full".into()),
                sslrootcert: Some("/ca dir/ca.pem".into()),
            }
        );
        assert_eq!(
            taken("postgresql://h/db?sslmode=require").rest,
            "postgresql://h/db"
        );
        // A `?` in the password is the user part's, not the query's.
        let with_question = taken("postgres://u:a?b@h/db?sslmode=disable");
        assert_eq!(with_question.rest, "postgres://u:a?b@h/db");
        assert_eq!(with_question.sslmode.as_deref(), Some("disable"));
        assert_eq!(taken("postgres://h/db").rest, "postgres://h/db");
    }

    #[test]
    fn the_tls_parameters_are_taken_out_of_key_values() {
        let split = taken(
            "host=localhost sslmode = verify-ca  sslrootcert='/my certs/ca.pem' \
             password='it\\'s' dbname=app",
        );
        assert_eq!(split.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/my certs/ca.pem"));
        let config: postgres::Config = split.rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
        assert_eq!(config.get_dbname(), Some("app"));
        // Unreadable: left whole for the driver's error.
        assert_eq!(taken("host=h sslmode").rest, "host=h sslmode");
    }

    #[test]
    fn the_default_is_prefer_and_verify_modes_require_tls_of_the_driver() {
        let settings = ConnectSettings::parse("postgres://h/db", None).unwrap();
        assert_eq!(settings.mode, SslMode::Prefer);
        assert_eq!(settings.config.get_ssl_mode(), DriverSslMode::Prefer);
        for mode in ["require", "verify-ca", "verify-full"] {
            let settings =
                ConnectSettings::parse(&format!("postgres://h/db?sslmode={mode}"), None).unwrap();
            assert_eq!(settings.config.get_ssl_mode(), DriverSslMode::Require);
        }
        // Without TLS, the CA file is not read.
        let disabled =
            ConnectSettings::parse("host=h sslmode=disable sslrootcert=/nonexistent.pem", None)
                .unwrap();
        assert_eq!(disabled.config.get_ssl_mode(), DriverSslMode::Disable);
    }

    #[test]
    fn a_bad_mode_or_ca_file_is_named() {
        let invalid = |url: &str, ca_file: Option<&Path>| match ConnectSettings::parse(url, ca_file)
        {
            Err(Error::Invalid { field, reason }) => format!("{field}: {reason}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{url} accepted"),
        };
        assert!(invalid("postgres://h/db?sslmode=allow", None)
            .starts_with("database_url: unknown sslmode \"allow\""));
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(
            invalid("postgres://h/db?sslmode=verify-full", Some(missing))
                .starts_with("database_ca_file: cannot read the CA file /nonexistent/ca.pem")
        );
        assert!(
            invalid("postgres://h/db?sslrootcert=/nonexistent/ca.pem", None)
                .starts_with("database_url: cannot read the CA file")
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(invalid("postgres://h/db", Some(&empty)).contains("holds no certificate"));
        assert!(
            invalid("postgres://h/db?sslrootcert=/a.pem", Some(&empty)).contains("give it once")
        );
    }
}
