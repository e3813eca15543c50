//! Recovery after an agent restart (`--recover=reconnect`): the agent id,
//! frameworks, executor runs (container id, executor pid) and tasks are read
//! back from `<work_dir>/meta`, every task's status update log is replayed
//! into the status update manager, live executors are re-adopted and given
//! `--executor_reregistration_timeout` to re-subscribe, dead ones have
//! their live tasks failed. Then the agent re-registers under its old id.
//! `--recover=cleanup` destroys every checkpointed container and registers
//! as a new agent.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mesos_common::flags::format_duration;
use mesos_proto::internal::StatusUpdateRecord;
use mesos_proto::v1;
use mesos_proto::v1::task_status::Reason;
use prost::Message as _;

use super::registration::Phase;
use super::{
    Agent, Executor, ExecutorKind, ExecutorState, Framework, Input, PendingLaunch, TaskEntry,
};
use crate::checkpoint;
use crate::status_update_manager::StreamId;

fn subdirs(path: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn link_target(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target.file_name()?.to_str().map(String::from)
}

/// Whether a process exists and has not exited (signal 0; EPERM still
/// means it exists; a zombie has exited).
fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    };
    exists && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// One checkpointed executor run.
struct RecoveredRun {
    framework_id: String,
    executor: Executor,
    pid_alive: bool,
}

impl Agent {
    /// Reads checkpoints and re-adopts executors, then starts registering
    /// (at once, or after the re-registration timeout when executors may
    /// re-subscribe).
    pub(crate) async fn recover(&mut self) -> anyhow::Result<()> {
        let cleanup = self.config.flags.recover == "cleanup";
        let Some(agent_id) = link_target(&self.layout.latest_agent()) else {
            tracing::info!("no checkpointed agent; starting fresh");
            self.start_registration(Instant::now());
            return Ok(());
        };
        let recovered_info: Option<v1::AgentInfo> =
            checkpoint::read_message(&self.layout.agent_info(&agent_id))
                .map_err(|e| anyhow::anyhow!("cannot read the checkpointed agent info: {e}"))?;
        if recovered_info.is_none() {
            tracing::warn!(%agent_id, "checkpointed agent has no slave.info; starting fresh");
            self.start_registration(Instant::now());
            return Ok(());
        }
        let runs = self.read_runs(&agent_id);
        let alive_runs: Vec<(String, u32)> = runs
            .iter()
            .filter(|r| r.pid_alive)
            .filter_map(|r| r.executor.pid.map(|p| (r.executor.container_id.clone(), p)))
            .collect();
        let orphans = self
            .launcher
            .recover(&alive_runs)
            .map_err(|e| anyhow::anyhow!("launcher recovery failed: {e}"))?;
        for orphan in orphans.clone() {
            tracing::warn!(container_id = %orphan, "destroying orphan container");
            if let Err(e) = self.launcher.destroy(&orphan).await {
                tracing::warn!(container_id = %orphan, "cannot destroy orphan container: {e}");
            }
        }
        if cleanup {
            tracing::warn!(%agent_id, containers = alive_runs.len(), "--recover=cleanup: destroying every checkpointed container and registering as a new agent");
            for (container_id, _) in &alive_runs {
                if let Err(e) = self.launcher.destroy(container_id).await {
                    tracing::warn!(%container_id, "cannot destroy container: {e}");
                }
            }
            let latest = self.layout.latest_agent();
            if let Err(e) = std::fs::remove_file(&latest) {
                tracing::warn!(path = %latest.display(), "cannot remove: {e}");
            }
            self.start_registration(Instant::now());
            return Ok(());
        }
        tracing::info!(%agent_id, executors = runs.len(), live = alive_runs.len(), "recovering checkpointed state");
        self.info.id = Some(v1::AgentId {
            value: agent_id.clone(),
        });
        self.recover_resources(&agent_id)?;
        self.resources_json = mesos_common::resources::to_state_json(&self.total_resources());
        self.checkpoint_agent();
        let mut dead = Vec::new();
        let mut terminated = Vec::new();
        let mut waiting = 0;
        let mut live = Vec::new();
        for run in runs {
            let framework_id = run.framework_id.clone();
            let executor_id = run.executor.id.clone();
            let container_id = run.executor.container_id.clone();
            match (run.executor.state, run.pid_alive, run.executor.pid) {
                (ExecutorState::Terminated, _, _) => {
                    terminated.push((framework_id.clone(), executor_id.clone()))
                }
                (_, true, Some(pid)) => {
                    waiting += 1;
                    self.watch_executor(&framework_id, &executor_id, &container_id, pid);
                    live.push((framework_id.clone(), executor_id.clone(), container_id, pid));
                }
                _ => dead.push((framework_id.clone(), executor_id.clone(), container_id)),
            }
            if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                framework.executors.insert(executor_id, run.executor);
            }
        }
        self.recover_isolation(&live, &orphans);
        for (framework_id, executor_id, container_id) in dead {
            tracing::warn!(%framework_id, %executor_id, "executor died while the agent was down");
            self.executor_exited(&framework_id, &executor_id, &container_id, None);
        }
        for (framework_id, executor_id) in terminated {
            self.check_executor_completed(&framework_id, &executor_id);
        }
        let empty: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.executors.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for framework_id in empty {
            self.frameworks.remove(&framework_id);
        }
        if waiting > 0 {
            tracing::info!(executors = waiting, timeout = %format_duration(self.config.flags.executor_reregistration_timeout),
                "waiting for executors to re-subscribe");
            self.schedule(
                self.config.flags.executor_reregistration_timeout,
                Input::ReregistrationTimeout,
            );
        } else {
            self.start_registration(Instant::now());
        }
        Ok(())
    }

    fn read_runs(&mut self, agent_id: &str) -> Vec<RecoveredRun> {
        let mut runs = Vec::new();
        for framework_id in subdirs(&self.layout.frameworks_meta(agent_id)) {
            let info: Option<v1::FrameworkInfo> = match checkpoint::read_message(
                &self.layout.framework_info(agent_id, &framework_id),
            ) {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(%framework_id, "skipping framework with unreadable checkpoint: {e}");
                    continue;
                }
            };
            let Some(info) = info else { continue };
            let pid = checkpoint::read_text(
                &self
                    .layout
                    .framework_meta(agent_id, &framework_id)
                    .join("framework.pid"),
            )
            .ok()
            .flatten();
            self.frameworks.insert(
                framework_id.clone(),
                Framework {
                    id: framework_id.clone(),
                    info,
                    pid,
                    terminating: false,
                    executors: Default::default(),
                    completed_executors: Default::default(),
                },
            );
            let executors_dir = self
                .layout
                .framework_meta(agent_id, &framework_id)
                .join("executors");
            for executor_id in subdirs(&executors_dir) {
                match self.read_run(agent_id, &framework_id, &executor_id) {
                    Ok(Some(run)) => runs.push(run),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(%framework_id, %executor_id, "skipping executor with unreadable checkpoint: {e}")
                    }
                }
            }
        }
        runs
    }

    fn read_run(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
    ) -> anyhow::Result<Option<RecoveredRun>> {
        let Some(info) = checkpoint::read_message::<v1::ExecutorInfo>(&self.layout.executor_info(
            agent_id,
            framework_id,
            executor_id,
        ))?
        else {
            return Ok(None);
        };
        let runs_dir = self
            .layout
            .executor_meta(agent_id, framework_id, executor_id)
            .join("runs");
        let Some(container_id) = link_target(&runs_dir.join("latest")) else {
            return Ok(None);
        };
        let run_dir = self
            .layout
            .run_meta(agent_id, framework_id, executor_id, &container_id);
        let kind = match checkpoint::read_text(&run_dir.join("kind"))?
            .as_deref()
            .map(str::trim)
        {
            Some("command") => ExecutorKind::Command,
            Some("default") => ExecutorKind::Default,
            _ => ExecutorKind::Custom,
        };
        let pid = checkpoint::read_text(&self.layout.forked_pid(
            agent_id,
            framework_id,
            executor_id,
            &container_id,
        ))?
        .and_then(|t| t.trim().parse::<u32>().ok());
        let sentinel = self
            .layout
            .sentinel(agent_id, framework_id, executor_id, &container_id)
            .exists();
        let pid_alive = !sentinel && pid.is_some_and(alive);
        let mut executor = Executor {
            id: executor_id.to_string(),
            info,
            kind,
            container_id: container_id.clone(),
            directory: self
                .layout
                .sandbox(agent_id, framework_id, executor_id, &container_id),
            state: if sentinel {
                ExecutorState::Terminated
            } else {
                ExecutorState::Running
            },
            pid,
            subscriber: None,
            tasks: Default::default(),
            pending_launches: Vec::new(),
            completed_tasks: Default::default(),
            killed: Default::default(),
            termination: None,
            recovered: pid_alive,
        };
        let mut queued = Vec::new();
        for task_id in subdirs(&run_dir.join("tasks")) {
            let task_dir = run_dir.join("tasks").join(&task_id);
            let Some(mut task) = checkpoint::read_message::<v1::Task>(&task_dir.join("task.info"))?
            else {
                continue;
            };
            let task_info =
                checkpoint::read_message::<v1::TaskInfo>(&task_dir.join("task.taskinfo"))?;
            let updates_path: PathBuf = task_dir.join("task.updates");
            let log = checkpoint::read_records(&updates_path)?;
            if log.truncated_bytes > 0 {
                tracing::warn!(path = %updates_path.display(), bytes = log.truncated_bytes, "removed a torn record at the end of a status update log");
            }
            let mut records = Vec::new();
            for raw in &log.records {
                match StatusUpdateRecord::decode(raw.as_ref()) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        tracing::warn!(path = %updates_path.display(), "ignoring the rest of an undecodable status update log: {e}");
                        break;
                    }
                }
            }
            for record in &records {
                if let Some(update) = &record.update {
                    if !crate::status_update_manager::is_terminal(task.state) {
                        task.state = update.status.state;
                    }
                    let mut status = update.status.clone();
                    status.data = None;
                    task.statuses.push(status);
                }
            }
            let stream = StreamId {
                framework_id: framework_id.to_string(),
                task_id: task_id.clone(),
            };
            if let Err(e) = self.sum.replay(
                stream,
                Some(executor_id.to_string()),
                Some(updates_path),
                &records,
            ) {
                tracing::warn!(%task_id, "cannot replay status updates: {e}");
            }
            let is_queued = records.is_empty() && task_info.is_some();
            if is_queued {
                queued.push(task_id.clone());
            }
            executor.tasks.insert(
                task_id,
                TaskEntry {
                    task,
                    info: task_info,
                    queued: is_queued,
                },
            );
        }
        if !queued.is_empty() {
            executor.pending_launches = if kind == ExecutorKind::Default {
                vec![PendingLaunch::Group(queued)]
            } else {
                queued.into_iter().map(PendingLaunch::Task).collect()
            };
        }
        Ok(Some(RecoveredRun {
            framework_id: framework_id.to_string(),
            executor,
            pid_alive,
        }))
    }

    /// Recovered executors that did not re-subscribe in time are destroyed;
    /// then the agent re-registers.
    pub(crate) fn reregistration_timeout(&mut self) {
        let timeout = self.config.flags.executor_reregistration_timeout;
        let mut stale = Vec::new();
        for framework in self.frameworks.values_mut() {
            for executor in framework.executors.values_mut() {
                if executor.recovered && executor.state != ExecutorState::Terminated {
                    executor.recovered = false;
                    executor.state = ExecutorState::Terminating;
                    executor.termination = Some((
                        Reason::ExecutorReregistrationTimeout,
                        format!(
                            "Executor did not re-register within {}",
                            format_duration(timeout)
                        ),
                    ));
                    stale.push((
                        framework.id.clone(),
                        executor.id.clone(),
                        executor.container_id.clone(),
                    ));
                }
            }
        }
        for (framework_id, executor_id, container_id) in stale {
            tracing::warn!(%framework_id, %executor_id, "executor did not re-subscribe after recovery; destroying its container");
            self.destroy_container(&container_id);
        }
        self.finish_recovery();
    }

    /// Starts registering once no recovered executor is still awaited.
    pub(crate) fn finish_recovery(&mut self) {
        if self.registration.phase != Phase::Recovering {
            return;
        }
        let awaiting = self
            .frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .any(|e| e.recovered && e.state != ExecutorState::Terminated);
        if !awaiting {
            tracing::info!("finished recovery");
            self.start_registration(Instant::now());
        }
    }
}
