//! The agent's directory layout, Mesos's (`src/slave/paths.cpp`): sandboxes
//! under `<work_dir>/slaves/...`, checkpointed state under
//! `<work_dir>/meta/slaves/...`. Only path arithmetic lives here.

use std::path::{Path, PathBuf};

/// Path builder rooted at `--work_dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    work_dir: PathBuf,
}

/// Whether `id` may be used as one path component: framework, executor,
/// task and container ids come from the network.
pub fn is_safe_component(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 255
        && !id.contains('/')
        && !id.contains('\0')
}

impl Layout {
    /// A layout under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            work_dir: work_dir.into(),
        }
    }

    /// `--work_dir`.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// `<work_dir>/slaves`: the only tree `/files` serves.
    pub fn sandboxes_root(&self) -> PathBuf {
        self.work_dir.join("slaves")
    }

    /// `<work_dir>/meta`.
    pub fn meta_root(&self) -> PathBuf {
        self.work_dir.join("meta")
    }

    /// `<work_dir>/meta/slaves/latest`: symlink to the current agent's
    /// meta directory.
    pub fn latest_agent(&self) -> PathBuf {
        self.meta_root().join("slaves").join("latest")
    }

    /// `<work_dir>/meta/slaves/<agent_id>`.
    pub fn agent_meta(&self, agent_id: &str) -> PathBuf {
        self.meta_root().join("slaves").join(agent_id)
    }

    /// `<work_dir>/meta/slaves/<agent_id>/slave.info`.
    pub fn agent_info(&self, agent_id: &str) -> PathBuf {
        self.agent_meta(agent_id).join("slave.info")
    }

    /// `.../meta/slaves/<agent_id>/frameworks`.
    pub fn frameworks_meta(&self, agent_id: &str) -> PathBuf {
        self.agent_meta(agent_id).join("frameworks")
    }

    /// `.../frameworks/<framework_id>` (meta).
    pub fn framework_meta(&self, agent_id: &str, framework_id: &str) -> PathBuf {
        self.frameworks_meta(agent_id).join(framework_id)
    }

    /// `.../frameworks/<framework_id>/framework.info`.
    pub fn framework_info(&self, agent_id: &str, framework_id: &str) -> PathBuf {
        self.framework_meta(agent_id, framework_id)
            .join("framework.info")
    }

    /// `.../executors/<executor_id>` (meta).
    pub fn executor_meta(&self, agent_id: &str, framework_id: &str, executor_id: &str) -> PathBuf {
        self.framework_meta(agent_id, framework_id)
            .join("executors")
            .join(executor_id)
    }

    /// `.../executors/<executor_id>/executor.info`.
    pub fn executor_info(&self, agent_id: &str, framework_id: &str, executor_id: &str) -> PathBuf {
        self.executor_meta(agent_id, framework_id, executor_id)
            .join("executor.info")
    }

    /// `.../executors/<executor_id>/runs/<container_id>` (meta).
    pub fn run_meta(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> PathBuf {
        self.executor_meta(agent_id, framework_id, executor_id)
            .join("runs")
            .join(container_id)
    }

    /// `.../runs/<container_id>/pids/forked.pid`.
    pub fn forked_pid(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> PathBuf {
        self.run_meta(agent_id, framework_id, executor_id, container_id)
            .join("pids")
            .join("forked.pid")
    }

    /// `.../runs/<container_id>/executor.sentinel`: present once the run
    /// has terminated.
    pub fn sentinel(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> PathBuf {
        self.run_meta(agent_id, framework_id, executor_id, container_id)
            .join("executor.sentinel")
    }

    /// `.../runs/<container_id>/tasks/<task_id>` (meta).
    pub fn task_meta(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        task_id: &str,
    ) -> PathBuf {
        self.run_meta(agent_id, framework_id, executor_id, container_id)
            .join("tasks")
            .join(task_id)
    }

    /// `.../tasks/<task_id>/task.info`.
    pub fn task_info(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        task_id: &str,
    ) -> PathBuf {
        self.task_meta(agent_id, framework_id, executor_id, container_id, task_id)
            .join("task.info")
    }

    /// `.../tasks/<task_id>/task.updates`.
    pub fn task_updates(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
        task_id: &str,
    ) -> PathBuf {
        self.task_meta(agent_id, framework_id, executor_id, container_id, task_id)
            .join("task.updates")
    }

    /// The sandbox:
    /// `<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`.
    pub fn sandbox(
        &self,
        agent_id: &str,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> PathBuf {
        self.sandbox_runs(agent_id, framework_id, executor_id)
            .join(container_id)
    }

    /// `<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs`.
    pub fn sandbox_runs(&self, agent_id: &str, framework_id: &str, executor_id: &str) -> PathBuf {
        self.sandboxes_root()
            .join(agent_id)
            .join("frameworks")
            .join(framework_id)
            .join("executors")
            .join(executor_id)
            .join("runs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_mesos() {
        let l = Layout::new("/w");
        assert_eq!(
            l.sandbox("S1", "F1", "E1", "C1"),
            PathBuf::from("/w/slaves/S1/frameworks/F1/executors/E1/runs/C1")
        );
        assert_eq!(
            l.task_updates("S1", "F1", "E1", "C1", "T1"),
            PathBuf::from(
                "/w/meta/slaves/S1/frameworks/F1/executors/E1/runs/C1/tasks/T1/task.updates"
            )
        );
        assert_eq!(l.latest_agent(), PathBuf::from("/w/meta/slaves/latest"));
        assert_eq!(
            l.agent_info("S1"),
            PathBuf::from("/w/meta/slaves/S1/slave.info")
        );
    }

    #[test]
    fn unsafe_ids_are_refused_as_path_components() {
        for bad in ["", ".", "..", "a/b", "x\0y"] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
        assert!(is_safe_component("task-1.2_x"));
        assert!(is_safe_component("..."));
    }
}
