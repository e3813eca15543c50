//! The Mesos agent: registration with the master, executors and their
//! containers, the status update manager, checkpointing and recovery,
//! sandboxes and the `/files` endpoints, plus the built-in command
//! executor. It makes no allocation decisions.

pub mod launcher;
#[allow(unsafe_code)]
pub mod sys;

pub mod agent;
pub mod checkpoint;
pub mod detect;
pub mod executor;
pub mod executor_api;
pub mod files;
pub mod flags;
pub mod http;
pub mod paths;
pub mod status_update_manager;
