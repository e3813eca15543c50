//! Classic read-only endpoints (`/master/state`, `/slaves`, `/tasks`, ...)
//! in Mesos's JSON layout, plus `/version`, `/health`, `/redirect` and
//! `/metrics/snapshot`. The JSON builders are plain functions of the state.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use mesos_common::http::json_response;
use mesos_common::resources::{to_state_json, Resources};
use mesos_proto::v1::{self as v1, TaskState};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::authn::Principal;
use crate::core::authz::{Denied, Viewer};
use crate::core::task::TaskRecord;
use crate::core::{Agent, Framework, Master};
use crate::flags::Flags;

/// Query parameters the classic endpoints accept.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    jsonp: Option<String>,
    framework_id: Option<String>,
    task_id: Option<String>,
    slave_id: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    order: Option<String>,
}

fn state_name(state: i32) -> &'static str {
    TaskState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("TASK_UNKNOWN")
}

fn resources_json(resources: &[v1::Resource]) -> Value {
    match Resources::try_from(resources.to_vec()) {
        Ok(r) => to_state_json(&r),
        Err(_) => to_state_json(&Resources::default()),
    }
}

fn labels_json(labels: &Option<v1::Labels>) -> Option<Value> {
    labels.as_ref().map(|l| {
        Value::Array(
            l.labels
                .iter()
                .map(|label| json!({"key": label.key, "value": label.value.clone().unwrap_or_default()}))
                .collect(),
        )
    })
}

/// One task, as `/master/state` writes it.
pub fn task_json(task: &v1::Task) -> Value {
    let role = task
        .resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()));
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut status = json!({
                "state": state_name(s.state),
                "timestamp": s.timestamp.unwrap_or(0.0),
            });
            if let Some(c) = &s.container_status {
                status["container_status"] = mesos_proto::json::to_value(c.as_ref());
            }
            if let Some(h) = s.healthy {
                status["healthy"] = json!(h);
            }
            status
        })
        .collect();
    let mut object = json!({
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
        "slave_id": task.agent_id.value,
        "state": state_name(task.state),
        "resources": resources_json(&task.resources),
        "statuses": statuses,
    });
    if let Some(role) = role {
        object["role"] = json!(role);
    }
    if let Some(user) = &task.user {
        object["user"] = json!(user);
    }
    if let Some(labels) = labels_json(&task.labels) {
        object["labels"] = labels;
    }
    if let Some(container) = &task.container {
        object["container"] = mesos_proto::json::to_value(container.as_ref());
    }
    if let Some(discovery) = &task.discovery {
        object["discovery"] = mesos_proto::json::to_value(discovery.as_ref());
    }
    object
}

fn capability_names(framework: &Framework) -> Vec<&'static str> {
    framework
        .info
        .capabilities
        .iter()
        .filter_map(|c| c.r#type)
        .filter_map(|t| v1::framework_info::capability::Type::try_from(t).ok())
        .map(|t| t.as_str_name())
        .collect()
}

fn framework_used(framework: &Framework) -> Resources {
    let mut used = Resources::default();
    for task in framework.tasks.values() {
        if let Ok(r) = Resources::try_from(task.resources()) {
            used += r;
        }
    }
    for executor in framework.executors.values() {
        if let Ok(r) = Resources::try_from(executor.resources.clone()) {
            used += r;
        }
    }
    used
}

fn framework_offered(master: &Master, framework: &Framework) -> Resources {
    let mut offered = Resources::default();
    for id in &framework.offers {
        if let Some(offer) = master.offers.get(id) {
            if let Ok(r) = Resources::try_from(offer.offer.resources.clone()) {
                offered += r;
            }
        }
    }
    offered
}

fn offer_json(offer: &v1::Offer) -> Value {
    json!({
        "id": offer.id.value,
        "framework_id": offer.framework_id.value,
        "slave_id": offer.agent_id.value,
        "resources": resources_json(&offer.resources),
        "allocation_info": offer.allocation_info.as_ref().map(mesos_proto::json::to_value),
    })
}

fn executor_json(executor: &v1::ExecutorInfo, agent_id: &str) -> Value {
    let mut object = json!({
        "executor_id": executor.executor_id.value,
        "name": executor.name.clone().unwrap_or_default(),
        "framework_id": executor.framework_id.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
        "resources": resources_json(&executor.resources),
        "slave_id": agent_id,
    });
    if let Some(command) = &executor.command {
        object["command"] = mesos_proto::json::to_value(command);
    }
    if let Some(labels) = labels_json(&executor.labels) {
        object["labels"] = labels;
    }
    object
}

/// One framework, as `/master/state` writes it.
pub fn framework_json(
    master: &Master,
    framework: &Framework,
    with_tasks: bool,
    viewer: &mut Viewer,
) -> Value {
    let used = framework_used(framework);
    let offered = framework_offered(master, framework);
    let info = &framework.info;
    let mut object = json!({
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname.clone().unwrap_or_default(),
        "webui_url": info.webui_url.clone().unwrap_or_default(),
        "failover_timeout": info.failover_timeout.unwrap_or(0.0),
        "checkpoint": info.checkpoint.unwrap_or(false),
        "capabilities": capability_names(framework),
        "active": framework.connected(),
        "connected": framework.connected(),
        "recovered": framework.recovered,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time.unwrap_or(0.0),
        "used_resources": to_state_json(&used),
        "offered_resources": to_state_json(&offered),
        "resources": to_state_json(&(&used + &offered)),
        "offer_constraints": {},
    });
    if let Some(t) = framework.reregistered_time {
        object["reregistered_time"] = json!(t);
    }
    if let Some(p) = &info.principal {
        object["principal"] = json!(p);
    }
    if framework.has_capability(v1::framework_info::capability::Type::MultiRole) {
        object["roles"] = json!(framework.roles);
    } else {
        object["role"] = json!(framework
            .roles
            .first()
            .cloned()
            .unwrap_or_else(|| "*".into()));
    }
    if let Some(labels) = labels_json(&info.labels) {
        object["labels"] = labels;
    }
    if with_tasks {
        object["tasks"] = Value::Array(
            framework
                .tasks
                .values()
                .filter(|t| viewer.task_record(framework, t))
                .map(|t| task_json(&t.task()))
                .collect(),
        );
        object["unreachable_tasks"] = Value::Array(
            framework
                .unreachable_tasks
                .values()
                .filter(|t| viewer.task_record(framework, t))
                .map(|t| task_json(&t.task()))
                .collect(),
        );
        object["completed_tasks"] = Value::Array(
            framework
                .completed_tasks
                .iter()
                .filter(|t| viewer.task_record(framework, t))
                .map(|t| task_json(&t.task()))
                .collect(),
        );
        object["offers"] = Value::Array(
            framework
                .offers
                .iter()
                .filter_map(|id| master.offers.get(id))
                .map(|o| offer_json(&o.offer))
                .collect(),
        );
        object["executors"] = Value::Array(
            framework
                .executors
                .iter()
                .filter(|(_, e)| viewer.executor(framework, e))
                .map(|((agent_id, _), e)| executor_json(e, agent_id))
                .collect(),
        );
    }
    object
}

fn agent_used(master: &Master, agent: &Agent) -> Resources {
    let mut used = Resources::default();
    for (framework_id, task_id) in agent.tasks.iter() {
        if let Some(task) = master
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
        {
            if let Ok(r) = Resources::try_from(task.resources()) {
                used += r;
            }
        }
    }
    for executor in agent.executors.values() {
        if let Ok(r) = Resources::try_from(executor.resources.clone()) {
            used += r;
        }
    }
    used
}

fn agent_offered(master: &Master, agent: &Agent) -> Resources {
    let mut offered = Resources::default();
    for id in &agent.offers {
        if let Some(offer) = master.offers.get(id) {
            if let Ok(r) = Resources::try_from(offer.offer.resources.clone()) {
                offered += r;
            }
        }
    }
    offered
}

fn attributes_json(attributes: &[v1::Attribute]) -> Value {
    let mut map = Map::new();
    for attribute in attributes {
        let value = if let Some(s) = &attribute.scalar {
            json!(s.value)
        } else if let Some(t) = &attribute.text {
            json!(t.value)
        } else if let Some(r) = &attribute.ranges {
            let parts: Vec<String> = r
                .range
                .iter()
                .map(|r| format!("{}-{}", r.begin, r.end))
                .collect();
            json!(format!("[{}]", parts.join(", ")))
        } else if let Some(s) = &attribute.set {
            json!(format!("{{{}}}", s.item.join(", ")))
        } else {
            Value::Null
        };
        map.insert(attribute.name.clone(), value);
    }
    Value::Object(map)
}

/// Reservations and volumes the registry holds for agents that are neither
/// registered nor expected back (their work dir was wiped, or they were
/// removed): ours, not Mesos's. They stay until an operator destroys and
/// unreserves them (`/master/destroy-volumes`, `/master/unreserve` with the
/// listed `agent_id` and resources).
pub fn orphaned_resources_json(master: &Master) -> Value {
    let mut ids: Vec<&String> = master
        .agent_resources
        .keys()
        .filter(|id| {
            !master.agents.contains_key(*id)
                && !master.recovered_agents.contains_key(*id)
                && !master.unreachable_agents.contains_key(*id)
        })
        .collect();
    ids.sort();
    Value::Array(
        ids.into_iter()
            .map(|id| {
                let mut o = Map::new();
                o.insert("agent_id".into(), json!(id));
                o.extend(mesos_common::resources::reservation_fields(
                    &master.checkpointed_resources(id),
                ));
                o.remove("unreserved_resources");
                o.remove("unreserved_resources_full");
                Value::Object(o)
            })
            .collect(),
    )
}

/// One agent, as `/master/state` and `/master/slaves` write it.
pub fn agent_json(master: &Master, agent: &Agent) -> Value {
    let used = agent_used(master, agent);
    let offered = agent_offered(master, agent);
    let capabilities: Vec<&'static str> = agent
        .capabilities
        .iter()
        .filter_map(|c| v1::agent_info::capability::Type::try_from(*c).ok())
        .map(|c| c.as_str_name())
        .collect();
    let mut object = json!({
        "id": agent.id,
        "hostname": agent.info.hostname,
        "port": agent.info.port.unwrap_or(5051),
        "attributes": attributes_json(&agent.info.attributes),
        "pid": agent.pid.to_string(),
        "registered_time": agent.registered_time,
        "resources": to_state_json(&agent.total),
        "used_resources": to_state_json(&used),
        "offered_resources": to_state_json(&offered),
        "used_resources_full": mesos_common::resources::to_full_json(&used),
        "offered_resources_full": mesos_common::resources::to_full_json(&offered),
        "active": agent.connected && agent.active,
        "deactivated": !agent.active,
        "version": agent.version,
        "capabilities": capabilities,
    });
    if let Some(t) = agent.reregistered_time {
        object["reregistered_time"] = json!(t);
    }
    if let Value::Object(o) = &mut object {
        o.extend(mesos_common::resources::reservation_fields(&agent.total));
    }
    object
}

fn flags_json(flags: &Flags) -> Value {
    Value::Object(
        flags
            .to_map()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn version_fields(object: &mut Value) {
    object["version"] = json!(mesos_common::MESOS_VERSION);
    object["build_date"] = json!(env!("CARGO_PKG_VERSION"));
    object["build_time"] = json!(0);
    object["build_user"] = json!("mesos-rs");
}

/// `/master/state`.
pub fn state_json(master: &Master, flags: &Flags, viewer: &mut Viewer, show_flags: bool) -> Value {
    let leader = json!({
        "id": master.info.id,
        "pid": master.info.pid,
        "port": master.info.port,
        "hostname": master.info.hostname,
    });
    let mut object = json!({
        "start_time": master.start_time,
        "elected_time": master.start_time,
        "id": master.info.id,
        "pid": master.info.pid,
        "hostname": master.info.hostname,
        "capabilities": master
            .info
            .capabilities
            .iter()
            .map(|c| c.r#type().as_str_name())
            .collect::<Vec<_>>(),
        "activated_slaves": master.agents.values().filter(|a| a.connected && a.active).count(),
        "deactivated_slaves": master.agents.values().filter(|a| !a.active).count(),
        "unreachable_slaves": master.unreachable_agents.len(),
        "leader": master.info.pid,
        "leader_info": leader,
        "slaves": master.agents.values().map(|a| agent_json(master, a)).collect::<Vec<_>>(),
        "recovered_slaves": master.recovered_agents.values().map(|a| json!({
            "id": a.info.id.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
            "hostname": a.info.hostname,
            "port": a.info.port.unwrap_or(5051),
            "resources": resources_json(&a.info.resources),
        })).collect::<Vec<_>>(),
        "orphaned_resources": orphaned_resources_json(master),
        "frameworks": visible_frameworks(master, master.frameworks.values(), viewer),
        "completed_frameworks": visible_frameworks(master, master.completed_frameworks.iter(), viewer),
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    // Only for readers view_flags allows (Mesos hides them otherwise).
    if show_flags {
        object["flags"] = flags_json(flags);
        if let Some(cluster) = &flags.cluster {
            object["cluster"] = json!(cluster);
        }
    }
    version_fields(&mut object);
    object
}

/// The frameworks `viewer` may see, each with the tasks and executors it
/// may see.
fn visible_frameworks<'a>(
    master: &Master,
    frameworks: impl Iterator<Item = &'a Framework>,
    viewer: &mut Viewer,
) -> Vec<Value> {
    let mut visible = Vec::new();
    for framework in frameworks {
        if viewer.framework(framework) {
            visible.push(framework_json(master, framework, true, viewer));
        }
    }
    visible
}

fn task_counts(tasks: impl Iterator<Item = i32>) -> Map<String, Value> {
    let mut counts: Map<String, Value> = [
        "TASK_STAGING",
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_KILLING",
        "TASK_FINISHED",
        "TASK_KILLED",
        "TASK_FAILED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_UNREACHABLE",
    ]
    .iter()
    .map(|s| (s.to_string(), json!(0)))
    .collect();
    for state in tasks {
        let entry = counts
            .entry(state_name(state).to_string())
            .or_insert(json!(0));
        *entry = json!(entry.as_u64().unwrap_or(0) + 1);
    }
    counts
}

/// `/master/state-summary`.
pub fn state_summary_json(master: &Master, flags: &Flags, viewer: &mut Viewer) -> Value {
    // Counts and ids only of what this reader may see.
    let mut slaves: Vec<Value> = Vec::new();
    for agent in master.agents.values() {
        let mut object = agent_json(master, agent);
        let mut states = Vec::new();
        let mut framework_ids: Vec<&str> = Vec::new();
        for (framework_id, task_id) in agent.tasks.iter() {
            let Some(framework) = master.frameworks.get(framework_id) else {
                continue;
            };
            if !viewer.framework(framework) {
                continue;
            }
            framework_ids.push(framework_id);
            if let Some(task) = framework.tasks.get(task_id) {
                if viewer.task_record(framework, task) {
                    states.push(task.state());
                }
            }
        }
        if let Value::Object(map) = &mut object {
            map.extend(task_counts(states.into_iter()));
            framework_ids.sort();
            framework_ids.dedup();
            map.insert("framework_ids".into(), json!(framework_ids));
        }
        slaves.push(object);
    }
    let frameworks: Vec<Value> = master
        .frameworks
        .values()
        .filter(|framework| viewer.framework(framework))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|framework| {
            let mut object = framework_json(master, framework, false, viewer);
            let states: Vec<i32> = framework
                .tasks
                .values()
                .chain(framework.completed_tasks.iter())
                .chain(framework.unreachable_tasks.values())
                .filter(|t| viewer.task_record(framework, t))
                .map(TaskRecord::state)
                .collect();
            if let Value::Object(map) = &mut object {
                map.extend(task_counts(states.into_iter()));
                let mut agent_ids: Vec<String> =
                    framework.tasks.values().map(TaskRecord::agent_id).collect();
                agent_ids.sort();
                agent_ids.dedup();
                map.insert("slave_ids".into(), json!(agent_ids));
            }
            object
        })
        .collect();
    json!({
        "hostname": master.info.hostname,
        "cluster": flags.cluster.clone().unwrap_or_default(),
        "slaves": slaves,
        "frameworks": frameworks,
    })
}

/// `/master/tasks`: active, unreachable and completed tasks, sorted by the
/// latest status timestamp, paged.
pub fn tasks_json(master: &Master, params: &Params, viewer: &mut Viewer) -> Result<Value, String> {
    let limit: usize = match params.limit.as_deref() {
        None => 100,
        Some("-1") => usize::MAX,
        Some(l) => l
            .parse()
            .map_err(|_| format!("Failed to parse limit: '{l}' is not a number"))?,
    };
    let offset: usize = match params.offset.as_deref() {
        None => 0,
        Some(o) => o
            .parse()
            .map_err(|_| format!("Failed to parse offset: '{o}' is not a number"))?,
    };
    let ascending = match params.order.as_deref() {
        None | Some("des") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(format!(
                "Failed to parse order: '{o}' is not 'asc' or 'des'"
            ))
        }
    };
    // Filtered and sorted on the records' decoded fields; only the page
    // shown is decoded.
    let wanted = |key: Option<&String>, record: &TaskRecord| match &params.task_id {
        None => true,
        Some(id) => match key {
            Some(key) => key == id,
            None => record.task().task_id.value == *id,
        },
    };
    let mut tasks: Vec<&TaskRecord> = Vec::new();
    for framework in master.frameworks.values() {
        if params
            .framework_id
            .as_ref()
            .is_some_and(|id| *id != framework.id)
            || !viewer.framework(framework)
        {
            continue;
        }
        let keyed = framework
            .tasks
            .iter()
            .chain(framework.unreachable_tasks.iter())
            .map(|(k, t)| (Some(k), t));
        let completed = framework.completed_tasks.iter().map(|t| (None, t));
        for (key, record) in keyed.chain(completed) {
            if viewer.task_record(framework, record) && wanted(key, record) {
                tasks.push(record);
            }
        }
    }
    tasks.sort_by(|a, b| {
        a.last_history_timestamp()
            .total_cmp(&b.last_history_timestamp())
    });
    if !ascending {
        tasks.reverse();
    }
    let page: Vec<Value> = tasks
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|t| task_json(&t.task()))
        .collect();
    Ok(json!({ "tasks": page }))
}

/// `/master/roles`.
pub fn roles_json(master: &Master) -> Value {
    let mut roles: HashMap<String, (Vec<String>, Resources)> = HashMap::new();
    for framework in master.frameworks.values() {
        for role in &framework.roles {
            roles
                .entry(role.clone())
                .or_default()
                .0
                .push(framework.id.clone());
        }
        for task in framework.tasks.values() {
            for resource in &task.resources() {
                if let Some(role) = resource
                    .allocation_info
                    .as_ref()
                    .and_then(|a| a.role.clone())
                {
                    if let Ok(r) = Resources::try_from(vec![resource.clone()]) {
                        roles.entry(role).or_default().1 += r;
                    }
                }
            }
        }
    }
    // Roles with reservations on registered agents are known roles too,
    // with their ancestors (Mesos's implicit roles).
    let mut reserved: HashMap<String, Resources> = HashMap::new();
    for agent in master.agents.values() {
        for resource in agent.total.iter() {
            if let Some(role) = mesos_common::resources::reservation_role(resource) {
                if let Ok(r) = Resources::try_from(vec![resource.clone()]) {
                    *reserved.entry(role.to_string()).or_default() += r;
                }
                let mut ancestor = role;
                while let Some((parent, _)) = ancestor.rsplit_once('/') {
                    roles.entry(parent.to_string()).or_default();
                    ancestor = parent;
                }
                roles.entry(role.to_string()).or_default();
            }
        }
    }
    let mut list: Vec<Value> = roles
        .into_iter()
        .map(|(name, (frameworks, allocated))| {
            let reserved = reserved.get(&name).cloned().unwrap_or_default();
            json!({
                "name": name,
                "weight": master.allocator.weight(&name),
                "frameworks": frameworks,
                "resources": to_state_json(&allocated),
                "allocated": to_state_json(&allocated),
                "offered": {},
                "reserved": to_state_json(&reserved),
                "quota": {"role": name, "guarantee": {}, "limit": {}, "consumed": {}},
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({ "roles": list })
}

/// `/metrics/snapshot`: Mesos's metric names.
pub fn metrics_json(master: &Master) -> Value {
    let mut tasks_by_state: HashMap<&'static str, u64> = HashMap::new();
    for framework in master.frameworks.values() {
        for task in framework.tasks.values() {
            *tasks_by_state.entry(state_name(task.state())).or_default() += 1;
        }
    }
    let count = |s: &str| tasks_by_state.get(s).copied().unwrap_or(0);
    let c = &master.counters;
    let mut total = Resources::default();
    let mut used = Resources::default();
    for agent in master.agents.values() {
        total += agent.total.clone();
        used += agent_used(master, agent);
    }
    let mut object = json!({
        "master/elected": 1,
        "master/uptime_secs": crate::core::now_secs() - master.start_time,
        "master/slaves_active": master.agents.values().filter(|a| a.connected && a.active).count(),
        "master/slaves_inactive": master.agents.values().filter(|a| !a.active).count(),
        "master/slaves_connected": master.agents.values().filter(|a| a.connected).count(),
        "master/slaves_disconnected": master.agents.values().filter(|a| !a.connected).count(),
        "master/slaves_unreachable": master.unreachable_agents.len(),
        "master/slave_registrations": c.agent_registrations,
        "master/slave_reregistrations": c.agent_reregistrations,
        "master/slave_removals": c.agent_removals,
        "master/frameworks_active": master.frameworks.values().filter(|f| f.connected()).count(),
        "master/frameworks_inactive": master.frameworks.values().filter(|f| !f.connected()).count(),
        "master/frameworks_connected": master.frameworks.values().filter(|f| f.connected()).count(),
        "master/frameworks_disconnected": master.frameworks.values().filter(|f| !f.connected()).count(),
        "master/outstanding_offers": master.offers.len(),
        "master/tasks_staging": count("TASK_STAGING"),
        "master/tasks_starting": count("TASK_STARTING"),
        "master/tasks_running": count("TASK_RUNNING"),
        "master/tasks_killing": count("TASK_KILLING"),
        "master/tasks_unreachable": master.frameworks.values().map(|f| f.unreachable_tasks.len()).sum::<usize>(),
        "master/tasks_finished": c.tasks_finished,
        "master/tasks_failed": c.tasks_failed,
        "master/tasks_killed": c.tasks_killed,
        "master/tasks_lost": c.tasks_lost,
        "master/tasks_error": c.tasks_error,
        "master/tasks_dropped": c.tasks_dropped,
        "master/tasks_gone": c.tasks_gone,
        "master/messages_status_update": c.status_updates,
        "master/invalid_status_updates": 0,
        "master/dropped_messages": c.invalid_messages,
        "master/messages_decline_offers": c.offers_declined,
        "master/offers_rescinded": c.offers_rescinded,
        "master/cpus_total": total.cpus(),
        "master/cpus_used": used.cpus(),
        "master/cpus_percent": ratio(used.cpus(), total.cpus()),
        "master/mem_total": total.mem(),
        "master/mem_used": used.mem(),
        "master/mem_percent": ratio(used.mem(), total.mem()),
        "master/disk_total": total.disk(),
        "master/disk_used": used.disk(),
        "master/disk_percent": ratio(used.disk(), total.disk()),
        "master/gpus_total": total.gpus(),
        "master/gpus_used": used.gpus(),
        "master/gpus_percent": ratio(used.gpus(), total.gpus()),
    });
    if let Value::Object(map) = &mut object {
        for (name, n) in &c.scheduler_calls {
            map.insert(format!("master/messages_scheduler_{name}"), json!(n));
        }
    }
    object
}

fn ratio(used: f64, total: f64) -> f64 {
    if total > 0.0 {
        used / total
    } else {
        0.0
    }
}

async fn render(
    app: &AppState,
    principal: Option<String>,
    jsonp: Option<&str>,
    f: impl FnOnce(&Master, &Flags, &mut Viewer) -> Value + Send + 'static,
) -> Response {
    let flags = app.flags.clone();
    let read = move |m: &Master| {
        let mut viewer = m.config.authz.viewer(principal.as_deref());
        f(m, &flags, &mut viewer)
    };
    match app.master.read(read).await {
        Some(value) => json_response(&value, jsonp),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response(),
    }
}

/// `GET /master/state`.
pub async fn state(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    let show_flags = app.authz.may(
        mesos_acls::Action::ViewFlags,
        principal.as_deref(),
        mesos_acls::Object::Any,
    );
    render(&app, principal, p.jsonp.as_deref(), move |m, f, v| {
        state_json(m, f, v, show_flags)
    })
    .await
}

/// `GET /master/state-summary`.
pub async fn state_summary(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    render(&app, principal, p.jsonp.as_deref(), state_summary_json).await
}

/// `GET /master/frameworks`.
pub async fn frameworks(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    let wanted = p.framework_id.clone();
    render(&app, principal, p.jsonp.as_deref(), move |m, _, viewer| {
        let keep = |f: &&Framework| wanted.as_ref().is_none_or(|id| *id == f.id);
        json!({
            "frameworks": visible_frameworks(m, m.frameworks.values().filter(keep), viewer),
            "completed_frameworks": visible_frameworks(m, m.completed_frameworks.iter().filter(keep), viewer),
            "unregistered_frameworks": [],
        })
    })
    .await
}

/// `GET /master/slaves`.
pub async fn slaves(State(app): State<AppState>, Query(p): Query<Params>) -> Response {
    let wanted = p.slave_id.clone();
    render(&app, None, p.jsonp.as_deref(), move |m, _, _| {
        json!({
            "slaves": m.agents.values().filter(|a| wanted.as_ref().is_none_or(|id| *id == a.id)).map(|a| agent_json(m, a)).collect::<Vec<_>>(),
            "recovered_slaves": [],
            "orphaned_resources": orphaned_resources_json(m),
        })
    })
    .await
}

/// `GET /master/tasks`.
pub async fn tasks(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    let jsonp = p.jsonp.clone();
    let result = app
        .master
        .read(move |m| {
            let mut viewer = m.config.authz.viewer(principal.as_deref());
            tasks_json(m, &p, &mut viewer)
        })
        .await;
    match result {
        Some(Ok(value)) => json_response(&value, jsonp.as_deref()),
        Some(Err(message)) => (StatusCode::BAD_REQUEST, message).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response(),
    }
}

/// `GET /master/roles`.
pub async fn roles(State(app): State<AppState>, Query(p): Query<Params>) -> Response {
    render(&app, None, p.jsonp.as_deref(), |m, _, _| roles_json(m)).await
}

/// `GET /master/flags`.
pub async fn flags(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    if let Err(denied) = view_flags(&app, principal.as_deref()) {
        return forbidden(&denied);
    }
    let mut body = json!({ "flags": flags_json(&app.flags) });
    let warnings = app.flags.security_warnings();
    if !warnings.is_empty() {
        // Beside "flags", so tools that read only "flags" are unaffected.
        body["security_warnings"] = json!(warnings);
    }
    json_response(&body, p.jsonp.as_deref())
}

/// `GET /master/health`.
pub async fn health() -> Response {
    StatusCode::OK.into_response()
}

/// `GET /version`.
pub async fn version(Query(p): Query<Params>) -> Response {
    let mut object = json!({});
    version_fields(&mut object);
    json_response(&object, p.jsonp.as_deref())
}

/// `GET /metrics/snapshot`.
pub async fn metrics(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Query(p): Query<Params>,
) -> Response {
    if let Err(denied) = app.authz.check(
        mesos_acls::Action::GetEndpoints,
        principal.as_deref(),
        mesos_acls::Object::Value("/metrics/snapshot"),
    ) {
        return forbidden(&denied);
    }
    // Read outside the state machine: it is file IO.
    let system = mesos_common::system::metrics();
    render(&app, None, p.jsonp.as_deref(), move |m, _, _| {
        let mut object = metrics_json(m);
        if let Value::Object(map) = &mut object {
            for (name, value) in system {
                map.insert(name.to_string(), json!(value));
            }
        }
        object
    })
    .await
}

/// `GET /master/redirect`: we are always the leader.
pub async fn redirect(State(app): State<AppState>) -> Response {
    let location = app
        .master
        .read(|m| {
            format!(
                "//{}:{}",
                m.info.hostname.clone().unwrap_or_default(),
                m.info.port
            )
        })
        .await
        .unwrap_or_default();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// `view_flags` for this reader (the object is always ANY).
fn view_flags(app: &AppState, principal: Option<&str>) -> Result<(), Denied> {
    app.authz.check(
        mesos_acls::Action::ViewFlags,
        principal,
        mesos_acls::Object::Any,
    )
}

/// Mesos's 403 body, then the rule that decided.
pub fn forbidden(denied: &Denied) -> Response {
    (
        StatusCode::FORBIDDEN,
        format!("403 Forbidden. {}", denied.explanation),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::authz::Authz;

    /// A master whose one framework has active tasks a, b, c (latest
    /// status at 3, 1, 2) and completed task d (at 4).
    fn master_with_tasks() -> Master {
        let mut master = crate::core::tests::master();
        let info = v1::FrameworkInfo {
            user: "u".into(),
            name: "f".into(),
            ..Default::default()
        };
        let mut framework = Framework::new("f1".into(), info, 0.0);
        let record = |id: &str, at: f64, state: TaskState| {
            let mut record = TaskRecord::new(v1::Task {
                name: id.into(),
                task_id: v1::TaskId { value: id.into() },
                framework_id: v1::FrameworkId { value: "f1".into() },
                agent_id: v1::AgentId { value: "a1".into() },
                state: state as i32,
                ..Default::default()
            });
            record.push_history(&v1::TaskStatus {
                state: state as i32,
                timestamp: Some(at),
                ..Default::default()
            });
            record
        };
        for (id, at) in [("a", 3.0), ("b", 1.0), ("c", 2.0)] {
            framework
                .tasks
                .insert(id.into(), record(id, at, TaskState::TaskRunning));
        }
        framework.complete_task(record("d", 4.0, TaskState::TaskFinished), 10);
        master.frameworks.insert("f1".into(), framework);
        master
    }

    fn ids(master: &Master, params: Params) -> Vec<String> {
        let authz = Authz::default();
        let mut viewer = authz.viewer(None);
        let value = tasks_json(master, &params, &mut viewer).expect("valid parameters");
        value["tasks"]
            .as_array()
            .expect("a task list")
            .iter()
            .map(|t| t["id"].as_str().expect("an id").to_string())
            .collect()
    }

    #[test]
    fn tasks_are_sorted_by_latest_status_paged_and_found_by_id() {
        let master = master_with_tasks();
        assert_eq!(ids(&master, Params::default()), ["d", "a", "c", "b"]);
        let asc = Params {
            order: Some("asc".into()),
            ..Default::default()
        };
        assert_eq!(ids(&master, asc), ["b", "c", "a", "d"]);
        let page = Params {
            limit: Some("2".into()),
            offset: Some("1".into()),
            ..Default::default()
        };
        assert_eq!(ids(&master, page), ["a", "c"]);
        for id in ["c", "d"] {
            let one = Params {
                task_id: Some(id.into()),
                ..Default::default()
            };
            assert_eq!(
                ids(&master, one),
                [id],
                "active and completed tasks are found"
            );
        }
        let other = Params {
            framework_id: Some("f2".into()),
            ..Default::default()
        };
        assert!(ids(&master, other).is_empty());
    }
}
