//! Authentication: who a peer is, proved with Mesos's own protocols.
//!
//! - [`credentials`]: `--credentials` / `--credential` files and the
//!   [`credentials::Secret`] type that never prints.
//! - [`sasl`], [`cram_md5`], [`scram`]: the mechanisms spoken over
//!   libprocess messages (CRAM-MD5 for Mesos compatibility, SCRAM-SHA-256
//!   preferred by our own agents).
//! - [`basic`]: HTTP Basic (`WWW-Authenticate: Basic realm="…"`).
//! - [`jwt`]: per-executor HS256 tokens minted by the agent.
//! - [`limiter`], [`audit`]: growing delays after failures, and the JSON
//!   lines audit log of every success and failure.
//!
//! This module decides whether a proof is valid; it does not decide what
//! a principal may do (that is authorization) and owns no cluster state.

pub mod audit;
pub mod basic;
pub mod cram_md5;
pub mod credentials;
pub mod jwt;
pub mod limiter;
pub mod sasl;
pub mod scram;
