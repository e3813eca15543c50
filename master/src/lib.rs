#![recursion_limit = "512"]
//! The mesos-master library: flags, the master state machine, the allocator,
//! the registry and the HTTP and libprocess edges around them.

pub mod actor;
pub mod allocator;
pub mod authn;
pub mod core;
pub mod flags;
pub mod http;
pub mod registry;
pub mod run;
