//! The agent's state and the one task that owns it. Libprocess messages from
//! the master, executor API calls, process exits and timers arrive as
//! [`Input`]s on one channel; handlers elsewhere only decode and forward.
//!
//! Submodules: [`authenticatee`] (SASL authentication with the master),
//! [`registration`] (master (re)registration, pings),
//! [`executors`] (tasks, executors and their containers, status updates),
//! [`recovery`] (reading checkpoints after a restart) and [`state_json`]
//! (the `/state` view).

pub mod authenticatee;
mod executors;
mod isolation;
mod recovery;
mod registration;
mod state_json;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesos_common::http::{ContentType, HttpError};
use mesos_common::transport::{Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::v1;
use mesos_proto::v1::executor as exec;
use tokio::sync::{mpsc, oneshot};

use crate::flags::Config;
use crate::launcher::Launcher;
use crate::paths::Layout;
use crate::status_update_manager::StatusUpdateManager;

pub(crate) use executors::apply_environment as apply_task_environment;
pub use registration::Registration;

/// How many completed executors / frameworks / tasks are remembered for
/// `/state` (Mesos's `--max_completed_*` defaults).
const MAX_COMPLETED_EXECUTORS: usize = 150;
const MAX_COMPLETED_FRAMEWORKS: usize = 50;
const MAX_COMPLETED_TASKS: usize = 1000;

/// Everything the agent task reacts to.
#[derive(Debug)]
pub enum Input {
    /// A libprocess message addressed to `slave(1)`.
    Message(Message),
    /// An executor API call.
    Executor(Box<ExecutorRequest>),
    /// An executor process exited (raw wait status when known).
    ExecutorExited {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// The run that exited.
        container_id: String,
        /// Raw wait status.
        status: Option<i32>,
    },
    /// An executor's event stream closed.
    StreamClosed {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// Which subscription closed.
        generation: u64,
    },
    /// `--executor_registration_timeout` passed for a run.
    RegistrationTimeout {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// The run.
        container_id: String,
    },
    /// The shutdown grace period of a run passed.
    ShutdownTimeout {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// The run.
        container_id: String,
    },
    /// `--executor_reregistration_timeout` passed after recovery.
    ReregistrationTimeout,
    /// An isolator limited a container (e.g. a task listening on a port it
    /// was not given).
    Limitation {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// The run.
        container_id: String,
        /// What was exceeded.
        limitation: crate::isolators::ContainerLimitation,
    },
    /// The link to the master broke.
    MasterExited {
        /// Which link.
        generation: u64,
    },
    /// A `/state` snapshot is wanted.
    State {
        /// The authorizer filtering the views (none in force: everything
        /// shown).
        authz: crate::sandbox_authz::SandboxAuthz,
        /// Who asks.
        principal: Option<String>,
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// The agent's `slave/*` metrics.
    Metrics(oneshot::Sender<serde_json::Map<String, serde_json::Value>>),
    /// The user an executor's sandbox belongs to (`/files` authorization).
    SandboxOwner {
        /// Framework id.
        framework_id: String,
        /// Executor id.
        executor_id: String,
        /// The executor's command user, else its framework's user, and the
        /// framework's principal; `None` when the agent knows no such
        /// executor.
        reply: oneshot::Sender<Option<crate::sandbox_authz::SandboxOwner>>,
    },
    /// Stop: the master told the agent to shut down and the grace period
    /// passed.
    Exit,
}

/// One executor API call and where its answer goes.
#[derive(Debug)]
pub struct ExecutorRequest {
    /// The decoded call.
    pub call: exec::Call,
    /// Encoding of the event stream (SUBSCRIBE).
    pub accept: ContentType,
    /// The container the caller's token is for (`None` when executor
    /// authentication is off): it must be the executor's current run.
    pub container: Option<String>,
    /// The answer.
    pub reply: oneshot::Sender<ExecutorReply>,
}

/// The agent's answer to an executor call.
#[derive(Debug)]
pub enum ExecutorReply {
    /// 202.
    Accepted,
    /// 200 with this event stream.
    Subscribed(mpsc::UnboundedReceiver<exec::Event>, StreamGuard),
    /// An error status.
    Error(HttpError),
}

/// Held by the HTTP response of a subscription: dropping it (the
/// executor's connection closed) tells the agent.
#[derive(Debug)]
pub struct StreamGuard {
    tx: mpsc::UnboundedSender<Input>,
    framework_id: String,
    executor_id: String,
    generation: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Input::StreamClosed {
            framework_id: std::mem::take(&mut self.framework_id),
            executor_id: std::mem::take(&mut self.executor_id),
            generation: self.generation,
        });
    }
}

/// Routes libprocess messages for `slave(1)` into the agent's input channel.
#[derive(Clone)]
pub struct AgentSink {
    tx: mpsc::UnboundedSender<Input>,
}

impl MessageSink for AgentSink {
    fn deliver(&self, message: Message) -> bool {
        if message.to != "slave(1)" && !message.to.starts_with(authenticatee::PROCESS_PREFIX) {
            return false;
        }
        self.tx.send(Input::Message(message)).is_ok()
    }
}

/// A handle for the HTTP edges: sends inputs to the agent task.
#[derive(Clone, Debug)]
pub struct AgentHandle {
    tx: mpsc::UnboundedSender<Input>,
}

impl AgentHandle {
    /// The message sink for `with_messages`.
    pub fn sink(&self) -> AgentSink {
        AgentSink {
            tx: self.tx.clone(),
        }
    }

    /// Hands an executor call to the agent and waits for its answer.
    /// `container` is the container the caller authenticated for.
    pub async fn executor_call(
        &self,
        call: exec::Call,
        accept: ContentType,
        container: Option<String>,
    ) -> ExecutorReply {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Input::Executor(Box::new(ExecutorRequest {
                call,
                accept,
                container,
                reply,
            })))
            .is_err()
        {
            return ExecutorReply::Error(HttpError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Agent is shutting down",
            ));
        }
        rx.await.unwrap_or_else(|_| {
            ExecutorReply::Error(HttpError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Agent is shutting down",
            ))
        })
    }

    /// Whose the sandbox of `executor_id` of `framework_id` is (live or
    /// completed): the executor's command user, else its framework's user,
    /// and the framework's principal.
    pub async fn sandbox_owner(
        &self,
        framework_id: &str,
        executor_id: &str,
    ) -> Option<crate::sandbox_authz::SandboxOwner> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::SandboxOwner {
                framework_id: framework_id.to_string(),
                executor_id: executor_id.to_string(),
                reply,
            })
            .ok()?;
        rx.await.ok().flatten()
    }

    /// The `/state` JSON as `principal` may see it under `authz`.
    pub async fn state(
        &self,
        authz: crate::sandbox_authz::SandboxAuthz,
        principal: Option<String>,
    ) -> Option<serde_json::Value> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::State {
                authz,
                principal,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }

    /// The agent's `slave/*` metrics, by Mesos's names.
    pub async fn metrics(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Input::Metrics(tx)).ok()?;
        rx.await.ok()
    }
}

/// What kind of executor a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutorKind {
    /// The built-in command executor for one `command` task.
    Command,
    /// The built-in executor running a task group (Mesos's default executor).
    Default,
    /// The framework's own executor.
    Custom,
}

/// Executor life cycle (Mesos's `Executor::State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutorState {
    /// Launched, not yet subscribed.
    Registering,
    /// Subscribed at least once.
    Running,
    /// Asked to shut down.
    Terminating,
    /// Its process exited.
    Terminated,
}

impl ExecutorState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ExecutorState::Registering => "REGISTERING",
            ExecutorState::Running => "RUNNING",
            ExecutorState::Terminating => "TERMINATING",
            ExecutorState::Terminated => "TERMINATED",
        }
    }
}

/// A task the agent knows, with the TaskInfo it was launched from.
#[derive(Debug, Clone)]
pub(crate) struct TaskEntry {
    pub(crate) task: v1::Task,
    pub(crate) info: Option<v1::TaskInfo>,
    /// Not yet handed to the executor.
    pub(crate) queued: bool,
}

/// Launches waiting for the executor: single tasks or whole groups.
#[derive(Debug, Clone)]
pub(crate) enum PendingLaunch {
    Task(String),
    Group(Vec<String>),
}

/// The connected event stream of an executor.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) tx: mpsc::UnboundedSender<exec::Event>,
    pub(crate) generation: u64,
}

/// One executor run.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) id: String,
    pub(crate) info: v1::ExecutorInfo,
    pub(crate) kind: ExecutorKind,
    pub(crate) container_id: String,
    pub(crate) directory: PathBuf,
    pub(crate) state: ExecutorState,
    pub(crate) pid: Option<u32>,
    pub(crate) subscriber: Option<Subscriber>,
    /// Live tasks and terminal ones whose updates are not all acknowledged.
    pub(crate) tasks: BTreeMap<String, TaskEntry>,
    pub(crate) pending_launches: Vec<PendingLaunch>,
    pub(crate) completed_tasks: VecDeque<v1::Task>,
    /// Tasks a kill was requested for.
    pub(crate) killed: BTreeSet<String>,
    /// Why the agent terminated the run, for the tasks' final updates.
    pub(crate) termination: Option<(v1::task_status::Reason, String)>,
    /// Recovered after an agent restart and not yet re-subscribed.
    pub(crate) recovered: bool,
}

/// A framework with executors on this agent.
#[derive(Debug)]
pub(crate) struct Framework {
    pub(crate) id: String,
    pub(crate) info: v1::FrameworkInfo,
    pub(crate) pid: Option<String>,
    pub(crate) terminating: bool,
    pub(crate) executors: BTreeMap<String, Executor>,
    pub(crate) completed_executors: VecDeque<Executor>,
}

/// The agent: owned by one task, see [`Agent::run`].
pub struct Agent {
    pub(crate) config: Arc<Config>,
    pub(crate) layout: Layout,
    pub(crate) transport: Transport,
    pub(crate) launcher: Arc<dyn Launcher>,
    /// The isolators of `--isolation`.
    pub(crate) isolators: crate::isolators::Isolators,
    /// Limitations that ended containers, until their tasks' updates are sent.
    pub(crate) limitations:
        std::collections::HashMap<String, crate::isolators::ContainerLimitation>,
    pub(crate) self_pid: Upid,
    pub(crate) master: Upid,
    /// AgentInfo; `id` set once registered (or recovered).
    pub(crate) info: v1::AgentInfo,
    /// `/state` resources.
    pub(crate) resources_json: serde_json::Value,
    pub(crate) start_time: f64,
    pub(crate) registration: Registration,
    /// Authentication with the master, when the agent has a credential.
    pub(crate) authenticatee: Option<authenticatee::Authenticatee>,
    pub(crate) frameworks: BTreeMap<String, Framework>,
    pub(crate) completed_frameworks: VecDeque<Framework>,
    pub(crate) sum: StatusUpdateManager,
    pub(crate) tx: mpsc::UnboundedSender<Input>,
    rx: Option<mpsc::UnboundedReceiver<Input>>,
    pub(crate) subscription_generation: u64,
    pub(crate) link_generation: u64,
    /// Executor exits to report to the master once it is reachable.
    pub(crate) pending_exited: Vec<mesos_proto::internal::ExitedExecutorMessage>,
    pub(crate) shutting_down: bool,
    pub(crate) ping_timeout: Duration,
    /// Version of the agent's resources (Mesos's `resource_version_uuid`):
    /// fixed for the life of the process.
    pub(crate) resource_version: v1::Uuid,
    /// Dynamic reservations and persistent volumes, as last checkpointed.
    pub(crate) checkpointed: mesos_common::resources::Resources,
    /// Directories of checkpointed volumes that are missing on disk.
    pub(crate) missing_volumes: std::collections::BTreeSet<std::path::PathBuf>,
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A uniformly distributed number in `[0, 1]`.
pub(crate) fn random_fraction() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 64) as u64;
    bits as f64 / u64::MAX as f64
}

impl Agent {
    /// Builds the agent. `resources` are the agent's total resources and
    /// `resources_json` their `/state` form.
    pub fn new(
        config: Arc<Config>,
        launcher: Arc<dyn Launcher>,
        transport: Transport,
        resources: Vec<v1::Resource>,
        resources_json: serde_json::Value,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let self_pid = Upid::new(
            "slave(1)",
            config.advertise_ip.to_string(),
            config.flags.port,
        );
        let info = v1::AgentInfo {
            hostname: config.hostname.clone(),
            port: Some(i32::from(config.flags.port)),
            resources,
            attributes: config.attributes.clone(),
            id: None,
            domain: None,
        };
        let authenticatee = config.credential.clone().map(|credential| {
            authenticatee::Authenticatee::new(authenticatee::Settings {
                credential,
                mechanisms: config.mechanisms.clone(),
                backoff_factor: config.flags.authentication_backoff_factor,
                timeout_min: config.flags.authentication_timeout_min,
                timeout_max: config.flags.authentication_timeout_max,
            })
        });
        let isolators = build_isolators(&config, &launcher);
        Self {
            isolators,
            limitations: Default::default(),
            authenticatee,
            layout: Layout::new(config.flags.work_dir.clone()),
            master: config.master.clone(),
            config,
            transport,
            launcher,
            self_pid,
            info,
            resources_json,
            start_time: now_secs(),
            registration: Registration::new(),
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            sum: StatusUpdateManager::new(),
            tx,
            rx: Some(rx),
            subscription_generation: 0,
            link_generation: 0,
            pending_exited: Vec::new(),
            shutting_down: false,
            ping_timeout: Duration::from_secs(75),
            resource_version: v1::Uuid {
                value: bytes::Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes()),
            },
            checkpointed: Default::default(),
            missing_volumes: Default::default(),
        }
    }

    /// The handle HTTP edges use.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle {
            tx: self.tx.clone(),
        }
    }

    /// The agent's UPID.
    pub fn pid(&self) -> &Upid {
        &self.self_pid
    }

    /// The agent id, once known.
    pub(crate) fn agent_id(&self) -> Option<String> {
        self.info.id.as_ref().map(|id| id.value.clone())
    }

    /// Recovers checkpointed state (see [`recovery`]), then runs until told
    /// to exit.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let Some(mut rx) = self.rx.take() else {
            anyhow::bail!("the agent runs once");
        };
        self.isolators.start();
        self.recover().await?;
        loop {
            let deadline = self.next_deadline();
            let input = match deadline {
                Some(at) => {
                    tokio::select! {
                        input = rx.recv() => input,
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                            self.on_timer(Instant::now());
                            continue;
                        }
                    }
                }
                None => rx.recv().await,
            };
            let Some(input) = input else { return Ok(()) };
            if let Input::Exit = input {
                self.exit().await;
                return Ok(());
            }
            self.dispatch(input);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.sum.next_deadline(),
            self.registration.next_deadline(),
            self.authentication_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_timer(&mut self, now: Instant) {
        self.registration_timer(now);
        for update in self.sum.due(now) {
            tracing::warn!(task_id = %update.status.task_id.value, framework_id = %update.framework_id.value,
                "resending unacknowledged status update to the master");
            self.forward_update(update);
        }
    }

    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Message(message) => self.on_message(message),
            Input::Executor(request) => {
                let reply = self.on_executor_call(request.call, request.accept, request.container);
                let _ = request.reply.send(reply);
            }
            Input::ExecutorExited {
                framework_id,
                executor_id,
                container_id,
                status,
            } => self.executor_exited(&framework_id, &executor_id, &container_id, status),
            Input::StreamClosed {
                framework_id,
                executor_id,
                generation,
            } => self.stream_closed(&framework_id, &executor_id, generation),
            Input::RegistrationTimeout {
                framework_id,
                executor_id,
                container_id,
            } => self.registration_timeout(&framework_id, &executor_id, &container_id),
            Input::ShutdownTimeout {
                framework_id,
                executor_id,
                container_id,
            } => self.shutdown_timeout(&framework_id, &executor_id, &container_id),
            Input::ReregistrationTimeout => self.reregistration_timeout(),
            Input::Limitation {
                framework_id,
                executor_id,
                container_id,
                limitation,
            } => self.container_limited(&framework_id, &executor_id, &container_id, limitation),
            Input::MasterExited { generation } => self.master_exited(generation),
            Input::State {
                authz,
                principal,
                reply,
            } => {
                let authorizer = authz.authorizer();
                let mut viewer =
                    state_json::StateViewer::new(authorizer.as_deref(), principal.as_deref());
                let _ = reply.send(self.state_json(&mut viewer));
            }
            Input::Metrics(reply) => {
                let _ = reply.send(self.metrics_json());
            }
            Input::SandboxOwner {
                framework_id,
                executor_id,
                reply,
            } => {
                let _ = reply.send(self.sandbox_owner(&framework_id, &executor_id));
            }
            Input::Exit => {}
        }
    }

    /// See [`AgentHandle::sandbox_owner`]; the latest run wins.
    fn sandbox_owner(
        &self,
        framework_id: &str,
        executor_id: &str,
    ) -> Option<crate::sandbox_authz::SandboxOwner> {
        let framework = self
            .frameworks
            .get(framework_id)
            .into_iter()
            .chain(self.completed_frameworks.iter().rev())
            .find(|f| f.id == framework_id)?;
        let executor = framework
            .executors
            .get(executor_id)
            .into_iter()
            .chain(framework.completed_executors.iter().rev())
            .find(|e| e.id == executor_id)?;
        Some(crate::sandbox_authz::SandboxOwner {
            user: executor
                .info
                .command
                .as_ref()
                .and_then(|c| c.user.clone())
                .unwrap_or_else(|| framework.info.user.clone()),
            principal: framework.info.principal.clone(),
        })
    }

    /// Sends `input` to the agent after `delay`.
    pub(crate) fn schedule(&self, delay: Duration, input: Input) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(input);
        });
    }

    fn on_message(&mut self, message: Message) {
        use mesos_proto::internal as m;
        let name = message
            .name
            .strip_prefix("mesos.internal.")
            .unwrap_or(&message.name)
            .to_string();
        // Authentication replies come from the master's session process to
        // the attempt's own process.
        if message.to.starts_with(authenticatee::PROCESS_PREFIX) {
            self.on_authentication_message(message);
            return;
        }
        // Pings come from the master's per-agent observer process, not from
        // `master` itself; they only earn a pong to their sender.
        if name == "PingSlaveMessage" {
            match message.decode::<m::PingSlaveMessage>() {
                Ok(ping) => self.on_ping(&message.from, ping),
                Err(e) => {
                    tracing::warn!(from = %message.from, "dropping malformed PingSlaveMessage: {e}")
                }
            }
            return;
        }
        if message.from != self.master {
            tracing::warn!(from = %message.from, master = %self.master, message = %message.name,
                "ignoring message that is not from the master");
            return;
        }
        macro_rules! decode {
            ($ty:ty) => {
                match message.decode::<$ty>() {
                    Ok(decoded) => decoded,
                    Err(e) => {
                        tracing::warn!(message = %message.name, "dropping malformed message: {e}");
                        return;
                    }
                }
            };
        }
        tracing::debug!(message = %message.name, "received message from the master");
        match name.as_str() {
            "SlaveRegisteredMessage" => self.on_registered(decode!(m::SlaveRegisteredMessage)),
            "SlaveReregisteredMessage" => {
                self.on_reregistered(decode!(m::SlaveReregisteredMessage))
            }
            "RunTaskMessage" => self.run_task(decode!(m::RunTaskMessage)),
            "RunTaskGroupMessage" => self.run_task_group(decode!(m::RunTaskGroupMessage)),
            "KillTaskMessage" => self.kill_task(decode!(m::KillTaskMessage)),
            "ShutdownExecutorMessage" => {
                let msg = decode!(m::ShutdownExecutorMessage);
                match (msg.framework_id, msg.executor_id) {
                    (Some(f), Some(e)) => {
                        self.shutdown_executor(&f.value, &e.value, "the master asked")
                    }
                    _ => tracing::warn!("ShutdownExecutorMessage without framework or executor id"),
                }
            }
            "ShutdownFrameworkMessage" => {
                let msg = decode!(m::ShutdownFrameworkMessage);
                self.shutdown_framework(&msg.framework_id.value);
            }
            "FrameworkToExecutorMessage" => {
                self.framework_to_executor(decode!(m::FrameworkToExecutorMessage))
            }
            "StatusUpdateAcknowledgementMessage" => {
                self.on_status_ack(decode!(m::StatusUpdateAcknowledgementMessage))
            }
            "UpdateFrameworkMessage" => self.update_framework(decode!(m::UpdateFrameworkMessage)),
            "CheckpointResourcesMessage" => {
                self.checkpoint_resources(decode!(m::CheckpointResourcesMessage))
            }
            "ShutdownMessage" => self.on_shutdown(&message.from, decode!(m::ShutdownMessage)),
            other => tracing::debug!(
                message = other,
                "ignoring message this agent does not handle"
            ),
        }
    }

    fn update_framework(&mut self, msg: mesos_proto::internal::UpdateFrameworkMessage) {
        let Some(agent_id) = self.agent_id() else {
            return;
        };
        let Some(framework) = self.frameworks.get_mut(&msg.framework_id.value) else {
            return;
        };
        if let Some(mut info) = msg.framework_info {
            info.id = Some(msg.framework_id.clone());
            framework.info = info;
        }
        if msg.pid.is_some() {
            framework.pid = msg.pid;
        }
        let path = self.layout.framework_info(&agent_id, &framework.id);
        if let Err(e) = crate::checkpoint::write_message(&path, &framework.info) {
            fatal_checkpoint(&path, &e);
        }
    }

    fn on_shutdown(&mut self, from: &Upid, msg: mesos_proto::internal::ShutdownMessage) {
        match msg.message.as_deref().filter(|m| !m.is_empty()) {
            Some(why) => tracing::warn!("Agent asked to shut down by {from} because '{why}'"),
            None => tracing::warn!("Agent asked to shut down by {from}"),
        }
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.stop_registration();
        // A shut down agent must not come back under the same id.
        let latest = self.layout.latest_agent();
        if let Err(e) = std::fs::remove_file(&latest) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %latest.display(), "cannot remove: {e}");
            }
        }
        if self.frameworks.is_empty() {
            let _ = self.tx.send(Input::Exit);
            return;
        }
        let ids: Vec<String> = self.frameworks.keys().cloned().collect();
        for id in ids {
            self.shutdown_framework(&id);
        }
        self.schedule(
            self.config.flags.executor_shutdown_grace_period + Duration::from_secs(1),
            Input::Exit,
        );
    }

    async fn exit(&mut self) {
        let containers: Vec<String> = self
            .frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .filter(|e| e.state != ExecutorState::Terminated)
            .map(|e| e.container_id.clone())
            .collect();
        for container in containers {
            let destroy = self.launcher.destroy(&container);
            match tokio::time::timeout(Duration::from_secs(10), destroy).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(container_id = %container, "cannot destroy container: {e}")
                }
                Err(_) => {
                    tracing::warn!(container_id = %container, "timed out destroying container")
                }
            }
        }
        tracing::info!("agent terminated");
    }
}

/// The isolators `--isolation` names (validated with the flags). The
/// `network/ports` isolator lists a container's processes with the launcher.
fn build_isolators(config: &Config, launcher: &Arc<dyn Launcher>) -> crate::isolators::Isolators {
    use crate::isolators::ports::{
        BindRestrictor, CgroupIdLister, NetworkPortsIsolator, PidLister,
    };
    let mut list: Vec<Arc<dyn crate::isolators::Isolator>> = Vec::new();
    if let Some(ports) = &config.ports {
        let mut ports = ports.clone();
        if ports.enforce_at_bind {
            match launcher.bind_filter_support() {
                Ok(()) => tracing::info!(
                    "--container_ports_enforce_at_bind: bind() to an unallocated port in the \
                     isolated range fails with EPERM in every container (cgroup BPF)"
                ),
                Err(why) => {
                    tracing::warn!(
                        "--container_ports_enforce_at_bind is not possible here: {why}; \
                         falling back to the periodic scan of listening ports only"
                    );
                    eprintln!(
                        "WARNING: --container_ports_enforce_at_bind is not possible here: {why}; \
                         falling back to the periodic scan of listening ports only"
                    );
                    ports.enforce_at_bind = false;
                }
            }
        }
        let lister = Arc::clone(launcher);
        let pids: Arc<PidLister> = Arc::new(move |id: &str| {
            lister
                .pids(id)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        let restricter = Arc::clone(launcher);
        let restrict: Arc<BindRestrictor> = Arc::new(move |id: &str, program: &[_]| {
            restricter
                .restrict_bind(id, program)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        let ids = Arc::clone(launcher);
        let cgroup_ids: Arc<CgroupIdLister> = Arc::new(move |id: &str| {
            ids.cgroup_ids(id)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        list.push(Arc::new(
            NetworkPortsIsolator::new(Arc::new(crate::sys::RealSyscalls), pids, ports)
                .with_bind_restrictor(restrict)
                .with_cgroup_ids(cgroup_ids),
        ));
    }
    list.extend(cgroups_isolators(config));
    if let Some(capabilities) = config.capabilities {
        use crate::isolators::capabilities::LinuxCapabilitiesIsolator;
        list.push(Arc::new(LinuxCapabilitiesIsolator::new(capabilities)));
    }
    if config
        .isolation
        .iter()
        .any(|n| n == crate::isolators::LINUX_NNP)
    {
        list.push(Arc::new(crate::isolators::capabilities::LinuxNnpIsolator));
    }
    if let Some(seccomp) = &config.seccomp {
        use crate::isolators::seccomp::LinuxSeccompIsolator;
        list.push(Arc::new(LinuxSeccompIsolator::new(seccomp.clone())));
    }
    for kind in &config.namespaces {
        use crate::isolators::namespaces::NamespacesIsolator;
        list.push(Arc::new(NamespacesIsolator::new(*kind)));
    }
    let isolators = crate::isolators::Isolators::new(list);
    tracing::info!(isolation = ?config.isolation, active = ?isolators.names(), "isolators");
    isolators
}

/// `cgroups/cpu` and `cgroups/mem`, on the linux launcher's cgroups (the
/// flags refuse them with another launcher).
fn cgroups_isolators(config: &Config) -> Vec<Arc<dyn crate::isolators::Isolator>> {
    use crate::isolators::cgroups::{
        CgroupsIsolator, RealCgroupControl, Subsystem, CGROUPS_CPU, CGROUPS_MEM,
    };
    use crate::launcher::cgroups::{Cgroups, Layout};
    let wanted: Vec<Subsystem> = config
        .isolation
        .iter()
        .filter_map(|n| match n.as_str() {
            CGROUPS_CPU => Some(Subsystem::Cpu),
            CGROUPS_MEM => Some(Subsystem::Mem),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let cgroups = Layout::detect_host(&config.flags.cgroups_hierarchy)
        .and_then(|layout| Cgroups::new(layout, &config.flags.cgroups_root));
    let control = match cgroups {
        Ok(cgroups) => Arc::new(RealCgroupControl(cgroups)),
        Err(e) => {
            // The linux launcher was created from the same flags, so this
            // cannot happen; if it does, the launch limits still apply.
            tracing::error!("cgroups isolators disabled: {e}");
            return Vec::new();
        }
    };
    wanted
        .into_iter()
        .map(|s| {
            Arc::new(CgroupsIsolator::new(
                s,
                config.flags.cgroups_enable_cfs,
                control.clone(),
            )) as Arc<dyn crate::isolators::Isolator>
        })
        .collect()
}

/// A checkpoint that cannot be written leaves the agent unable to keep its
/// promises (an update acknowledged but not durable); like Mesos, stop.
pub(crate) fn fatal_checkpoint(path: &std::path::Path, error: &std::io::Error) -> ! {
    tracing::error!(path = %path.display(), "failed to checkpoint: {error}; exiting");
    eprintln!("Failed to checkpoint {}: {error}", path.display());
    std::process::exit(1)
}

pub(crate) fn trim_completed<T>(queue: &mut VecDeque<T>, max: usize) {
    while queue.len() > max {
        queue.pop_front();
    }
}

pub(crate) const COMPLETED_EXECUTORS: usize = MAX_COMPLETED_EXECUTORS;
pub(crate) const COMPLETED_FRAMEWORKS: usize = MAX_COMPLETED_FRAMEWORKS;
pub(crate) const COMPLETED_TASKS: usize = MAX_COMPLETED_TASKS;
