//! TLS to PostgreSQL, with libpq's meaning of every `sslmode`, on rustls.
//!
//! | `sslmode` | encrypts | checks the chain | checks the host name |
//! | --- | --- | --- | --- |
//! | `disable` | never | | |
//! | `allow` | only if plain text is refused | with a root certificate | |
//! | `prefer` (default) | if the server offers it | with a root certificate | |
//! | `require` | always | with a root certificate | |
//! | `verify-ca` | always | always | |
//! | `verify-full` | always | always | always |
//!
//! A "root certificate" is `sslrootcert`: a PEM file of CA certificates, or
//! `system` for the operating system's store (which, as in libpq 16, makes
//! `verify-full` the default and weaker modes an error). `sslcert` and
//! `sslkey` give a client certificate (PEM; PKCS#8, PKCS#1 RSA or SEC1 EC
//! keys). `sslnegotiation=direct` starts TLS at once (PostgreSQL 17+), with
//! the `postgresql` ALPN protocol the server requires.
//!
//! [`Tls::connector`] is asked once per new connection: it looks at the
//! files' metadata (cheap) and rebuilds the rustls configuration when one
//! changed, so a certificate rotated on disk (cert-manager, a Secret's
//! `..data` swap) is used by the next connection without a restart. A new
//! file that does not load is refused and logged, and the last good
//! configuration keeps serving; `/health` shows the error
//! ([`Tls::health`]). At start, a file that does not load is a
//! configuration error naming its path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::{Value, json};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection must be encrypted.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// The TLS settings of one database, resolved from its entry, its URL and
/// the `PGSSL*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root: Option<RootCert>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `sslnegotiation=direct`.
    pub direct: bool,
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encrypt only (libpq's `require` without a root certificate).
    Nothing,
    /// The chain up to a trusted root (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl TlsSettings {
    /// Check the combination, as libpq does, before anything connects.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cert.is_some() != self.key.is_some() {
            bail!("sslcert and sslkey go together: give both or neither");
        }
        if self.root == Some(RootCert::System) && self.mode != SslMode::VerifyFull {
            bail!(
                "sslrootcert=system needs sslmode=verify-full (the default with it); \
                 sslmode={} would not check the host name against the public CAs",
                self.mode.label()
            );
        }
        if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) && self.root.is_none() {
            bail!(
                "sslmode={} needs sslrootcert: a PEM file of the CA certificates to trust, or \
                 `system` for the operating system's store",
                self.mode.label()
            );
        }
        if self.direct && !self.mode.requires_tls() {
            bail!("sslnegotiation=direct needs sslmode=require, verify-ca or verify-full");
        }
        Ok(())
    }

    fn check(&self) -> Check {
        match self.mode {
            SslMode::VerifyFull => Check::Full,
            SslMode::VerifyCa => Check::Chain,
            // libpq checks the chain whenever a root certificate is given.
            _ if self.root.is_some() => Check::Chain,
            _ => Check::Nothing,
        }
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if let Some(RootCert::File(p)) = &self.root {
            files.push(p.as_path());
        }
        files.extend(self.cert.as_deref());
        files.extend(self.key.as_deref());
        files
    }
}

/// One file's identity on disk: a change of any part means "read it again".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

struct Loaded {
    stamps: Vec<Option<Stamp>>,
    connector: MakeRustlsConnect,
    loaded_at: SystemTime,
}

/// A database's TLS configuration, kept current with its files.
pub struct Tls {
    settings: TlsSettings,
    state: Mutex<State>,
}

struct State {
    loaded: Loaded,
    /// Why the newest files were refused, while they are.
    error: Option<String>,
    reloads: u64,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Load the files now; `None` for `sslmode=disable`. An error names the
    /// file and what is wrong with it, never its content.
    pub fn new(settings: TlsSettings) -> anyhow::Result<Option<Tls>> {
        settings.validate()?;
        if settings.mode == SslMode::Disable {
            return Ok(None);
        }
        let loaded = load(&settings)?;
        Ok(Some(Tls {
            settings,
            state: Mutex::new(State {
                loaded,
                error: None,
                reloads: 0,
            }),
        }))
    }

    /// The connector for a new connection: rebuilt first when a file
    /// changed on disk; when the new files do not load, the last good one
    /// (and the error is logged once per change and shown in `/health`).
    /// The second value: whether the newest files are refused.
    pub fn connector(&self, database: &str) -> (MakeRustlsConnect, bool) {
        let files = self.settings.files();
        let now: Vec<Option<Stamp>> = files.iter().map(|p| stamp(p)).collect();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now != state.loaded.stamps {
            match load(&self.settings) {
                Ok(loaded) => {
                    tracing::info!(database, "TLS files changed on disk: reloaded");
                    state.loaded = loaded;
                    state.error = None;
                    state.reloads += 1;
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    if state.error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(
                            database,
                            error = %reason,
                            "TLS files changed on disk but do not load: the last good ones \
                             keep serving"
                        );
                    }
                    state.error = Some(reason);
                    // Look at the files again only when they change again.
                    state.loaded.stamps = now;
                }
            }
        }
        (state.loaded.connector.clone(), state.error.is_some())
    }

    /// `{"sslmode", "verify", "client_cert", "loaded_at", "reloads",
    /// "error"}` for `/health` (no path, no content).
    pub fn health(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let loaded_at = time::OffsetDateTime::from(state.loaded.loaded_at)
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        json!({
            "sslmode": self.settings.mode.label(),
            "verify": match self.settings.check() {
                Check::Nothing => "none",
                Check::Chain => "chain",
                Check::Full => "chain+host",
            },
            "client_cert": self.settings.cert.is_some(),
            "loaded_at": loaded_at,
            "reloads": state.reloads,
            "error": state.error,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Read the files and build the rustls client configuration.
fn load(settings: &TlsSettings) -> anyhow::Result<Loaded> {
    let files = settings.files();
    // Stamps first: a file replaced while it is read is read again next time.
    let stamps = files.iter().map(|p| stamp(p)).collect();
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (settings.check(), &settings.root) {
        (Check::Nothing, _) | (_, None) => Arc::new(EncryptOnly {
            provider: provider.clone(),
        }),
        (check, Some(root)) => {
            let roots = Arc::new(root_store(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .context("building the certificate verifier")?;
            if check == Check::Full {
                webpki
            } else {
                Arc::new(ChainOnly { inner: webpki })
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "sslcert")?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                anyhow::anyhow!(
                    "sslkey {}: no usable private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; \
                     encrypted keys are not supported): {}",
                    key.display(),
                    pem_reason(&e)
                )
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .with_context(|| {
                    format!(
                        "sslcert {} and sslkey {} do not make a client certificate",
                        cert.display(),
                        key.display()
                    )
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    if settings.direct {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(Loaded {
        stamps,
        connector: MakeRustlsConnect::new(config),
        loaded_at: SystemTime::now(),
    })
}

/// A PEM error's kind, without file content.
fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind".into(),
        _ => "malformed PEM".into(),
    }
}

fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{what} {}: {}", path.display(), pem_reason(&e)))?;
    if certs.is_empty() {
        bail!("{what} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

fn root_store(root: &RootCert) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            for cert in certificates(path, "sslrootcert")? {
                store.add(cert).map_err(|e| {
                    anyhow::anyhow!(
                        "sslrootcert {}: a certificate is unusable: {e}",
                        path.display()
                    )
                })?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "sslrootcert=system: the operating system's certificate store has no usable \
                     certificate (install ca-certificates, or set SSL_CERT_FILE)"
                );
            }
        }
    }
    Ok(store)
}

/// `require` without a root certificate: encrypt, trust any certificate (the
/// handshake's signatures are still checked, so the key is the
/// certificate's).
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check, except that a certificate for
/// another name is accepted (the name is checked after the chain, so a
/// name error means the chain held).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: SslMode) -> TlsSettings {
        TlsSettings {
            mode,
            root: None,
            cert: None,
            key: None,
            direct: false,
        }
    }

    #[test]
    fn modes_parse_and_combinations_are_checked_as_libpq_does() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).map(SslMode::label), Some(m));
        }
        assert!(SslMode::parse("verify_full").is_none());
        assert!(settings(SslMode::Require).validate().is_ok());
        let e = settings(SslMode::VerifyFull).validate().unwrap_err();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let mut s = settings(SslMode::Require);
        s.root = Some(RootCert::System);
        assert!(s.validate().is_err());
        s.mode = SslMode::VerifyFull;
        assert!(s.validate().is_ok());
        let mut s = settings(SslMode::Require);
        s.cert = Some("/c.pem".into());
        assert!(s.validate().is_err());
        let mut s = settings(SslMode::Prefer);
        s.direct = true;
        assert!(s.validate().is_err());
    }

    #[test]
    fn what_is_checked_follows_the_mode_and_the_root() {
        assert_eq!(settings(SslMode::Require).check(), Check::Nothing);
        assert_eq!(settings(SslMode::Prefer).check(), Check::Nothing);
        let mut s = settings(SslMode::Require);
        s.root = Some(RootCert::File("/ca.pem".into()));
        assert_eq!(s.check(), Check::Chain);
        s.mode = SslMode::VerifyCa;
        assert_eq!(s.check(), Check::Chain);
        s.mode = SslMode::VerifyFull;
        assert_eq!(s.check(), Check::Full);
    }

    #[test]
    fn a_missing_or_bad_file_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(SslMode::VerifyCa);
        s.root = Some(RootCert::File(dir.path().join("nope.pem")));
        let e = format!("{:#}", Tls::new(s.clone()).unwrap_err());
        assert!(e.contains("nope.pem"), "{e}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "secret-ish garbage, not PEM").unwrap();
        s.root = Some(RootCert::File(bad));
        let e = format!("{:#}", Tls::new(s).unwrap_err());
        assert!(e.contains("bad.pem") && !e.contains("garbage"), "{e}");
        assert!(Tls::new(settings(SslMode::Disable)).unwrap().is_none());
        assert!(Tls::new(settings(SslMode::Prefer)).unwrap().is_some());
    }
}
