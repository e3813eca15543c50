//! libprocess messages from agents: (re-)registration, status updates,
//! executor exits, pongs; plus pings and the loss of an agent.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use mesos_common::resources::Resources;
use mesos_common::transport::Message;
use mesos_common::Upid;
use mesos_proto::internal as msg;
use mesos_proto::v1::scheduler::{event, Event};
use mesos_proto::v1::{self as v1, task_status::Reason, TaskState};
use prost::Name;

use super::framework::{has_capability, Framework};
use super::task::TaskRecord;
use super::{is_terminal, master_status, now_secs, update_event, Agent, Effect, Master};

/// Messages only a registered agent may send (by its registered pid).
const AGENT_ONLY: [&str; 5] = [
    "mesos.internal.StatusUpdateMessage",
    "mesos.internal.ExitedExecutorMessage",
    "mesos.internal.ExecutorToFrameworkMessage",
    "mesos.internal.UnregisterSlaveMessage",
    "mesos.internal.UpdateSlaveMessage",
];

impl Master {
    /// Handles one libprocess message addressed to the master or one of
    /// its observer processes. Returns false for an unknown process id.
    pub fn message(&mut self, message: Message, now: Instant) -> bool {
        if message.to != "master" {
            if message.name == msg::PongSlaveMessage::full_name() {
                if let Some(agent_id) = self.observers.get(&message.to).cloned() {
                    if let Some(agent) = self.agents.get_mut(&agent_id) {
                        agent.pong_received = true;
                        agent.missed_pongs = 0;
                    }
                    return true;
                }
            }
            return self.observers.contains_key(&message.to);
        }
        if AGENT_ONLY.contains(&message.name.as_str())
            && !self.agent_by_pid.contains_key(&message.from.to_string())
        {
            tracing::warn!(from = %message.from, name = %message.name, "ignoring a message from a process that is not a registered agent");
            return true;
        }
        let result = match message.name.as_str() {
            n if n == msg::RegisterSlaveMessage::full_name() => message
                .decode::<msg::RegisterSlaveMessage>()
                .map(|m| self.register_agent(&message.from, m, now)),
            n if n == msg::ReregisterSlaveMessage::full_name() => message
                .decode::<msg::ReregisterSlaveMessage>()
                .map(|m| self.reregister_agent(&message.from, m, now)),
            n if n == msg::UnregisterSlaveMessage::full_name() => message
                .decode::<msg::UnregisterSlaveMessage>()
                .map(|m| self.unregister_agent(&message.from, m, now)),
            n if n == msg::StatusUpdateMessage::full_name() => {
                message.decode::<msg::StatusUpdateMessage>().map(|m| {
                    if self.sent_by(&message.from, m.update.slave_id.as_ref()) {
                        self.status_update(m.update, now)
                    }
                })
            }
            n if n == msg::ExitedExecutorMessage::full_name() => {
                message.decode::<msg::ExitedExecutorMessage>().map(|m| {
                    if self.sent_by(&message.from, Some(&m.slave_id)) {
                        self.executor_exited(m)
                    }
                })
            }
            n if n == msg::ExecutorToFrameworkMessage::full_name() => message
                .decode::<msg::ExecutorToFrameworkMessage>()
                .map(|m| {
                    if self.sent_by(&message.from, Some(&m.slave_id)) {
                        self.executor_message(m)
                    }
                }),
            n if n == msg::UpdateSlaveMessage::full_name() => Ok(()),
            other => {
                tracing::debug!(from = %message.from, name = %other, "ignoring unexpected message");
                self.counters.invalid_messages += 1;
                Ok(())
            }
        };
        if let Err(e) = result {
            self.counters.invalid_messages += 1;
            tracing::warn!(from = %message.from, name = %message.name, "dropping malformed message: {e}");
        }
        true
    }

    /// True when `from` is the registered agent `agent_id` names (an agent
    /// may only speak for itself).
    fn sent_by(&self, from: &Upid, agent_id: Option<&v1::AgentId>) -> bool {
        let registered = self.agent_by_pid.get(&from.to_string());
        let ok = match agent_id {
            Some(id) => registered == Some(&id.value),
            None => registered.is_some(),
        };
        if !ok {
            tracing::warn!(from = %from, agent_id = ?agent_id.map(|a| &a.value), "ignoring a message an agent sent for another agent");
        }
        ok
    }

    /// Records the outcome of a SASL authentication of `pid`: its
    /// principal, or `None` to forget an earlier one (a new attempt, or a
    /// failed one).
    pub fn set_authenticated(&mut self, pid: &str, principal: Option<String>) {
        match principal {
            Some(principal) => {
                self.authenticated.insert(pid.to_string(), principal);
            }
            None => {
                self.authenticated.remove(pid);
            }
        }
    }

    /// The principal `pid` authenticated as, if it did.
    pub fn authenticated_principal(&self, pid: &str) -> Option<&str> {
        self.authenticated.get(pid).map(String::as_str)
    }

    /// Under `--authenticate_agents`, tells an agent that has not
    /// authenticated to shut down (Mesos's words) and returns false.
    fn admit_authenticated(&mut self, from: &Upid) -> bool {
        if !self.config.authenticate_agents || self.authenticated.contains_key(&from.to_string()) {
            return true;
        }
        tracing::warn!(
            pid = %from,
            "Refusing registration of agent at {from} because it is not authenticated"
        );
        self.send(
            from,
            &msg::ShutdownMessage {
                message: Some("Agent is not authenticated".into()),
            },
        );
        false
    }

    fn connection(&self) -> msg::MasterSlaveConnection {
        msg::MasterSlaveConnection {
            total_ping_timeout_seconds: Some(
                self.config.agent_ping_timeout.as_secs_f64()
                    * f64::from(self.config.max_agent_ping_timeouts),
            ),
        }
    }

    fn register_agent(&mut self, from: &Upid, message: msg::RegisterSlaveMessage, now: Instant) {
        if !self.admit_authenticated(from) {
            return;
        }
        // A retried registration from an agent we already admitted.
        if let Some(agent_id) = self.agent_by_pid.get(&from.to_string()).cloned() {
            if self.agents.get(&agent_id).is_some_and(|a| a.connected) {
                let reply = msg::SlaveRegisteredMessage {
                    slave_id: v1::AgentId { value: agent_id },
                    connection: Some(self.connection()),
                };
                self.send(from, &reply);
                return;
            }
            // A disconnected agent's address registering without an id: it
            // lost its work dir and starts over, so the old one is gone (as
            // in Mesos). Its reservations and volumes stay in the registry,
            // listed as orphaned, until an operator removes them.
            if self.agents.contains_key(&agent_id) {
                tracing::info!(old_agent_id = %agent_id, pid = %from,
                    "removing old disconnected agent because a registration attempt occurred");
                self.remove_agent(&agent_id, Reason::AgentRemoved, now);
                if let Err(e) = self.registry.remove_agent(&agent_id) {
                    tracing::error!(%agent_id, "failed to remove agent from the registry: {e}");
                }
            }
        }
        let total = match Resources::try_from(message.slave.resources.clone()) {
            Ok(total) => total,
            Err(e) => {
                tracing::warn!(pid = %from, "refusing registration of agent with invalid resources: {e}");
                return;
            }
        };
        if !message.checkpointed_resources.is_empty() {
            // Volumes belong to the agent id they were created on; an
            // agent registering afresh starts with none.
            tracing::warn!(pid = %from, "agent registering without an id reports checkpointed resources; ignoring them");
        }
        let agent_id = self.new_agent_id();
        let mut info = message.slave;
        info.id = Some(v1::AgentId {
            value: agent_id.clone(),
        });
        if info.port.is_none() {
            info.port = Some(i32::from(from.port));
        }
        let registered_time = now_secs();
        if let Err(e) = self.registry.admit_agent(&info, registered_time) {
            // Not durable, so not acknowledged: the agent will retry.
            tracing::error!(%agent_id, "failed to admit agent to the registry: {e}");
            return;
        }
        tracing::info!(%agent_id, pid = %from, hostname = %info.hostname, resources = %total, "registered agent");
        self.counters.agent_registrations += 1;
        self.add_agent(
            agent_id.clone(),
            info,
            from.clone(),
            message.version,
            message.agent_capabilities,
            total,
            &[],
            registered_time,
        );
        let reply = msg::SlaveRegisteredMessage {
            slave_id: v1::AgentId { value: agent_id },
            connection: Some(self.connection()),
        };
        self.send(from, &reply);
    }

    #[allow(clippy::too_many_arguments)]
    fn add_agent(
        &mut self,
        agent_id: String,
        info: v1::AgentInfo,
        pid: Upid,
        version: Option<String>,
        capabilities: Vec<v1::agent_info::Capability>,
        total: Resources,
        used: &[(String, Resources)],
        registered_time: f64,
    ) {
        let observer = self.new_observer(&agent_id);
        self.agent_by_pid.insert(pid.to_string(), agent_id.clone());
        let agent = Agent {
            id: agent_id.clone(),
            info,
            pid: pid.clone(),
            version: version.unwrap_or_default(),
            capabilities: capabilities.iter().filter_map(|c| c.r#type).collect(),
            registered_time,
            reregistered_time: None,
            connected: true,
            active: true,
            total: total.clone(),
            tasks: Default::default(),
            executors: HashMap::new(),
            offers: HashSet::new(),
            observer,
            missed_pongs: 0,
            pong_received: true,
            link_generation: 0,
        };
        self.agents.insert(agent_id.clone(), agent);
        self.allocator.add_agent(&agent_id, total, used);
        self.emit_agent_added(&agent_id);
        self.effects.push(Effect::Link {
            agent_id,
            pid,
            generation: 0,
        });
    }

    fn reregister_agent(
        &mut self,
        from: &Upid,
        message: msg::ReregisterSlaveMessage,
        now: Instant,
    ) {
        if !self.admit_authenticated(from) {
            return;
        }
        let Some(agent_id) = message.slave.id.as_ref().map(|i| i.value.clone()) else {
            tracing::warn!(pid = %from, "dropping re-registration without an agent id");
            return;
        };
        let total = match Resources::try_from(message.slave.resources.clone()) {
            Ok(total) => total,
            Err(e) => {
                tracing::warn!(%agent_id, "refusing re-registration with invalid resources: {e}");
                return;
            }
        };
        self.counters.agent_reregistrations += 1;
        let reply = msg::SlaveReregisteredMessage {
            slave_id: v1::AgentId {
                value: agent_id.clone(),
            },
            reconciliations: vec![],
            connection: Some(self.connection()),
        };
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            // A known agent reconnecting (agent restart or network blip).
            let old_pid = agent.pid.to_string();
            agent.pid = from.clone();
            agent.connected = true;
            agent.missed_pongs = 0;
            agent.pong_received = true;
            agent.reregistered_time = Some(now_secs());
            agent.link_generation += 1;
            let generation = agent.link_generation;
            let reported: HashSet<(&str, &str)> = message
                .tasks
                .iter()
                .map(|t| (t.framework_id.value.as_str(), t.task_id.value.as_str()))
                .collect();
            let missing: Vec<(String, String)> = agent
                .tasks
                .iter()
                .filter(|k| !reported.contains(k))
                .map(|(f, t)| (f.to_string(), t.to_string()))
                .collect();
            self.agent_by_pid.remove(&old_pid);
            self.agent_by_pid.insert(from.to_string(), agent_id.clone());
            self.allocator.activate_agent(&agent_id);
            tracing::info!(%agent_id, pid = %from, "agent re-registered");
            self.effects.push(Effect::Link {
                agent_id: agent_id.clone(),
                pid: from.clone(),
                generation,
            });
            // Tasks the agent no longer knows are gone.
            for (framework_id, task_id) in missing {
                if self
                    .frameworks
                    .get(&framework_id)
                    .and_then(|f| f.tasks.get(&task_id))
                    .is_some_and(|t| t.state() == TaskState::TaskStaging as i32)
                {
                    // Still in flight to the agent: it reports it once it starts.
                    continue;
                }
                self.lose_task(
                    &framework_id,
                    &task_id,
                    &agent_id,
                    Reason::AgentRestarted,
                    "Task was not reported by the re-registering agent",
                    now,
                );
            }
            for task in message.tasks {
                self.adopt_task(&agent_id, task, &message.frameworks);
            }
            self.send(from, &reply);
            let reported = Resources::new(message.checkpointed_resources).unwrap_or_default();
            if reported != self.checkpointed_resources(&agent_id) {
                tracing::warn!(%agent_id, "re-registered agent's checkpointed resources differ from the registry; telling it the registry's");
                self.tell_checkpointed(&agent_id);
            }
            return;
        }
        // After a master failover, or an agent that was marked unreachable.
        let registered_time = self
            .recovered_agents
            .get(&agent_id)
            .and_then(|a| a.registered_time)
            .unwrap_or_else(now_secs);
        let mut info = message.slave.clone();
        if info.port.is_none() {
            info.port = Some(i32::from(from.port));
        }
        let (total, tell) =
            match self.settle_agent_resources(&agent_id, &total, &message.checkpointed_resources) {
                Ok(settled) => settled,
                Err(e) => {
                    tracing::error!(%agent_id, pid = %from, "refusing re-registration: {e}");
                    return;
                }
            };
        if let Err(e) = self.registry.admit_agent(&info, registered_time) {
            tracing::error!(%agent_id, "failed to re-admit agent to the registry: {e}");
            return;
        }
        self.recovered_agents.remove(&agent_id);
        self.unreachable_agents.remove(&agent_id);
        tracing::info!(%agent_id, pid = %from, tasks = message.tasks.len(), "re-admitted agent");
        // Frameworks first, so the allocator can account their tasks.
        let mut used: Vec<(String, Resources)> = Vec::new();
        for task in &message.tasks {
            self.ensure_framework(&task.framework_id.value, &message.frameworks);
            if is_terminal(task.state) {
                continue;
            }
            if let Ok(resources) = Resources::try_from(task.resources.clone()) {
                match used.iter_mut().find(|(f, _)| *f == task.framework_id.value) {
                    Some((_, sum)) => *sum += resources,
                    None => used.push((task.framework_id.value.clone(), resources)),
                }
            }
        }
        self.add_agent(
            agent_id.clone(),
            info,
            from.clone(),
            message.version.clone(),
            message.agent_capabilities.clone(),
            total,
            &used,
            registered_time,
        );
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.reregistered_time = Some(now_secs());
            for executor in &message.executor_infos {
                if let Some(framework_id) = &executor.framework_id {
                    agent.executors.insert(
                        (
                            framework_id.value.clone(),
                            executor.executor_id.value.clone(),
                        ),
                        executor.clone(),
                    );
                }
            }
        }
        for executor in &message.executor_infos {
            if let Some(framework_id) = &executor.framework_id {
                self.ensure_framework(&framework_id.value, &message.frameworks);
                if let Some(f) = self.frameworks.get_mut(&framework_id.value) {
                    f.executors.insert(
                        (agent_id.clone(), executor.executor_id.value.clone()),
                        executor.clone(),
                    );
                }
            }
        }
        for task in message.tasks {
            self.adopt_task(&agent_id, task, &message.frameworks);
        }
        self.send(from, &reply);
        if tell {
            self.tell_checkpointed(&agent_id);
        }
    }

    /// Creates a recovered (unsubscribed) framework from what an agent
    /// reports, so its tasks have a home until it resubscribes.
    fn ensure_framework(&mut self, framework_id: &str, reported: &[v1::FrameworkInfo]) {
        if self.frameworks.contains_key(framework_id) || self.is_completed_framework(framework_id) {
            return;
        }
        let info = reported
            .iter()
            .find(|f| f.id.as_ref().is_some_and(|i| i.value == framework_id))
            .cloned()
            .unwrap_or_else(|| v1::FrameworkInfo {
                id: Some(v1::FrameworkId {
                    value: framework_id.to_string(),
                }),
                ..Default::default()
            });
        // Its owner until its scheduler resubscribes: the principal the
        // FrameworkInfo carries, which the master that accepted the
        // subscription set to (or checked against) the authenticated one
        // before giving it to this (authenticated) agent.
        let principal = info.principal.clone();
        let mut framework = Framework::new(framework_id.to_string(), info, now_secs());
        framework.principal = principal;
        framework.recovered = true;
        framework.generation = 1;
        let roles = framework.roles.clone();
        self.allocator
            .add_framework(framework_id, &roles, &[], false);
        tracing::info!(%framework_id, "recovered framework from a re-registering agent");
        self.frameworks.insert(framework_id.to_string(), framework);
        self.emit_framework(framework_id, true);
    }

    fn adopt_task(&mut self, agent_id: &str, mut task: v1::Task, frameworks: &[v1::FrameworkInfo]) {
        let framework_id = task.framework_id.value.clone();
        let task_id = task.task_id.value.clone();
        self.ensure_framework(&framework_id, frameworks);
        let Some(framework) = self.frameworks.get_mut(&framework_id) else {
            return;
        };
        if framework.tasks.contains_key(&task_id) {
            if let (Some(known), true) = (
                framework.tasks.get_mut(&task_id),
                task.state != TaskState::TaskStaging as i32,
            ) {
                known.set_state(task.state);
            }
            return;
        }
        task.agent_id = v1::AgentId {
            value: agent_id.to_string(),
        };
        framework.unreachable_tasks.remove(&task_id);
        framework
            .tasks
            .insert(task_id.clone(), TaskRecord::new(task));
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.tasks.insert(&framework_id, task_id);
        }
    }

    fn unregister_agent(
        &mut self,
        from: &Upid,
        message: msg::UnregisterSlaveMessage,
        now: Instant,
    ) {
        let agent_id = message.slave_id.value;
        if self.agents.get(&agent_id).is_some_and(|a| a.pid == *from) {
            tracing::info!(%agent_id, "agent unregistered");
            self.remove_agent(&agent_id, Reason::AgentRemoved, now);
            if let Err(e) = self.registry.remove_agent(&agent_id) {
                tracing::error!(%agent_id, "failed to remove agent from the registry: {e}");
            }
        }
    }

    /// An agent's link broke. Its offers are rescinded; its tasks stay
    /// (they are checkpointed) until it re-registers or is unreachable.
    pub fn agent_exited(&mut self, agent_id: &str, generation: u64, now: Instant) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        if agent.link_generation != generation || !agent.connected {
            return;
        }
        agent.connected = false;
        tracing::warn!(%agent_id, pid = %agent.pid, "agent disconnected");
        let offers: Vec<String> = agent.offers.iter().cloned().collect();
        self.allocator.deactivate_agent(agent_id);
        for offer_id in offers {
            self.remove_offer(&offer_id, true, None, now);
        }
        // Tasks of frameworks that do not checkpoint do not survive an
        // agent restart (Mesos removes them on disconnection).
        let tasks: Vec<(String, String)> = self
            .agents
            .get(agent_id)
            .map(|a| a.tasks.to_vec())
            .unwrap_or_default();
        for (framework_id, task_id) in tasks {
            let checkpoint = self
                .frameworks
                .get(&framework_id)
                .is_some_and(|f| f.info.checkpoint.unwrap_or(false));
            if !checkpoint {
                self.lose_task(
                    &framework_id,
                    &task_id,
                    agent_id,
                    Reason::AgentDisconnected,
                    "Agent disconnected",
                    now,
                );
            }
        }
    }

    /// Sends pings and marks agents that missed too many unreachable.
    pub fn ping_agents(&mut self, now: Instant) {
        let mut unreachable = Vec::new();
        let mut pings = Vec::new();
        for agent in self.agents.values_mut() {
            if !agent.pong_received {
                agent.missed_pongs += 1;
            }
            if agent.missed_pongs >= self.config.max_agent_ping_timeouts {
                unreachable.push(agent.id.clone());
                continue;
            }
            agent.pong_received = false;
            pings.push((agent.observer.clone(), agent.pid.clone(), agent.connected));
        }
        for (observer, pid, connected) in pings {
            self.send_from(&observer, &pid, &msg::PingSlaveMessage { connected });
        }
        for agent_id in unreachable {
            tracing::warn!(%agent_id, "agent missed {} pings; marking it unreachable", self.config.max_agent_ping_timeouts);
            self.counters.agents_unreachable += 1;
            self.unreachable_agents.insert(agent_id.clone(), now_secs());
            self.remove_agent(&agent_id, Reason::AgentRemoved, now);
        }
    }

    /// Removes an agent: offers rescinded, tasks unreachable (for
    /// partition-aware frameworks) or lost.
    fn remove_agent(&mut self, agent_id: &str, reason: Reason, now: Instant) {
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let offers: Vec<String> = agent.offers.iter().cloned().collect();
        let tasks = agent.tasks.to_vec();
        for offer_id in offers {
            self.remove_offer(&offer_id, true, None, now);
        }
        for (framework_id, task_id) in tasks {
            self.lose_task(
                &framework_id,
                &task_id,
                agent_id,
                reason,
                "Agent removed",
                now,
            );
        }
        if let Some(agent) = self.agents.remove(agent_id) {
            self.observers.remove(&agent.observer);
            self.agent_by_pid.remove(&agent.pid.to_string());
            for (framework_id, executor_id) in agent.executors.keys() {
                if let Some(f) = self.frameworks.get_mut(framework_id) {
                    f.executors
                        .remove(&(agent_id.to_string(), executor_id.clone()));
                }
            }
        }
        self.allocator.remove_agent(agent_id);
        self.counters.agent_removals += 1;
        self.emit_agent_removed(agent_id);
    }

    /// A task is gone with its agent: TASK_UNREACHABLE for partition-aware
    /// frameworks (kept as unreachable), TASK_LOST otherwise.
    fn lose_task(
        &mut self,
        framework_id: &str,
        task_id: &str,
        agent_id: &str,
        reason: Reason,
        message: &str,
        now: Instant,
    ) {
        let _ = now;
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.tasks.remove(framework_id, task_id);
        }
        let max = self.config.max_completed_tasks_per_framework;
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(mut record) = framework.tasks.remove(task_id) else {
            return;
        };
        let task = record.task();
        let resources = Resources::try_from(task.resources).ok();
        let partition_aware = has_capability(
            &framework.info,
            v1::framework_info::capability::Type::PartitionAware,
        );
        let state = if partition_aware {
            TaskState::TaskUnreachable
        } else {
            TaskState::TaskLost
        };
        let mut status = master_status(task_id, Some(agent_id), state, reason, message);
        status.executor_id = task.executor_id.clone();
        if partition_aware {
            status.unreachable_time = Some(Box::new(v1::TimeInfo {
                nanoseconds: (now_secs() * 1e9) as i64,
            }));
        }
        record.set_state(state as i32);
        record.push_history(&status);
        framework.send(&update_event(status.clone()));
        if partition_aware {
            framework
                .unreachable_tasks
                .insert(task_id.to_string(), record);
        } else {
            self.counters.tasks_lost += 1;
            framework.complete_task(record, max);
        }
        if let Some(resources) = resources {
            self.allocator
                .recover_resources(framework_id, agent_id, &resources, None, now);
        }
        self.emit_task_updated(framework_id, &status, state as i32);
    }

    /// A status update from an agent: recorded and forwarded.
    fn status_update(&mut self, update: msg::StatusUpdate, now: Instant) {
        self.counters.status_updates += 1;
        let framework_id = update.framework_id.value.clone();
        let mut status = update.status;
        let task_id = status.task_id.value.clone();
        let agent_id = update
            .slave_id
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if status.uuid.is_none() {
            status.uuid = update.uuid.clone();
        }
        if status.agent_id.is_none() && !agent_id.is_empty() {
            status.agent_id = Some(v1::AgentId {
                value: agent_id.clone(),
            });
        }
        let latest_state = update.latest_state.unwrap_or(status.state);
        let Some(framework) = self.frameworks.get_mut(&framework_id) else {
            tracing::warn!(%framework_id, %task_id, "status update for an unknown framework dropped");
            return;
        };
        let mut recovered: Option<Resources> = None;
        let known = framework.tasks.contains_key(&task_id);
        if let Some(task) = framework.tasks.get_mut(&task_id) {
            let was_terminal = is_terminal(task.state());
            task.set_state(latest_state);
            task.set_status_update(status.state, status.uuid.as_deref());
            if task.last_history_state() != Some(status.state) {
                task.push_history(&status);
            }
            if is_terminal(latest_state) && !was_terminal {
                recovered = Resources::try_from(task.resources()).ok();
                match TaskState::try_from(latest_state) {
                    Ok(TaskState::TaskFinished) => self.counters.tasks_finished += 1,
                    Ok(TaskState::TaskFailed) => self.counters.tasks_failed += 1,
                    Ok(TaskState::TaskKilled) => self.counters.tasks_killed += 1,
                    Ok(TaskState::TaskLost) => self.counters.tasks_lost += 1,
                    Ok(TaskState::TaskError) => self.counters.tasks_error += 1,
                    Ok(TaskState::TaskDropped) => self.counters.tasks_dropped += 1,
                    Ok(TaskState::TaskGone) => self.counters.tasks_gone += 1,
                    _ => {}
                }
            }
        }
        tracing::debug!(%framework_id, %task_id, state = ?TaskState::try_from(status.state), "forwarding status update");
        // Dropped if disconnected: the agent retries until acknowledged.
        framework.send(&update_event(status.clone()));
        if let Some(resources) = recovered {
            self.allocator
                .recover_resources(&framework_id, &agent_id, &resources, None, now);
        }
        if known {
            self.emit_task_updated(&framework_id, &status, latest_state);
        }
    }

    fn executor_exited(&mut self, message: msg::ExitedExecutorMessage) {
        let agent_id = message.slave_id.value.clone();
        let framework_id = message.framework_id.value.clone();
        let executor_id = message.executor_id.value.clone();
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent
                .executors
                .remove(&(framework_id.clone(), executor_id.clone()));
        }
        if let Some(framework) = self.frameworks.get_mut(&framework_id) {
            framework
                .executors
                .remove(&(agent_id.clone(), executor_id.clone()));
            framework.send(&Event {
                r#type: Some(event::Type::Failure as i32),
                failure: Some(event::Failure {
                    agent_id: Some(message.slave_id),
                    executor_id: Some(message.executor_id),
                    status: Some(message.status),
                }),
                ..Default::default()
            });
        }
    }

    fn executor_message(&mut self, message: msg::ExecutorToFrameworkMessage) {
        if let Some(framework) = self.frameworks.get(&message.framework_id.value) {
            framework.send(&Event {
                r#type: Some(event::Type::Message as i32),
                message: Some(event::Message {
                    agent_id: message.slave_id,
                    executor_id: message.executor_id,
                    data: message.data,
                }),
                ..Default::default()
            });
        }
    }
}
