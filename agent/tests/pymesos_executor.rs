//! An unmodified pymesos 0.3.15 executor (`MesosExecutorDriver`) run as a
//! custom executor by the real agent: subscription, status updates,
//! framework messages both ways and shutdown. Skipped (with a message) when
//! no Python with pymesos is available (`MESOS_TEST_PYTHON` or `.venv`).

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{framework, start_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

const EXECUTOR: &str = r#"
import threading, time
from pymesos import MesosExecutorDriver, Executor, encode_data, decode_data

class Echo(Executor):
    def launchTask(self, driver, task):
        def run():
            driver.sendStatusUpdate(dict(task_id=task['task_id'], state='TASK_RUNNING'))
            time.sleep(0.2)
            driver.sendStatusUpdate(dict(task_id=task['task_id'], state='TASK_FINISHED', message='pymesos done'))
        threading.Thread(target=run, daemon=True).start()

    def frameworkMessage(self, driver, message):
        driver.sendFrameworkMessage(encode_data(b'echo:' + decode_data(message)))

MesosExecutorDriver(Echo()).run()
"#;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("MESOS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", "import pymesos"])
        .output()
        .is_ok_and(|o| o.status.success());
    works.then_some(candidate)
}

#[tokio::test]
async fn pymesos_executor_runs_a_task_and_exchanges_messages() {
    let Some(python) = python() else {
        eprintln!("skipping: no Python with pymesos (set MESOS_TEST_PYTHON)");
        return;
    };
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let script = work_dir.path().join("echo_executor.py");
    std::fs::write(&script, EXECUTOR).expect("write the executor script");
    // pymesos 0.3.15's MesosExecutorDriver never sends
    // MESOS_EXECUTOR_AUTHENTICATION_TOKEN (no Authorization header on
    // SUBSCRIBE or on calls), so it only works with executor
    // authentication off, as with Mesos's default.
    let _agent = start_agent(
        master.port,
        work_dir.path(),
        common::free_port(),
        &["--authenticate_http_executors=false"],
    );
    let (agent, _) = master.register("S1").await;

    let mut task = common::command_task("py-task", "S1", "unused");
    task.command = None;
    task.executor = Some(v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId { value: "py".into() },
        command: Some(v1::CommandInfo {
            value: Some(format!("exec {} {}", python.display(), script.display())),
            ..Default::default()
        }),
        ..Default::default()
    });
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task,
            ..Default::default()
        },
    );

    let running = master.update(v1::TaskState::TaskRunning).await;
    assert_eq!(
        running.status.source,
        Some(v1::task_status::Source::Executor as i32)
    );
    assert_eq!(
        running.executor_id.as_ref().map(|e| e.value.as_str()),
        Some("py")
    );
    master.ack(&agent, &running);
    let finished = master.update(v1::TaskState::TaskFinished).await;
    assert_eq!(finished.status.message.as_deref(), Some("pymesos done"));
    master.ack(&agent, &finished);

    master.send(
        &agent,
        &m::FrameworkToExecutorMessage {
            slave_id: v1::AgentId { value: "S1".into() },
            framework_id: v1::FrameworkId { value: "F1".into() },
            executor_id: v1::ExecutorId { value: "py".into() },
            data: Bytes::from_static(b"hi"),
        },
    );
    let reply = master
        .next("mesos.internal.ExecutorToFrameworkMessage")
        .await;
    let reply: m::ExecutorToFrameworkMessage =
        reply.decode().expect("valid ExecutorToFrameworkMessage");
    assert_eq!(reply.data, Bytes::from_static(b"echo:hi"));
    assert_eq!(reply.executor_id.value, "py");

    master.send(
        &agent,
        &m::ShutdownExecutorMessage {
            executor_id: Some(v1::ExecutorId { value: "py".into() }),
            framework_id: Some(v1::FrameworkId { value: "F1".into() }),
        },
    );
    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "py");
}
