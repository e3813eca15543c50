//! Heap bytes the master's state keeps per running task and per agent,
//! counted by a global allocator around the state machine itself (no
//! sockets, no allocator slack from other threads): the exact figure behind
//! the RSS deltas `mesos-loadgen --memory-tasks` reports.

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesos_common::http::ContentType;
use mesos_common::transport::Message;
use mesos_common::Upid;
use mesos_master::core::{Config, Master};
use mesos_master::registry::InMemoryRegistry;
use mesos_proto::internal as msg;
use mesos_proto::v1::scheduler::{call, Call};
use mesos_proto::v1::{self as v1, offer::operation};
use prost::Name;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn live() -> isize {
    let stats = GLOBAL.stats();
    (stats.bytes_allocated as isize - stats.bytes_deallocated as isize) + stats.bytes_reallocated
}

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

fn deliver<M: prost::Message + Name>(master: &mut Master, from: &Upid, message: &M, now: Instant) {
    master.message(
        Message {
            from: from.clone(),
            to: "master".into(),
            name: M::full_name(),
            body: Bytes::from(message.encode_to_vec()),
            peer: None,
        },
        now,
    );
}

fn main() {
    const AGENTS: u16 = 100;
    const TASKS_PER_AGENT: usize = 200;
    let config = Config {
        upid: Upid::new("master", "127.0.0.1", 5050),
        hostname: "localhost".into(),
        agent_ping_timeout: Duration::from_secs(15),
        max_agent_ping_timeouts: 5,
        agent_reregister_timeout: Duration::from_secs(600),
        role_whitelist: None,
        root_submissions: true,
        max_completed_frameworks: 50,
        max_completed_tasks_per_framework: 1000,
        weights: vec![],
        authenticate_agents: false,
        authz: Default::default(),
    };
    let now = Instant::now();
    let mut master = Master::new(config, Box::new(InMemoryRegistry::default())).expect("master");
    let subscribe = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "u".into(),
                name: "bench".into(),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut sub = master.subscribe(subscribe, ContentType::Json, now);
    let framework_id = sub.framework_id.clone().expect("subscribed");

    let before_agents = live();
    for n in 0..AGENTS {
        let info = v1::AgentInfo {
            hostname: format!("agent{n}"),
            resources: vec![scalar("cpus", 1000.0), scalar("mem", 1_000_000.0)],
            ..Default::default()
        };
        deliver(
            &mut master,
            &Upid::new("slave(1)", "127.0.0.1", 10000 + n),
            &msg::RegisterSlaveMessage {
                slave: info,
                version: Some("1.11.0".into()),
                ..Default::default()
            },
            now,
        );
    }
    master.take_effects();
    while sub.records.try_recv().is_ok() {}
    let per_agent = (live() - before_agents) as f64 / f64::from(AGENTS);

    master.allocate(now);
    let offers: Vec<v1::Offer> = master.offers.values().map(|o| o.offer.clone()).collect();
    while sub.records.try_recv().is_ok() {}
    let before_tasks = live();
    let mut task_no = 0usize;
    for offer in offers {
        let tasks: Vec<v1::TaskInfo> = (0..TASKS_PER_AGENT)
            .map(|_| {
                task_no += 1;
                v1::TaskInfo {
                    name: format!("task-{task_no:06}"),
                    task_id: v1::TaskId {
                        value: format!("task-{task_no:06}"),
                    },
                    agent_id: offer.agent_id.clone(),
                    resources: vec![scalar("cpus", 0.01), scalar("mem", 1.0)],
                    command: Some(v1::CommandInfo {
                        value: Some("sleep 3600".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let accept = Call {
            framework_id: Some(v1::FrameworkId {
                value: framework_id.clone(),
            }),
            r#type: Some(call::Type::Accept as i32),
            accept: Some(call::Accept {
                offer_ids: vec![offer.id.clone()],
                operations: vec![v1::offer::Operation {
                    r#type: Some(operation::Type::Launch as i32),
                    launch: Some(operation::Launch { task_infos: tasks }),
                    ..Default::default()
                }],
                filters: None,
            }),
            ..Default::default()
        };
        master
            .scheduler_call(accept, Some(&sub.stream_id), now)
            .expect("accept");
        master.take_effects();
        let agent_pid = master.agents[&offer.agent_id.value].pid.clone();
        for id in ids {
            let update = msg::StatusUpdate {
                framework_id: v1::FrameworkId {
                    value: framework_id.clone(),
                },
                slave_id: Some(offer.agent_id.clone()),
                executor_id: Some(v1::ExecutorId { value: id.clone() }),
                status: v1::TaskStatus {
                    task_id: v1::TaskId { value: id },
                    state: v1::TaskState::TaskRunning as i32,
                    source: Some(v1::task_status::Source::Executor as i32),
                    agent_id: Some(offer.agent_id.clone()),
                    timestamp: Some(1.0),
                    uuid: Some(Bytes::from_static(&[7; 16])),
                    ..Default::default()
                },
                timestamp: 1.0,
                uuid: Some(Bytes::from_static(&[7; 16])),
                ..Default::default()
            };
            deliver(
                &mut master,
                &agent_pid,
                &msg::StatusUpdateMessage { update, pid: None },
                now,
            );
        }
        master.take_effects();
        while sub.records.try_recv().is_ok() {}
    }
    let tasks = task_no as f64;
    let per_task = (live() - before_tasks) as f64 / tasks;
    println!(
        "master heap: {per_agent:.0} B per agent ({AGENTS} agents), {per_task:.0} B per RUNNING task ({task_no} tasks); target <= 2048 B per task"
    );
}
