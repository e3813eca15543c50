//! Starts the real `mesos-agent` against a fake master (a libprocess message
//! listener written here), runs `echo hello` through the built-in command
//! executor and checks the status update protocol and the sandbox.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use mesos_common::transport::{with_messages, Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::internal as m;
use mesos_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Clone)]
struct Inbox(mpsc::UnboundedSender<Message>);

impl MessageSink for Inbox {
    fn deliver(&self, message: Message) -> bool {
        self.0.send(message).is_ok()
    }
}

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the current user has a name")
}

struct Mailbox {
    rx: mpsc::UnboundedReceiver<Message>,
    stash: std::collections::VecDeque<Message>,
}

impl Mailbox {
    async fn next(&mut self, name: &str) -> Message {
        if let Some(i) = self.stash.iter().position(|m| m.name == name) {
            if let Some(m) = self.stash.remove(i) {
                return m;
            }
        }
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
                .expect("inbox open");
            if message.name == name {
                return message;
            }
            assert_ne!(
                message.name, "mesos.internal.StatusUpdateMessage",
                "unexpected status update while waiting for {name}"
            );
            self.stash.push_back(message);
        }
    }

    /// Fails if a status update arrives within `window`; keeps the rest.
    async fn expect_no_update(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert_ne!(
                message.name, "mesos.internal.StatusUpdateMessage",
                "an update arrived before the previous one was acknowledged"
            );
            self.stash.push_back(message);
        }
    }
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the agent");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

#[tokio::test]
async fn echo_task_runs_with_acknowledged_updates_in_order_and_its_output_is_served() {
    // The fake master.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake master");
    let master_port = listener.local_addr().expect("address").port();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut inbox = Mailbox {
        rx,
        stash: Default::default(),
    };
    tokio::spawn(mesos_common::net::serve(
        listener,
        with_messages(axum::Router::new(), Inbox(tx)),
    ));
    let master = Upid::new("master", "127.0.0.1", master_port);
    let transport = Transport::default();

    // The agent.
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = free_port();
    let executor = PathBuf::from(env!("CARGO_BIN_EXE_mesos-executor"));
    let launcher_dir = executor.parent().expect("bin dir").to_path_buf();
    let _agent = AgentProcess(
        Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
            .arg(format!("--master=127.0.0.1:{master_port}"))
            .arg(format!("--work_dir={}", work_dir.path().display()))
            .arg("--ip=127.0.0.1")
            .arg(format!("--port={agent_port}"))
            .arg("--launcher=posix")
            .arg("--registration_backoff_factor=10ms")
            .arg("--resources=cpus:2;mem:1024;disk:1000;ports:[31000-32000]")
            .arg("--attributes=rack:a")
            .arg(format!("--launcher_dir={}", launcher_dir.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("start mesos-agent"),
    );

    // Registration.
    let register = inbox.next("mesos.internal.RegisterSlaveMessage").await;
    assert_eq!(
        register.from.to_string(),
        format!("slave(1)@127.0.0.1:{agent_port}")
    );
    let registration: m::RegisterSlaveMessage =
        register.decode().expect("valid RegisterSlaveMessage");
    assert_eq!(
        registration.version.as_deref(),
        Some(mesos_common::MESOS_VERSION)
    );
    assert_eq!(registration.agent_capabilities.len(), 8);
    assert_eq!(registration.slave.port, Some(i32::from(agent_port)));
    assert!(registration
        .slave
        .resources
        .iter()
        .any(|r| r.name == "cpus"));
    assert_eq!(registration.slave.attributes.len(), 1);
    let agent = register.from.clone();
    let agent_id = v1::AgentId { value: "S1".into() };
    transport.send(
        &master,
        &agent,
        &m::SlaveRegisteredMessage {
            slave_id: agent_id.clone(),
            connection: Some(m::MasterSlaveConnection {
                total_ping_timeout_seconds: Some(75.0),
            }),
        },
    );

    // Pings are answered to their sender.
    let observer = Upid::new("slave-observer(1)", "127.0.0.1", master_port);
    transport.send(&observer, &agent, &m::PingSlaveMessage { connected: true });
    let pong = inbox.next("mesos.internal.PongSlaveMessage").await;
    assert_eq!(pong.to, "slave-observer(1)");

    // A spoofed message from someone else is ignored.
    let impostor = Upid::new("master", "127.0.0.2", master_port);
    let framework_id = v1::FrameworkId { value: "F1".into() };
    let framework = v1::FrameworkInfo {
        user: current_user(),
        name: "echo-test".into(),
        id: Some(framework_id.clone()),
        checkpoint: Some(true),
        ..Default::default()
    };
    let task = |id: &str| v1::TaskInfo {
        name: id.into(),
        task_id: v1::TaskId { value: id.into() },
        agent_id: agent_id.clone(),
        resources: vec![
            v1::Resource {
                name: "cpus".into(),
                r#type: v1::value::Type::Scalar as i32,
                scalar: Some(v1::value::Scalar { value: 0.1 }),
                ..Default::default()
            },
            v1::Resource {
                name: "mem".into(),
                r#type: v1::value::Type::Scalar as i32,
                scalar: Some(v1::value::Scalar { value: 32.0 }),
                ..Default::default()
            },
        ],
        command: Some(v1::CommandInfo {
            value: Some("echo hello".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    transport.send(
        &impostor,
        &agent,
        &m::RunTaskMessage {
            framework: framework.clone(),
            task: task("spoofed"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );

    transport.send(
        &master,
        &agent,
        &m::RunTaskMessage {
            framework: framework.clone(),
            task: task("t1"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );

    // Updates arrive in order, each only after the previous one was acked.
    let mut states = Vec::new();
    for expected in [
        v1::TaskState::TaskStarting,
        v1::TaskState::TaskRunning,
        v1::TaskState::TaskFinished,
    ] {
        let message = inbox.next("mesos.internal.StatusUpdateMessage").await;
        let update: m::StatusUpdateMessage = message.decode().expect("valid StatusUpdateMessage");
        assert_eq!(update.pid.as_deref(), Some(agent.to_string().as_str()));
        let update = update.update;
        assert_eq!(
            update.status.task_id.value, "t1",
            "the spoofed task must not run"
        );
        assert_eq!(
            update.status.state, expected as i32,
            "got {:?} after {states:?}",
            update.status.state
        );
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
        states.push(expected);
        // Nothing else may arrive before this one is acknowledged.
        inbox.expect_no_update(Duration::from_millis(500)).await;
        transport.send(
            &master,
            &agent,
            &m::StatusUpdateAcknowledgementMessage {
                slave_id: agent_id.clone(),
                framework_id: framework_id.clone(),
                task_id: update.status.task_id.clone(),
                uuid,
            },
        );
    }

    let exited = inbox.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "t1");

    // The sandbox is in /state and its stdout is served.
    let (status, body) = http_get(agent_port, "/state").await;
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("state is JSON");
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
    let (status, _) = http_get(
        agent_port,
        &format!("/files/read?path={directory}/../../../../../../../../../etc/passwd"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = http_get(
        agent_port,
        &format!("/files/read?path={directory}/missing&offset=0"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = http_get(
        agent_port,
        &format!("/slave(1)/files/browse?path={directory}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"stdout\"") || body.contains("/stdout\""),
        "{body}"
    );
    let (status, body) = http_get(agent_port, "/health").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = http_get(agent_port, "/flags?jsonp=cb").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("cb({\"flags\":"), "{body}");
}
