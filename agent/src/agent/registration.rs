//! Registration with the master: authentication first when the agent has a
//! `--credential` (see [`super::authenticatee`]), then `RegisterSlaveMessage`
//! (or `ReregisterSlaveMessage` once the agent has an id), retried with
//! Mesos's backoff (a random delay in `[0, b]`, `b` starting at
//! `--registration_backoff_factor` and doubling up to one minute) until the
//! master answers; pings and the link decide when the master is lost.

use std::time::{Duration, Instant};

use mesos_common::transport::Message;
use mesos_common::Upid;
use mesos_proto::internal as m;
use mesos_proto::v1;

use super::authenticatee::{Action, Reply, Request};
use super::{fatal_checkpoint, random_fraction, Agent, ExecutorKind, ExecutorState, Input};
use crate::checkpoint;

/// Longest registration backoff (`REGISTER_RETRY_INTERVAL_MAX`).
const REGISTER_RETRY_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// `agent_ping_timeout × max_agent_ping_timeouts` when the master does not
/// say.
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(75);

/// Where the agent is with its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading checkpoints and waiting for executors to re-subscribe.
    Recovering,
    /// Authenticating with the master before registering.
    Authenticating,
    /// Sending (re)registrations.
    Registering,
    /// Registered; pings expected.
    Registered,
}

/// Registration state and its timers.
#[derive(Debug)]
pub struct Registration {
    /// Current phase.
    pub phase: Phase,
    next_attempt: Option<Instant>,
    max_backoff: Duration,
    ping_deadline: Option<Instant>,
}

impl Registration {
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Recovering,
            next_attempt: None,
            max_backoff: Duration::ZERO,
            ping_deadline: None,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            // The authenticatee has its own deadline.
            Phase::Recovering | Phase::Authenticating => None,
            Phase::Registering => self.next_attempt,
            Phase::Registered => self.ping_deadline,
        }
    }

    /// Whether the agent is registered.
    pub fn is_registered(&self) -> bool {
        self.phase == Phase::Registered
    }
}

/// The capabilities this agent has: only what it implements (a stock
/// Mesos 1.11 agent also claims RESOURCE_PROVIDER, RESIZE_VOLUME,
/// AGENT_OPERATION_FEEDBACK and AGENT_DRAINING; add each here when the
/// messages behind it are handled).
pub(crate) fn agent_capabilities() -> Vec<v1::agent_info::Capability> {
    use v1::agent_info::capability::Type;
    [
        Type::MultiRole,
        Type::HierarchicalRole,
        Type::ReservationRefinement,
        Type::ResizeVolume,
        Type::TaskResourceLimits,
    ]
    .into_iter()
    .map(|t| v1::agent_info::Capability {
        r#type: Some(t as i32),
    })
    .collect()
}

impl Agent {
    /// A (newly) detected master: authenticates first when the agent has a
    /// credential, then registers.
    pub(crate) fn start_registration(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.registration.ping_deadline = None;
        self.registration.next_attempt = None;
        tracing::info!("New master detected at {}", self.master);
        match self.authenticatee.as_mut() {
            Some(authenticatee) => {
                self.registration.phase = Phase::Authenticating;
                tracing::info!("Authenticating with master {}", self.master);
                let action =
                    authenticatee.start(&self.master, &self.self_pid, now, random_fraction());
                self.authentication_action(action);
            }
            None => {
                tracing::info!(
                    "No credentials provided. Attempting to register without authentication"
                );
                let first = self
                    .config
                    .flags
                    .registration_backoff_factor
                    .mul_f64(random_fraction());
                self.start_registering(now, first);
            }
        }
    }

    /// Starts sending (re)registrations, the first after `first`.
    fn start_registering(&mut self, now: Instant, first: Duration) {
        self.registration.phase = Phase::Registering;
        self.registration.max_backoff = self.config.flags.registration_backoff_factor;
        self.registration.next_attempt = Some(now + first);
        self.registration.ping_deadline = None;
    }

    /// The authenticatee's deadline, while authenticating.
    pub(crate) fn authentication_deadline(&self) -> Option<Instant> {
        if self.registration.phase != Phase::Authenticating {
            return None;
        }
        self.authenticatee.as_ref().and_then(|a| a.deadline())
    }

    /// A message addressed to one of our `authenticatee(N)` processes.
    pub(crate) fn on_authentication_message(&mut self, message: Message) {
        let name = message
            .name
            .strip_prefix("mesos.internal.")
            .unwrap_or(&message.name);
        let reply = match name {
            "AuthenticationMechanismsMessage" => message
                .decode::<m::AuthenticationMechanismsMessage>()
                .map(|msg| Reply::Mechanisms(msg.mechanisms)),
            "AuthenticationStepMessage" => message
                .decode::<m::AuthenticationStepMessage>()
                .map(|msg| Reply::Step(msg.data.to_vec())),
            "AuthenticationCompletedMessage" => message
                .decode::<m::AuthenticationCompletedMessage>()
                .map(|_| Reply::Completed),
            "AuthenticationFailedMessage" => message
                .decode::<m::AuthenticationFailedMessage>()
                .map(|_| Reply::Failed),
            "AuthenticationErrorMessage" => message
                .decode::<m::AuthenticationErrorMessage>()
                .map(|msg| Reply::Error(msg.error.unwrap_or_default())),
            other => {
                tracing::debug!(message = other, to = %message.to, "ignoring message for the authenticatee");
                return;
            }
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(from = %message.from, message = %message.name, "dropping malformed authentication message: {e}");
                return;
            }
        };
        if self.registration.phase != Phase::Authenticating {
            tracing::debug!(from = %message.from, message = %message.name, "ignoring authentication message: not authenticating");
            return;
        }
        let Some(authenticatee) = self.authenticatee.as_mut() else {
            return;
        };
        let action = authenticatee.handle(
            &message.to,
            &message.from,
            reply,
            Instant::now(),
            random_fraction(),
        );
        self.authentication_action(action);
    }

    /// Carries out what the authenticatee decided.
    fn authentication_action(&mut self, action: Action) {
        match action {
            Action::Send {
                process,
                to,
                request,
            } => {
                let from = Upid::new(process, self.self_pid.host.clone(), self.self_pid.port);
                match request {
                    Request::Authenticate { pid } => {
                        self.transport
                            .send(&from, &to, &m::AuthenticateMessage { pid })
                    }
                    Request::Start { mechanism, data } => {
                        tracing::info!(%mechanism, principal = self.authenticatee.as_ref().map(|a| a.principal()).unwrap_or(""), "Using {mechanism} authenticatee");
                        self.transport.send(
                            &from,
                            &to,
                            &m::AuthenticationStartMessage {
                                mechanism: mechanism.name().to_string(),
                                data: Some(data.into()),
                            },
                        )
                    }
                    Request::Step { data } => self.transport.send(
                        &from,
                        &to,
                        &m::AuthenticationStepMessage { data: data.into() },
                    ),
                }
            }
            Action::Authenticated { mechanism } => {
                tracing::info!(%mechanism, "Successfully authenticated with master {}", self.master);
                // Mesos registers at once after authenticating.
                self.start_registering(Instant::now(), Duration::ZERO);
            }
            Action::Refused => {
                // Exit rather than shut down, so executors keep running
                // (as Mesos's agent does).
                tracing::error!("Master {} refused authentication", self.master);
                eprintln!("Master {} refused authentication", self.master);
                std::process::exit(1);
            }
            Action::Retry { reason } => {
                tracing::warn!(
                    "Failed to authenticate with master {}: {reason}; retrying",
                    self.master
                );
            }
            Action::Ignore(why) => {
                tracing::debug!("ignoring authentication message: {why}");
            }
        }
    }

    /// Stops authenticating and registering for good (the agent is
    /// shutting down).
    pub(crate) fn stop_registration(&mut self) {
        self.registration.next_attempt = None;
        self.registration.ping_deadline = None;
        if let Some(authenticatee) = self.authenticatee.as_mut() {
            authenticatee.cancel();
        }
    }

    pub(crate) fn registration_timer(&mut self, now: Instant) {
        match self.registration.phase {
            Phase::Authenticating => {
                let Some(authenticatee) = self.authenticatee.as_mut() else {
                    return;
                };
                if let Some((why, action)) =
                    authenticatee.on_timer(&self.self_pid, now, random_fraction())
                {
                    if let Some(why) = why {
                        tracing::warn!(
                            "Failed to authenticate with master {}: {why}; retrying",
                            self.master
                        );
                    }
                    tracing::info!("Authenticating with master {}", self.master);
                    self.authentication_action(action);
                }
            }
            Phase::Registering => {
                if self.registration.next_attempt.is_some_and(|at| at <= now) {
                    self.send_registration();
                    let backoff =
                        (self.registration.max_backoff * 2).min(REGISTER_RETRY_INTERVAL_MAX);
                    self.registration.max_backoff = backoff;
                    self.registration.next_attempt = Some(now + backoff.mul_f64(random_fraction()));
                }
            }
            Phase::Registered => {
                if self.registration.ping_deadline.is_some_and(|at| at <= now) {
                    self.master_lost("no ping from the master within the ping timeout");
                }
            }
            Phase::Recovering => {}
        }
    }

    fn send_registration(&mut self) {
        let version = Some(mesos_common::MESOS_VERSION.to_string());
        if self.info.id.is_none() {
            tracing::info!(master = %self.master, "registering with the master");
            let message = m::RegisterSlaveMessage {
                slave: self.info.clone(),
                checkpointed_resources: Vec::new(),
                version,
                agent_capabilities: agent_capabilities(),
                resource_version_uuid: Some(self.resource_version.clone()),
            };
            self.transport.send(&self.self_pid, &self.master, &message);
            return;
        }
        let mut tasks = Vec::new();
        let mut executor_infos = Vec::new();
        let mut frameworks = Vec::new();
        for framework in self.frameworks.values() {
            frameworks.push(framework.info.clone());
            for executor in framework.executors.values() {
                // The master does not store executors the agent generated
                // for command tasks.
                if executor.kind != ExecutorKind::Command
                    && executor.state != ExecutorState::Terminated
                {
                    executor_infos.push(executor.info.clone());
                }
                tasks.extend(executor.tasks.values().map(|t| t.task.clone()));
            }
        }
        tracing::info!(master = %self.master, tasks = tasks.len(), "re-registering with the master");
        let message = m::ReregisterSlaveMessage {
            slave: self.info.clone(),
            checkpointed_resources: self.checkpointed.clone().into_vec(),
            executor_infos,
            tasks,
            frameworks,
            completed_frameworks: Vec::new(),
            version,
            agent_capabilities: agent_capabilities(),
            resource_version_uuid: Some(self.resource_version.clone()),
        };
        self.transport.send(&self.self_pid, &self.master, &message);
    }

    pub(crate) fn on_registered(&mut self, msg: m::SlaveRegisteredMessage) {
        if let Some(id) = &self.info.id {
            if id.value != msg.slave_id.value {
                tracing::error!(ours = %id.value, theirs = %msg.slave_id.value,
                    "registered with an agent id different from ours; exiting");
                eprintln!(
                    "Registered with an unexpected agent id {}",
                    msg.slave_id.value
                );
                std::process::exit(1);
            }
            if self.registration.phase == Phase::Registered {
                return;
            }
        }
        if self.registration.phase != Phase::Registering {
            tracing::debug!("ignoring SlaveRegisteredMessage while not registering");
            return;
        }
        if !crate::paths::is_safe_component(&msg.slave_id.value) {
            tracing::error!(agent_id = %msg.slave_id.value, "the master assigned an agent id unusable as a directory name");
            return;
        }
        self.info.id = Some(msg.slave_id.clone());
        self.checkpoint_agent();
        tracing::info!(agent_id = %msg.slave_id.value, master = %self.master, "registered with the master");
        self.connected(msg.connection);
    }

    pub(crate) fn on_reregistered(&mut self, msg: m::SlaveReregisteredMessage) {
        let Some(id) = &self.info.id else {
            tracing::warn!("ignoring SlaveReregisteredMessage: this agent never registered");
            return;
        };
        if id.value != msg.slave_id.value {
            tracing::error!(ours = %id.value, theirs = %msg.slave_id.value,
                "re-registered with an agent id different from ours; exiting");
            eprintln!(
                "Re-registered with an unexpected agent id {}",
                msg.slave_id.value
            );
            std::process::exit(1);
        }
        if self.registration.phase != Phase::Registering {
            return;
        }
        tracing::info!(agent_id = %id.value, master = %self.master, "re-registered with the master");
        self.connected(msg.connection);
        for reconciliation in msg.reconciliations {
            self.reconcile(reconciliation);
        }
    }

    /// Records the agent id and AgentInfo durably (`slave.info` and the
    /// `latest` symlink).
    pub(crate) fn checkpoint_agent(&self) {
        let Some(id) = self.agent_id() else { return };
        let info_path = self.layout.agent_info(&id);
        if let Err(e) = checkpoint::write_message(&info_path, &self.info) {
            fatal_checkpoint(&info_path, &e);
        }
        let latest = self.layout.latest_agent();
        if let Err(e) = checkpoint::replace_symlink(std::path::Path::new(&id), &latest) {
            fatal_checkpoint(&latest, &e);
        }
    }

    fn connected(&mut self, connection: Option<m::MasterSlaveConnection>) {
        let now = Instant::now();
        let timeout = connection
            .and_then(|c| c.total_ping_timeout_seconds)
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(DEFAULT_PING_TIMEOUT);
        self.ping_timeout = timeout;
        self.registration.phase = Phase::Registered;
        self.registration.next_attempt = None;
        self.registration.ping_deadline = Some(now + timeout);
        self.link_master();
        for update in self.sum.resume(now) {
            self.forward_update(update);
        }
        for exited in std::mem::take(&mut self.pending_exited) {
            self.transport.send(&self.self_pid, &self.master, &exited);
        }
    }

    fn link_master(&mut self) {
        self.link_generation += 1;
        let generation = self.link_generation;
        let transport = self.transport.clone();
        let master: Upid = self.master.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            transport.link(&master).await;
            let _ = tx.send(Input::MasterExited { generation });
        });
    }

    pub(crate) fn on_ping(&mut self, from: &Upid, ping: m::PingSlaveMessage) {
        self.transport
            .send(&self.self_pid, from, &m::PongSlaveMessage {});
        if self.registration.phase != Phase::Registered {
            return;
        }
        if !ping.connected {
            self.master_lost("the master considers this agent disconnected");
            return;
        }
        self.registration.ping_deadline = Some(Instant::now() + self.ping_timeout);
    }

    pub(crate) fn master_exited(&mut self, generation: u64) {
        if generation == self.link_generation && self.registration.phase == Phase::Registered {
            self.master_lost("the connection to the master broke");
        }
    }

    fn master_lost(&mut self, why: &str) {
        tracing::warn!(master = %self.master, "master lost ({why}); re-registering");
        if let Some(authenticatee) = self.authenticatee.as_mut() {
            authenticatee.cancel();
        }
        self.link_generation += 1;
        self.sum.pause();
        self.start_registration(Instant::now());
    }

    /// Answers the master's reconciliation: tasks it believes are here but
    /// this agent does not know become TASK_LOST (TASK_DROPPED for
    /// partition-aware frameworks).
    fn reconcile(&mut self, msg: m::ReconcileTasksMessage) {
        let framework_id = msg.framework_id.value.clone();
        for status in msg.statuses {
            let task_id = status.task_id.value.clone();
            let known = self
                .frameworks
                .get(&framework_id)
                .is_some_and(|f| f.executors.values().any(|e| e.tasks.contains_key(&task_id)));
            let stream = crate::status_update_manager::StreamId {
                framework_id: framework_id.clone(),
                task_id: task_id.clone(),
            };
            if known || self.sum.has_pending(&stream) {
                continue;
            }
            let partition_aware = msg
                .framework
                .as_ref()
                .or_else(|| self.frameworks.get(&framework_id).map(|f| &f.info))
                .is_some_and(super::executors::is_partition_aware);
            let state = if partition_aware {
                v1::TaskState::TaskDropped
            } else {
                v1::TaskState::TaskLost
            };
            self.agent_update(
                &framework_id,
                None,
                status.task_id.clone(),
                state,
                v1::task_status::Reason::Reconciliation,
                "Reconciliation: task unknown to the agent".into(),
            );
        }
    }
}
