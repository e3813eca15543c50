//! `mesos-certs`: makes a cluster's CA and ECDSA P-256 certificates (for
//! the master, agents and frameworks) in one directory, and prints the
//! `LIBPROCESS_SSL_*` variables that use them. Replaces the workshop's
//! `generate_ssl_key_cert.sh`. Existing files are kept; delete them to
//! make new ones.

use std::path::PathBuf;

use clap::Parser;
use mesos_common::tls::certs::ClusterCerts;

/// Generates a CA and leaf certificates for a Mesos cluster.
#[derive(Debug, Parser)]
#[command(name = "mesos-certs", rename_all = "snake_case", version = mesos_common::MESOS_VERSION)]
struct Flags {
    /// Directory to write `ca.pem`, `ca-key.pem`, `<role>.pem` and
    /// `<role>-key.pem` into.
    #[arg(long, default_value = "ssl")]
    dir: PathBuf,
    /// Comma-separated leaf names (one per file pair).
    #[arg(long, default_value = "master,agent,framework", value_delimiter = ',')]
    roles: Vec<String>,
    /// Comma-separated DNS names and IP addresses the leaves are valid for.
    #[arg(long, default_value = "localhost,127.0.0.1", value_delimiter = ',')]
    names: Vec<String>,
    /// Validity of the leaves, in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

fn main() {
    let flags: Flags = mesos_common::flags::parse_or_exit();
    let roles: Vec<&str> = flags.roles.iter().map(String::as_str).collect();
    let names: Vec<&str> = flags.names.iter().map(String::as_str).collect();
    let certs = ClusterCerts::ensure(&flags.dir, &roles, &names, flags.days)
        .unwrap_or_else(|e| mesos_common::flags::fail(e));
    let dir = std::path::absolute(&certs.dir).unwrap_or(certs.dir.clone());
    let certs = ClusterCerts { dir };
    println!(
        "# certificates in {}; for the {}:",
        certs.dir.display(),
        roles[0]
    );
    println!("export LIBPROCESS_SSL_ENABLED=true");
    println!(
        "export LIBPROCESS_SSL_CERT_FILE={}",
        certs.cert(roles[0]).display()
    );
    println!(
        "export LIBPROCESS_SSL_KEY_FILE={}",
        certs.key(roles[0]).display()
    );
    println!("export LIBPROCESS_SSL_CA_FILE={}", certs.ca().display());
    if names.iter().any(|n| n.parse::<std::net::IpAddr>().is_ok()) {
        println!("export LIBPROCESS_SSL_VERIFY_IPADD=true");
    }
}
