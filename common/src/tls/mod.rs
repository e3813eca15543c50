//! TLS for every listener and outbound connection, configured like
//! libprocess by `LIBPROCESS_SSL_*` variables ([`Settings`]) and built with
//! rustls (ring provider). [`Tls`] holds the live server and client configs
//! and swaps them on reload (SIGHUP or a changed file) without touching
//! established connections; a bad new file keeps the old configs. The
//! sockets themselves are handled by `crate::net`.

pub mod certs;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite,
};

pub use settings::{HostnameScheme, Settings};

/// Why the TLS configuration cannot be used. Each names the variable (and
/// file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A variable's value does not parse.
    #[error("{var}={value:?}: expected {expected}")]
    BadValue {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// SSLv3, TLS 1.0 or TLS 1.1 was asked for.
    #[error("{0}=true: SSLv3, TLS 1.0 and TLS 1.1 are not supported (they are broken); only TLS 1.2 and 1.3 are. Unset {0} or set it to false")]
    InsecureProtocol(String),
    /// `HOSTNAME_VALIDATION_SCHEME=legacy`.
    #[error("{0}=legacy (reverse-DNS hostname validation) is not supported: set {0}=openssl (the dialled host is checked against the certificate; add LIBPROCESS_SSL_VERIFY_IPADD=true to dial by IP address)")]
    LegacyHostnameScheme(String),
    /// Both TLS 1.2 and 1.3 are off.
    #[error("LIBPROCESS_SSL_ENABLE_TLS_V1_2 and LIBPROCESS_SSL_ENABLE_TLS_V1_3 are both false: no protocol version is left")]
    NoProtocol,
    /// A required variable is not set.
    #[error("LIBPROCESS_SSL_ENABLED is true but {0} is not set")]
    Missing(String),
    /// A file cannot be read.
    #[error("cannot read {var} {}: {source}", path.display())]
    Read {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is unusable.
    #[error("{var} {}: {reason}", path.display())]
    BadFile {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `LIBPROCESS_SSL_CIPHERS` names nothing rustls supports.
    #[error(
        "LIBPROCESS_SSL_CIPHERS={given:?} names no cipher suite we support; supported: {supported}"
    )]
    NoCiphers {
        /// The value.
        given: String,
        /// What would work.
        supported: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// The verified client certificate of a TLS connection, put into each
/// request's extensions by `net::serve_tls` (authentication may map it to
/// a principal).
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The leaf certificate, DER.
    pub der: CertificateDer<'static>,
    /// Its DNS subject alternative names.
    pub dns_names: Vec<String>,
}

impl PeerCertificate {
    /// Describes `der`.
    pub fn from_der(der: CertificateDer<'static>) -> Self {
        let dns_names = webpki::EndEntityCert::try_from(&der)
            .map(|c| c.valid_dns_names().map(str::to_string).collect())
            .unwrap_or_default();
        PeerCertificate { der, dns_names }
    }
}

/// OpenSSL cipher names → rustls suites (ring provider).
fn cipher_table() -> Vec<(&'static str, SupportedCipherSuite)> {
    use rustls::crypto::ring::cipher_suite as cs;
    vec![
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

/// The TLS 1.2 suites `ciphers` (OpenSSL syntax) selects, and the names we
/// cannot honour. TLS 1.3 suites are not governed by the list (as in
/// OpenSSL) and are always all of rustls's.
pub fn select_ciphers(ciphers: &str) -> (Vec<SupportedCipherSuite>, Vec<String>) {
    let table = cipher_table();
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut ignored = Vec::new();
    for name in ciphers
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let matches: Vec<SupportedCipherSuite> = match name {
            "DEFAULT" | "HIGH" | "ALL" | "ECDHE" | "EECDH" | "AESGCM" => {
                table.iter().map(|(_, s)| *s).collect()
            }
            _ => table
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .collect(),
        };
        if matches.is_empty() {
            ignored.push(name.to_string());
        }
        for s in matches {
            if !chosen.iter().any(|c| c.suite() == s.suite()) {
                chosen.push(s);
            }
        }
    }
    (chosen, ignored)
}

/// The crypto provider for `settings`: ring with the chosen suites.
fn provider(
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let tls13: Vec<SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    let tls12: Vec<SupportedCipherSuite> = match &settings.ciphers {
        None => provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .copied()
            .collect(),
        Some(list) => {
            let (chosen, ignored) = select_ciphers(list);
            if !ignored.is_empty() {
                warnings.push(format!(
                    "LIBPROCESS_SSL_CIPHERS: ignoring {} (not supported: only ECDHE with AES-GCM or ChaCha20-Poly1305 is)",
                    ignored.join(":")
                ));
            }
            if chosen.is_empty() && settings.tls12 {
                return Err(TlsError::NoCiphers {
                    given: list.clone(),
                    supported: cipher_table()
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(":"),
                });
            }
            chosen
        }
    };
    let mut suites = Vec::new();
    if settings.tls13 {
        suites.extend(tls13);
    }
    if settings.tls12 {
        suites.extend(tls12);
    }
    provider.cipher_suites = suites;
    Ok(Arc::new(provider))
}

fn versions(settings: &Settings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut v = Vec::new();
    if settings.tls13 {
        v.push(&rustls::version::TLS13);
    }
    if settings.tls12 {
        v.push(&rustls::version::TLS12);
    }
    v
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: path.to_path_buf(),
        source,
    })
}

fn bad(var: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::BadFile {
        var,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the PEM certificates of a file.
pub fn load_certs(
    var: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(var, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(var, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(var, path, "contains no PEM certificate"));
    }
    for cert in &certs {
        webpki::EndEntityCert::try_from(cert)
            .map_err(|e| bad(var, path, format!("not a valid X.509 certificate: {e}")))?;
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const VAR: &str = "LIBPROCESS_SSL_KEY_FILE";
    let bytes = read(VAR, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        bad(
            VAR,
            path,
            format!("contains no usable PEM private key: {e}"),
        )
    })
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    const VAR: &str = "LIBPROCESS_SSL_CRL_FILE";
    let bytes = read(VAR, path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(VAR, path, format!("not valid PEM: {e}")))?;
    if crls.is_empty() {
        return Err(bad(
            VAR,
            path,
            "contains no PEM certificate revocation list",
        ));
    }
    Ok(crls)
}

/// The trust anchors: `CA_FILE`, every PEM file in `CA_DIR`, or (neither
/// set) the system bundle, as OpenSSL's default paths would be.
fn load_roots(settings: &Settings) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut add = |var: &'static str, path: &Path, certs: Vec<CertificateDer<'static>>| {
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(var, path, format!("unusable CA certificate: {e}")))?;
        }
        Ok::<(), TlsError>(())
    };
    if let Some(file) = &settings.ca_file {
        add(
            "LIBPROCESS_SSL_CA_FILE",
            file,
            load_certs("LIBPROCESS_SSL_CA_FILE", file)?,
        )?;
    }
    if let Some(dir) = &settings.ca_dir {
        let entries = std::fs::read_dir(dir).map_err(|source| TlsError::Read {
            var: "LIBPROCESS_SSL_CA_DIR",
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                // Files that hold no certificate (an index, a README) are
                // skipped, as OpenSSL's hashed directory lookup would.
                if let Ok(certs) = load_certs("LIBPROCESS_SSL_CA_DIR", &path) {
                    add("LIBPROCESS_SSL_CA_DIR", &path, certs)?;
                }
            }
        }
    }
    if settings.ca_file.is_none() && settings.ca_dir.is_none() {
        let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if system.exists() {
            add(
                "LIBPROCESS_SSL_CA_FILE",
                system,
                load_certs("LIBPROCESS_SSL_CA_FILE", system)?,
            )?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Missing(
            "a CA (LIBPROCESS_SSL_CA_FILE or LIBPROCESS_SSL_CA_DIR) to verify peers against".into(),
        ));
    }
    Ok(roots)
}

/// Rejects chains longer than `VERIFICATION_DEPTH` and IP-address names
/// without `VERIFY_IPADD`, then asks webpki.
#[derive(Debug)]
struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    depth: usize,
    verify_ipadd: bool,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.len() > self.depth {
            return Err(rustls::Error::General(format!(
                "certificate chain longer than LIBPROCESS_SSL_VERIFICATION_DEPTH={}",
                self.depth
            )));
        }
        if let ServerName::IpAddress(ip) = server_name {
            if !self.verify_ipadd {
                return Err(rustls::Error::General(format!(
                    "dialled {:?} by IP address: set LIBPROCESS_SSL_VERIFY_IPADD=true to match it against the certificate's IP addresses",
                    std::net::IpAddr::from(*ip)
                )));
            }
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

/// Mesos's default client mode: encryption without verification of the
/// server (only when no CA is configured and verification is off).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// webpki's client verifier with the `VERIFICATION_DEPTH` limit.
#[derive(Debug)]
struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    depth: usize,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() > self.depth {
            return Err(rustls::Error::General(format!(
                "certificate chain longer than LIBPROCESS_SSL_VERIFICATION_DEPTH={}",
                self.depth
            )));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
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

/// The server and client configs built from one reading of the files.
struct Built {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn rustls_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// Reads every file `settings` names and builds both configs.
fn build(settings: &Settings) -> Result<(Built, Vec<String>), TlsError> {
    let mut warnings = Vec::new();
    let provider = provider(settings, &mut warnings)?;
    let versions = versions(settings);
    let cert_path = settings
        .cert_file
        .clone()
        .ok_or_else(|| TlsError::Missing("LIBPROCESS_SSL_CERT_FILE".into()))?;
    let key_path = settings
        .key_file
        .clone()
        .ok_or_else(|| TlsError::Missing("LIBPROCESS_SSL_KEY_FILE".into()))?;
    let chain = load_certs("LIBPROCESS_SSL_CERT_FILE", &cert_path)?;
    let key = load_key(&key_path)?;
    let crls = match &settings.crl_file {
        Some(path) => load_crls(path)?,
        None => Vec::new(),
    };
    let roots = if settings.verify_server_cert || settings.require_client_cert {
        Some(Arc::new(load_roots(settings)?))
    } else {
        None
    };

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(rustls_error)?;
    let builder = match (&roots, settings.require_client_cert) {
        (Some(roots), true) => {
            let inner =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .with_crls(crls.clone())
                    .build()
                    .map_err(rustls_error)?;
            builder.with_client_cert_verifier(Arc::new(ClientVerifier {
                inner,
                depth: settings.verification_depth,
            }))
        }
        _ => builder.with_no_client_auth(),
    };
    let key_mismatch = |e: rustls::Error| match e {
        rustls::Error::InconsistentKeys(_) => bad(
            "LIBPROCESS_SSL_KEY_FILE",
            &key_path,
            format!("does not match the certificate in {}", cert_path.display()),
        ),
        other => bad("LIBPROCESS_SSL_KEY_FILE", &key_path, other.to_string()),
    };
    let mut server = builder
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(key_mismatch)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];

    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(rustls_error)?
        .dangerous();
    let builder = match &roots {
        Some(roots) if settings.verify_server_cert => {
            let inner =
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .with_crls(crls)
                    .build()
                    .map_err(rustls_error)?;
            builder.with_custom_certificate_verifier(Arc::new(ServerVerifier {
                inner,
                depth: settings.verification_depth,
                verify_ipadd: settings.verify_ipadd,
            }))
        }
        _ => builder.with_custom_certificate_verifier(Arc::new(NoVerification(provider.clone()))),
    };
    // Our certificate doubles as the client certificate, as in libprocess.
    let mut client = builder
        .with_client_auth_cert(chain, key)
        .map_err(key_mismatch)?;
    client.alpn_protocols = vec![b"http/1.1".to_vec()];

    if let Some(curves) = settings.ecdh_curves.as_deref().filter(|c| *c != "auto") {
        warnings.push(format!(
            "LIBPROCESS_SSL_ECDH_CURVES={curves:?} is ignored: the key exchange groups are X25519, P-256 and P-384"
        ));
    }
    if settings.support_downgrade {
        warnings.push(
            "LIBPROCESS_SSL_SUPPORT_DOWNGRADE=true: plaintext peers are accepted, bypassing certificate checks"
                .into(),
        );
    }
    if !settings.verify_server_cert {
        warnings.push(
            "no CA configured and LIBPROCESS_SSL_VERIFY_SERVER_CERT=false: servers are not authenticated".into(),
        );
    }
    Ok((
        Built {
            server: Arc::new(server),
            client: Arc::new(client),
        },
        warnings,
    ))
}

/// Live TLS state of a process: settings and the current configs.
pub struct Tls {
    settings: Settings,
    current: RwLock<Arc<Built>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Tls {
    /// Reads `LIBPROCESS_SSL_*`: `None` when TLS is not enabled, an error
    /// naming the variable or file when it cannot work. Logs the warnings.
    pub fn from_env() -> Result<Option<Arc<Tls>>, TlsError> {
        let settings = Settings::from_env()?;
        if !settings.enabled {
            return Ok(None);
        }
        Self::new(settings).map(Some)
    }

    /// Builds from `settings` (read every file now).
    pub fn new(settings: Settings) -> Result<Arc<Tls>, TlsError> {
        let (built, warnings) = build(&settings)?;
        for w in warnings {
            tracing::warn!("TLS: {w}");
        }
        let stamps = Mutex::new(stamps(&settings));
        Ok(Arc::new(Tls {
            settings,
            current: RwLock::new(Arc::new(built)),
            stamps,
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server config for the next accepted connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server.clone()
    }

    /// The client config for the next outbound connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client.clone()
    }

    fn current(&self) -> Arc<Built> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the certificate, key, CA and CRL files; on error the
    /// current configs stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps_now = stamps(&self.settings);
        let (built, _) = build(&self.settings)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(built);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps_now;
        Ok(())
    }

    /// Whether any watched file's modification time changed since the last
    /// (attempted) load; remembers the new times.
    fn files_changed(&self) -> bool {
        let now = stamps(&self.settings);
        let mut seen = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if *seen != now {
            *seen = now;
            true
        } else {
            false
        }
    }

    /// Reloads on SIGHUP and when a watched file changes (polled every
    /// `interval`), logging the outcome. Needs a tokio runtime.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                let tls = self.clone();
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tls.reload_and_log("SIGHUP");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP: TLS files reload only on change: {e}")
            }
        }
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(tls) = tls.upgrade() else { return };
                if tls.files_changed() {
                    tls.reload_and_log("file change");
                }
            }
        });
    }

    fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!("{why}: reloaded the TLS certificate, key, CA and CRL files"),
            Err(e) => tracing::warn!("{why}: keeping the current TLS configuration: {e}"),
        }
    }
}

fn stamps(settings: &Settings) -> Vec<Option<SystemTime>> {
    [
        &settings.cert_file,
        &settings.key_file,
        &settings.ca_file,
        &settings.ca_dir,
        &settings.crl_file,
    ]
    .into_iter()
    .map(|p| {
        p.as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    })
    .collect()
}

/// Whether the first bytes of a connection are a TLS (or SSLv2-framed)
/// ClientHello, by libprocess's test: `0x16 0x03 .. .. .. 0x01`, or the
/// SSLv2 header with CLIENT-HELLO. Anything else, including fewer than
/// three bytes, is plaintext.
pub fn looks_like_tls(first: &[u8]) -> bool {
    if first.len() < 3 {
        return false;
    }
    if first[0] & 0x80 != 0 && first[2] == 1 {
        return true;
    }
    first.len() >= 6 && first[0] == 0x16 && first[1] == 3 && first[5] == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_is_tls_and_http_is_not() {
        assert!(looks_like_tls(&[0x16, 3, 1, 0, 200, 1]));
        assert!(looks_like_tls(&[0x80, 0x2e, 1]));
        assert!(!looks_like_tls(b"GET / HTTP/1.1"));
        assert!(!looks_like_tls(b"PO"));
        assert!(!looks_like_tls(&[0x16, 3, 1, 0, 200, 2]));
    }

    #[test]
    fn ciphers_map_openssl_names_and_report_the_rest() {
        let (chosen, ignored) = select_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA:RC4-SHA");
        assert_eq!(chosen.len(), 1);
        assert_eq!(ignored, vec!["AES128-SHA", "RC4-SHA"]);
        let (chosen, _) = select_ciphers("HIGH");
        assert_eq!(chosen.len(), 6);
    }

    #[test]
    fn mesos_default_cipher_list_is_refused_not_weakened() {
        let settings = Settings {
            ciphers: Some("AES128-SHA:AES256-SHA:RC4-SHA".into()),
            ..Settings::default()
        };
        let e = provider(&settings, &mut Vec::new()).expect_err("nothing supported");
        assert!(e.to_string().contains("LIBPROCESS_SSL_CIPHERS"), "{e}");
    }
}
