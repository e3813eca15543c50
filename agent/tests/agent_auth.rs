//! Authentication of and by the real agent: HTTP Basic on its read-only
//! endpoints, executor tokens on `/api/v1/executor`, SASL authentication
//! with the (fake) master before registering, and the master's refusals.

mod common;

use std::io::Read as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{command_task, framework, http_request, spawn_agent, start_agent, FakeMaster};
use mesos_common::auth::credentials::{Credential, Credentials, Secret};
use mesos_common::auth::jwt::{self, ExecutorClaims};
use mesos_common::auth::sasl::{self, Mechanism, ServerStep};
use mesos_common::Upid;
use mesos_proto::internal as m;
use mesos_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lowercase_head(head: &str) -> String {
    head.to_ascii_lowercase()
}

#[tokio::test]
async fn state_answers_401_without_credentials_and_200_with_them() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    let _agent = start_agent(master.port, work_dir.path(), port, &[]);
    master.register("S1").await;

    let (status, head, body) = http_request(port, "GET", "/state", &[], "").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        lowercase_head(&head).contains("www-authenticate: basic realm=\"mesos-agent-readonly\""),
        "{head}"
    );
    let wrong = mesos_common::auth::basic::header_value(common::HTTP_PRINCIPAL, &Secret::new("no"));
    let (status, _, body) =
        http_request(port, "GET", "/state", &[("Authorization", &wrong)], "").await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("no:"), "{body}");

    let (status, body) = common::http_get(port, "/state").await;
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("state is JSON");
    assert_eq!(state["id"], "S1");

    for path in [
        "/state.json",
        "/slave(1)/state",
        "/flags",
        "/files/browse?path=/",
        "/files/read?path=/etc/passwd&offset=0",
    ] {
        let (status, _, _) = http_request(port, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path} needs credentials");
    }
    for path in ["/health", "/version"] {
        let (status, _, _) = http_request(port, "GET", path, &[], "").await;
        assert_eq!(status, 200, "{path} is open");
    }

    let (status, body) = common::http_get(port, "/flags").await;
    assert_eq!(status, 200, "{body}");
    let flags: serde_json::Value = serde_json::from_str(&body).expect("flags are JSON");
    assert_eq!(flags["flags"]["insecure"], "false");
    assert_eq!(flags["flags"]["authenticate_http_readonly"], "true");
    assert_eq!(flags["flags"]["authenticate_http_executors"], "true");
    assert_eq!(
        flags["flags"]["http_credentials"],
        work_dir
            .path()
            .join("http_credentials")
            .display()
            .to_string()
    );
    assert!(!body.contains(common::HTTP_SECRET), "{body}");
}

/// POSTs a SUBSCRIBE for `executor_id` of F1 with `token` and returns the
/// status (without waiting for the event stream to end).
async fn subscribe_status(port: u16, executor_id: &str, token: Option<&str>) -> (u16, String) {
    let body = format!(
        r#"{{"type":"SUBSCRIBE","framework_id":{{"value":"F1"}},"executor_id":{{"value":"{executor_id}"}},"subscribe":{{}}}}"#
    );
    let mut request = format!(
        "POST /api/v1/executor HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the agent");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .expect("the agent answers in time")
            .expect("read the response");
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, text)
}

#[tokio::test]
async fn executor_api_refuses_calls_without_a_valid_token_for_that_executor() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let key_file = work_dir.path().join("jwt_key");
    common::write_private(&key_file, "0123456789abcdef0123456789abcdef");
    let key = Secret::new("0123456789abcdef0123456789abcdef");
    let port = common::free_port();
    let key_flag = format!("--jwt_secret_key={}", key_file.display());
    let _agent = start_agent(
        master.port,
        work_dir.path(),
        port,
        &[&key_flag, "--executor_shutdown_grace_period=1secs"],
    );
    let (agent, _) = master.register("S1").await;

    // A custom executor that never subscribes: the test speaks for it.
    let mut task = command_task("quiet-task", "S1", "unused");
    task.command = None;
    task.executor = Some(v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId {
            value: "quiet".into(),
        },
        command: Some(v1::CommandInfo {
            value: Some("sleep 60".into()),
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let container = loop {
        let (status, body) = common::http_get(port, "/state").await;
        assert_eq!(status, 200, "{body}");
        let state: serde_json::Value = serde_json::from_str(&body).expect("state is JSON");
        let container = state["frameworks"][0]["executors"][0]["container"]
            .as_str()
            .map(String::from);
        if let Some(container) = container {
            break container;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "executor not listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mint = |key: &Secret, eid: &str, cid: &str| {
        jwt::mint(
            key,
            &ExecutorClaims {
                fid: "F1".into(),
                eid: eid.into(),
                cid: cid.into(),
            },
        )
    };

    let (status, head) = subscribe_status(port, "quiet", None).await;
    assert_eq!(status, 401, "{head}");
    assert!(
        lowercase_head(&head).contains("www-authenticate: bearer realm=\"mesos-agent-executor\""),
        "{head}"
    );
    let forged = mint(&Secret::new("not the agent's key"), "quiet", &container);
    let (status, head) = subscribe_status(port, "quiet", Some(&forged)).await;
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("invalid_token"), "{head}");
    let (status, head) = subscribe_status(port, "quiet", Some("not.a.jwt")).await;
    assert_eq!(status, 401, "{head}");

    let another_executor = mint(&key, "someone-else", &container);
    let (status, head) = subscribe_status(port, "quiet", Some(&another_executor)).await;
    assert_eq!(status, 403, "{head}");
    let another_run = mint(&key, "quiet", "an-earlier-container");
    let (status, head) = subscribe_status(port, "quiet", Some(&another_run)).await;
    assert_eq!(status, 403, "{head}");

    let own = mint(&key, "quiet", &container);
    let (status, head) = subscribe_status(port, "quiet", Some(&own)).await;
    assert_eq!(status, 200, "{head}");

    // Clean up the executor.
    master.send(
        &agent,
        &m::ShutdownFrameworkMessage {
            framework_id: v1::FrameworkId { value: "F1".into() },
        },
    );
    master.next("mesos.internal.ExitedExecutorMessage").await;
}

#[tokio::test]
async fn the_built_in_executor_authenticates_and_its_tasks_never_see_the_token() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    let _agent = start_agent(master.port, work_dir.path(), port, &[]);
    let (agent, _) = master.register("S1").await;
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: command_task(
                "peek",
                "S1",
                "echo token=${MESOS_EXECUTOR_AUTHENTICATION_TOKEN:-none}",
            ),
            ..Default::default()
        },
    );
    // Each update below reached the agent as an authenticated call.
    for state in [
        v1::TaskState::TaskStarting,
        v1::TaskState::TaskRunning,
        v1::TaskState::TaskFinished,
    ] {
        let update = master.update(state).await;
        master.ack(&agent, &update);
    }
    let directory = work_dir
        .path()
        .join("slaves/S1/frameworks/F1/executors/peek/runs/latest");
    let directory = directory.canonicalize().expect("the sandbox exists");
    let (status, body) = common::http_get(
        port,
        &format!("/files/read?path={}/stdout&offset=0", directory.display()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).expect("read is JSON");
    assert_eq!(read["data"], "token=none\n");
}

fn write_credential(dir: &std::path::Path, secret: &str) -> String {
    let path = dir.join("credential");
    common::write_private(
        &path,
        &format!(r#"{{"principal":"agent","secret":"{secret}"}}"#),
    );
    format!("--credential=file://{}", path.display())
}

/// Plays the master's side of SASL for one attempt with `offered`
/// mechanisms, checking against `principal:agent-secret`; returns the
/// verdict it sent.
async fn authenticate(master: &mut FakeMaster, agent_port: u16, offered: &[&str]) -> ServerStep {
    let authenticate = master.next("mesos.internal.AuthenticateMessage").await;
    assert_eq!(authenticate.to, "master");
    assert!(
        authenticate.from.id.starts_with("authenticatee("),
        "{}",
        authenticate.from
    );
    let claimed: m::AuthenticateMessage = authenticate.decode().expect("valid AuthenticateMessage");
    assert_eq!(claimed.pid, format!("slave(1)@127.0.0.1:{agent_port}"));
    let client = authenticate.from.clone();
    let session = Upid::new("authenticator-session(1)", "127.0.0.1", master.port);
    master.transport.send(
        &session,
        &client,
        &m::AuthenticationMechanismsMessage {
            mechanisms: offered.iter().map(|s| s.to_string()).collect(),
        },
    );
    let start = master
        .next("mesos.internal.AuthenticationStartMessage")
        .await;
    assert_eq!(start.to, "authenticator-session(1)");
    assert_eq!(
        start.from, client,
        "the client answers from its own process"
    );
    let start: m::AuthenticationStartMessage = start.decode().expect("valid start");
    let mechanism = Mechanism::parse(&start.mechanism).expect("a known mechanism");
    let credentials = Arc::new(Credentials::from_pairs([Credential {
        principal: "agent".into(),
        secret: Secret::new("agent-secret"),
    }]));
    let mut server = sasl::server_session(mechanism, credentials, "fake-master");
    let mut step = server.start(start.data.as_deref().unwrap_or_default());
    loop {
        match step {
            ServerStep::Challenge(data) => {
                master.transport.send(
                    &session,
                    &client,
                    &m::AuthenticationStepMessage { data: data.into() },
                );
                let next = master
                    .next("mesos.internal.AuthenticationStepMessage")
                    .await;
                let next: m::AuthenticationStepMessage = next.decode().expect("valid step");
                step = server.step(&next.data);
            }
            ServerStep::Completed { .. } => {
                master
                    .transport
                    .send(&session, &client, &m::AuthenticationCompletedMessage {});
                return step;
            }
            ServerStep::Failed { .. } => {
                master
                    .transport
                    .send(&session, &client, &m::AuthenticationFailedMessage {});
                return step;
            }
            ServerStep::Error(ref error) => {
                master.transport.send(
                    &session,
                    &client,
                    &m::AuthenticationErrorMessage {
                        error: Some(error.clone()),
                    },
                );
                return step;
            }
        }
    }
}

#[tokio::test]
async fn the_agent_authenticates_with_scram_before_registering() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    let credential = write_credential(work_dir.path(), "agent-secret");
    let _agent = start_agent(master.port, work_dir.path(), port, &[&credential]);
    let verdict = authenticate(&mut master, port, &["SCRAM-SHA-256", "CRAM-MD5"]).await;
    assert!(
        matches!(verdict, ServerStep::Completed { .. }),
        "{verdict:?}"
    );
    let (agent, _) = master.register("S1").await;
    assert_eq!(agent.to_string(), format!("slave(1)@127.0.0.1:{port}"));
}

/// Waits up to 20 s for the agent to exit; returns its code and stderr.
fn wait_for_exit(agent: &mut common::AgentProcess) -> (Option<i32>, String) {
    for _ in 0..200 {
        if let Some(status) = agent.child.try_wait().expect("poll the agent") {
            let mut stderr = String::new();
            if let Some(mut pipe) = agent.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status.code(), stderr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the agent did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_credential_is_refused_exits_with_an_error() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    let credential = write_credential(work_dir.path(), "a-wrong-secret");
    let mut agent = spawn_agent(
        master.port,
        work_dir.path(),
        port,
        &[&credential, "--authenticatee=crammd5"],
        Stdio::piped(),
    );
    let verdict = authenticate(&mut master, port, &["CRAM-MD5"]).await;
    assert!(matches!(verdict, ServerStep::Failed { .. }), "{verdict:?}");
    let (code, stderr) = tokio::task::block_in_place(|| wait_for_exit(&mut agent));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Master master@127.0.0.1:{} refused authentication",
            master.port
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("a-wrong-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_shutdown_is_logged_with_its_reason_and_the_agent_exits() {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let port = common::free_port();
    let mut agent = spawn_agent(master.port, work_dir.path(), port, &[], Stdio::piped());
    let register = master.next("mesos.internal.RegisterSlaveMessage").await;
    master.send(
        &register.from,
        &m::ShutdownMessage {
            message: Some("Agent is not authenticated".into()),
        },
    );
    let (code, stderr) = tokio::task::block_in_place(|| wait_for_exit(&mut agent));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Agent asked to shut down by master@127.0.0.1:{} because 'Agent is not authenticated'",
            master.port
        )),
        "{stderr}"
    );
}
