//! Certificates for a cluster (rcgen, ECDSA P-256): a CA, leaves for the
//! master, agents and frameworks (each usable as server and client
//! certificate), and CRLs. Used by the `mesos-certs` tool, `mesos-local`
//! and tests; never by a running master or agent.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A certificate authority able to sign leaves and CRLs.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA key, PEM.
    pub key_pem: String,
}

/// A signed leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key (PKCS#8), PEM.
    pub key_pem: String,
    /// Serial number, for revocation.
    pub serial: Vec<u8>,
}

/// What a leaf certificate says.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject common name.
    pub common_name: String,
    /// Subject alternative names: DNS names or IP addresses.
    pub names: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl LeafSpec {
    /// Valid from yesterday for `days` days.
    pub fn new(common_name: &str, names: &[&str], days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            common_name: common_name.to_string(),
            names: names.iter().map(|s| s.to_string()).collect(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
        }
    }
}

fn serial() -> Vec<u8> {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes.to_vec()
}

impl Authority {
    /// A new self-signed CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<Authority, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(SerialNumber::from_slice(&serial()));
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Authority, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Authority {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// Signs a new leaf (new ECDSA P-256 key) for `spec`.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(spec.names.clone())?;
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.clone());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        let serial = serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }

    /// A CRL revoking `serials`, valid for 30 days.
    pub fn crl(&self, serials: &[Vec<u8>]) -> Result<String, CertError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from_slice(&serial()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// Writes `text` to `path`, readable by its owner only when `private`,
/// replaced atomically so a watching process never reads half a file.
pub fn write_file(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    let mode = if private { 0o600 } else { 0o644 };
    crate::atomic_file::write_atomic(path, text.as_bytes(), mode).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The files of a cluster's certificates in one directory.
#[derive(Debug, Clone)]
pub struct ClusterCerts {
    /// The directory.
    pub dir: PathBuf,
}

impl ClusterCerts {
    /// `ca.pem`.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// `<role>.pem`.
    pub fn cert(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.pem"))
    }
    /// `<role>-key.pem`.
    pub fn key(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}-key.pem"))
    }

    /// Creates `dir` with a CA (`ca.pem`, `ca-key.pem`) and a leaf per role
    /// (`<role>.pem`, `<role>-key.pem`) for `names` (DNS names or IPs),
    /// valid for `days` days. Existing files are kept (so a second run of
    /// `mesos-local` reuses them); missing ones are made.
    pub fn ensure(
        dir: &Path,
        roles: &[&str],
        names: &[&str],
        days: i64,
    ) -> Result<ClusterCerts, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let certs = ClusterCerts {
            dir: dir.to_path_buf(),
        };
        let ca_key = dir.join("ca-key.pem");
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CertError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let authority = if certs.ca().exists() && ca_key.exists() {
            Authority::load(&read(&certs.ca())?, &read(&ca_key)?)?
        } else {
            let a = Authority::generate("mesos cluster CA")?;
            write_file(&ca_key, &a.key_pem, true)?;
            write_file(&certs.ca(), &a.cert_pem, false)?;
            a
        };
        for role in roles {
            if certs.cert(role).exists() && certs.key(role).exists() {
                continue;
            }
            let leaf = authority.issue(&LeafSpec::new(role, names, days))?;
            write_file(&certs.key(role), &leaf.key_pem, true)?;
            write_file(&certs.cert(role), &leaf.cert_pem, false)?;
        }
        Ok(certs)
    }
}
