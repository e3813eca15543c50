//! Test harness: starts the real `mesos-master` and `mesos-agent` binaries on
//! free loopback ports and talks to them only over their public protocols.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod scheduler;

/// A harness-only master argument: start without `--acls`, so the
/// master's secure default policy applies.
pub const NO_DEFAULT_ACLS: &str = "<no default acls>";

/// The agents' principal in every test cluster's credentials.
pub const AGENT_PRINCIPAL: &str = "test-agent";
/// Its secret.
pub const AGENT_SECRET: &str = "agent-secret-0d1f";
/// The frameworks' principal.
pub const FRAMEWORK_PRINCIPAL: &str = "test-framework";
/// Its secret.
pub const FRAMEWORK_SECRET: &str = "framework-secret-7c2a";
/// The operators' principal (endpoints, `/api/v1`).
pub const OPERATOR_PRINCIPAL: &str = "test-operator";
/// Its secret.
pub const OPERATOR_SECRET: &str = "operator-secret-91be";

/// `Authorization` header value for HTTP Basic.
pub fn basic_auth(principal: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"))
    )
}

/// The operator's `Authorization` header value.
pub fn operator_auth() -> String {
    basic_auth(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
}

/// The framework's `Authorization` header value.
pub fn framework_auth() -> String {
    basic_auth(FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET)
}

fn auth_headers(value: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(value).expect("header value"),
    );
    headers
}

/// An async client that authenticates as the test framework.
pub fn framework_client() -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(auth_headers(&framework_auth()))
        .build()
        .expect("http client")
}

/// An async client that authenticates as the test operator.
pub fn operator_client() -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(auth_headers(&operator_auth()))
        .build()
        .expect("http client")
}

/// A blocking client that authenticates as `principal`.
pub fn blocking_client_as(principal: &str, secret: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(auth_headers(&basic_auth(principal, secret)))
        .build()
        .expect("http client")
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, text: &str) {
    mesos_common::atomic_file::write_atomic(path, text.as_bytes(), 0o600)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Directory holding the workspace's binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    dir
}

/// Path of a workspace binary, which must have been built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --bins`; nextest does this)",
        path.display()
    );
    path
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
    /// File holding its stderr.
    pub log: PathBuf,
}

impl Proc {
    /// Sends SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `program` with extra environment variables, logging to `log`.
pub fn spawn_with_env(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Proc {
    let stderr = std::fs::File::create(log).expect("create log file");
    let stdout = stderr.try_clone().expect("clone log handle");
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().cloned())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    Proc {
        child,
        name: name.to_string(),
        log: log.to_path_buf(),
    }
}

/// A directory every user may enter, holding `mesos-executor` (hard-linked
/// when possible, else copied).
fn world_reachable_executor() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("launcher dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod launcher dir");
    let source = binary("mesos-executor");
    let target = dir.path().join("mesos-executor");
    if std::fs::hard_link(&source, &target).is_err() {
        std::fs::copy(&source, &target).expect("copy mesos-executor");
    }
    dir
}

/// `program args`, run under `prlimit --nofile=<limit>` when a limit is
/// given (`soft:hard`, `soft:` keeps the hard limit).
fn with_nofile(
    program: PathBuf,
    args: Vec<String>,
    limit: Option<String>,
) -> (PathBuf, Vec<String>) {
    match limit {
        None => (program, args),
        Some(limit) => {
            let mut wrapped = vec![format!("--nofile={limit}"), program.display().to_string()];
            wrapped.extend(args);
            (PathBuf::from("prlimit"), wrapped)
        }
    }
}

/// A master and agents with their own work directories.
pub struct Cluster {
    /// Scratch space; removed on drop.
    pub dir: tempfile::TempDir,
    /// A directory every user may enter holding `mesos-executor`: tasks run
    /// as `nobody` cannot exec one under a private checkout (`mktemp -d`).
    pub launcher_dir: tempfile::TempDir,
    /// Master port.
    pub master_port: u16,
    /// The master process.
    pub master: Option<Proc>,
    /// Agent ports, in start order.
    pub agent_ports: Vec<u16>,
    /// Agent processes, in start order.
    pub agents: Vec<Option<Proc>>,
    /// Extra master flags.
    pub master_args: Vec<String>,
    /// This cluster's `--cgroups_root`: agents destroy unknown containers
    /// under their root at startup, so clusters running side by side must
    /// not share one.
    pub cgroups_root: String,
    /// Extra agent flags.
    pub agent_args: Vec<String>,
    /// Whether agents get `--credential` (unless `agent_args` has one).
    pub agent_credential: bool,
    /// Extra environment of the master (e.g. `LIBPROCESS_SSL_*`).
    pub master_env: Vec<(String, String)>,
    /// Extra environment of the agents.
    pub agent_env: Vec<(String, String)>,
    /// A file limit (`RLIMIT_NOFILE`, soft and hard) for the master, set
    /// with `prlimit` (lowering needs no privilege).
    pub master_nofile: Option<u64>,
    /// A soft file limit for the agents (the hard one stays), set with
    /// `prlimit`.
    pub agent_soft_nofile: Option<u64>,
    /// Whether the master's URL is `https://` (its CA must be passed to
    /// [`trust_ca`] for the HTTP helpers to reach it).
    pub https: bool,
}

impl Cluster {
    /// A started master with `agents` agents, each registered.
    pub fn start(agents: usize) -> Cluster {
        Self::start_with(agents, &[])
    }

    /// As [`Cluster::start`], with extra master flags.
    pub fn start_with(agents: usize, master_args: &[&str]) -> Cluster {
        let mut cluster = Self::prepare(master_args);
        cluster.start_master();
        for _ in 0..agents {
            cluster.add_agent();
        }
        cluster.wait_for_agents(agents);
        cluster
    }

    /// A cluster with credentials written and nothing started: set
    /// [`Cluster::master_env`] and friends, then call
    /// [`Cluster::start_master`] and [`Cluster::add_agent`].
    pub fn prepare(master_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = Cluster {
            dir,
            launcher_dir: world_reachable_executor(),
            master_port: free_port(),
            master: None,
            agent_ports: Vec::new(),
            agents: Vec::new(),
            master_args: master_args.iter().map(|s| s.to_string()).collect(),
            cgroups_root: format!("mesos-test-{}", uuid::Uuid::new_v4()),
            agent_args: Vec::new(),
            agent_credential: true,
            master_env: Vec::new(),
            agent_env: Vec::new(),
            master_nofile: None,
            agent_soft_nofile: None,
            https: false,
        };
        cluster.write_credentials();
        cluster
    }

    /// A cluster with no agents yet, whose master runs with `master_args`
    /// (agents are added with [`Cluster::add_agent`] after setting
    /// [`Cluster::agent_args`]).
    pub fn master_only(master_args: &[&str]) -> Cluster {
        Self::start_with(0, master_args)
    }

    /// Secure by default, like the binaries: every cluster has
    /// credentials for an agent, a framework and an operator.
    fn write_credentials(&self) {
        let all = serde_json::json!({"credentials": [
            {"principal": AGENT_PRINCIPAL, "secret": AGENT_SECRET},
            {"principal": FRAMEWORK_PRINCIPAL, "secret": FRAMEWORK_SECRET},
            {"principal": OPERATOR_PRINCIPAL, "secret": OPERATOR_SECRET},
        ]});
        write_private(&self.credentials_path(), &all.to_string());
        let agent = serde_json::json!({"principal": AGENT_PRINCIPAL, "secret": AGENT_SECRET});
        write_private(&self.agent_credential_path(), &agent.to_string());
    }

    /// The master's `--credentials` file (also the agents'
    /// `--http_credentials`).
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.path().join("credentials.json")
    }

    /// The agents' `--credential` file.
    pub fn agent_credential_path(&self) -> PathBuf {
        self.dir.path().join("agent-credential.json")
    }

    /// `127.0.0.1:<port>` of the master.
    pub fn master_address(&self) -> String {
        format!("127.0.0.1:{}", self.master_port)
    }

    /// `http://127.0.0.1:<port>` (or `https://`) of the master.
    pub fn master_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.master_address())
    }

    /// (Re)starts the master on its port with its work dir.
    pub fn start_master(&mut self) {
        let mut args = vec![
            "--ip=127.0.0.1".to_string(),
            format!("--port={}", self.master_port),
            format!("--work_dir={}", self.dir.path().join("master").display()),
            "--allocation_interval=100ms".to_string(),
            format!("--credentials={}", self.credentials_path().display()),
        ];
        // Mesos's open ACL default, so tests about other things can run
        // tasks as root and read every view; authorization tests pass their
        // own `--acls` (or `--no_default_acls` here, for the secure default).
        if !self
            .master_args
            .iter()
            .any(|a| a.starts_with("--acls") || a == NO_DEFAULT_ACLS)
        {
            args.push(r#"--acls={"permissive":true}"#.to_string());
        }
        args.extend(
            self.master_args
                .iter()
                .filter(|a| *a != NO_DEFAULT_ACLS)
                .cloned(),
        );
        let log = self.dir.path().join(format!(
            "master-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let (program, args) = with_nofile(
            binary("mesos-master"),
            args,
            self.master_nofile.map(|n| format!("{n}:{n}")),
        );
        let proc = spawn_with_env("master", &program, &args, &self.master_env, &log);
        self.master = Some(proc);
        wait_until(Duration::from_secs(20), "master /health", || {
            http_status(&format!("{}/health", self.master_url())) == Some(200)
        });
    }

    /// Starts one more agent.
    pub fn add_agent(&mut self) -> usize {
        let port = free_port();
        self.agent_ports.push(port);
        self.agents.push(None);
        let index = self.agents.len() - 1;
        self.start_agent(index);
        index
    }

    /// (Re)starts agent `index` with its port and work dir.
    pub fn start_agent(&mut self, index: usize) {
        let port = self.agent_ports[index];
        let work_dir = self.dir.path().join(format!("agent{index}"));
        let mut args = vec![
            format!("--master={}", self.master_address()),
            "--ip=127.0.0.1".to_string(),
            format!("--port={port}"),
            format!("--work_dir={}", work_dir.display()),
            "--registration_backoff_factor=100ms".to_string(),
            format!("--cgroups_root={}", self.cgroups_root),
            format!("--http_credentials={}", self.credentials_path().display()),
        ];
        if !self
            .agent_args
            .iter()
            .any(|a| a.starts_with("--launcher_dir"))
        {
            args.push(format!(
                "--launcher_dir={}",
                self.launcher_dir.path().display()
            ));
        }
        if !self.agent_args.iter().any(|a| a.starts_with("--resources")) {
            args.push("--resources=cpus:4;mem:4096;disk:10000;ports:[31000-32000]".to_string());
        }
        if self.agent_credential
            && !self
                .agent_args
                .iter()
                .any(|a| a.starts_with("--credential="))
        {
            args.push(format!(
                "--credential={}",
                self.agent_credential_path().display()
            ));
        }
        // As for the master: Mesos's open default (every sandbox readable)
        // unless the test passes its own `--acls` or `NO_DEFAULT_ACLS`.
        if !self
            .agent_args
            .iter()
            .any(|a| a.starts_with("--acls") || a == NO_DEFAULT_ACLS)
        {
            args.push(r#"--acls={"permissive":true}"#.to_string());
        }
        args.extend(
            self.agent_args
                .iter()
                .filter(|a| *a != NO_DEFAULT_ACLS)
                .cloned(),
        );
        let log = self
            .dir
            .path()
            .join(format!("agent{index}-{}.log", uuid::Uuid::new_v4()));
        let (program, args) = with_nofile(
            binary("mesos-agent"),
            args,
            self.agent_soft_nofile.map(|n| format!("{n}:")),
        );
        let proc = spawn_with_env(
            &format!("agent{index}"),
            &program,
            &args,
            &self.agent_env,
            &log,
        );
        self.agents[index] = Some(proc);
    }

    /// Waits until the master lists `n` active agents.
    pub fn wait_for_agents(&self, n: usize) {
        let url = format!("{}/master/slaves", self.master_url());
        wait_until(
            Duration::from_secs(30),
            &format!("{n} active agents"),
            || {
                get_json(&url).and_then(|v| {
                    v["slaves"]
                        .as_array()
                        .map(|a| a.iter().filter(|s| s["active"] == true).count())
                }) == Some(n)
            },
        );
    }

    /// The master's log so far.
    pub fn master_log(&self) -> String {
        self.master.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// Agent `index`'s log so far.
    pub fn agent_log(&self, index: usize) -> String {
        self.agents[index]
            .as_ref()
            .map(Proc::log_text)
            .unwrap_or_default()
    }

    /// Waits until agent `index`'s process has exited; its exit code.
    pub fn wait_agent_exit(&mut self, index: usize, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(proc) = self.agents[index].as_mut() {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    return Some(status.code().unwrap_or(-1));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "agent {index} still running after {timeout:?}:\n{}",
            self.agent_log(index)
        );
    }

    /// Everything the processes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in self.master.iter().chain(self.agents.iter().flatten()) {
            out.push_str(&format!("===== {} =====\n{}\n", p.name, p.log_text()));
        }
        out
    }
}

impl Drop for Cluster {
    /// Executors outlive their agent by design (they are checkpointed), so
    /// the processes started in this cluster's sandboxes and its cgroups
    /// are cleaned up here.
    fn drop(&mut self) {
        self.master = None;
        for agent in &mut self.agents {
            *agent = None;
        }
        let root = std::fs::canonicalize(self.dir.path())
            .unwrap_or_else(|_| self.dir.path().to_path_buf());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&root))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = hierarchy.path().join(&self.cgroups_root);
            for container in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(container.path());
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroups_root));
    }
}

/// Polls `check` until it holds or `timeout` passes (then panics).
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// GET `url` (`https://`) trusting the CAs given to [`trust_ca`], with an
/// optional `Authorization` value → (status, body); `None` when the server
/// is unreachable or the handshake fails. (reqwest here has no TLS
/// backend: its rustls one needs aws-lc-rs.) Not callable from inside a
/// tokio runtime.
pub fn https_get(url: &str, authorization: Option<&str>) -> Option<(u16, Vec<u8>)> {
    let config = tls_client_config()?;
    let connector =
        mesos_common::net::TlsConnector::with_client_config(std::sync::Arc::new(config));
    https_get_via(&connector, url, authorization)
}

/// As [`https_get`], connecting with `connector` (e.g. one presenting a
/// client certificate).
pub fn https_get_via(
    connector: &mesos_common::net::TlsConnector,
    url: &str,
    authorization: Option<&str>,
) -> Option<(u16, Vec<u8>)> {
    use http_body_util::BodyExt;
    use mesos_common::net::Connector;
    let rest = url.strip_prefix("https://")?;
    let (address, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async move {
        let fetch = async {
            let stream = connector.connect(address.to_string()).await.ok()?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(conn);
            let mut request = http::Request::get(path).header(http::header::HOST, address);
            if let Some(value) = authorization {
                request = request.header(http::header::AUTHORIZATION, value);
            }
            let request = request
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, body.to_vec()))
        };
        tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .ok()
            .flatten()
    })
}

static TRUSTED_CAS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Makes the HTTP helpers ([`http_status`], [`get_json`], ...) trust the
/// CA in `ca_file` for `https://` URLs.
pub fn trust_ca(ca_file: &Path) {
    TRUSTED_CAS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(ca_file.to_path_buf());
}

static CLIENT_CERT: std::sync::Mutex<Option<(PathBuf, PathBuf)>> = std::sync::Mutex::new(None);

/// Makes the HTTP helpers present this client certificate (PEM files) on
/// `https://` URLs, for masters that require one.
pub fn use_client_cert(cert_file: &Path, key_file: &Path) {
    *CLIENT_CERT.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((cert_file.to_path_buf(), key_file.to_path_buf()));
}

/// A rustls client config trusting the CAs given to [`trust_ca`] (and
/// presenting the certificate given to [`use_client_cert`]), or `None`
/// when no CA was given.
pub fn tls_client_config() -> Option<rustls::ClientConfig> {
    let cas = TRUSTED_CAS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if cas.is_empty() {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in &cas {
        for cert in mesos_common::tls::load_certs("CA", ca).expect("readable CA file") {
            roots.add(cert).expect("usable CA certificate");
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let client_cert = CLIENT_CERT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Some(match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let chain = mesos_common::tls::load_certs("client certificate", &cert)
                .expect("readable client certificate");
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("readable client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("matching client certificate and key")
        }
    })
}

/// GET as the test operator → status code, `None` when the server is
/// unreachable.
pub fn http_status(url: &str) -> Option<u16> {
    if url.starts_with("https://") {
        return https_get(url, Some(&operator_auth())).map(|(status, _)| status);
    }
    blocking_client()
        .get(url)
        .header("Authorization", operator_auth())
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

/// GET with no credentials → status code.
pub fn http_status_anonymous(url: &str) -> Option<u16> {
    blocking_client()
        .get(url)
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

/// GET as the test operator → JSON body, `None` on any failure.
pub fn get_json(url: &str) -> Option<Value> {
    if url.starts_with("https://") {
        let (_, body) = https_get(url, Some(&operator_auth()))?;
        return serde_json::from_slice(&body).ok();
    }
    blocking_client()
        .get(url)
        .header("Authorization", operator_auth())
        .send()
        .ok()?
        .json()
        .ok()
}

/// The Python interpreter with pymesos, or `None` (tests then skip with a
/// printed reason; CI sets it).
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MESOS_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    venv.exists().then_some(venv)
}

/// [`python`], or `None` after printing why the test skips.
pub fn pymesos_or_skip() -> Option<PathBuf> {
    let p = python();
    if p.is_none() {
        eprintln!(
            "SKIP: no Python with pymesos (set MESOS_TEST_PYTHON or run scripts/setup-python.sh)"
        );
    }
    p
}

/// Path of a script under `tests/python`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// Reads a RecordIO stream (a scheduler's or operator's event stream) one
/// JSON record at a time, keeping what it read past a record for the next.
pub struct RecordIo<R> {
    reader: R,
    buffer: Vec<u8>,
}

impl<R: std::io::Read> RecordIo<R> {
    /// Records of `reader`.
    pub fn new(reader: R) -> Self {
        RecordIo {
            reader,
            buffer: Vec::new(),
        }
    }

    /// The next record as JSON; `None` when the stream ends (or fails)
    /// first. Panics on a malformed record.
    pub fn next_json(&mut self) -> Option<Value> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') {
                let length: usize = std::str::from_utf8(&self.buffer[..newline])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .expect("a RecordIO length line");
                let end = newline + 1 + length;
                if self.buffer.len() >= end {
                    let record: Value = serde_json::from_slice(&self.buffer[newline + 1..end])
                        .expect("a JSON record");
                    self.buffer.drain(..end);
                    return Some(record);
                }
            }
            match self.reader.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A blocking client authenticating as `principal` with no overall
/// timeout, for streams that stay open (SUBSCRIBE).
pub fn streaming_client_as(principal: &str, secret: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .default_headers(auth_headers(&basic_auth(principal, secret)))
        .build()
        .expect("http client")
}

/// The sandbox directory of the executor running `task_id` (or of the
/// executor with that id) in an agent's `/state` document.
pub fn sandbox_in_state(state: &Value, task_id: &str) -> Option<String> {
    for list in ["frameworks", "completed_frameworks"] {
        for framework in state[list].as_array()? {
            for executors in ["executors", "completed_executors"] {
                for executor in framework[executors].as_array().into_iter().flatten() {
                    let has_task = ["tasks", "completed_tasks", "queued_tasks"]
                        .iter()
                        .any(|k| {
                            executor[*k]
                                .as_array()
                                .is_some_and(|ts| ts.iter().any(|t| t["id"] == task_id))
                        });
                    if has_task || executor["id"] == task_id {
                        return executor["directory"].as_str().map(str::to_string);
                    }
                }
            }
        }
    }
    None
}
