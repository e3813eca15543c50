//! What the master and the agent share: flag parsing helpers, the
//! libprocess-style message transport and its networking seam, HTTP helpers
//! and `Resources` arithmetic. This crate owns no cluster state.

pub mod atomic_file;
pub mod auth;
pub mod connections;
pub mod conversions;
pub mod flags;
pub mod http;
pub mod net;
pub mod resources;
pub mod system;
pub mod tls;
pub mod transport;
pub mod upid;

pub use upid::Upid;

/// The Mesos version we report. Purely numeric: pymesos parses it with
/// `int()` on each dotted part.
pub const MESOS_VERSION: &str = "1.11.0";

/// Installs the `tracing` subscriber used by every binary (`RUST_LOG`
/// overrides `default_level`). Logs go to stderr.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
