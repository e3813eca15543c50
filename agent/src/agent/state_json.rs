//! The agent's `/state` JSON in Mesos's layout (`src/slave/http.cpp`):
//! what the web UI and the CLI read about frameworks, executors, tasks and
//! sandboxes on this agent, filtered as Mesos filters it: frameworks by
//! `view_frameworks` on their user, executors by `view_executors` and tasks
//! by `view_tasks` on theirs, each with the framework's principal as owner.

use mesos_acls::{Action, Authorizer, Object, ViewFilter};
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

/// What one reader of `/state` may see; no filters when no authorizer is
/// in force.
pub struct StateViewer<'a> {
    /// Whether `flags` is shown (`view_flags`).
    show_flags: bool,
    frameworks: Option<ViewFilter<'a>>,
    executors: Option<ViewFilter<'a>>,
    tasks: Option<ViewFilter<'a>>,
}

impl<'a> StateViewer<'a> {
    /// A viewer for `principal` under `authorizer` (`None`: sees all).
    pub fn new(authorizer: Option<&'a dyn Authorizer>, principal: Option<&'a str>) -> Self {
        let filter = |action| authorizer.map(|a| ViewFilter::new(a, principal, action));
        let show_flags = authorizer.is_none_or(|a| {
            a.authorize(&mesos_acls::Request {
                action: Action::ViewFlags,
                subject: principal,
                object: Object::Any,
            })
            .is_allowed()
        });
        StateViewer {
            show_flags,
            frameworks: filter(Action::ViewFrameworks),
            executors: filter(Action::ViewExecutors),
            tasks: filter(Action::ViewTasks),
        }
    }

    fn allows(filter: &mut Option<ViewFilter<'a>>, user: &str, owner: Option<&str>) -> bool {
        filter
            .as_mut()
            .is_none_or(|f| f.allows_owned(Object::Value(user), owner))
    }
}

/// The framework a part of `/state` belongs to: whose it is.
struct Owner<'f> {
    user: &'f str,
    principal: Option<&'f str>,
}

fn executor_json(executor: &Executor, owner: &Owner, viewer: &mut StateViewer) -> Value {
    let mut tasks = Vec::new();
    let mut queued = Vec::new();
    let mut resources = executor.info.resources.clone();
    let task_user = |task: &v1::Task| task.user.clone().unwrap_or_else(|| owner.user.to_string());
    for entry in executor.tasks.values() {
        if !crate::status_update_manager::is_terminal(entry.task.state) {
            resources.extend(entry.task.resources.iter().cloned());
        }
        if !StateViewer::allows(&mut viewer.tasks, &task_user(&entry.task), owner.principal) {
            continue;
        }
        if entry.queued {
            queued.push(task_json(&entry.task));
        } else {
            tasks.push(task_json(&entry.task));
        }
    }
    let completed: Vec<Value> = executor
        .completed_tasks
        .iter()
        .filter(|t| StateViewer::allows(&mut viewer.tasks, &task_user(t), owner.principal))
        .map(task_json)
        .collect();
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

/// The executor's user: its command's, else its framework's.
fn executor_user<'e>(executor: &'e Executor, owner: &Owner<'e>) -> &'e str {
    executor
        .info
        .command
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .unwrap_or(owner.user)
}

/// `framework`'s entry, or `None` when the reader may not see it.
fn framework_json(framework: &Framework, viewer: &mut StateViewer) -> Option<Value> {
    let info = &framework.info;
    let owner = Owner {
        user: &info.user,
        principal: info.principal.as_deref(),
    };
    if !StateViewer::allows(&mut viewer.frameworks, owner.user, owner.principal) {
        return None;
    }
    let mut executors_of = |list: &mut dyn Iterator<Item = &Executor>| -> Vec<Value> {
        list.filter(|e| {
            StateViewer::allows(
                &mut viewer.executors,
                executor_user(e, &owner),
                owner.principal,
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|e| executor_json(e, &owner, viewer))
        .collect()
    };
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
    let executors = executors_of(&mut framework.executors.values());
    o.insert("executors".into(), Value::Array(executors));
    let completed = executors_of(&mut framework.completed_executors.iter());
    o.insert("completed_executors".into(), Value::Array(completed));
    Some(Value::Object(o))
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

    /// The `/state` document, as `viewer` may see it.
    pub(crate) fn state_json(&self, viewer: &mut StateViewer) -> Value {
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
        if viewer.show_flags {
            o.insert("flags".into(), self.config.flags_json()["flags"].clone());
        }
        let frameworks = self
            .frameworks
            .values()
            .filter_map(|f| framework_json(f, viewer))
            .collect();
        o.insert("frameworks".into(), Value::Array(frameworks));
        let completed = self
            .completed_frameworks
            .iter()
            .filter_map(|f| framework_json(f, viewer))
            .collect();
        o.insert("completed_frameworks".into(), Value::Array(completed));
        o.extend(mesos_common::resources::reservation_fields(
            &self.total_resources(),
        ));
        let missing: Vec<Value> = self
            .missing_volumes
            .iter()
            .map(|p| json!(p.display().to_string()))
            .collect();
        o.insert("missing_volumes".into(), Value::Array(missing));
        Value::Object(o)
    }
}
