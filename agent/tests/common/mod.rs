//! A fake master (a libprocess message listener) and helpers to drive the
//! real `mesos-agent` binary over its public protocols.
//!
//! Agents start secure by default, as operators get them: HTTP Basic on the
//! read-only realm with the principal [`HTTP_PRINCIPAL`] (written to
//! `<work_dir>/http_credentials`), and executor tokens on the executor API
//! (the built-in executor presents the token the agent gives it).

#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The agent process; killed when dropped (its empty test cgroups too).
pub struct AgentProcess {
    pub child: Child,
    cgroups_root: String,
}

impl AgentProcess {
    /// SIGKILL (a crash).
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.crash();
        remove_cgroups(&self.cgroups_root);
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the current user has a name")
}

/// The launcher the tests use: the agent's default (`linux` as root with
/// usable cgroups, else `posix`), unless `MESOS_TEST_LAUNCHER` says.
pub fn test_launcher() -> String {
    std::env::var("MESOS_TEST_LAUNCHER")
        .unwrap_or_else(|_| mesos_agent::launcher::default_kind().as_str().to_string())
}

/// A cgroup root of the test's own, so agents of tests running in parallel
/// do not take each other's containers for orphans.
pub fn cgroups_root(work_dir: &Path) -> String {
    let name: String = work_dir
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect()
        })
        .unwrap_or_default();
    format!("mesos_test_{name}")
}

/// Kills what the test's agents left running in their containers (executors
/// outlive their agent by design) and removes the cgroups, so a test leaves
/// no process or cgroup behind on the host.
fn remove_cgroups(root: &str) {
    let mut roots = vec![Path::new("/sys/fs/cgroup").join(root)];
    if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(
            controllers
                .filter_map(Result::ok)
                .map(|c| c.path().join(root)),
        );
    }
    roots.retain(|r| r.is_dir());
    let containers = |root: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(root)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut alive = false;
        for dir in roots.iter().flat_map(|r| containers(r)) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                alive = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if std::fs::remove_dir(&dir).is_err() {
                alive = true;
            }
        }
        if !alive || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for root in roots {
        let _ = std::fs::remove_dir(root);
    }
}

/// A directory every user may enter, holding `mesos-executor` (hard-linked
/// when possible, else copied): for executors that run as an unprivileged
/// host id while the checkout may sit in a private directory (`mktemp -d`).
pub fn world_reachable_executor() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("launcher dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod launcher dir");
    let source = Path::new(env!("CARGO_BIN_EXE_mesos-executor"));
    let target = dir.path().join("mesos-executor");
    if std::fs::hard_link(source, &target).is_err() {
        std::fs::copy(source, &target).expect("copy mesos-executor");
    }
    dir
}

/// The principal the test agents accept on their HTTP endpoints.
pub const HTTP_PRINCIPAL: &str = "ops";
/// Its secret.
pub const HTTP_SECRET: &str = "ops-secret";

/// `Authorization` header value for [`HTTP_PRINCIPAL`].
pub fn http_authorization() -> String {
    mesos_common::auth::basic::header_value(
        HTTP_PRINCIPAL,
        &mesos_common::auth::credentials::Secret::new(HTTP_SECRET),
    )
}

/// Writes `text` to `path`, readable by its owner only (as credentials
/// files should be).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write a credentials file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the credentials file");
}

/// Writes the test agents' `--http_credentials` file into `work_dir`.
pub fn http_credentials(work_dir: &Path) -> PathBuf {
    let path = work_dir.join("http_credentials");
    write_private(
        &path,
        &format!(
            r#"{{"credentials":[{{"principal":"{HTTP_PRINCIPAL}","secret":"{HTTP_SECRET}"}}]}}"#
        ),
    );
    path
}

/// Starts `mesos-agent` with the test launcher and short backoffs, and
/// `--http_credentials` unless `extra` says `--insecure` or names its own,
/// and permissive `--acls` unless `extra` names its own.
pub fn start_agent(
    master_port: u16,
    work_dir: &Path,
    agent_port: u16,
    extra: &[&str],
) -> AgentProcess {
    spawn_agent(master_port, work_dir, agent_port, extra, Stdio::inherit())
}

/// [`start_agent`] with the agent's stderr going to `stderr`.
pub fn spawn_agent(
    master_port: u16,
    work_dir: &Path,
    agent_port: u16,
    extra: &[&str],
    stderr: Stdio,
) -> AgentProcess {
    let root = cgroups_root(work_dir);
    let mut auth = Vec::new();
    if !extra
        .iter()
        .any(|a| a.starts_with("--insecure") || a.starts_with("--http_credentials"))
    {
        auth.push(format!(
            "--http_credentials={}",
            http_credentials(work_dir).display()
        ));
    }
    // Tests about other things read sandboxes freely (Mesos's open ACL
    // default); tests of the secure default pass their own `--acls`.
    if !extra
        .iter()
        .any(|a| a.starts_with("--acls") || a.starts_with("--insecure"))
    {
        auth.push(r#"--acls={"permissive":true}"#.to_string());
    }
    let executor = PathBuf::from(env!("CARGO_BIN_EXE_mesos-executor"));
    let launcher_dir = executor.parent().expect("bin dir").to_path_buf();
    let child = Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
        .arg(format!("--master=127.0.0.1:{master_port}"))
        .arg(format!("--work_dir={}", work_dir.display()))
        .arg("--ip=127.0.0.1")
        .arg(format!("--port={agent_port}"))
        .arg(format!("--launcher={}", test_launcher()))
        .arg(format!("--cgroups_root={}", cgroups_root(work_dir)))
        .arg("--registration_backoff_factor=10ms")
        .arg("--resources=cpus:2;mem:1024;disk:1000;ports:[31000-32000]")
        .arg("--attributes=rack:a")
        .args(
            (!extra.iter().any(|a| a.starts_with("--launcher_dir")))
                .then(|| format!("--launcher_dir={}", launcher_dir.display())),
        )
        .args(auth)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start mesos-agent");
    AgentProcess {
        child,
        cgroups_root: root,
    }
}

/// Messages the fake master received.
pub struct FakeMaster {
    rx: mpsc::UnboundedReceiver<Message>,
    stash: std::collections::VecDeque<Message>,
    pub transport: Transport,
    pub upid: Upid,
    pub port: u16,
}

impl FakeMaster {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake master");
        let port = listener.local_addr().expect("address").port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(mesos_common::net::serve(
            listener,
            with_messages(axum::Router::new(), Inbox(tx)),
        ));
        Self {
            rx,
            stash: Default::default(),
            transport: Transport::default(),
            upid: Upid::new("master", "127.0.0.1", port),
            port,
        }
    }

    /// The next message called `name` (others are kept; a status update
    /// while waiting for something else fails the test).
    pub async fn next(&mut self, name: &str) -> Message {
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
    pub async fn expect_no_update(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert_ne!(
                message.name, "mesos.internal.StatusUpdateMessage",
                "a status update arrived before the previous one was acknowledged"
            );
            self.stash.push_back(message);
        }
    }

    pub fn send<M: prost::Message + prost::Name>(&self, to: &Upid, message: &M) {
        self.transport.send(&self.upid, to, message);
    }

    /// Waits for RegisterSlaveMessage and answers with `agent_id`.
    pub async fn register(&mut self, agent_id: &str) -> (Upid, m::RegisterSlaveMessage) {
        let register = self.next("mesos.internal.RegisterSlaveMessage").await;
        let registration: m::RegisterSlaveMessage =
            register.decode().expect("valid RegisterSlaveMessage");
        self.send(
            &register.from,
            &m::SlaveRegisteredMessage {
                slave_id: v1::AgentId {
                    value: agent_id.into(),
                },
                connection: Some(m::MasterSlaveConnection {
                    total_ping_timeout_seconds: Some(75.0),
                }),
            },
        );
        (register.from, registration)
    }

    /// The next status update (decoded), asserting its state.
    pub async fn update(&mut self, expected: v1::TaskState) -> m::StatusUpdate {
        let message = self.next("mesos.internal.StatusUpdateMessage").await;
        let update: m::StatusUpdateMessage = message.decode().expect("valid StatusUpdateMessage");
        assert_eq!(
            update.update.status.state,
            expected as i32,
            "expected {expected:?}, got {:?} ({:?})",
            v1::TaskState::try_from(update.update.status.state),
            update.update.status.message
        );
        update.update
    }

    /// Acknowledges an update as the master relays a scheduler's ACK.
    pub fn ack(&self, agent: &Upid, update: &m::StatusUpdate) {
        self.send(
            agent,
            &m::StatusUpdateAcknowledgementMessage {
                slave_id: update.slave_id.clone().expect("slave id"),
                framework_id: update.framework_id.clone(),
                task_id: update.status.task_id.clone(),
                uuid: update.uuid.clone().expect("uuid"),
            },
        );
    }
}

pub fn framework(id: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        user: current_user(),
        name: "agent-test".into(),
        id: Some(v1::FrameworkId { value: id.into() }),
        checkpoint: Some(true),
        ..Default::default()
    }
}

pub fn command_task(id: &str, agent_id: &str, command: &str) -> v1::TaskInfo {
    let scalar = |name: &str, value: f64| v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    };
    v1::TaskInfo {
        name: id.into(),
        task_id: v1::TaskId { value: id.into() },
        agent_id: v1::AgentId {
            value: agent_id.into(),
        },
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        command: Some(v1::CommandInfo {
            value: Some(command.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A GET with the test principal's credentials; returns status and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let authorization = http_authorization();
    let (status, _, body) = http_request(
        port,
        "GET",
        path,
        &[("Authorization", authorization.as_str())],
        "",
    )
    .await;
    (status, body)
}

/// A raw HTTP/1.1 request; returns status, the response head and body.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the agent");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_string(), body.to_string())
}

impl FakeMaster {
    /// The next status update, whatever its state.
    pub async fn any_update(&mut self) -> m::StatusUpdate {
        let message = self.next("mesos.internal.StatusUpdateMessage").await;
        let update: m::StatusUpdateMessage = message.decode().expect("valid StatusUpdateMessage");
        update.update
    }
}

/// A raw HTTP/1.1 POST; returns status and body.
pub async fn http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_request(port, "POST", path, headers, body).await;
    (status, body)
}
