//! An agent as the master tracks it.

use std::collections::{HashMap, HashSet};

use mesos_common::resources::Resources;
use mesos_common::Upid;
use mesos_proto::v1::{AgentInfo, ExecutorInfo};

/// A registered agent.
#[derive(Debug)]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Its AgentInfo (with `id`).
    pub info: AgentInfo,
    /// Its libprocess address, `slave(1)@ip:port`.
    pub pid: Upid,
    /// The Mesos version it reported.
    pub version: String,
    /// Capabilities it reported (enum values).
    pub capabilities: Vec<i32>,
    /// Wall-clock seconds of registration.
    pub registered_time: f64,
    /// Wall-clock seconds of the last re-registration.
    pub reregistered_time: Option<f64>,
    /// Whether its connection is up.
    pub connected: bool,
    /// Whether it may receive new tasks (not deactivated by an operator).
    pub active: bool,
    /// Total resources.
    pub total: Resources,
    /// Tasks on it.
    pub tasks: AgentTasks,
    /// Executors on it by (framework id, executor id).
    pub executors: HashMap<(String, String), ExecutorInfo>,
    /// Outstanding offers on it.
    pub offers: HashSet<String>,
    /// The observer process id its pings come from (`slave-observer(N)`).
    pub observer: String,
    /// Pings sent without a pong since.
    pub missed_pongs: u32,
    /// Whether a pong arrived since the last ping.
    pub pong_received: bool,
    /// Increases whenever its connection is replaced, so a stale link exit
    /// can be told from a current one.
    pub link_generation: u64,
}

impl Agent {
    /// The host name it registered with.
    pub fn hostname(&self) -> &str {
        &self.info.hostname
    }
}

/// The tasks on an agent by framework: each framework id is held once, not
/// once per task (tens of thousands of tasks make that matter).
#[derive(Debug, Default)]
pub struct AgentTasks(HashMap<String, HashSet<String>>);

impl AgentTasks {
    /// Adds a task of `framework_id`.
    pub fn insert(&mut self, framework_id: &str, task_id: String) {
        match self.0.get_mut(framework_id) {
            Some(tasks) => {
                tasks.insert(task_id);
            }
            None => {
                self.0
                    .insert(framework_id.to_string(), HashSet::from([task_id]));
            }
        }
    }

    /// Removes a task; whether it was there.
    pub fn remove(&mut self, framework_id: &str, task_id: &str) -> bool {
        let Some(tasks) = self.0.get_mut(framework_id) else {
            return false;
        };
        let removed = tasks.remove(task_id);
        if tasks.is_empty() {
            self.0.remove(framework_id);
        }
        removed
    }

    /// (framework id, task id) of every task.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(f, tasks)| tasks.iter().map(move |t| (f.as_str(), t.as_str())))
    }

    /// Owned (framework id, task id) pairs, for loops that change the master.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    }

    /// Whether it runs no task.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
