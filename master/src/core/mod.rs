//! The master state machine: frameworks, agents, tasks and offers, owned by
//! one task. Every input (a scheduler call, a libprocess message, a timer)
//! is a method call that mutates the state and queues its effects: messages
//! to agents, links, timers. Events to frameworks go straight into their
//! stream channels. No sockets, no clock of its own beyond wall-clock stamps,
//! so it is tested with plain values.

pub mod agent;
pub mod agents;
pub mod framework;
pub mod operations;
pub mod operator;
pub mod scheduler;
pub mod task;
#[cfg(test)]
pub(crate) mod tests;
pub mod validation;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesos_common::Upid;
use mesos_proto::internal::registry::AdmittedAgent;
use mesos_proto::v1::scheduler::{event, Event};
use mesos_proto::v1::{task_status, MasterInfo, TaskState, TaskStatus};

use crate::allocator::{Allocator, AllocatorConfig};
use crate::registry::{Registry, RegistryError};

pub use agent::Agent;
pub mod authz;
pub use framework::{Framework, Subscriber};
pub use operator::{OperatorSubscribeError, OperatorSubscriber, MAX_OPERATOR_SUBSCRIBERS};

/// Seconds between HEARTBEAT events (Mesos's fixed default).
pub const HEARTBEAT_INTERVAL_SECS: f64 = 15.0;

/// Settings the state machine needs from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our libprocess address (`master@ip:port`).
    pub upid: Upid,
    /// Host name reported in MasterInfo.
    pub hostname: String,
    /// Ping interval.
    pub agent_ping_timeout: Duration,
    /// Missed pongs before an agent is unreachable.
    pub max_agent_ping_timeouts: u32,
    /// Time recovered agents have to re-register.
    pub agent_reregister_timeout: Duration,
    /// `--roles`, if set.
    pub role_whitelist: Option<Vec<String>>,
    /// `--root_submissions`.
    pub root_submissions: bool,
    /// `--max_completed_frameworks`.
    pub max_completed_frameworks: usize,
    /// `--max_completed_tasks_per_framework`.
    pub max_completed_tasks_per_framework: usize,
    /// Initial role weights.
    pub weights: Vec<(String, f64)>,
    /// `--authenticate_agents`: refuse registration from agents that have
    /// not authenticated.
    pub authenticate_agents: bool,
    /// The authorizer in force (`--acls`, the secure default, or none).
    pub authz: authz::Authz,
}

/// Something the IO around the state machine must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a libprocess message.
    Send {
        /// Sender process id (e.g. `master`, `slave-observer(1)`).
        from: String,
        /// Receiver.
        to: Upid,
        /// Fully qualified message name.
        name: String,
        /// Encoded body.
        body: Bytes,
    },
    /// Watch the agent's connection; report [`Timer`]-free
    /// `agent_exited(agent_id, generation)` when it closes.
    Link {
        /// Agent id.
        agent_id: String,
        /// Its address.
        pid: Upid,
        /// Generation to report back.
        generation: u64,
    },
    /// Call back after a delay.
    Timer {
        /// Delay.
        after: Duration,
        /// What to do then.
        timer: Timer,
    },
}

/// Delayed inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// A disconnected framework's failover timeout expired.
    FrameworkFailover {
        /// Framework id.
        framework_id: String,
        /// Generation when the timer was set.
        generation: u64,
    },
    /// Recovered agents that have not re-registered by now are removed.
    AgentReregisterTimeout,
}

/// What `MasterInfo.capabilities` claims (in `/master/state`, GET_MASTER
/// and SUBSCRIBED): only what is implemented. Mesos 1.11 claims
/// AGENT_UPDATE (we ignore `UpdateSlaveMessage`), AGENT_DRAINING and
/// QUOTA_V2 (no draining or quota calls yet); each goes here with the
/// calls behind it.
pub const MASTER_CAPABILITIES: &[mesos_proto::v1::master_info::capability::Type] = &[];

/// Counters reported by `/metrics/snapshot`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Per-state task transitions seen (`master/tasks_<state>` counts
    /// terminal ones).
    pub tasks_finished: u64,
    /// Failed tasks.
    pub tasks_failed: u64,
    /// Killed tasks.
    pub tasks_killed: u64,
    /// Lost tasks.
    pub tasks_lost: u64,
    /// Tasks rejected at launch.
    pub tasks_error: u64,
    /// Dropped tasks.
    pub tasks_dropped: u64,
    /// Gone tasks.
    pub tasks_gone: u64,
    /// Offers sent.
    pub outstanding_offers_sent: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// Offers rescinded.
    pub offers_rescinded: u64,
    /// Scheduler calls by type name.
    pub scheduler_calls: HashMap<&'static str, u64>,
    /// Status updates received from agents.
    pub status_updates: u64,
    /// libprocess messages that were malformed or unexpected.
    pub invalid_messages: u64,
    /// Agents registered since start.
    pub agent_registrations: u64,
    /// Agents re-registered since start.
    pub agent_reregistrations: u64,
    /// Agents removed since start.
    pub agent_removals: u64,
    /// Registry flushes that made staged reservation and volume changes
    /// durable (each may cover many changes).
    pub registry_flushes: u64,
    /// Frameworks marked unreachable.
    pub agents_unreachable: u64,
}

/// An outstanding offer.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The offer as sent.
    pub offer: mesos_proto::v1::Offer,
    /// Role the resources are allocated to.
    pub role: String,
}

/// The master's whole state.
pub struct Master {
    /// Settings.
    pub config: Config,
    /// What we advertise.
    pub info: MasterInfo,
    /// Wall-clock start time (seconds).
    pub start_time: f64,
    /// Frameworks by id.
    pub frameworks: HashMap<String, Framework>,
    /// Removed frameworks, newest last, bounded.
    pub completed_frameworks: VecDeque<Framework>,
    /// Registered agents by id.
    pub agents: HashMap<String, Agent>,
    /// Agents in the registry that have not re-registered since recovery.
    pub recovered_agents: HashMap<String, AdmittedAgent>,
    /// Agents marked unreachable (id → time).
    pub unreachable_agents: HashMap<String, f64>,
    /// Outstanding offers by id.
    pub offers: HashMap<String, Offer>,
    /// The allocator.
    pub allocator: Allocator,
    /// Counters for metrics.
    pub counters: Counters,
    /// Open operator event streams (`SUBSCRIBE` on `/api/v1`).
    pub operator_subscribers: Vec<OperatorSubscriber>,
    registry: Box<dyn Registry>,
    /// Dynamic reservations and volumes by agent id, as the registry holds
    /// them (agents that are gone included).
    pub agent_resources: HashMap<String, mesos_common::resources::Resources>,
    /// Whether the registry holds staged writes not yet flushed.
    registry_dirty: bool,
    /// Replies waiting for the next flush.
    durable_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Framework events waiting for the next flush.
    after_commit: Vec<operations::AfterCommit>,
    effects: Vec<Effect>,
    next_framework: u64,
    next_agent: u64,
    next_offer: u64,
    next_observer: u64,
    /// Agent id by observer process id.
    observers: HashMap<String, String>,
    /// Agent id by pid text, for messages that carry no agent id.
    agent_by_pid: HashMap<String, String>,
    /// Principal by pid text, for peers that authenticated over SASL
    /// (keyed, as Mesos keys it, by the pid the peer claimed).
    authenticated: HashMap<String, String>,
}

/// Wall-clock seconds since the epoch.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Master {
    /// Starts a master: a fresh id (as Mesos does on every start), the
    /// registry recovered and our identity recorded before anything is
    /// served.
    pub fn new(config: Config, mut registry: Box<dyn Registry>) -> Result<Self, RegistryError> {
        let recovered = registry.recover()?;
        let id = uuid::Uuid::new_v4().to_string();
        registry.set_master(&id)?;
        let ip = match config.upid.host.parse::<std::net::Ipv4Addr>() {
            // MasterInfo.ip is in network byte order, read as a native u32.
            Ok(ip) => u32::from_ne_bytes(ip.octets()),
            Err(_) => 0,
        };
        let info = MasterInfo {
            id,
            ip,
            port: u32::from(config.upid.port),
            pid: Some(config.upid.to_string()),
            hostname: Some(config.hostname.clone()),
            version: Some(mesos_common::MESOS_VERSION.to_string()),
            address: Some(mesos_proto::v1::Address {
                hostname: Some(config.hostname.clone()),
                ip: Some(config.upid.host.clone()),
                port: i32::from(config.upid.port),
            }),
            capabilities: MASTER_CAPABILITIES
                .iter()
                .map(|t| mesos_proto::v1::master_info::Capability {
                    r#type: Some(*t as i32),
                })
                .collect(),
            ..Default::default()
        };
        let weights = config.weights.iter().cloned().collect();
        let mut agent_resources = HashMap::new();
        for (agent_id, list) in recovered.resources {
            match mesos_common::resources::Resources::new(list) {
                Ok(r) => {
                    agent_resources.insert(agent_id, r);
                }
                Err(e) => {
                    return Err(RegistryError::Corrupt {
                        key: format!("resources/{agent_id}"),
                        reason: e.to_string(),
                    })
                }
            }
        }
        let mut master = Self {
            info,
            start_time: now_secs(),
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            agents: HashMap::new(),
            recovered_agents: recovered.agents.into_iter().collect(),
            unreachable_agents: HashMap::new(),
            offers: HashMap::new(),
            allocator: Allocator::new(AllocatorConfig { weights }),
            counters: Counters::default(),
            operator_subscribers: Vec::new(),
            registry,
            agent_resources,
            registry_dirty: false,
            durable_waiters: Vec::new(),
            after_commit: Vec::new(),
            effects: Vec::new(),
            next_framework: 0,
            next_agent: 0,
            next_offer: 0,
            next_observer: 0,
            observers: HashMap::new(),
            agent_by_pid: HashMap::new(),
            authenticated: HashMap::new(),
            config,
        };
        if !master.recovered_agents.is_empty() {
            tracing::info!(
                agents = master.recovered_agents.len(),
                previous_master = ?recovered.previous_master,
                "recovered agents from the registry; waiting for them to re-register"
            );
            let after = master.config.agent_reregister_timeout;
            master.effects.push(Effect::Timer {
                after,
                timer: Timer::AgentReregisterTimeout,
            });
        }
        Ok(master)
    }

    /// Takes the effects queued so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Queues a libprocess message from the `master` process.
    fn send<M: prost::Message + prost::Name>(&mut self, to: &Upid, message: &M) {
        self.send_from("master", to, message);
    }

    fn send_from<M: prost::Message + prost::Name>(&mut self, from: &str, to: &Upid, message: &M) {
        self.effects.push(Effect::Send {
            from: from.to_string(),
            to: to.clone(),
            name: M::full_name(),
            body: Bytes::from(message.encode_to_vec()),
        });
    }

    fn new_framework_id(&mut self) -> String {
        let id = format!("{}-{:04}", self.info.id, self.next_framework);
        self.next_framework += 1;
        id
    }

    fn new_agent_id(&mut self) -> String {
        let id = format!("{}-S{}", self.info.id, self.next_agent);
        self.next_agent += 1;
        id
    }

    fn new_observer(&mut self, agent_id: &str) -> String {
        let id = format!("slave-observer({})", self.next_observer + 1);
        self.next_observer += 1;
        self.observers.insert(id.clone(), agent_id.to_string());
        id
    }

    /// Handles a timer.
    pub fn timer(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::FrameworkFailover {
                framework_id,
                generation,
            } => {
                let expired = self
                    .frameworks
                    .get(&framework_id)
                    .is_some_and(|f| !f.connected() && f.generation == generation);
                if expired {
                    tracing::info!(%framework_id, "framework failover timeout expired; removing it");
                    self.remove_framework(&framework_id, now);
                }
            }
            Timer::AgentReregisterTimeout => {
                let ids: Vec<String> = self.recovered_agents.keys().cloned().collect();
                for id in ids {
                    tracing::warn!(agent_id = %id, "agent did not re-register after master failover; marking it unreachable");
                    self.recovered_agents.remove(&id);
                    self.unreachable_agents.insert(id, now_secs());
                    self.counters.agents_unreachable += 1;
                }
            }
        }
    }

    /// Runs one allocation cycle and sends the resulting offers.
    pub fn allocate(&mut self, now: Instant) {
        let allocations = self.allocator.allocate(now);
        let mut by_framework: HashMap<String, Vec<mesos_proto::v1::Offer>> = HashMap::new();
        for allocation in allocations {
            let (Some(framework), Some(_)) = (
                self.frameworks.get(&allocation.framework_id),
                self.agents.get(&allocation.agent_id),
            ) else {
                // Raced with a removal: give the resources back.
                self.allocator.recover_resources(
                    &allocation.framework_id,
                    &allocation.agent_id,
                    &allocation.resources,
                    None,
                    now,
                );
                continue;
            };
            // A framework is offered only the volumes its principal may use.
            let principal = framework.principal.clone();
            let hidden = allocation.resources.filter(|r| {
                mesos_common::conversions::is_persistent_volume(r)
                    && self.may_use_volume(principal.as_deref(), r, false).is_err()
            });
            let mut allocation = allocation;
            if !hidden.is_empty() {
                allocation.resources -= &hidden;
                self.allocator.recover_resources(
                    &allocation.framework_id,
                    &allocation.agent_id,
                    &hidden,
                    None,
                    now,
                );
                if allocation.resources.is_empty() {
                    continue;
                }
            }
            let Some(agent) = self.agents.get(&allocation.agent_id) else {
                continue;
            };
            let offer_id = format!("{}-O{}", self.info.id, self.next_offer);
            self.next_offer += 1;
            let executor_ids = framework
                .executors
                .keys()
                .filter(|(agent_id, _)| *agent_id == allocation.agent_id)
                .map(|(_, executor_id)| mesos_proto::v1::ExecutorId {
                    value: executor_id.clone(),
                })
                .collect();
            let offer = mesos_proto::v1::Offer {
                id: mesos_proto::v1::OfferId {
                    value: offer_id.clone(),
                },
                framework_id: mesos_proto::v1::FrameworkId {
                    value: allocation.framework_id.clone(),
                },
                agent_id: mesos_proto::v1::AgentId {
                    value: allocation.agent_id.clone(),
                },
                hostname: agent.info.hostname.clone(),
                resources: allocation.resources.clone().into_vec(),
                attributes: agent.info.attributes.clone(),
                executor_ids,
                allocation_info: Some(mesos_proto::v1::resource::AllocationInfo {
                    role: Some(allocation.role.clone()),
                }),
                ..Default::default()
            };
            if let Some(agent) = self.agents.get_mut(&allocation.agent_id) {
                agent.offers.insert(offer_id.clone());
            }
            if let Some(framework) = self.frameworks.get_mut(&allocation.framework_id) {
                framework.offers.insert(offer_id.clone());
            }
            self.offers.insert(
                offer_id,
                Offer {
                    offer: offer.clone(),
                    role: allocation.role,
                },
            );
            by_framework
                .entry(allocation.framework_id)
                .or_default()
                .push(offer);
        }
        for (framework_id, offers) in by_framework {
            self.counters.outstanding_offers_sent += offers.len() as u64;
            let event = Event {
                r#type: Some(event::Type::Offers as i32),
                offers: Some(event::Offers { offers }),
                ..Default::default()
            };
            if let Some(framework) = self.frameworks.get(&framework_id) {
                framework.send(&event);
            }
        }
    }

    /// Removes an offer and returns its resources to the allocator, with a
    /// refusal filter when given. Sends RESCIND when `rescind` is set.
    fn remove_offer(
        &mut self,
        offer_id: &str,
        rescind: bool,
        refuse: Option<Duration>,
        now: Instant,
    ) -> Option<Offer> {
        let offer = self.offers.remove(offer_id)?;
        let framework_id = offer.offer.framework_id.value.clone();
        let agent_id = offer.offer.agent_id.value.clone();
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.offers.remove(offer_id);
        }
        if let Some(framework) = self.frameworks.get_mut(&framework_id) {
            framework.offers.remove(offer_id);
            if rescind {
                self.counters.offers_rescinded += 1;
                framework.send(&Event {
                    r#type: Some(event::Type::Rescind as i32),
                    rescind: Some(event::Rescind {
                        offer_id: offer.offer.id.clone(),
                    }),
                    ..Default::default()
                });
            }
        }
        if let Ok(resources) =
            mesos_common::resources::Resources::try_from(offer.offer.resources.clone())
        {
            self.allocator
                .recover_resources(&framework_id, &agent_id, &resources, refuse, now);
        }
        Some(offer)
    }

    /// Removes a framework: its offers rescinded, its tasks' agents told to
    /// shut it down, its tasks completed, its stream closed.
    pub fn remove_framework(&mut self, framework_id: &str, now: Instant) {
        let offer_ids: Vec<String> = self
            .frameworks
            .get(framework_id)
            .map(|f| f.offers.iter().cloned().collect())
            .unwrap_or_default();
        for offer_id in offer_ids {
            self.remove_offer(&offer_id, false, None, now);
        }
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        let message = mesos_proto::internal::ShutdownFrameworkMessage {
            framework_id: mesos_proto::v1::FrameworkId {
                value: framework_id.to_string(),
            },
        };
        let mut agent_ids: Vec<String> = framework
            .tasks
            .values()
            .map(|t| t.agent_id())
            .chain(framework.executors.keys().map(|(a, _)| a.clone()))
            .collect();
        agent_ids.sort();
        agent_ids.dedup();
        for agent_id in &agent_ids {
            if let Some(pid) = self.agents.get(agent_id).map(|a| a.pid.clone()) {
                self.send(&pid, &message);
            }
        }
        let tasks: Vec<_> = framework.tasks.drain().map(|(_, t)| t).collect();
        for mut record in tasks {
            let task = record.task();
            if let Some(agent) = self.agents.get_mut(&task.agent_id.value) {
                agent.tasks.remove(framework_id, &task.task_id.value);
            }
            if !is_terminal(task.state) {
                record.set_state(TaskState::TaskKilled as i32);
                self.counters.tasks_killed += 1;
                let mut status = master_status(
                    &task.task_id.value,
                    Some(&task.agent_id.value),
                    TaskState::TaskKilled,
                    task_status::Reason::FrameworkRemoved,
                    "Framework removed",
                );
                status.executor_id = task.executor_id.clone();
                self.emit_task_updated(framework_id, &status, record.state());
            }
            framework.complete_task(record, self.config.max_completed_tasks_per_framework);
        }
        for agent in self.agents.values_mut() {
            agent.executors.retain(|(f, _), _| f != framework_id);
        }
        self.allocator.remove_framework(framework_id);
        framework.subscriber = None;
        framework.unregistered_time = Some(now_secs());
        self.emit_framework_removed(framework.info.clone(), framework.principal.clone());
        while self.completed_frameworks.len() >= self.config.max_completed_frameworks.max(1) {
            self.completed_frameworks.pop_front();
        }
        if self.config.max_completed_frameworks > 0 {
            self.completed_frameworks.push_back(framework);
        }
    }

    /// Whether a framework id belongs to a removed framework.
    pub fn is_completed_framework(&self, framework_id: &str) -> bool {
        self.completed_frameworks
            .iter()
            .any(|f| f.id == framework_id)
    }
}

/// Whether a task state is terminal.
pub fn is_terminal(state: i32) -> bool {
    matches!(
        TaskState::try_from(state),
        Ok(TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator)
    ) || state == TaskState::TaskLost as i32
}

/// A status the master itself generates (no uuid: not to be acknowledged).
pub fn master_status(
    task_id: &str,
    agent_id: Option<&str>,
    state: TaskState,
    reason: task_status::Reason,
    message: impl Into<String>,
) -> TaskStatus {
    TaskStatus {
        task_id: mesos_proto::v1::TaskId {
            value: task_id.to_string(),
        },
        state: state as i32,
        message: Some(message.into()),
        source: Some(task_status::Source::Master as i32),
        reason: Some(reason as i32),
        agent_id: agent_id.map(|a| mesos_proto::v1::AgentId {
            value: a.to_string(),
        }),
        timestamp: Some(now_secs()),
        ..Default::default()
    }
}

/// What a task keeps of a status for its history (`Task.statuses`, shown
/// by `/master/state`): the state and its time, and what the endpoints
/// show, without ids, message, uuid or data, which the task already has or
/// nobody reads back. Tens of thousands of tasks make this matter.
pub fn history_status(status: &TaskStatus) -> TaskStatus {
    TaskStatus {
        state: status.state,
        timestamp: status.timestamp,
        reason: status.reason,
        source: status.source,
        healthy: status.healthy,
        container_status: status.container_status.clone(),
        labels: status.labels.clone(),
        ..Default::default()
    }
}

/// An UPDATE event for `status`.
pub fn update_event(status: TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update { status }),
        ..Default::default()
    }
}
