//! Mesos's public v1 API and internal master/agent messages as prost types,
//! plus the two encodings Mesos speaks on the wire besides protobuf: its JSON
//! mapping ([`json`]) and RecordIO framing ([`recordio`]).
//!
//! This crate owns no network, file or policy logic.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

mod fast;
pub mod json;
pub mod recordio;
mod wire;

/// The `mesos.v1` package and its sub-packages.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));
    /// `mesos.v1.scheduler`: the scheduler HTTP API.
    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }
    /// `mesos.v1.executor`: the executor HTTP API.
    pub mod executor {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
    }
    /// `mesos.v1.master`: the master operator API.
    pub mod master {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.master.rs"));
    }
    /// `mesos.v1.agent`: the agent operator API.
    pub mod agent {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.agent.rs"));
    }
    /// `mesos.v1.quota`.
    pub mod quota {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.quota.rs"));
    }
    /// `mesos.v1.maintenance`.
    pub mod maintenance {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.maintenance.rs"));
    }
    /// `mesos.v1.allocator`.
    pub mod allocator {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.allocator.rs"));
    }
}

/// `mesos.internal`: libprocess messages between master, agents and
/// authenticatees. Field types come from `mesos.v1`; v0 and v1 share field
/// numbers, so the binary encoding is Mesos's.
#[allow(missing_docs, clippy::all)]
pub mod internal {
    include!(concat!(env!("OUT_DIR"), "/mesos.internal.rs"));
    /// Our own durable registry records (not a Mesos format).
    pub mod registry {
        include!(concat!(env!("OUT_DIR"), "/mesos.internal.registry.rs"));
    }
}

pub use prost::{Message, Name};
