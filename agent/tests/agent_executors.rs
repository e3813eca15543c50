//! Executor life cycles against the real agent: task groups, custom
//! executors that never subscribe, unknown users, the executor API's
//! error answers, and bad flags.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{command_task, framework, http_post, start_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_failed_task_kills_the_rest_of_its_group() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(master.port, work_dir.path(), common::free_port(), &[]);
    let (agent, _) = master.register("S1").await;
    let executor = v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Default as i32),
        executor_id: v1::ExecutorId {
            value: "group-executor".into(),
        },
        framework_id: Some(v1::FrameworkId { value: "F1".into() }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..Default::default()
    };
    master.send(
        &agent,
        &m::RunTaskGroupMessage {
            framework: framework("F1"),
            executor,
            task_group: v1::TaskGroupInfo {
                tasks: vec![
                    command_task("long", "S1", "sleep 1000"),
                    command_task("bad", "S1", "sleep 0.5; exit 3"),
                ],
            },
            ..Default::default()
        },
    );
    let mut last: BTreeMap<String, m::StatusUpdate> = BTreeMap::new();
    while last.len() < 2
        || !last.values().all(|u| {
            matches!(
                v1::TaskState::try_from(u.status.state),
                Ok(v1::TaskState::TaskFailed
                    | v1::TaskState::TaskKilled
                    | v1::TaskState::TaskFinished)
            )
        })
    {
        let update = master.any_update().await;
        master.ack(&agent, &update);
        last.insert(update.status.task_id.value.clone(), update);
    }
    let bad = &last["bad"].status;
    assert_eq!(bad.state, v1::TaskState::TaskFailed as i32);
    assert_eq!(bad.message.as_deref(), Some("Command exited with status 3"));
    assert_eq!(last["long"].status.state, v1::TaskState::TaskKilled as i32);
    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "group-executor");
}

#[tokio::test]
async fn executor_that_never_subscribes_is_destroyed_after_the_registration_timeout() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(
        master.port,
        work_dir.path(),
        common::free_port(),
        &["--executor_registration_timeout=1secs"],
    );
    let (agent, _) = master.register("S1").await;
    let mut task = command_task("lazy-task", "S1", "unused");
    task.command = None;
    task.executor = Some(v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId {
            value: "lazy".into(),
        },
        command: Some(v1::CommandInfo {
            value: Some("sleep 1000".into()),
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
    let failed = master.update(v1::TaskState::TaskFailed).await;
    assert_eq!(
        failed.status.reason,
        Some(v1::task_status::Reason::ExecutorRegistrationTimeout as i32)
    );
    assert_eq!(
        failed.status.source,
        Some(v1::task_status::Source::Agent as i32)
    );
    master.ack(&agent, &failed);
    master.next("mesos.internal.ExitedExecutorMessage").await;
}

#[tokio::test]
async fn a_task_for_an_unknown_user_fails_with_a_launch_error_naming_the_user() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(master.port, work_dir.path(), common::free_port(), &[]);
    let (agent, _) = master.register("S1").await;
    let mut info = framework("F1");
    info.user = "no-such-user-zz".into();
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: info,
            task: command_task("t", "S1", "true"),
            ..Default::default()
        },
    );
    let failed = master.update(v1::TaskState::TaskFailed).await;
    assert_eq!(
        failed.status.reason,
        Some(v1::task_status::Reason::ContainerLaunchFailed as i32)
    );
    let message = failed.status.message.clone().unwrap_or_default();
    assert!(message.contains("no-such-user-zz"), "{message}");
    master.ack(&agent, &failed);
}

#[tokio::test]
async fn executor_api_refuses_bad_requests_like_mesos() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    // About request validation, not authentication (see agent_auth.rs).
    let _agent = start_agent(
        master.port,
        work_dir.path(),
        port,
        &["--authenticate_http_executors=false"],
    );
    master.register("S1").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let json = [("Content-Type", "application/json")];
    let subscribe = r#"{"type":"SUBSCRIBE","framework_id":{"value":"F9"},"executor_id":{"value":"E9"},"subscribe":{}}"#;
    let (status, _) = common::http_get(port, "/api/v1/executor").await;
    assert_eq!(status, 405);
    let (status, body) = http_post(port, "/api/v1/executor", &[], subscribe).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_post(
        port,
        "/api/v1/executor",
        &[("Content-Type", "text/plain")],
        subscribe,
    )
    .await;
    assert_eq!(status, 415);
    let (status, body) = http_post(port, "/api/v1/executor", &json, "{not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_post(
        port,
        "/api/v1/executor",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "text/html"),
        ],
        subscribe,
    )
    .await;
    assert_eq!(status, 406);
    let (status, body) = http_post(port, "/slave(1)/api/v1/executor", &json, subscribe).await;
    assert_eq!((status, body.as_str()), (400, "Framework cannot be found"));
    let heartbeat =
        r#"{"type":"HEARTBEAT","framework_id":{"value":"F9"},"executor_id":{"value":"E9"}}"#;
    assert_eq!(
        http_post(port, "/api/v1/executor", &json, heartbeat)
            .await
            .0,
        202
    );
    let no_uuid = r#"{"type":"UPDATE","framework_id":{"value":"F9"},"executor_id":{"value":"E9"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}}}"#;
    let (status, body) = http_post(port, "/api/v1/executor", &json, no_uuid).await;
    assert_eq!(status, 400);
    assert!(body.contains("uuid"), "{body}");
}

#[test]
fn bad_flags_are_one_line_and_exit_1() {
    for args in [
        vec!["--master=nonsense", "--work_dir=/tmp/agent-bad-flags"],
        vec![
            "--master=127.0.0.1:5050",
            "--work_dir=/tmp/agent-bad-flags",
            "--port=abc",
        ],
        vec![
            "--master=127.0.0.1:5050",
            "--work_dir=/tmp/agent-bad-flags",
            "--attributes=rack",
        ],
        vec!["--master=127.0.0.1:5050"],
        // Secure by default: HTTP authentication needs --http_credentials.
        vec!["--master=127.0.0.1:5050", "--work_dir=/tmp/agent-bad-flags"],
        vec![
            "--master=127.0.0.1:5050",
            "--work_dir=/tmp/agent-bad-flags",
            "--insecure",
            "--http_authenticators=kerberos",
        ],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
            .args(&args)
            .env_remove("MESOS_WORK_DIR")
            .env_remove("MESOS_HTTP_CREDENTIALS")
            .env_remove("MESOS_INSECURE")
            .output()
            .expect("run mesos-agent");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}
