//! The agent's `/state` JSON in Mesos's layout (`src/slave/http.cpp`):
//! what the web UI and the CLI read about frameworks, executors, tasks and
//! sandboxes on this agent.

use mesos_common::resources::{to_state_json, Resources};
use mesos_proto::v1;
use serde_json::{json, Map, Value};

use super::registration::agent_capabilities;
use super::{Agent, Executor, Framework};

/// Mesos's `/state` resources object of a resource list.
pub(crate) fn resources_json(resources: &[v1::Resource]) -> Value {
    match Resources::new(resources.to_vec()) {
        Ok(r) => to_state_json(&r),
        Err(_) => json!({}),
    }
}

fn state_name(state: i32) -> &'static str {
    v1::TaskState::try_from(state).map_or("TASK_UNKNOWN", |s| s.as_str_name())
}

fn task_json(task: &v1::Task) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut o = Map::new();
            o.insert("state".into(), json!(state_name(s.state)));
            o.insert("timestamp".into(), json!(s.timestamp.unwrap_or(0.0)));
            if let Some(healthy) = s.healthy {
                o.insert("healthy".into(), json!(healthy));
            }
            if let Some(labels) = &s.labels {
                o.insert(
                    "labels".into(),
                    mesos_proto::json::to_value(labels)["labels"].clone(),
                );
            }
            if let Some(cs) = &s.container_status {
                o.insert(
                    "container_status".into(),
                    mesos_proto::json::to_value(cs.as_ref()),
                );
            }
            Value::Object(o)
        })
        .collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(task.task_id.value));
    o.insert("name".into(), json!(task.name));
    o.insert("framework_id".into(), json!(task.framework_id.value));
    o.insert(
        "executor_id".into(),
        json!(task
            .executor_id
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default()),
    );
    o.insert("slave_id".into(), json!(task.agent_id.value));
    o.insert("state".into(), json!(state_name(task.state)));
    o.insert("resources".into(), resources_json(&task.resources));
    if let Some(role) = task
        .resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
    {
        o.insert("role".into(), json!(role));
    }
    o.insert("statuses".into(), Value::Array(statuses));
    if let Some(user) = &task.user {
        o.insert("user".into(), json!(user));
    }
    if let Some(labels) = &task.labels {
        o.insert(
            "labels".into(),
            mesos_proto::json::to_value(labels)["labels"].clone(),
        );
    }
    if let Some(discovery) = &task.discovery {
        o.insert(
            "discovery".into(),
            mesos_proto::json::to_value(discovery.as_ref()),
        );
    }
    if let Some(container) = &task.container {
        o.insert(
            "container".into(),
            mesos_proto::json::to_value(container.as_ref()),
        );
    }
    if let Some(kill_policy) = &task.kill_policy {
        o.insert(
            "kill_policy".into(),
            mesos_proto::json::to_value(kill_policy.as_ref()),
        );
    }
    Value::Object(o)
}

fn executor_json(executor: &Executor) -> Value {
    let mut tasks = Vec::new();
    let mut queued = Vec::new();
    let mut resources = executor.info.resources.clone();
    for entry in executor.tasks.values() {
        if entry.queued {
            queued.push(task_json(&entry.task));
        } else {
            tasks.push(task_json(&entry.task));
        }
        if !crate::status_update_manager::is_terminal(entry.task.state) {
            resources.extend(entry.task.resources.iter().cloned());
        }
    }
    let completed: Vec<Value> = executor.completed_tasks.iter().map(task_json).collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(executor.id));
    o.insert(
        "name".into(),
        json!(executor.info.name.clone().unwrap_or_default()),
    );
    o.insert(
        "source".into(),
        json!(executor.info.source.clone().unwrap_or_default()),
    );
    o.insert("container".into(), json!(executor.container_id));
    o.insert(
        "directory".into(),
        json!(executor.directory.display().to_string()),
    );
    o.insert("resources".into(), resources_json(&resources));
    if let Some(role) = executor
        .info
        .resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
    {
        o.insert("role".into(), json!(role));
    }
    if let Some(t) = executor
        .info
        .r#type
        .and_then(|t| v1::executor_info::Type::try_from(t).ok())
    {
        o.insert("type".into(), json!(t.as_str_name()));
    }
    if let Some(labels) = &executor.info.labels {
        o.insert(
            "labels".into(),
            mesos_proto::json::to_value(labels)["labels"].clone(),
        );
    }
    o.insert("tasks".into(), Value::Array(tasks));
    o.insert("queued_tasks".into(), Value::Array(queued));
    o.insert("completed_tasks".into(), Value::Array(completed));
    Value::Object(o)
}

fn framework_json(framework: &Framework) -> Value {
    let info = &framework.info;
    let capabilities: Vec<Value> = info
        .capabilities
        .iter()
        .filter_map(|c| c.r#type)
        .filter_map(|t| v1::framework_info::capability::Type::try_from(t).ok())
        .map(|t| json!(t.as_str_name()))
        .collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(framework.id));
    o.insert("name".into(), json!(info.name));
    o.insert("user".into(), json!(info.user));
    o.insert(
        "failover_timeout".into(),
        json!(info.failover_timeout.unwrap_or(0.0)),
    );
    o.insert("checkpoint".into(), json!(info.checkpoint.unwrap_or(false)));
    o.insert(
        "hostname".into(),
        json!(info.hostname.clone().unwrap_or_default()),
    );
    o.insert(
        "role".into(),
        json!(info.role.clone().unwrap_or_else(|| "*".into())),
    );
    if !info.roles.is_empty() {
        o.insert("roles".into(), json!(info.roles));
    }
    if let Some(principal) = &info.principal {
        o.insert("principal".into(), json!(principal));
    }
    o.insert("capabilities".into(), Value::Array(capabilities));
    o.insert(
        "executors".into(),
        Value::Array(framework.executors.values().map(executor_json).collect()),
    );
    o.insert(
        "completed_executors".into(),
        Value::Array(
            framework
                .completed_executors
                .iter()
                .map(executor_json)
                .collect(),
        ),
    );
    Value::Object(o)
}

impl Agent {
    /// The `slave/*` gauges of `/metrics/snapshot` (Mesos's names,
    /// `docs/monitoring.md`): registration, uptime, frameworks, executors,
    /// tasks by state and total resources.
    pub(crate) fn metrics_json(&self) -> Map<String, Value> {
        let mut tasks: std::collections::HashMap<&'static str, u64> = Default::default();
        let mut executors = 0u64;
        for framework in self.frameworks.values() {
            for executor in framework.executors.values() {
                executors += 1;
                for entry in executor.tasks.values() {
                    *tasks.entry(state_name(entry.task.state)).or_default() += 1;
                }
            }
        }
        let count = |state: &str| tasks.get(state).copied().unwrap_or(0);
        let total = Resources::new(self.info.resources.clone()).unwrap_or_default();
        let mut o = Map::new();
        let mut put = |name: &str, value: Value| {
            o.insert(name.to_string(), value);
        };
        put(
            "slave/registered",
            json!(u8::from(self.registration.is_registered())),
        );
        put(
            "slave/uptime_secs",
            json!(super::now_secs() - self.start_time),
        );
        put("slave/frameworks_active", json!(self.frameworks.len()));
        put("slave/executors_running", json!(executors));
        put("slave/tasks_staging", json!(count("TASK_STAGING")));
        put("slave/tasks_starting", json!(count("TASK_STARTING")));
        put("slave/tasks_running", json!(count("TASK_RUNNING")));
        put("slave/tasks_killing", json!(count("TASK_KILLING")));
        put("slave/cpus_total", json!(total.cpus()));
        put("slave/mem_total", json!(total.mem()));
        put("slave/disk_total", json!(total.disk()));
        put("slave/gpus_total", json!(total.gpus()));
        o
    }

    /// The `/state` document.
    pub(crate) fn state_json(&self) -> Value {
        let capabilities: Vec<Value> = agent_capabilities()
            .iter()
            .filter_map(|c| c.r#type)
            .filter_map(|t| v1::agent_info::capability::Type::try_from(t).ok())
            .map(|t| json!(t.as_str_name()))
            .collect();
        let mut o = Map::new();
        o.insert("version".into(), json!(mesos_common::MESOS_VERSION));
        o.insert("build_date".into(), json!(""));
        o.insert("build_time".into(), json!(0));
        o.insert("build_user".into(), json!(""));
        o.insert("start_time".into(), json!(self.start_time));
        if let Some(id) = self.agent_id() {
            o.insert("id".into(), json!(id));
        }
        o.insert("pid".into(), json!(self.self_pid.to_string()));
        o.insert("hostname".into(), json!(self.info.hostname));
        o.insert("capabilities".into(), Value::Array(capabilities));
        o.insert("resources".into(), self.resources_json.clone());
        o.insert(
            "attributes".into(),
            crate::flags::attributes_json(&self.info.attributes),
        );
        if self.registration.is_registered() {
            o.insert("master_hostname".into(), json!(self.master.host));
        }
        o.insert("flags".into(), self.config.flags_json()["flags"].clone());
        o.insert(
            "frameworks".into(),
            Value::Array(self.frameworks.values().map(framework_json).collect()),
        );
        o.insert(
            "completed_frameworks".into(),
            Value::Array(
                self.completed_frameworks
                    .iter()
                    .map(framework_json)
                    .collect(),
            ),
        );
        o.insert("reserved_resources".into(), json!({}));
        o.insert("unreserved_resources".into(), self.resources_json.clone());
        o.insert("reserved_resources_full".into(), json!({}));
        o.insert(
            "unreserved_resources_full".into(),
            Value::Array(
                self.info
                    .resources
                    .iter()
                    .map(mesos_proto::json::to_value)
                    .collect(),
            ),
        );
        Value::Object(o)
    }
}
