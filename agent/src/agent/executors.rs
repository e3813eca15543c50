//! Tasks, executors and their containers: launching runs, the executor API
//! (subscribe, updates, messages), kills and shutdowns, executor exits, and
//! the path every status update takes through the status update manager.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use mesos_common::flags::format_duration;
use mesos_common::http::{ContentType, HttpError};
use mesos_proto::internal as m;
use mesos_proto::v1;
use mesos_proto::v1::executor as exec;
use mesos_proto::v1::task_status::{Reason, Source};
use mesos_proto::v1::TaskState;
use prost::Message as _;

use super::{
    fatal_checkpoint, now_secs, trim_completed, Agent, Executor, ExecutorKind, ExecutorReply,
    ExecutorState, Framework, Input, PendingLaunch, StreamGuard, Subscriber, TaskEntry,
    COMPLETED_EXECUTORS, COMPLETED_FRAMEWORKS, COMPLETED_TASKS,
};
use crate::checkpoint;
use crate::launcher::LaunchSpec;
use crate::paths::is_safe_component;
use crate::status_update_manager::{is_terminal, AckOutcome, Effect, StreamId, UpdateOutcome};

/// Interval of HEARTBEAT events to executors (`DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL`).
const EXECUTOR_HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// CPUs and memory (MB) added for the built-in command executor itself.
const EXECUTOR_CPUS: f64 = 0.1;
const EXECUTOR_MEM_MB: f64 = 32.0;

/// Whether the framework understands TASK_DROPPED and friends.
pub(crate) fn is_partition_aware(info: &v1::FrameworkInfo) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(v1::framework_info::capability::Type::PartitionAware as i32))
}

fn event(kind: exec::event::Type) -> exec::Event {
    exec::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn scalar(name: &str, value: f64, like: Option<&v1::Resource>) -> v1::Resource {
    v1::Resource {
        name: name.to_string(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        allocation_info: like.and_then(|r| r.allocation_info.clone()),
        ..Default::default()
    }
}

/// Sum of a scalar resource (the launch limits: `isolators::cgroups::launch_limits`).
#[cfg(test)]
pub(crate) fn scalar_sum<'a>(
    resources: impl IntoIterator<Item = &'a v1::Resource>,
    name: &str,
) -> Option<f64> {
    let mut total = None;
    for r in resources {
        if r.name == name {
            *total.get_or_insert(0.0) += r.scalar.as_ref().map_or(0.0, |s| s.value);
        }
    }
    total
}

/// The executor Mesos generates for a `command` task.
pub(crate) fn command_executor_info(
    framework_id: &str,
    task: &v1::TaskInfo,
    launcher_dir: &std::path::Path,
) -> v1::ExecutorInfo {
    let command = task.command.clone().unwrap_or_default();
    let shown = if command.shell() {
        match &command.value {
            None => "(Command: NO COMMAND)".to_string(),
            Some(value) if value.chars().count() > 15 => {
                format!(
                    "(Command: sh -c '{}...')",
                    value.chars().take(12).collect::<String>()
                )
            }
            Some(value) => format!("(Command: sh -c '{value}')"),
        }
    } else {
        match &command.value {
            None => "(Command: NO EXECUTABLE)".to_string(),
            Some(value) => {
                let mut args = vec![value.clone()];
                args.extend(command.arguments.iter().skip(1).cloned());
                format!("(Command: [{}])", args.join(", "))
            }
        }
    };
    let program = launcher_dir.join("mesos-executor");
    let like = task.resources.first();
    v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId {
            value: task.task_id.value.clone(),
        },
        framework_id: Some(v1::FrameworkId {
            value: framework_id.to_string(),
        }),
        command: Some(v1::CommandInfo {
            shell: Some(false),
            value: Some(program.display().to_string()),
            arguments: vec![
                "mesos-executor".into(),
                format!("--launcher_dir={}", launcher_dir.display()),
            ],
            user: command.user.clone(),
            ..Default::default()
        }),
        resources: vec![
            scalar("cpus", EXECUTOR_CPUS, like),
            scalar("mem", EXECUTOR_MEM_MB, like),
        ],
        name: Some(format!(
            "Command Executor (Task: {}) {shown}",
            task.task_id.value
        )),
        source: Some(task.task_id.value.clone()),
        labels: task.labels.clone(),
        ..Default::default()
    }
}

fn task_from_info(
    info: &v1::TaskInfo,
    framework_id: &str,
    executor_id: Option<&str>,
    agent_id: &str,
    user: Option<String>,
) -> v1::Task {
    v1::Task {
        name: info.name.clone(),
        task_id: info.task_id.clone(),
        framework_id: v1::FrameworkId {
            value: framework_id.to_string(),
        },
        executor_id: executor_id.map(|e| v1::ExecutorId {
            value: e.to_string(),
        }),
        agent_id: v1::AgentId {
            value: agent_id.to_string(),
        },
        state: TaskState::TaskStaging as i32,
        resources: info.resources.clone(),
        statuses: Vec::new(),
        status_update_state: None,
        status_update_uuid: None,
        labels: info.labels.clone(),
        discovery: info.discovery.clone().map(Box::new),
        container: info.container.clone().map(Box::new),
        health_check: info.health_check.clone().map(Box::new),
        kill_policy: info.kill_policy.map(Box::new),
        user,
        limits: info.limits.clone(),
    }
}

/// The environment executors start with: the agent's own minus anything
/// that configures Mesos or libprocess (flags and secrets such as
/// credential or TLS key paths must not leak into tasks).
fn inherited_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| !k.starts_with("MESOS_") && !k.starts_with("LIBPROCESS_"))
        .collect()
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    let value = value.into();
    if let Some(slot) = env.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
    } else {
        env.push((key.to_string(), value));
    }
}

/// Applies a CommandInfo's plain variables (secrets are not supported and
/// are skipped with a warning).
pub(crate) fn apply_environment(
    env: &mut Vec<(String, String)>,
    environment: Option<&v1::Environment>,
) {
    let Some(environment) = environment else {
        return;
    };
    for variable in &environment.variables {
        if variable.secret.is_some() {
            tracing::warn!(name = %variable.name, "secret environment variables are not supported; skipping");
            continue;
        }
        set_env(
            env,
            &variable.name,
            variable.value.clone().unwrap_or_default(),
        );
    }
}

impl Agent {
    fn framework_mut(&mut self, framework_id: &str) -> Option<&mut Framework> {
        self.frameworks.get_mut(framework_id)
    }

    pub(crate) fn executor_mut(
        &mut self,
        framework_id: &str,
        executor_id: &str,
    ) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework_id)?
            .executors
            .get_mut(executor_id)
    }

    fn executor_of_task(&self, framework_id: &str, task_id: &str) -> Option<String> {
        self.frameworks
            .get(framework_id)?
            .executors
            .values()
            .find(|e| e.tasks.contains_key(task_id))
            .map(|e| e.id.clone())
    }

    /// Creates (and checkpoints) the framework if it is new.
    fn ensure_framework(
        &mut self,
        agent_id: &str,
        mut info: v1::FrameworkInfo,
        framework_id: &str,
        pid: Option<String>,
    ) {
        info.id = Some(v1::FrameworkId {
            value: framework_id.to_string(),
        });
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.info = info;
            if pid.is_some() {
                framework.pid = pid;
            }
        } else {
            tracing::info!(framework_id, "adding framework");
            self.frameworks.insert(
                framework_id.to_string(),
                Framework {
                    id: framework_id.to_string(),
                    info,
                    pid,
                    terminating: false,
                    executors: Default::default(),
                    completed_executors: Default::default(),
                },
            );
        }
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let path = self.layout.framework_info(agent_id, framework_id);
        if let Err(e) = checkpoint::write_message(&path, &framework.info) {
            fatal_checkpoint(&path, &e);
        }
        if let Some(pid) = &framework.pid {
            let path = self
                .layout
                .framework_meta(agent_id, framework_id)
                .join("framework.pid");
            if let Err(e) = checkpoint::write_atomic(&path, pid.as_bytes()) {
                fatal_checkpoint(&path, &e);
            }
        }
    }

    /// Handles `RunTaskMessage`.
    pub(crate) fn run_task(&mut self, msg: m::RunTaskMessage) {
        let Some(agent_id) = self.agent_id() else {
            tracing::warn!("ignoring RunTaskMessage: not registered");
            return;
        };
        let task = msg.task;
        let Some(framework_id) = msg
            .framework
            .id
            .clone()
            .or(msg.framework_id)
            .map(|f| f.value)
        else {
            tracing::warn!(task_id = %task.task_id.value, "ignoring RunTaskMessage without a framework id");
            return;
        };
        let task_id = task.task_id.value.clone();
        tracing::info!(%framework_id, %task_id, "got assigned task");
        if let Some(invalid) = self.invalid_ids(&framework_id, &[&task_id]) {
            self.agent_update(
                &framework_id,
                None,
                task.task_id.clone(),
                TaskState::TaskFailed,
                Reason::TaskInvalid,
                invalid,
            );
            return;
        }
        if self
            .frameworks
            .get(&framework_id)
            .is_some_and(|f| f.terminating)
        {
            tracing::warn!(%framework_id, %task_id, "ignoring task: its framework is shutting down");
            return;
        }
        let (executor_info, kind) = match (&task.executor, &task.command) {
            (Some(executor), None) => {
                let mut executor = executor.clone();
                executor.framework_id = Some(v1::FrameworkId {
                    value: framework_id.clone(),
                });
                (executor, ExecutorKind::Custom)
            }
            (None, Some(_)) => (
                command_executor_info(&framework_id, &task, &self.config.launcher_dir),
                ExecutorKind::Command,
            ),
            _ => {
                self.agent_update(
                    &framework_id,
                    None,
                    task.task_id.clone(),
                    TaskState::TaskFailed,
                    Reason::TaskInvalid,
                    "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present".into(),
                );
                return;
            }
        };
        self.ensure_framework(&agent_id, msg.framework, &framework_id, msg.pid);
        self.launch_tasks(
            &agent_id,
            &framework_id,
            executor_info,
            kind,
            vec![task],
            false,
        );
    }

    /// Handles `RunTaskGroupMessage`.
    pub(crate) fn run_task_group(&mut self, msg: m::RunTaskGroupMessage) {
        let Some(agent_id) = self.agent_id() else {
            tracing::warn!("ignoring RunTaskGroupMessage: not registered");
            return;
        };
        let Some(framework_id) = msg.framework.id.clone().map(|f| f.value) else {
            tracing::warn!("ignoring RunTaskGroupMessage without a framework id");
            return;
        };
        let tasks = msg.task_group.tasks;
        if tasks.is_empty() {
            tracing::warn!(%framework_id, "ignoring an empty task group");
            return;
        }
        tracing::info!(%framework_id, executor_id = %msg.executor.executor_id.value,
            tasks = ?tasks.iter().map(|t| t.task_id.value.as_str()).collect::<Vec<_>>(), "got assigned task group");
        let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.value.as_str()).collect();
        let mut ids_and_executor = ids.clone();
        ids_and_executor.push(&msg.executor.executor_id.value);
        if let Some(invalid) = self.invalid_ids(&framework_id, &ids_and_executor) {
            for task in &tasks {
                self.agent_update(
                    &framework_id,
                    None,
                    task.task_id.clone(),
                    TaskState::TaskFailed,
                    Reason::TaskGroupInvalid,
                    invalid.clone(),
                );
            }
            return;
        }
        if self
            .frameworks
            .get(&framework_id)
            .is_some_and(|f| f.terminating)
        {
            tracing::warn!(%framework_id, "ignoring task group: its framework is shutting down");
            return;
        }
        let mut executor = msg.executor;
        executor.framework_id = Some(v1::FrameworkId {
            value: framework_id.clone(),
        });
        self.ensure_framework(&agent_id, msg.framework, &framework_id, None);
        self.launch_tasks(
            &agent_id,
            &framework_id,
            executor,
            ExecutorKind::Default,
            tasks,
            true,
        );
    }

    /// Names the first id that cannot be used as a directory name, or a task
    /// id already in use.
    fn invalid_ids(&self, framework_id: &str, ids: &[&str]) -> Option<String> {
        if !is_safe_component(framework_id) {
            return Some(format!(
                "Framework id '{framework_id}' cannot be used as a directory name"
            ));
        }
        for id in ids {
            if !is_safe_component(id) {
                return Some(format!("Id '{id}' cannot be used as a directory name"));
            }
        }
        None
    }

    fn launch_tasks(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        executor_info: v1::ExecutorInfo,
        kind: ExecutorKind,
        tasks: Vec<v1::TaskInfo>,
        group: bool,
    ) {
        let executor_id = executor_info.executor_id.value.clone();
        if !is_safe_component(&executor_id) {
            for task in tasks {
                self.agent_update(
                    framework_id,
                    None,
                    task.task_id,
                    TaskState::TaskFailed,
                    Reason::TaskInvalid,
                    format!("Executor id '{executor_id}' cannot be used as a directory name"),
                );
            }
            return;
        }
        for task in &tasks {
            let stream = StreamId {
                framework_id: framework_id.to_string(),
                task_id: task.task_id.value.clone(),
            };
            if self
                .executor_of_task(framework_id, &task.task_id.value)
                .is_some()
                || self.sum.is_terminated(&stream)
            {
                tracing::warn!(framework_id, task_id = %task.task_id.value, "ignoring task: a task with this id already exists on this agent");
                return;
            }
        }
        let existing = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(&executor_id))
            .map(|e| e.state);
        match existing {
            Some(ExecutorState::Terminating | ExecutorState::Terminated) => {
                let partition_aware = self
                    .frameworks
                    .get(framework_id)
                    .is_some_and(|f| is_partition_aware(&f.info));
                let state = if partition_aware {
                    TaskState::TaskDropped
                } else {
                    TaskState::TaskLost
                };
                for task in tasks {
                    self.agent_update(
                        framework_id,
                        None,
                        task.task_id,
                        state,
                        Reason::ExecutorTerminated,
                        "Executor terminating".into(),
                    );
                }
                return;
            }
            Some(_) if self.needs_new_volumes(framework_id, &executor_id, &tasks) => {
                // Volumes are attached when a container starts; a running
                // one cannot gain one, and a task writing to a plain
                // sandbox directory would lose its data unnoticed.
                for task in tasks {
                    self.agent_update(
                        framework_id,
                        None,
                        task.task_id,
                        TaskState::TaskFailed,
                        Reason::ContainerLaunchFailed,
                        format!(
                            "Persistent volumes can only be attached when an executor's container starts; executor '{executor_id}' is already running: launch the task with a new executor"
                        ),
                    );
                }
                return;
            }
            Some(_) => {}
            None => {
                if let Err(message) = self.new_executor(agent_id, framework_id, executor_info, kind)
                {
                    for task in tasks {
                        self.agent_update(
                            framework_id,
                            None,
                            task.task_id,
                            TaskState::TaskFailed,
                            Reason::ContainerLaunchFailed,
                            message.clone(),
                        );
                    }
                    return;
                }
            }
        }
        self.queue_tasks(agent_id, framework_id, &executor_id, tasks, group);
        if existing.is_none() {
            self.launch_container(agent_id, framework_id, &executor_id);
        } else {
            self.update_isolation(framework_id, &executor_id);
            self.deliver_pending(framework_id, &executor_id);
        }
    }

    /// Creates the executor's run: container id, sandbox, checkpoints.
    fn new_executor(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        info: v1::ExecutorInfo,
        kind: ExecutorKind,
    ) -> Result<(), String> {
        let executor_id = info.executor_id.value.clone();
        let container_id = uuid::Uuid::new_v4().to_string();
        let directory = self
            .layout
            .sandbox(agent_id, framework_id, &executor_id, &container_id);
        std::fs::create_dir_all(&directory)
            .map_err(|e| format!("Failed to create sandbox {}: {e}", directory.display()))?;
        // Other users' tasks have no business in this sandbox.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o750))
                .map_err(|e| format!("Failed to restrict sandbox {}: {e}", directory.display()))?;
        }
        let runs = self
            .layout
            .sandbox_runs(agent_id, framework_id, &executor_id);
        if let Err(e) =
            checkpoint::replace_symlink(std::path::Path::new(&container_id), &runs.join("latest"))
        {
            tracing::warn!("cannot update the sandbox 'latest' symlink: {e}");
        }
        let info_path = self
            .layout
            .executor_info(agent_id, framework_id, &executor_id);
        if let Err(e) = checkpoint::write_message(&info_path, &info) {
            fatal_checkpoint(&info_path, &e);
        }
        let meta_runs = self
            .layout
            .executor_meta(agent_id, framework_id, &executor_id)
            .join("runs");
        if let Err(e) = checkpoint::replace_symlink(
            std::path::Path::new(&container_id),
            &meta_runs.join("latest"),
        ) {
            fatal_checkpoint(&meta_runs, &e);
        }
        let kind_path = self
            .layout
            .run_meta(agent_id, framework_id, &executor_id, &container_id)
            .join("kind");
        let kind_text = match kind {
            ExecutorKind::Command => "command",
            ExecutorKind::Default => "default",
            ExecutorKind::Custom => "custom",
        };
        if let Err(e) = checkpoint::write_atomic(&kind_path, kind_text.as_bytes()) {
            fatal_checkpoint(&kind_path, &e);
        }
        tracing::info!(framework_id, executor_id = %executor_id, container_id = %container_id,
            directory = %directory.display(), "launching executor");
        let executor = Executor {
            id: executor_id.clone(),
            info,
            kind,
            container_id,
            directory,
            state: ExecutorState::Registering,
            pid: None,
            subscriber: None,
            tasks: Default::default(),
            pending_launches: Vec::new(),
            completed_tasks: Default::default(),
            killed: BTreeSet::new(),
            termination: None,
            recovered: false,
        };
        let Some(framework) = self.framework_mut(framework_id) else {
            return Err(format!("Framework {framework_id} is gone"));
        };
        framework.executors.insert(executor_id, executor);
        Ok(())
    }

    fn queue_tasks(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        tasks: Vec<v1::TaskInfo>,
        group: bool,
    ) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let framework_user = framework.info.user.clone();
        let Some(executor) = framework.executors.get(executor_id) else {
            return;
        };
        let container_id = executor.container_id.clone();
        let task_executor_id =
            (executor.kind != ExecutorKind::Command).then(|| executor_id.to_string());
        let mut entries = Vec::new();
        for info in tasks {
            let user = info
                .command
                .as_ref()
                .and_then(|c| c.user.clone())
                .unwrap_or_else(|| framework_user.clone());
            let task = task_from_info(
                &info,
                framework_id,
                task_executor_id.as_deref(),
                agent_id,
                Some(user),
            );
            let path = self.layout.task_info(
                agent_id,
                framework_id,
                executor_id,
                &container_id,
                &info.task_id.value,
            );
            if let Err(e) = checkpoint::write_message(&path, &task) {
                fatal_checkpoint(&path, &e);
            }
            let info_path = path.with_file_name("task.taskinfo");
            if let Err(e) = checkpoint::write_message(&info_path, &info) {
                fatal_checkpoint(&info_path, &e);
            }
            entries.push(TaskEntry {
                task,
                info: Some(info),
                queued: true,
            });
        }
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        let ids: Vec<String> = entries
            .iter()
            .map(|e| e.task.task_id.value.clone())
            .collect();
        for entry in entries {
            executor
                .tasks
                .insert(entry.task.task_id.value.clone(), entry);
        }
        if group {
            executor.pending_launches.push(PendingLaunch::Group(ids));
        } else {
            executor
                .pending_launches
                .extend(ids.into_iter().map(PendingLaunch::Task));
        }
    }

    /// Sends queued LAUNCH / LAUNCH_GROUP events to a subscribed executor.
    pub(crate) fn deliver_pending(&mut self, framework_id: &str, executor_id: &str) {
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor.state != ExecutorState::Running {
            return;
        }
        let Some(subscriber) = &executor.subscriber else {
            return;
        };
        let tx = subscriber.tx.clone();
        let launches = std::mem::take(&mut executor.pending_launches);
        let mut remaining = Vec::new();
        for launch in launches {
            if !remaining.is_empty() {
                remaining.push(launch);
                continue;
            }
            let ids: Vec<String> = match &launch {
                PendingLaunch::Task(id) => vec![id.clone()],
                PendingLaunch::Group(ids) => ids.clone(),
            };
            let infos: Vec<v1::TaskInfo> = ids
                .iter()
                .filter_map(|id| executor.tasks.get(id))
                .filter(|e| e.queued)
                .filter_map(|e| e.info.clone())
                .collect();
            if infos.is_empty() {
                continue;
            }
            let event = match launch {
                PendingLaunch::Task(_) => exec::Event {
                    launch: infos
                        .into_iter()
                        .next()
                        .map(|task| exec::event::Launch { task }),
                    ..event(exec::event::Type::Launch)
                },
                PendingLaunch::Group(_) => exec::Event {
                    launch_group: Some(exec::event::LaunchGroup {
                        task_group: v1::TaskGroupInfo { tasks: infos },
                    }),
                    ..event(exec::event::Type::LaunchGroup)
                },
            };
            if tx.send(event).is_err() {
                remaining.push(launch);
                continue;
            }
            for id in &ids {
                if let Some(entry) = executor.tasks.get_mut(id) {
                    entry.queued = false;
                }
            }
        }
        executor.pending_launches = remaining;
    }

    /// Starts the executor process of a new run.
    fn launch_container(&mut self, agent_id: &str, framework_id: &str, executor_id: &str) {
        let spec = match self.launch_spec(agent_id, framework_id, executor_id) {
            Ok(spec) => spec,
            Err(message) => {
                self.launch_failed(framework_id, executor_id, message);
                return;
            }
        };
        let container_id = spec.container_id.clone();
        let mut spec = spec;
        match self.prepare_isolation(framework_id, executor_id) {
            Ok(launch_info) => match launch_info.security() {
                Ok(security) => {
                    spec.security = security;
                    spec.env.extend(launch_info.environment);
                    spec.bind_filter = launch_info.bind_filter;
                    spec.namespaces = launch_info.namespaces;
                }
                Err(message) => {
                    self.launch_failed(
                        framework_id,
                        executor_id,
                        format!("Failed to prepare isolation: {message}"),
                    );
                    return;
                }
            },
            Err(message) => {
                self.launch_failed(framework_id, executor_id, message);
                return;
            }
        }
        let pid = match self.launcher.launch(&spec) {
            Ok(pid) => pid,
            Err(e) => {
                self.launch_failed(
                    framework_id,
                    executor_id,
                    format!("Failed to launch container: {e}"),
                );
                return;
            }
        };
        tracing::info!(framework_id, executor_id, container_id = %container_id, pid, launcher = self.launcher.name(), "executor started");
        let pid_path = self
            .layout
            .forked_pid(agent_id, framework_id, executor_id, &container_id);
        if let Err(e) = checkpoint::write_atomic(&pid_path, pid.to_string().as_bytes()) {
            fatal_checkpoint(&pid_path, &e);
        }
        if let Some(executor) = self.executor_mut(framework_id, executor_id) {
            executor.pid = Some(pid);
        }
        self.watch_executor(framework_id, executor_id, &container_id, pid);
        if let Err(message) = self.start_isolation(framework_id, executor_id, &container_id, pid) {
            tracing::warn!(framework_id, executor_id, "{message}");
            if let Some(executor) = self.executor_mut(framework_id, executor_id) {
                executor.state = ExecutorState::Terminating;
                executor.termination = Some((Reason::ContainerLaunchFailed, message));
            }
            self.destroy_container(&container_id);
            return;
        }
        self.schedule(
            self.config.flags.executor_registration_timeout,
            Input::RegistrationTimeout {
                framework_id: framework_id.to_string(),
                executor_id: executor_id.to_string(),
                container_id,
            },
        );
    }

    /// Reports the exit of `pid` as [`Input::ExecutorExited`].
    pub(crate) fn watch_executor(
        &self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        pid: u32,
    ) {
        let wait = self.launcher.wait(container_id, pid);
        let tx = self.tx.clone();
        let (framework_id, executor_id, container_id) = (
            framework_id.to_string(),
            executor_id.to_string(),
            container_id.to_string(),
        );
        tokio::spawn(async move {
            let status = wait.await;
            let _ = tx.send(Input::ExecutorExited {
                framework_id,
                executor_id,
                container_id,
                status,
            });
        });
    }

    fn launch_failed(&mut self, framework_id: &str, executor_id: &str, message: String) {
        tracing::warn!(framework_id, executor_id, "{message}");
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        executor.termination = Some((Reason::ContainerLaunchFailed, message));
        let container_id = executor.container_id.clone();
        self.executor_exited(framework_id, executor_id, &container_id, None);
    }

    /// Whether `tasks` use a volume the running container of `executor_id`
    /// was not started with.
    fn needs_new_volumes(
        &self,
        framework_id: &str,
        executor_id: &str,
        tasks: &[v1::TaskInfo],
    ) -> bool {
        let Some(executor) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
        else {
            return false;
        };
        let mut attached: std::collections::BTreeSet<(String, String)> =
            super::volumes::container_resources(executor)
                .iter()
                .filter_map(super::volumes::volume_key)
                .collect();
        for task in &executor.completed_tasks {
            attached.extend(task.resources.iter().filter_map(super::volumes::volume_key));
        }
        tasks
            .iter()
            .flat_map(|t| t.resources.iter())
            .filter_map(super::volumes::volume_key)
            .any(|k| !attached.contains(&k))
    }

    fn launch_spec(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
    ) -> Result<LaunchSpec, String> {
        let framework = self
            .frameworks
            .get(framework_id)
            .ok_or("framework is gone")?;
        let executor = framework
            .executors
            .get(executor_id)
            .ok_or("executor is gone")?;
        let flags = &self.config.flags;
        let first_task = executor.tasks.values().next().and_then(|t| t.info.as_ref());
        let command_user = match executor.kind {
            ExecutorKind::Command => first_task
                .and_then(|t| t.command.as_ref())
                .and_then(|c| c.user.clone()),
            _ => executor.info.command.as_ref().and_then(|c| c.user.clone()),
        };
        let user_name = command_user.unwrap_or_else(|| framework.info.user.clone());
        let mut env = inherited_env();
        // The executor talks to this agent: it needs our TLS settings
        // (LIBPROCESS_SSL_*; inherited_env() drops LIBPROCESS_ variables).
        env.extend(mesos_common::tls::Settings::executor_env(std::env::vars()));
        let mut volume_owner = None;
        let user = if flags.switch_user {
            let account = nix::unistd::User::from_name(&user_name)
                .map_err(|e| format!("Failed to launch container: cannot look up user '{user_name}': {e}"))?
                .ok_or_else(|| format!("Failed to launch container: user '{user_name}' does not exist on this agent"))?;
            if nix::unistd::geteuid().is_root() {
                if let Err(e) =
                    nix::unistd::chown(&executor.directory, Some(account.uid), Some(account.gid))
                {
                    return Err(format!(
                        "Failed to chown sandbox {} to '{user_name}': {e}",
                        executor.directory.display()
                    ));
                }
                volume_owner = Some((account.uid, account.gid));
                set_env(&mut env, "HOME", account.dir.display().to_string());
                set_env(&mut env, "USER", user_name.clone());
                set_env(&mut env, "LOGNAME", user_name.clone());
            }
            Some(user_name)
        } else {
            None
        };
        let mounts = self.attach_volumes(
            &super::volumes::container_resources(executor),
            &executor.directory,
            volume_owner,
            self.launcher.name() == "linux",
        )?;
        if !env.iter().any(|(k, _)| k == "PATH") {
            set_env(
                &mut env,
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        }
        let directory = executor.directory.display().to_string();
        let grace = executor
            .info
            .shutdown_grace_period
            .as_ref()
            .and_then(|d| u64::try_from(d.nanoseconds).ok())
            .map(std::time::Duration::from_nanos)
            .unwrap_or(flags.executor_shutdown_grace_period);
        let endpoint = format!("{}:{}", self.self_pid.host, self.self_pid.port);
        set_env(&mut env, "MESOS_FRAMEWORK_ID", framework_id);
        set_env(&mut env, "MESOS_EXECUTOR_ID", executor_id);
        set_env(&mut env, "MESOS_SLAVE_ID", agent_id);
        set_env(&mut env, "MESOS_AGENT_ID", agent_id);
        set_env(&mut env, "MESOS_DIRECTORY", directory.clone());
        set_env(&mut env, "MESOS_SANDBOX", directory);
        set_env(&mut env, "MESOS_SLAVE_PID", self.self_pid.to_string());
        set_env(&mut env, "MESOS_AGENT_ENDPOINT", endpoint);
        set_env(&mut env, "MESOS_CHECKPOINT", "1");
        set_env(
            &mut env,
            "MESOS_RECOVERY_TIMEOUT",
            format_duration(flags.recovery_timeout),
        );
        set_env(
            &mut env,
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            format_duration(flags.executor_reregistration_timeout),
        );
        set_env(
            &mut env,
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            format_duration(grace),
        );
        let (program, args) = match executor.kind {
            ExecutorKind::Command | ExecutorKind::Default => {
                set_env(&mut env, "MESOS_HTTP_COMMAND_EXECUTOR", "1");
                (
                    self.config.launcher_dir.join("mesos-executor"),
                    vec![format!(
                        "--launcher_dir={}",
                        self.config.launcher_dir.display()
                    )],
                )
            }
            ExecutorKind::Custom => {
                let command = executor
                    .info
                    .command
                    .clone()
                    .ok_or("Executor has no command")?;
                apply_environment(&mut env, command.environment.as_ref());
                let value = command
                    .value
                    .clone()
                    .ok_or("Executor command has no value")?;
                if command.shell() {
                    (PathBuf::from("/bin/sh"), vec!["-c".to_string(), value])
                } else {
                    (
                        PathBuf::from(value),
                        command.arguments.iter().skip(1).cloned().collect(),
                    )
                }
            }
        };
        // Set last, so an executor's own environment cannot replace it.
        if let Some(token) = crate::auth::executor_token(
            self.config.jwt_key.as_ref(),
            framework_id,
            executor_id,
            &executor.container_id,
        ) {
            set_env(&mut env, crate::auth::EXECUTOR_TOKEN_ENV, token);
        }
        let all_resources = executor.info.resources.iter().chain(
            executor
                .tasks
                .values()
                .flat_map(|t| t.task.resources.iter()),
        );
        let resources: Vec<v1::Resource> = all_resources.cloned().collect();
        let limits = crate::isolators::cgroups::launch_limits(
            &self.config.isolation,
            self.config.flags.cgroups_enable_cfs,
            &resources,
        );
        Ok(LaunchSpec {
            container_id: executor.container_id.clone(),
            program,
            args,
            env,
            working_dir: executor.directory.clone(),
            stdout: executor.directory.join("stdout"),
            stderr: executor.directory.join("stderr"),
            user,
            limits,
            security: Default::default(),
            namespaces: Default::default(),
            bind_filter: None,
            mounts,
        })
    }

    /// Destroys a container in the background.
    pub(crate) fn destroy_container(&self, container_id: &str) {
        let destroy = self.launcher.destroy(container_id);
        let container_id = container_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = destroy.await {
                tracing::warn!(%container_id, "failed to destroy container: {e}");
            }
        });
    }

    /// An executor process is gone: its live tasks fail (or are killed),
    /// the master is told.
    pub(crate) fn executor_exited(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        status: Option<i32>,
    ) {
        let Some(agent_id) = self.agent_id() else {
            return;
        };
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let terminating = framework.terminating;
        let Some(executor) = framework.executors.get_mut(executor_id) else {
            return;
        };
        if executor.container_id != container_id || executor.state == ExecutorState::Terminated {
            return;
        }
        tracing::info!(
            framework_id,
            executor_id,
            container_id,
            ?status,
            "executor terminated"
        );
        executor.state = ExecutorState::Terminated;
        executor.pid = None;
        executor.subscriber = None;
        executor.pending_launches.clear();
        if !self.limitations.contains_key(container_id) {
            // It may have died of a limitation not polled yet (the OOM killer
            // chose the executor itself): its tasks fail with it.
            if let Some(limitation) = self.isolators.check(container_id) {
                executor.termination = Some((limitation.reason, limitation.message.clone()));
                self.limitations
                    .insert(container_id.to_string(), limitation);
            }
        }
        let (reason, message) = executor.termination.clone().unwrap_or((
            Reason::ExecutorTerminated,
            "Executor terminated".to_string(),
        ));
        let live: Vec<(v1::TaskId, bool)> = executor
            .tasks
            .values()
            .filter(|t| !is_terminal(t.task.state))
            .map(|t| {
                (
                    t.task.task_id.clone(),
                    executor.killed.contains(&t.task.task_id.value),
                )
            })
            .collect();
        let sentinel = self
            .layout
            .sentinel(&agent_id, framework_id, executor_id, container_id);
        if let Err(e) = checkpoint::write_atomic(&sentinel, b"") {
            fatal_checkpoint(&sentinel, &e);
        }
        self.destroy_container(container_id);
        let limitation = self.cleanup_isolation(container_id);
        if !terminating {
            for (task_id, killed) in live {
                if killed && limitation.is_none() {
                    self.agent_update(
                        framework_id,
                        Some(executor_id),
                        task_id,
                        TaskState::TaskKilled,
                        reason,
                        message.clone(),
                    );
                } else {
                    self.agent_update_with_limitation(
                        framework_id,
                        Some(executor_id),
                        task_id,
                        TaskState::TaskFailed,
                        reason,
                        message.clone(),
                        limitation.clone(),
                    );
                }
            }
        }
        let exited = m::ExitedExecutorMessage {
            slave_id: v1::AgentId { value: agent_id },
            framework_id: v1::FrameworkId {
                value: framework_id.to_string(),
            },
            executor_id: v1::ExecutorId {
                value: executor_id.to_string(),
            },
            status: status.unwrap_or(-1),
        };
        if self.registration.is_registered() {
            self.transport.send(&self.self_pid, &self.master, &exited);
        } else {
            self.pending_exited.push(exited);
        }
        self.check_executor_completed(framework_id, executor_id);
        self.finish_recovery();
    }

    /// Moves a terminated executor whose updates are all acknowledged to the
    /// completed list, and the framework too when it has nothing left.
    pub(crate) fn check_executor_completed(&mut self, framework_id: &str, executor_id: &str) {
        let Some(agent_id) = self.agent_id() else {
            return;
        };
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let Some(executor) = framework.executors.get(executor_id) else {
            return;
        };
        if executor.state != ExecutorState::Terminated {
            return;
        }
        let pending = executor.tasks.keys().any(|task_id| {
            self.sum.has_pending(&StreamId {
                framework_id: framework_id.to_string(),
                task_id: task_id.clone(),
            })
        });
        if pending && !framework.terminating {
            return;
        }
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(mut executor) = framework.executors.remove(executor_id) else {
            return;
        };
        for (task_id, entry) in std::mem::take(&mut executor.tasks) {
            self.sum.remove(&StreamId {
                framework_id: framework_id.to_string(),
                task_id,
            });
            executor.completed_tasks.push_back(entry.task);
        }
        trim_completed(&mut executor.completed_tasks, COMPLETED_TASKS);
        tracing::info!(framework_id, executor_id, "executor completed");
        framework.completed_executors.push_back(executor);
        trim_completed(&mut framework.completed_executors, COMPLETED_EXECUTORS);
        let meta = self
            .layout
            .executor_meta(&agent_id, framework_id, executor_id);
        if let Err(e) = std::fs::remove_dir_all(&meta) {
            tracing::warn!(path = %meta.display(), "cannot remove checkpoints of a completed executor: {e}");
        }
        if framework.executors.is_empty() {
            self.remove_framework(&agent_id, framework_id);
        }
    }

    fn remove_framework(&mut self, agent_id: &str, framework_id: &str) {
        let Some(framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        tracing::info!(framework_id, "framework has no executors left; removing it");
        self.sum.remove_framework(framework_id);
        let meta = self.layout.framework_meta(agent_id, framework_id);
        if let Err(e) = std::fs::remove_dir_all(&meta) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %meta.display(), "cannot remove checkpoints of a completed framework: {e}");
            }
        }
        self.completed_frameworks.push_back(framework);
        trim_completed(&mut self.completed_frameworks, COMPLETED_FRAMEWORKS);
        if self.shutting_down && self.frameworks.is_empty() {
            let _ = self.tx.send(Input::Exit);
        }
    }

    /// A status update generated by the agent itself.
    pub(crate) fn agent_update(
        &mut self,
        framework_id: &str,
        executor_id: Option<&str>,
        task_id: v1::TaskId,
        state: TaskState,
        reason: Reason,
        message: String,
    ) {
        self.agent_update_with_limitation(
            framework_id,
            executor_id,
            task_id,
            state,
            reason,
            message,
            None,
        );
    }

    /// [`Agent::agent_update`] naming the resources a container limitation
    /// was about (`TaskStatus.limitation`, for the `REASON_CONTAINER_LIMITATION*` reasons).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn agent_update_with_limitation(
        &mut self,
        framework_id: &str,
        executor_id: Option<&str>,
        task_id: v1::TaskId,
        state: TaskState,
        reason: Reason,
        message: String,
        limitation: Option<v1::TaskResourceLimitation>,
    ) {
        tracing::info!(framework_id, task_id = %task_id.value, state = state.as_str_name(), message = %message, "agent status update");
        let status = v1::TaskStatus {
            task_id,
            state: state as i32,
            message: Some(message),
            source: Some(Source::Agent as i32),
            reason: Some(reason as i32),
            agent_id: self.info.id.clone(),
            executor_id: executor_id.map(|e| v1::ExecutorId {
                value: e.to_string(),
            }),
            timestamp: Some(now_secs()),
            uuid: Some(Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes())),
            limitation: limitation.map(Box::new),
            ..Default::default()
        };
        self.status_update(framework_id, executor_id, status);
    }

    /// Takes a status update (from an executor or the agent): updates the
    /// task, hands it to the status update manager, checkpoints it and
    /// forwards it. Returns whether the executor may be acknowledged.
    pub(crate) fn status_update(
        &mut self,
        framework_id: &str,
        executor_id: Option<&str>,
        status: v1::TaskStatus,
    ) -> bool {
        let agent_id = self.agent_id().unwrap_or_default();
        let task_id = status.task_id.value.clone();
        let checkpoint_path = executor_id
            .and_then(|e| self.frameworks.get(framework_id)?.executors.get(e))
            .filter(|executor| executor.tasks.contains_key(&task_id))
            .map(|executor| (executor.id.clone(), executor.container_id.clone()));
        let checkpoint_path = checkpoint_path.map(|(e, c)| {
            self.layout
                .task_updates(&agent_id, framework_id, &e, &c, &task_id)
        });
        let update = m::StatusUpdate {
            framework_id: v1::FrameworkId {
                value: framework_id.to_string(),
            },
            executor_id: executor_id.map(|e| v1::ExecutorId {
                value: e.to_string(),
            }),
            slave_id: self.info.id.clone(),
            timestamp: status.timestamp.unwrap_or_else(now_secs),
            uuid: status.uuid.clone(),
            status,
            latest_state: None,
        };
        let recorded = update.status.clone();
        match self.sum.update(update, checkpoint_path, Instant::now()) {
            Ok(UpdateOutcome::Accepted(effects)) => {
                // The task reflects the update once it is taken (Mesos's
                // `updateTaskState`); the checkpoint comes first.
                let mut checkpoint_effects = Vec::new();
                let mut rest = Vec::new();
                for effect in effects {
                    match effect {
                        Effect::Checkpoint { .. } => checkpoint_effects.push(effect),
                        Effect::Forward(_) => rest.push(effect),
                    }
                }
                self.apply_effects(checkpoint_effects);
                if let Some(entry) = executor_id
                    .and_then(|e| self.executor_mut(framework_id, e))
                    .and_then(|executor| executor.tasks.get_mut(&task_id))
                {
                    if !is_terminal(entry.task.state) {
                        entry.task.state = recorded.state;
                    }
                    let mut recorded = recorded;
                    recorded.data = None;
                    entry.task.statuses.push(recorded);
                }
                self.apply_effects(rest);
                true
            }
            Ok(UpdateOutcome::Duplicate) => {
                tracing::debug!(framework_id, %task_id, "duplicate status update");
                true
            }
            Err(e) => {
                tracing::warn!(framework_id, %task_id, "status update refused: {e}");
                !matches!(e, crate::status_update_manager::SumError::MissingUuid(_))
            }
        }
    }

    pub(crate) fn apply_effects(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Checkpoint {
                    path: Some(path),
                    record,
                } => {
                    if let Err(e) = checkpoint::append_record(&path, &record.encode_to_vec()) {
                        fatal_checkpoint(&path, &e);
                    }
                }
                Effect::Checkpoint { path: None, .. } => {}
                Effect::Forward(update) => self.forward_update(update),
            }
        }
    }

    /// Sends an update to the master and remembers what was sent last.
    pub(crate) fn forward_update(&mut self, update: m::StatusUpdate) {
        let framework_id = update.framework_id.value.clone();
        let task_id = update.status.task_id.value.clone();
        if let Some(executor_id) = self.executor_of_task(&framework_id, &task_id) {
            if let Some(entry) = self
                .executor_mut(&framework_id, &executor_id)
                .and_then(|e| e.tasks.get_mut(&task_id))
            {
                entry.task.status_update_state = Some(update.status.state);
                entry.task.status_update_uuid = update.uuid.clone();
            }
        }
        tracing::debug!(%framework_id, %task_id, state = ?TaskState::try_from(update.status.state).map(|s| s.as_str_name()),
            "forwarding status update to the master");
        let message = m::StatusUpdateMessage {
            update,
            pid: Some(self.self_pid.to_string()),
        };
        self.transport.send(&self.self_pid, &self.master, &message);
    }

    /// Handles `StatusUpdateAcknowledgementMessage`.
    pub(crate) fn on_status_ack(&mut self, msg: m::StatusUpdateAcknowledgementMessage) {
        let id = StreamId {
            framework_id: msg.framework_id.value.clone(),
            task_id: msg.task_id.value.clone(),
        };
        match self.sum.acknowledge(&id, &msg.uuid, Instant::now()) {
            Ok(AckOutcome::Acknowledged {
                effects, finished, ..
            }) => {
                self.apply_effects(effects);
                if finished {
                    self.task_completed(&id.framework_id, &id.task_id);
                }
            }
            Ok(AckOutcome::Duplicate) => {
                tracing::debug!(framework_id = %id.framework_id, task_id = %id.task_id, "duplicate acknowledgement");
            }
            Err(e) => {
                tracing::warn!(framework_id = %id.framework_id, "ignoring acknowledgement: {e}")
            }
        }
    }

    /// The terminal update of a task was acknowledged.
    fn task_completed(&mut self, framework_id: &str, task_id: &str) {
        let Some(executor_id) = self.executor_of_task(framework_id, task_id) else {
            return;
        };
        if let Some(executor) = self.executor_mut(framework_id, &executor_id) {
            if executor.state != ExecutorState::Terminated {
                if let Some(entry) = executor.tasks.remove(task_id) {
                    executor.completed_tasks.push_back(entry.task);
                    trim_completed(&mut executor.completed_tasks, COMPLETED_TASKS);
                }
            }
        }
        self.check_executor_completed(framework_id, &executor_id);
    }

    /// Handles `KillTaskMessage`.
    pub(crate) fn kill_task(&mut self, msg: m::KillTaskMessage) {
        let framework_id = msg.framework_id.value.clone();
        let task_id = msg.task_id.value.clone();
        tracing::info!(%framework_id, %task_id, "asked to kill task");
        if !self.frameworks.contains_key(&framework_id) {
            tracing::warn!(%framework_id, %task_id, "cannot kill task: no such framework");
            return;
        }
        let Some(executor_id) = self.executor_of_task(&framework_id, &task_id) else {
            let partition_aware = self
                .frameworks
                .get(&framework_id)
                .is_some_and(|f| is_partition_aware(&f.info));
            let state = if partition_aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            self.agent_update(
                &framework_id,
                None,
                msg.task_id,
                state,
                Reason::ExecutorTerminated,
                "Cannot find executor".into(),
            );
            return;
        };
        let Some(executor) = self.executor_mut(&framework_id, &executor_id) else {
            return;
        };
        let Some(entry) = executor.tasks.get(&task_id) else {
            return;
        };
        if is_terminal(entry.task.state) {
            tracing::info!(%framework_id, %task_id, "task is already terminal; nothing to kill");
            return;
        }
        if entry.queued {
            // Not delivered yet: the agent kills it (and its whole group).
            let mut victims = vec![task_id.clone()];
            executor.pending_launches.retain(|launch| match launch {
                PendingLaunch::Task(id) => id != &task_id,
                PendingLaunch::Group(ids) => {
                    if ids.contains(&task_id) {
                        victims = ids.clone();
                        false
                    } else {
                        true
                    }
                }
            });
            for victim in &victims {
                executor.killed.insert(victim.clone());
            }
            let registering = executor.state == ExecutorState::Registering;
            for victim in victims {
                self.agent_update(
                    &framework_id,
                    Some(&executor_id),
                    v1::TaskId { value: victim },
                    TaskState::TaskKilled,
                    Reason::TaskKilledDuringLaunch,
                    "Killed before delivery to the executor".into(),
                );
            }
            let live = self
                .frameworks
                .get(&framework_id)
                .and_then(|f| f.executors.get(&executor_id))
                .is_some_and(|e| e.tasks.values().any(|t| !is_terminal(t.task.state)));
            if registering && !live {
                self.shutdown_executor(
                    &framework_id,
                    &executor_id,
                    "all of its tasks were killed before it subscribed",
                );
            }
            return;
        }
        match executor.state {
            ExecutorState::Running => {
                executor.killed.insert(task_id.clone());
                if let Some(subscriber) = &executor.subscriber {
                    let _ = subscriber.tx.send(exec::Event {
                        kill: Some(exec::event::Kill {
                            task_id: msg.task_id,
                            kill_policy: msg.kill_policy,
                        }),
                        ..event(exec::event::Type::Kill)
                    });
                } else {
                    tracing::info!(%framework_id, %task_id, "executor is disconnected; the kill is sent when it re-subscribes");
                }
            }
            state => {
                tracing::warn!(%framework_id, %task_id, state = state.as_str(), "ignoring kill: executor is not running")
            }
        }
    }

    /// Asks an executor to shut down; its container is destroyed after the
    /// grace period (at once if it never subscribed).
    pub(crate) fn shutdown_executor(&mut self, framework_id: &str, executor_id: &str, why: &str) {
        let grace = self.config.flags.executor_shutdown_grace_period;
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            tracing::warn!(
                framework_id,
                executor_id,
                "cannot shut down unknown executor"
            );
            return;
        };
        let grace = executor
            .info
            .shutdown_grace_period
            .as_ref()
            .and_then(|d| u64::try_from(d.nanoseconds).ok())
            .map(std::time::Duration::from_nanos)
            .unwrap_or(grace);
        let container_id = executor.container_id.clone();
        match executor.state {
            ExecutorState::Registering => {
                tracing::info!(framework_id, executor_id, "shutting down executor that has not subscribed ({why}); destroying its container");
                executor.state = ExecutorState::Terminating;
                if executor.pid.is_some() {
                    self.destroy_container(&container_id);
                } else {
                    self.executor_exited(framework_id, executor_id, &container_id, None);
                }
            }
            ExecutorState::Running => {
                tracing::info!(framework_id, executor_id, "shutting down executor ({why})");
                executor.state = ExecutorState::Terminating;
                if let Some(subscriber) = &executor.subscriber {
                    let _ = subscriber.tx.send(event(exec::event::Type::Shutdown));
                }
                self.schedule(
                    grace,
                    Input::ShutdownTimeout {
                        framework_id: framework_id.to_string(),
                        executor_id: executor_id.to_string(),
                        container_id,
                    },
                );
            }
            ExecutorState::Terminating | ExecutorState::Terminated => {}
        }
    }

    pub(crate) fn shutdown_timeout(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) {
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor.container_id == container_id && executor.state == ExecutorState::Terminating {
            tracing::info!(
                framework_id,
                executor_id,
                "executor did not exit within its grace period; destroying its container"
            );
            self.destroy_container(container_id);
        }
    }

    pub(crate) fn registration_timeout(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) {
        let timeout = self.config.flags.executor_registration_timeout;
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor.container_id != container_id || executor.state != ExecutorState::Registering {
            return;
        }
        tracing::warn!(
            framework_id,
            executor_id,
            "executor did not subscribe within {}; destroying its container",
            format_duration(timeout)
        );
        executor.state = ExecutorState::Terminating;
        executor.termination = Some((
            Reason::ExecutorRegistrationTimeout,
            format!(
                "Executor did not register within {}",
                format_duration(timeout)
            ),
        ));
        if executor.pid.is_some() {
            self.destroy_container(container_id);
        } else {
            self.executor_exited(framework_id, executor_id, container_id, None);
        }
    }

    /// Handles `ShutdownFrameworkMessage`.
    pub(crate) fn shutdown_framework(&mut self, framework_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            tracing::info!(framework_id, "asked to shut down an unknown framework");
            return;
        };
        tracing::info!(framework_id, "shutting down framework");
        framework.terminating = true;
        let executors: Vec<String> = framework.executors.keys().cloned().collect();
        if executors.is_empty() {
            if let Some(agent_id) = self.agent_id() {
                self.remove_framework(&agent_id, framework_id);
            }
            return;
        }
        for executor_id in executors {
            self.shutdown_executor(framework_id, &executor_id, "its framework is shutting down");
            self.check_executor_completed(framework_id, &executor_id);
        }
    }

    /// Handles `FrameworkToExecutorMessage`.
    pub(crate) fn framework_to_executor(&mut self, msg: m::FrameworkToExecutorMessage) {
        let Some(executor) = self.executor_mut(&msg.framework_id.value, &msg.executor_id.value)
        else {
            tracing::warn!(framework_id = %msg.framework_id.value, executor_id = %msg.executor_id.value,
                "dropping framework message for an unknown executor");
            return;
        };
        match (&executor.subscriber, executor.state) {
            (Some(subscriber), ExecutorState::Running) => {
                let _ = subscriber.tx.send(exec::Event {
                    message: Some(exec::event::Message { data: msg.data }),
                    ..event(exec::event::Type::Message)
                });
            }
            _ => {
                tracing::warn!(executor_id = %msg.executor_id.value, "dropping framework message: executor is not subscribed")
            }
        }
    }

    /// Routes an executor API call.
    pub(crate) fn on_executor_call(
        &mut self,
        call: exec::Call,
        accept: ContentType,
        container: Option<String>,
    ) -> ExecutorReply {
        let _ = accept;
        let framework_id = call.framework_id.value.clone();
        let executor_id = call.executor_id.value.clone();
        if call.r#type() == exec::call::Type::Heartbeat {
            return ExecutorReply::Accepted;
        }
        if self.registration.phase == super::registration::Phase::Recovering
            && self.agent_id().is_none()
        {
            return ExecutorReply::Error(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Agent has not finished recovery",
            ));
        }
        if !self.frameworks.contains_key(&framework_id) {
            return ExecutorReply::Error(HttpError::bad_request("Framework cannot be found"));
        }
        let Some(executor) = self.executor_mut(&framework_id, &executor_id) else {
            return ExecutorReply::Error(HttpError::bad_request("Executor cannot be found"));
        };
        if let Some(container) = container {
            if container != executor.container_id {
                tracing::warn!(framework_id, executor_id, token_container = %container, container_id = %executor.container_id,
                    "refusing an executor call: its token is for another run of the executor");
                return ExecutorReply::Error(HttpError::new(
                    StatusCode::FORBIDDEN,
                    "The executor authentication token is for another container of this executor",
                ));
            }
        }
        let state = executor.state;
        match call.r#type() {
            exec::call::Type::Subscribe => self.subscribe(
                &framework_id,
                &executor_id,
                call.subscribe.unwrap_or_default(),
            ),
            exec::call::Type::Update => {
                if state == ExecutorState::Registering {
                    return ExecutorReply::Error(HttpError::new(
                        StatusCode::FORBIDDEN,
                        "Executor is not subscribed",
                    ));
                }
                let Some(update) = call.update else {
                    return ExecutorReply::Error(HttpError::bad_request(
                        "Expecting 'update' to be present",
                    ));
                };
                self.executor_update(&framework_id, &executor_id, update.status);
                ExecutorReply::Accepted
            }
            exec::call::Type::Message => {
                if state == ExecutorState::Registering {
                    return ExecutorReply::Error(HttpError::new(
                        StatusCode::FORBIDDEN,
                        "Executor is not subscribed",
                    ));
                }
                let Some(message) = call.message else {
                    return ExecutorReply::Error(HttpError::bad_request(
                        "Expecting 'message' to be present",
                    ));
                };
                let Some(agent_id) = self.info.id.clone() else {
                    return ExecutorReply::Error(HttpError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Agent is not registered",
                    ));
                };
                let forward = m::ExecutorToFrameworkMessage {
                    slave_id: agent_id,
                    framework_id: call.framework_id,
                    executor_id: call.executor_id,
                    data: message.data,
                };
                self.transport.send(&self.self_pid, &self.master, &forward);
                ExecutorReply::Accepted
            }
            exec::call::Type::Heartbeat => ExecutorReply::Accepted,
            exec::call::Type::Unknown => {
                ExecutorReply::Error(HttpError::bad_request("Expecting 'type' to be present"))
            }
        }
    }

    /// An UPDATE call: checkpointed and forwarded, then ACKNOWLEDGED.
    fn executor_update(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        mut status: v1::TaskStatus,
    ) {
        status.agent_id = self.info.id.clone();
        status.executor_id = Some(v1::ExecutorId {
            value: executor_id.to_string(),
        });
        status.source = Some(Source::Executor as i32);
        if status.timestamp.is_none() {
            status.timestamp = Some(now_secs());
        }
        let task_id = status.task_id.clone();
        let uuid = status.uuid.clone();
        tracing::info!(framework_id, executor_id, task_id = %task_id.value,
            state = ?TaskState::try_from(status.state).map(|s| s.as_str_name()), "status update from executor");
        if is_terminal(status.state) && self.limited_now(framework_id, executor_id, status.state) {
            // The task died of the container's limitation (the OOM killer got
            // it, or the executor killed the rest of its group): its update
            // comes from the agent, with the limitation, once it is destroyed.
            return;
        }
        if self.status_update(framework_id, Some(executor_id), status) {
            if let (Some(uuid), Some(executor)) =
                (uuid, self.executor_mut(framework_id, executor_id))
            {
                if let Some(subscriber) = &executor.subscriber {
                    let _ = subscriber.tx.send(exec::Event {
                        acknowledged: Some(exec::event::Acknowledged { task_id, uuid }),
                        ..event(exec::event::Type::Acknowledged)
                    });
                }
            }
        }
    }

    /// Whether the executor's container is being destroyed for a
    /// limitation; a failed task has it checked now (when there is one, the
    /// container is destroyed: see `container_limited`).
    fn limited_now(&mut self, framework_id: &str, executor_id: &str, state: i32) -> bool {
        let Some(container_id) = self
            .executor_mut(framework_id, executor_id)
            .map(|e| e.container_id.clone())
        else {
            return false;
        };
        if self.limitations.contains_key(&container_id) {
            return true;
        }
        if state != TaskState::TaskFailed as i32 {
            return false;
        }
        match self.isolators.check(&container_id) {
            Some(limitation) => {
                self.container_limited(framework_id, executor_id, &container_id, limitation);
                true
            }
            None => false,
        }
    }

    fn subscribe(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        subscribe: exec::call::Subscribe,
    ) -> ExecutorReply {
        let agent_info = self.info.clone();
        let Some(framework_info) = self.frameworks.get(framework_id).map(|f| f.info.clone()) else {
            return ExecutorReply::Error(HttpError::bad_request("Framework cannot be found"));
        };
        self.subscription_generation += 1;
        let generation = self.subscription_generation;
        let inputs = self.tx.clone();
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return ExecutorReply::Error(HttpError::bad_request("Executor cannot be found"));
        };
        if executor.state == ExecutorState::Terminated {
            return ExecutorReply::Error(HttpError::bad_request("Executor has terminated"));
        }
        tracing::info!(framework_id, executor_id, container_id = %executor.container_id,
            resubscribe = executor.state != ExecutorState::Registering, "executor subscribed");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let guard = StreamGuard {
            tx: inputs,
            framework_id: framework_id.to_string(),
            executor_id: executor_id.to_string(),
            generation,
        };
        // HEARTBEAT events (Mesos: every 30 minutes); a weak sender so the
        // stream still ends when the agent drops the subscription.
        let weak = tx.downgrade();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXECUTOR_HEARTBEAT_INTERVAL).await;
                let Some(tx) = weak.upgrade() else { break };
                if tx.send(event(exec::event::Type::Heartbeat)).is_err() {
                    break;
                }
            }
        });
        if executor.state == ExecutorState::Registering {
            executor.state = ExecutorState::Running;
        }
        executor.recovered = false;
        let mut executor_info = executor.info.clone();
        executor_info.framework_id = Some(v1::FrameworkId {
            value: framework_id.to_string(),
        });
        let _ = tx.send(exec::Event {
            subscribed: Some(exec::event::Subscribed {
                executor_info,
                framework_info,
                agent_info,
                container_id: Some(v1::ContainerId {
                    value: executor.container_id.clone(),
                    parent: None,
                }),
            }),
            ..event(exec::event::Type::Subscribed)
        });
        executor.subscriber = Some(Subscriber {
            tx: tx.clone(),
            generation,
        });
        // Tasks the executor already has are no longer queued here.
        for task in &subscribe.unacknowledged_tasks {
            if let Some(entry) = executor.tasks.get_mut(&task.task_id.value) {
                entry.queued = false;
            }
        }
        let state = executor.state;
        for update in subscribe.unacknowledged_updates {
            self.executor_update(framework_id, executor_id, update.status);
        }
        self.deliver_pending(framework_id, executor_id);
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return ExecutorReply::Subscribed(rx, guard);
        };
        // Kills requested while the executor was away.
        for task_id in executor.killed.clone() {
            let live = executor
                .tasks
                .get(&task_id)
                .is_some_and(|t| !t.queued && !is_terminal(t.task.state));
            if live {
                let _ = tx.send(exec::Event {
                    kill: Some(exec::event::Kill {
                        task_id: v1::TaskId { value: task_id },
                        kill_policy: None,
                    }),
                    ..event(exec::event::Type::Kill)
                });
            }
        }
        if state == ExecutorState::Terminating {
            let _ = tx.send(event(exec::event::Type::Shutdown));
        }
        self.finish_recovery();
        ExecutorReply::Subscribed(rx, guard)
    }

    pub(crate) fn stream_closed(&mut self, framework_id: &str, executor_id: &str, generation: u64) {
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor
            .subscriber
            .as_ref()
            .is_some_and(|s| s.generation == generation)
        {
            tracing::info!(framework_id, executor_id, "executor disconnected");
            executor.subscriber = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(command: v1::CommandInfo) -> v1::TaskInfo {
        v1::TaskInfo {
            name: "t".into(),
            task_id: v1::TaskId {
                value: "task-1".into(),
            },
            agent_id: v1::AgentId { value: "A".into() },
            command: Some(command),
            ..Default::default()
        }
    }

    #[test]
    fn command_executor_is_named_like_mesos() {
        let dir = std::path::Path::new("/opt/mesos");
        let short = command_executor_info(
            "F",
            &task(v1::CommandInfo {
                value: Some("echo hello".into()),
                ..Default::default()
            }),
            dir,
        );
        assert_eq!(
            short.name.as_deref(),
            Some("Command Executor (Task: task-1) (Command: sh -c 'echo hello')")
        );
        assert_eq!(short.executor_id.value, "task-1");
        assert_eq!(short.source.as_deref(), Some("task-1"));
        assert_eq!(scalar_sum(&short.resources, "cpus"), Some(0.1));
        assert_eq!(scalar_sum(&short.resources, "mem"), Some(32.0));
        let long = command_executor_info(
            "F",
            &task(v1::CommandInfo {
                value: Some("sleep 1000; echo done".into()),
                ..Default::default()
            }),
            dir,
        );
        assert_eq!(
            long.name.as_deref(),
            Some("Command Executor (Task: task-1) (Command: sh -c 'sleep 1000; ...')")
        );
        let argv = command_executor_info(
            "F",
            &task(v1::CommandInfo {
                shell: Some(false),
                value: Some("/bin/echo".into()),
                arguments: vec!["echo".into(), "hi".into()],
                ..Default::default()
            }),
            dir,
        );
        assert_eq!(
            argv.name.as_deref(),
            Some("Command Executor (Task: task-1) (Command: [/bin/echo, hi])")
        );
    }

    #[test]
    fn executor_env_drops_agent_configuration() {
        let mut env = vec![("PATH".to_string(), "/bin".to_string())];
        apply_environment(
            &mut env,
            Some(&v1::Environment {
                variables: vec![v1::environment::Variable {
                    name: "PATH".into(),
                    value: Some("/x".into()),
                    ..Default::default()
                }],
            }),
        );
        assert_eq!(env, vec![("PATH".to_string(), "/x".to_string())]);
        assert!(inherited_env()
            .iter()
            .all(|(k, _)| !k.starts_with("MESOS_") && !k.starts_with("LIBPROCESS_")));
    }
}
