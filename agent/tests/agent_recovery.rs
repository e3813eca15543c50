//! Agent restarts: a crashed agent comes back under its id, re-adopts the
//! running executor, resends nothing that was acknowledged, and the task can
//! still be killed.

mod common;

use std::time::Duration;

use common::{command_task, framework, start_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

#[tokio::test]
async fn crashed_agent_recovers_its_executor_and_can_kill_the_task() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = common::free_port();
    let mut first = start_agent(master.port, work_dir.path(), agent_port, &[]);
    let (agent, _) = master.register("S1").await;

    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("sleeper", "S1", "sleep 1000"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    let starting = master.update(v1::TaskState::TaskStarting).await;
    master.ack(&agent, &starting);
    let running = master.update(v1::TaskState::TaskRunning).await;
    master.ack(&agent, &running);
    // Let the acknowledgement be checkpointed.
    master.expect_no_update(Duration::from_millis(500)).await;

    first.crash();
    let _second = start_agent(master.port, work_dir.path(), agent_port, &[]);
    let reregister = master.next("mesos.internal.ReregisterSlaveMessage").await;
    let reregistration: m::ReregisterSlaveMessage =
        reregister.decode().expect("valid ReregisterSlaveMessage");
    assert_eq!(
        reregistration.slave.id.as_ref().map(|i| i.value.as_str()),
        Some("S1")
    );
    let task = reregistration
        .tasks
        .iter()
        .find(|t| t.task_id.value == "sleeper")
        .expect("the running task is reported");
    assert_eq!(task.state, v1::TaskState::TaskRunning as i32);
    assert_eq!(reregistration.frameworks.len(), 1);
    assert!(
        reregistration.executor_infos.is_empty(),
        "command executors are not reported"
    );
    master.send(
        &agent,
        &m::SlaveReregisteredMessage {
            slave_id: v1::AgentId { value: "S1".into() },
            reconciliations: Vec::new(),
            connection: None,
        },
    );
    // Acknowledged updates are not sent again.
    master.expect_no_update(Duration::from_secs(2)).await;

    master.send(
        &agent,
        &m::KillTaskMessage {
            framework_id: v1::FrameworkId { value: "F1".into() },
            task_id: v1::TaskId {
                value: "sleeper".into(),
            },
            kill_policy: None,
        },
    );
    let killed = master.update(v1::TaskState::TaskKilled).await;
    assert_eq!(
        killed.status.source,
        Some(v1::task_status::Source::Executor as i32)
    );
    master.ack(&agent, &killed);
    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "sleeper");
}

#[tokio::test]
async fn executor_that_died_while_the_agent_was_down_fails_its_task() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = common::free_port();
    let mut first = start_agent(master.port, work_dir.path(), agent_port, &[]);
    let (agent, _) = master.register("S1").await;
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("victim", "S1", "sleep 1000"),
            pid: None,
            ..Default::default()
        },
    );
    let starting = master.update(v1::TaskState::TaskStarting).await;
    master.ack(&agent, &starting);
    let running = master.update(v1::TaskState::TaskRunning).await;
    master.ack(&agent, &running);
    master.expect_no_update(Duration::from_millis(500)).await;

    first.crash();
    // Kill the executor and its task behind the agent's back.
    let pid_file = work_dir
        .path()
        .join("meta/slaves/S1/frameworks/F1/executors/victim/runs/latest/pids/forked.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the executor pid is checkpointed")
        .trim()
        .parse()
        .expect("a pid");
    kill_session(pid);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _second = start_agent(master.port, work_dir.path(), agent_port, &[]);
    let reregister = master.next("mesos.internal.ReregisterSlaveMessage").await;
    master.send(
        &reregister.from,
        &m::SlaveReregisteredMessage {
            slave_id: v1::AgentId { value: "S1".into() },
            reconciliations: Vec::new(),
            connection: None,
        },
    );
    let failed = master.update(v1::TaskState::TaskFailed).await;
    assert_eq!(
        failed.status.reason,
        Some(v1::task_status::Reason::ExecutorTerminated as i32)
    );
    assert_eq!(
        failed.status.message.as_deref(),
        Some("Executor terminated")
    );
    assert_eq!(
        failed.status.source,
        Some(v1::task_status::Source::Agent as i32)
    );
    master.ack(&agent, &failed);
    master.next("mesos.internal.ExitedExecutorMessage").await;
}

fn executor_pid(work_dir: &std::path::Path, executor: &str) -> i32 {
    let pid_file = work_dir.join(format!(
        "meta/slaves/S1/frameworks/F1/executors/{executor}/runs/latest/pids/forked.pid"
    ));
    std::fs::read_to_string(&pid_file)
        .expect("the executor pid is checkpointed")
        .trim()
        .parse()
        .expect("a pid")
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[tokio::test]
async fn recover_cleanup_kills_old_executors_and_registers_anew() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = common::free_port();
    let mut first = start_agent(master.port, work_dir.path(), agent_port, &[]);
    let (agent, _) = master.register("S1").await;
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("doomed", "S1", "sleep 1000"),
            ..Default::default()
        },
    );
    let starting = master.update(v1::TaskState::TaskStarting).await;
    master.ack(&agent, &starting);
    let running = master.update(v1::TaskState::TaskRunning).await;
    master.ack(&agent, &running);
    master.expect_no_update(Duration::from_millis(300)).await;
    let pid = executor_pid(work_dir.path(), "doomed");
    assert!(alive(pid));

    first.crash();
    let _second = start_agent(
        master.port,
        work_dir.path(),
        agent_port,
        &["--recover=cleanup"],
    );
    let (_, registration) = master.register("S2").await;
    assert!(
        registration.slave.id.is_none(),
        "a cleaned-up agent registers as a new one"
    );
    let mut gone = false;
    for _ in 0..50 {
        if !alive(pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the old executor was killed");
}

#[tokio::test]
async fn shutdown_framework_stops_its_executors() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(master.port, work_dir.path(), common::free_port(), &[]);
    let (agent, _) = master.register("S1").await;
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("worker", "S1", "sleep 1000"),
            ..Default::default()
        },
    );
    let starting = master.update(v1::TaskState::TaskStarting).await;
    master.ack(&agent, &starting);
    let running = master.update(v1::TaskState::TaskRunning).await;
    master.ack(&agent, &running);
    let pid = executor_pid(work_dir.path(), "worker");
    master.send(
        &agent,
        &m::ShutdownFrameworkMessage {
            framework_id: v1::FrameworkId { value: "F1".into() },
        },
    );
    let killed = master.update(v1::TaskState::TaskKilled).await;
    master.ack(&agent, &killed);
    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "worker");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!alive(pid));
}

/// SIGKILLs every process of the session `sid` (the executor and its task).
fn kill_session(sid: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // Fields after the command: state, ppid, pgrp, session.
        let session = rest
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<i32>().ok());
        if session == Some(sid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
