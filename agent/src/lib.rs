//! The Mesos agent: registration with the master, executors and their
//! containers, the status update manager, checkpointing and recovery,
//! sandboxes and the `/files` endpoints, plus the built-in command
//! executor. It makes no allocation decisions.
//!
//! Message flow (libprocess messages, `mesos.internal.*`; executor API over
//! HTTP):
//!
//! ```text
//! agent  -> master    RegisterSlaveMessage (ReregisterSlaveMessage once it has an id), retried
//! master -> agent     SlaveRegisteredMessage / SlaveReregisteredMessage   (id checkpointed first)
//! observer -> agent   PingSlaveMessage          agent -> sender: PongSlaveMessage
//! master -> agent     RunTaskMessage / RunTaskGroupMessage
//! agent               sandbox + checkpoints, launcher.launch(mesos-executor | executor.command)
//! executor -> agent   POST /api/v1/executor SUBSCRIBE   agent -> executor: SUBSCRIBED, LAUNCH[_GROUP]
//! executor -> agent   UPDATE (202)   agent: checkpoint, then -> executor: ACKNOWLEDGED
//! agent  -> master    StatusUpdateMessage (head of the task's queue only, retried 10s..10min)
//! master -> agent     StatusUpdateAcknowledgementMessage   (checkpointed, next head sent)
//! master -> agent     KillTaskMessage -> KILL event; ShutdownExecutor/FrameworkMessage -> SHUTDOWN
//! master -> agent     FrameworkToExecutorMessage -> MESSAGE event; MESSAGE call -> ExecutorToFrameworkMessage
//! agent  -> master    ExitedExecutorMessage when an executor process exits
//! ```

pub mod launcher;
#[allow(unsafe_code)]
pub mod sys;

pub mod agent;
pub mod auth;
pub mod checkpoint;
pub mod detect;
pub mod executor;
pub mod executor_api;
pub mod files;
pub mod flags;
pub mod http;
pub mod isolators;
pub mod paths;
pub mod sandbox_authz;
pub mod status_update_manager;
