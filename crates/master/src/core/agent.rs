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
    /// Tasks on it: (framework id, task id).
    pub tasks: HashSet<(String, String)>,
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
