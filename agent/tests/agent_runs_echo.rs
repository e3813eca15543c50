//! Starts the real `mesos-agent` against a fake master, runs `echo hello`
//! through the built-in command executor and checks the status update
//! protocol and the sandbox.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{command_task, framework, http_get, start_agent, FakeMaster};
use mesos_common::Upid;
use mesos_proto::internal as m;
use mesos_proto::v1;

#[tokio::test]
async fn echo_task_runs_with_acknowledged_updates_in_order_and_its_output_is_served() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = common::free_port();
    let _agent = start_agent(master.port, work_dir.path(), agent_port, &[]);

    // Registration.
    let (agent, registration) = master.register("S1").await;
    assert_eq!(
        agent.to_string(),
        format!("slave(1)@127.0.0.1:{agent_port}")
    );
    assert_eq!(
        registration.version.as_deref(),
        Some(mesos_common::MESOS_VERSION)
    );
    let capabilities: Vec<_> = registration
        .agent_capabilities
        .iter()
        .map(|c| c.r#type())
        .collect();
    {
        use v1::agent_info::capability::Type;
        assert_eq!(
            capabilities,
            [
                Type::MultiRole,
                Type::HierarchicalRole,
                Type::ReservationRefinement,
                Type::ResizeVolume,
                Type::TaskResourceLimits
            ],
            "only what the agent implements"
        );
    }
    assert_eq!(registration.slave.port, Some(i32::from(agent_port)));
    assert!(registration
        .slave
        .resources
        .iter()
        .any(|r| r.name == "cpus"));
    assert_eq!(registration.slave.attributes.len(), 1);
    let agent_id = v1::AgentId { value: "S1".into() };

    // Pings are answered to their sender.
    let observer = Upid::new("slave-observer(1)", "127.0.0.1", master.port);
    master
        .transport
        .send(&observer, &agent, &m::PingSlaveMessage { connected: true });
    let pong = master.next("mesos.internal.PongSlaveMessage").await;
    assert_eq!(pong.to, "slave-observer(1)");

    // A spoofed message from someone else is ignored.
    let impostor = Upid::new("master", "127.0.0.2", master.port);
    master.transport.send(
        &impostor,
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("spoofed", "S1", "echo spoofed"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );

    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task("t1", "S1", "echo hello"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );

    // Updates arrive in order, each only after the previous one was acked.
    for expected in [
        v1::TaskState::TaskStarting,
        v1::TaskState::TaskRunning,
        v1::TaskState::TaskFinished,
    ] {
        let message = master.next("mesos.internal.StatusUpdateMessage").await;
        let update: m::StatusUpdateMessage = message.decode().expect("valid StatusUpdateMessage");
        assert_eq!(update.pid.as_deref(), Some(agent.to_string().as_str()));
        let update = update.update;
        assert_eq!(
            update.status.task_id.value, "t1",
            "the spoofed task must not run"
        );
        assert_eq!(update.status.state, expected as i32);
        assert_eq!(
            update.status.source,
            Some(v1::task_status::Source::Executor as i32)
        );
        assert_eq!(update.status.agent_id.as_ref(), Some(&agent_id));
        assert_eq!(update.slave_id.as_ref(), Some(&agent_id));
        assert_eq!(
            update.status.executor_id.as_ref().map(|e| e.value.as_str()),
            Some("t1")
        );
        let uuid: Bytes = update.uuid.clone().expect("updates carry a uuid");
        assert_eq!(uuid.len(), 16);
        assert_eq!(update.status.uuid.as_ref(), Some(&uuid));
        if expected == v1::TaskState::TaskFinished {
            assert_eq!(
                update.status.message.as_deref(),
                Some("Command exited with status 0")
            );
        }
        master.expect_no_update(Duration::from_millis(500)).await;
        master.ack(&agent, &update);
    }

    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "t1");

    // The sandbox is in /state and its stdout is served. The last ack is
    // handled asynchronously, so wait for the task to be listed as completed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let state: serde_json::Value = loop {
        let (status, body) = http_get(agent_port, "/state").await;
        assert_eq!(status, 200, "{body}");
        let state: serde_json::Value = serde_json::from_str(&body).expect("state is JSON");
        let completed = ["frameworks", "completed_frameworks"]
            .iter()
            .filter_map(|k| state[*k].as_array())
            .flatten()
            .flat_map(|f| {
                ["executors", "completed_executors"]
                    .iter()
                    .filter_map(move |k| f[*k].as_array())
                    .flatten()
            })
            .any(|e| e["completed_tasks"][0]["state"] == "TASK_FINISHED");
        if completed || tokio::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state["id"], "S1");
    let executors: Vec<&serde_json::Value> = ["frameworks", "completed_frameworks"]
        .iter()
        .filter_map(|k| state[*k].as_array())
        .flatten()
        .flat_map(|f| {
            ["executors", "completed_executors"]
                .iter()
                .filter_map(move |k| f[*k].as_array())
                .flatten()
        })
        .collect();
    let executor = executors.first().expect("the executor is listed");
    assert_eq!(executor["id"], "t1");
    assert_eq!(
        executor["name"],
        "Command Executor (Task: t1) (Command: sh -c 'echo hello')"
    );
    assert_eq!(executor["completed_tasks"][0]["state"], "TASK_FINISHED");
    let directory = executor["directory"]
        .as_str()
        .expect("a directory")
        .to_string();
    let (status, body) = http_get(
        agent_port,
        &format!("/files/read?path={directory}/stdout&offset=0"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).expect("read is JSON");
    assert_eq!(read["data"], "hello\n");
    assert_eq!(read["offset"], 0);

    // Nothing outside the sandboxes is served.
    let (status, body) = http_get(agent_port, "/files/read?path=/etc/passwd&offset=0").await;
    assert_eq!(status, 403, "{body}");
    let escape = format!("/files/read?path={directory}/../../../../../../../../../etc/passwd");
    assert_eq!(http_get(agent_port, &escape).await.0, 403);
    let missing = format!("/files/read?path={directory}/missing&offset=0");
    assert_eq!(http_get(agent_port, &missing).await.0, 404);
    let (status, body) = http_get(
        agent_port,
        &format!("/slave(1)/files/browse?path={directory}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/stdout\""), "{body}");
    let (status, body) = http_get(
        agent_port,
        &format!("/files/download?path={directory}/stdout"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "hello\n"));
    assert_eq!(http_get(agent_port, "/health").await, (200, String::new()));
    let (status, body) = http_get(agent_port, "/flags?jsonp=cb").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("cb({\"flags\":"), "{body}");
    let (status, body) = http_get(agent_port, "/version/").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"version\":\"1.11.0\""), "{body}");
}
