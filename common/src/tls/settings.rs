//! `LIBPROCESS_SSL_*` (and legacy `SSL_*`) environment variables, parsed and
//! validated once at startup into [`Settings`]. This module reads the
//! environment and nothing else: files are read by `tls::build`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::TlsError;

/// The prefix Mesos reads its TLS variables with.
pub const PREFIX: &str = "LIBPROCESS_SSL_";
/// The legacy prefix libprocess also accepts.
pub const LEGACY_PREFIX: &str = "SSL_";

/// How a client checks the server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostnameScheme {
    /// RFC 6125 name check against the dialled host during the handshake
    /// (IP addresses only with `VERIFY_IPADD`).
    Openssl,
}

/// Every TLS setting, with Mesos's defaults except where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `ENABLED` (false): every listener and outbound connection is TLS.
    pub enabled: bool,
    /// `SUPPORT_DOWNGRADE` (false): listeners also accept plaintext;
    /// clients retry in plaintext when the TLS handshake fails.
    pub support_downgrade: bool,
    /// `CERT_FILE`: PEM certificate chain (leaf first).
    pub cert_file: Option<PathBuf>,
    /// `KEY_FILE`: PEM private key.
    pub key_file: Option<PathBuf>,
    /// `VERIFY_SERVER_CERT` / `VERIFY_CERT` (false), but on whenever a CA
    /// is configured (ours): clients verify the server's chain and name.
    pub verify_server_cert: bool,
    /// `REQUIRE_CLIENT_CERT` / `REQUIRE_CERT` (false): listeners demand a
    /// client certificate chained to the CA.
    pub require_client_cert: bool,
    /// `VERIFY_IPADD` (false): IP addresses may match IP SANs.
    pub verify_ipadd: bool,
    /// `VERIFICATION_DEPTH` (4): longest accepted chain, leaf included.
    pub verification_depth: usize,
    /// `CA_DIR`: directory of PEM trust anchors.
    pub ca_dir: Option<PathBuf>,
    /// `CA_FILE`: PEM trust anchors.
    pub ca_file: Option<PathBuf>,
    /// `CRL_FILE` (ours): PEM certificate revocation lists.
    pub crl_file: Option<PathBuf>,
    /// `CIPHERS`: OpenSSL cipher list; `None` means rustls's safe defaults.
    pub ciphers: Option<String>,
    /// `ECDH_CURVES`: accepted and ignored (rustls offers X25519, P-256
    /// and P-384); a value other than `auto` is warned about.
    pub ecdh_curves: Option<String>,
    /// `ENABLE_TLS_V1_2` (true).
    pub tls12: bool,
    /// `ENABLE_TLS_V1_3` (true here; Mesos: false).
    pub tls13: bool,
    /// `HOSTNAME_VALIDATION_SCHEME` (`openssl` here; Mesos: `legacy`).
    pub hostname_scheme: HostnameScheme,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            support_downgrade: false,
            cert_file: None,
            key_file: None,
            verify_server_cert: false,
            require_client_cert: false,
            verify_ipadd: false,
            verification_depth: 4,
            ca_dir: None,
            ca_file: None,
            crl_file: None,
            ciphers: None,
            ecdh_curves: None,
            tls12: true,
            tls13: true,
            hostname_scheme: HostnameScheme::Openssl,
        }
    }
}

/// Every variable name (without prefix) this module understands.
pub const NAMES: &[&str] = &[
    "ENABLED",
    "SUPPORT_DOWNGRADE",
    "CERT_FILE",
    "KEY_FILE",
    "VERIFY_SERVER_CERT",
    "VERIFY_CERT",
    "REQUIRE_CLIENT_CERT",
    "REQUIRE_CERT",
    "VERIFY_IPADD",
    "VERIFICATION_DEPTH",
    "CA_DIR",
    "CA_FILE",
    "CRL_FILE",
    "CIPHERS",
    "ECDH_CURVES",
    "HOSTNAME_VALIDATION_SCHEME",
    "ENABLE_SSL_V3",
    "ENABLE_TLS_V1_0",
    "ENABLE_TLS_V1_1",
    "ENABLE_TLS_V1_2",
    "ENABLE_TLS_V1_3",
];

/// The environment as seen by [`Settings::from_vars`]: name → value.
type Vars = BTreeMap<String, String>;

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, TlsError> {
        Self::from_vars(std::env::vars())
    }

    /// Parses `vars` (name, value) pairs; unrelated names are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, TlsError> {
        let vars: Vars = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(PREFIX) || k.starts_with(LEGACY_PREFIX))
            .collect();
        let get = |name: &str| lookup(&vars, name);
        let flag = |name: &str, default: bool| -> Result<bool, TlsError> {
            match get(name) {
                None => Ok(default),
                Some((var, value)) => parse_bool(&value).ok_or(TlsError::BadValue {
                    var,
                    value,
                    expected: "true or false",
                }),
            }
        };
        let path = |name: &str| get(name).map(|(_, v)| PathBuf::from(v));
        for old in ["ENABLE_SSL_V3", "ENABLE_TLS_V1_0", "ENABLE_TLS_V1_1"] {
            if flag(old, false)? {
                let var = get(old).map(|(v, _)| v).unwrap_or_default();
                return Err(TlsError::InsecureProtocol(var));
            }
        }
        let mut s = Settings {
            enabled: flag("ENABLED", false)?,
            support_downgrade: flag("SUPPORT_DOWNGRADE", false)?,
            cert_file: path("CERT_FILE"),
            key_file: path("KEY_FILE"),
            verify_server_cert: flag("VERIFY_SERVER_CERT", false)? || flag("VERIFY_CERT", false)?,
            require_client_cert: flag("REQUIRE_CLIENT_CERT", false)?
                || flag("REQUIRE_CERT", false)?,
            verify_ipadd: flag("VERIFY_IPADD", false)?,
            verification_depth: 4,
            ca_dir: path("CA_DIR"),
            ca_file: path("CA_FILE"),
            crl_file: path("CRL_FILE"),
            ciphers: get("CIPHERS").map(|(_, v)| v),
            ecdh_curves: get("ECDH_CURVES").map(|(_, v)| v),
            tls12: flag("ENABLE_TLS_V1_2", true)?,
            tls13: flag("ENABLE_TLS_V1_3", true)?,
            hostname_scheme: HostnameScheme::Openssl,
        };
        if let Some((var, value)) = get("VERIFICATION_DEPTH") {
            s.verification_depth =
                value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|d| *d >= 1)
                    .ok_or(TlsError::BadValue {
                        var,
                        value,
                        expected: "a positive number",
                    })?;
        }
        if let Some((var, value)) = get("HOSTNAME_VALIDATION_SCHEME") {
            match value.trim() {
                "openssl" => {}
                "legacy" => return Err(TlsError::LegacyHostnameScheme(var)),
                _ => {
                    return Err(TlsError::BadValue {
                        var,
                        value,
                        expected: "openssl",
                    })
                }
            }
        }
        if !s.tls12 && !s.tls13 {
            return Err(TlsError::NoProtocol);
        }
        if s.require_client_cert {
            // As in libprocess: requiring client certificates implies
            // verifying servers too.
            s.verify_server_cert = true;
        }
        if s.ca_file.is_some() || s.ca_dir.is_some() {
            s.verify_server_cert = true;
        }
        if s.enabled {
            if s.cert_file.is_none() {
                return Err(TlsError::Missing(format!("{PREFIX}CERT_FILE")));
            }
            if s.key_file.is_none() {
                return Err(TlsError::Missing(format!("{PREFIX}KEY_FILE")));
            }
            if s.require_client_cert && s.ca_file.is_none() && s.ca_dir.is_none() {
                return Err(TlsError::Missing(format!(
                    "{PREFIX}CA_FILE or {PREFIX}CA_DIR (needed by {PREFIX}REQUIRE_CLIENT_CERT)"
                )));
            }
        }
        Ok(s)
    }

    /// The `LIBPROCESS_SSL_*` variables that describe this process's TLS
    /// settings, for the executors an agent launches.
    pub fn executor_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
        let mut legacy = BTreeMap::new();
        let mut current = BTreeMap::new();
        for (k, v) in vars {
            let (map, name) = match k.strip_prefix(PREFIX) {
                Some(name) => (&mut current, name),
                None => match k.strip_prefix(LEGACY_PREFIX) {
                    Some("CERT_FILE") => continue,
                    Some(name) => (&mut legacy, name),
                    None => continue,
                },
            };
            if !NAMES.contains(&name) {
                continue;
            }
            // The executor runs in its sandbox: relative paths would break.
            let v = if name.ends_with("_FILE") || name.ends_with("_DIR") {
                std::path::absolute(&v)
                    .map(|p| p.display().to_string())
                    .unwrap_or(v)
            } else {
                v
            };
            map.insert(format!("{PREFIX}{name}"), v);
        }
        legacy.extend(current);
        legacy.into_iter().collect()
    }
}

/// `LIBPROCESS_SSL_<name>`, else `SSL_<name>`; a mismatching duplicate
/// warns (as libprocess does) and the `LIBPROCESS_` one wins.
///
/// `SSL_CERT_FILE` is the exception: OpenSSL (and most distributions'
/// environments) use that name for the system CA bundle, so reading it as
/// our certificate would be wrong; only `LIBPROCESS_SSL_CERT_FILE` counts.
fn lookup(vars: &Vars, name: &str) -> Option<(String, String)> {
    let new = format!("{PREFIX}{name}");
    if name == "CERT_FILE" {
        return vars.get(&new).map(|v| (new, v.clone()));
    }
    let old = format!("{LEGACY_PREFIX}{name}");
    match (vars.get(&new), vars.get(&old)) {
        (Some(a), Some(b)) => {
            if a != b {
                tracing::warn!("{new} and {old} disagree; using {new}");
            }
            Some((new, a.clone()))
        }
        (Some(a), None) => Some((new, a.clone())),
        (None, Some(b)) => Some((old, b.clone())),
        (None, None) => None,
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, TlsError> {
        Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_are_off_with_tls12_and_tls13() {
        let s = parse(&[]).expect("empty environment is valid");
        assert_eq!(s, Settings::default());
        assert!(!s.enabled && s.tls12 && s.tls13);
    }

    #[test]
    fn enabled_needs_cert_and_key_and_names_the_variable() {
        let e = parse(&[("LIBPROCESS_SSL_ENABLED", "1")]).expect_err("no cert");
        assert!(e.to_string().contains("LIBPROCESS_SSL_CERT_FILE"), "{e}");
        let e = parse(&[
            ("LIBPROCESS_SSL_ENABLED", "true"),
            ("LIBPROCESS_SSL_CERT_FILE", "c"),
        ])
        .expect_err("no key");
        assert!(e.to_string().contains("LIBPROCESS_SSL_KEY_FILE"), "{e}");
    }

    #[test]
    fn old_protocols_are_a_startup_error_naming_the_variable() {
        for var in [
            "LIBPROCESS_SSL_ENABLE_TLS_V1_0",
            "LIBPROCESS_SSL_ENABLE_TLS_V1_1",
            "SSL_ENABLE_SSL_V3",
        ] {
            let e = parse(&[(var, "true")]).expect_err("insecure protocol");
            assert!(e.to_string().contains(var), "{e}");
        }
        assert!(parse(&[("LIBPROCESS_SSL_ENABLE_TLS_V1_0", "false")]).is_ok());
    }

    #[test]
    fn legacy_prefix_is_accepted_and_new_prefix_wins() {
        let s = parse(&[("SSL_VERIFY_IPADD", "true")]).expect("valid");
        assert!(s.verify_ipadd);
        let s = parse(&[
            ("SSL_VERIFY_IPADD", "true"),
            ("LIBPROCESS_SSL_VERIFY_IPADD", "false"),
        ])
        .expect("valid");
        assert!(!s.verify_ipadd);
    }

    #[test]
    fn openssl_ca_bundle_variable_is_not_our_certificate() {
        let e = parse(&[
            ("LIBPROCESS_SSL_ENABLED", "true"),
            ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
            ("LIBPROCESS_SSL_KEY_FILE", "k"),
        ])
        .expect_err("no certificate");
        assert!(e.to_string().contains("LIBPROCESS_SSL_CERT_FILE"), "{e}");
    }

    #[test]
    fn require_cert_implies_verification_and_needs_a_ca() {
        let base = [
            ("LIBPROCESS_SSL_ENABLED", "true"),
            ("LIBPROCESS_SSL_CERT_FILE", "c"),
            ("LIBPROCESS_SSL_KEY_FILE", "k"),
            ("LIBPROCESS_SSL_REQUIRE_CERT", "true"),
        ];
        let e = parse(&base).expect_err("no CA");
        assert!(e.to_string().contains("CA_FILE"), "{e}");
        let mut with_ca = base.to_vec();
        with_ca.push(("LIBPROCESS_SSL_CA_FILE", "ca"));
        let s = parse(&with_ca).expect("valid");
        assert!(s.require_client_cert && s.verify_server_cert);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = parse(&[("LIBPROCESS_SSL_ENABLED", "maybe")]).expect_err("bad bool");
        assert!(e.to_string().contains("LIBPROCESS_SSL_ENABLED"), "{e}");
        let e = parse(&[("LIBPROCESS_SSL_VERIFICATION_DEPTH", "0")]).expect_err("bad depth");
        assert!(e.to_string().contains("VERIFICATION_DEPTH"), "{e}");
        let e = parse(&[("LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME", "legacy")])
            .expect_err("legacy refused");
        assert!(e.to_string().contains("openssl"), "{e}");
        let e = parse(&[
            ("LIBPROCESS_SSL_ENABLE_TLS_V1_2", "false"),
            ("LIBPROCESS_SSL_ENABLE_TLS_V1_3", "false"),
        ])
        .expect_err("no protocol");
        assert!(e.to_string().contains("ENABLE_TLS_V1_2"), "{e}");
    }

    #[test]
    fn executor_env_carries_only_tls_variables_under_the_new_prefix() {
        let env = Settings::executor_env(
            [
                ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
                ("SSL_KEY_FILE", "/k"),
                ("LIBPROCESS_SSL_ENABLED", "1"),
                ("LIBPROCESS_IP", "1.2.3.4"),
                ("SSL_SOMETHING_ELSE", "x"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            env,
            vec![
                ("LIBPROCESS_SSL_ENABLED".to_string(), "1".to_string()),
                ("LIBPROCESS_SSL_KEY_FILE".to_string(), "/k".to_string()),
            ]
        );
    }
}
