//! The agent's side of the isolators (see [`crate::isolators`]): what it tells
//! them about each container (its resources, its executor's pid), and what it
//! does when one reports a limitation: destroy the container, then fail its
//! tasks with `REASON_CONTAINER_LIMITATION` and the limited resources. The
//! isolators themselves decide nothing about tasks.

use mesos_proto::v1;

use super::{Agent, Executor, ExecutorState, Input};
use crate::isolators::{ContainerConfig, ContainerLaunchInfo, ContainerLimitation, ContainerState};
use crate::status_update_manager::is_terminal;

/// The container's resources: its executor's and its live tasks'.
pub(crate) fn container_resources(executor: &Executor) -> Vec<v1::Resource> {
    executor
        .info
        .resources
        .iter()
        .chain(
            executor
                .tasks
                .values()
                .filter(|t| !is_terminal(t.task.state))
                .flat_map(|t| t.task.resources.iter()),
        )
        .cloned()
        .collect()
}

impl Agent {
    /// Prepares the isolators for the executor's container, before launch.
    pub(crate) fn prepare_isolation(
        &self,
        framework_id: &str,
        executor_id: &str,
    ) -> Result<ContainerLaunchInfo, String> {
        let executor = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
            .ok_or("executor is gone")?;
        // A command task's ContainerInfo is its executor's (as in Mesos).
        let container_info = executor.info.container.clone().or_else(|| {
            (executor.kind == super::ExecutorKind::Command)
                .then(|| {
                    executor
                        .tasks
                        .values()
                        .find_map(|t| t.info.as_ref()?.container.clone())
                })
                .flatten()
        });
        let config = ContainerConfig {
            container_id: executor.container_id.clone(),
            resources: container_resources(executor),
            container_info,
            user: None,
        };
        self.isolators
            .prepare(&config)
            .map_err(|e| format!("Failed to prepare isolation: {e}"))
    }

    /// The executor runs as `pid`: isolate it and watch for limitations.
    pub(crate) fn start_isolation(
        &self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        pid: u32,
    ) -> Result<(), String> {
        self.isolators
            .isolate(container_id, pid)
            .map_err(|e| format!("Failed to isolate container: {e}"))?;
        self.watch_isolation(framework_id, executor_id, container_id);
        Ok(())
    }

    /// Reports the container's limitations as [`Input::Limitation`].
    fn watch_isolation(&self, framework_id: &str, executor_id: &str, container_id: &str) {
        for watch in self.isolators.watch(container_id) {
            let tx = self.tx.clone();
            let (framework_id, executor_id, container_id) = (
                framework_id.to_string(),
                executor_id.to_string(),
                container_id.to_string(),
            );
            tokio::spawn(async move {
                if let Some(limitation) = watch.await {
                    let _ = tx.send(Input::Limitation {
                        framework_id,
                        executor_id,
                        container_id,
                        limitation,
                    });
                }
            });
        }
    }

    /// Tells the isolators the container's resources changed.
    pub(crate) fn update_isolation(&self, framework_id: &str, executor_id: &str) {
        if let Some(executor) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.executors.get(executor_id))
        {
            self.isolators
                .update(&executor.container_id, &container_resources(executor));
        }
    }

    /// Re-adopts the containers that survived a restart:
    /// `(framework id, executor id, container id, pid)`.
    pub(crate) fn recover_isolation(
        &self,
        live: &[(String, String, String, u32)],
        orphans: &[String],
    ) {
        let mut states = Vec::new();
        for (framework_id, executor_id, container_id, pid) in live {
            let Some(executor) = self
                .frameworks
                .get(framework_id)
                .and_then(|f| f.executors.get(executor_id))
            else {
                continue;
            };
            states.push(ContainerState {
                container_id: container_id.clone(),
                pid: *pid,
                resources: container_resources(executor),
                container_info: executor.info.container.clone(),
            });
        }
        if let Err(e) = self.isolators.recover(&states, orphans) {
            tracing::error!("isolator recovery failed: {e}; recovered containers are not isolated");
            return;
        }
        for (framework_id, executor_id, container_id, _) in live {
            self.watch_isolation(framework_id, executor_id, container_id);
        }
    }

    /// An isolator limited the container: destroy it; its tasks then fail
    /// with the limitation (see `executor_exited`).
    pub(crate) fn container_limited(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        limitation: ContainerLimitation,
    ) {
        // Already handled: found by `check` when a failed update arrived,
        // and now reported again by the watcher.
        if self.limitations.contains_key(container_id) {
            return;
        }
        let Some(executor) = self.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor.container_id != container_id || executor.state == ExecutorState::Terminated {
            return;
        }
        tracing::warn!(
            framework_id,
            executor_id,
            container_id,
            "container limitation: {}; destroying the container",
            limitation.message
        );
        executor.state = ExecutorState::Terminating;
        executor.termination = Some((limitation.reason, limitation.message.clone()));
        let launched = executor.pid.is_some();
        self.limitations
            .insert(container_id.to_string(), limitation);
        if launched {
            self.destroy_container(container_id);
        } else {
            self.executor_exited(framework_id, executor_id, container_id, None);
        }
    }

    /// Forgets the container in the isolators; returns its limitation, if
    /// one ended it, as the tasks' status updates carry it.
    pub(crate) fn cleanup_isolation(
        &mut self,
        container_id: &str,
    ) -> Option<v1::TaskResourceLimitation> {
        self.isolators.cleanup(container_id);
        self.limitations
            .remove(container_id)
            .map(|l| v1::TaskResourceLimitation {
                resources: l.resources,
            })
    }
}
