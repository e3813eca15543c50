//! `mesos-local`: a master and one agent on loopback in one command, for a
//! first run. The master runs in this process; the agent is the
//! `mesos-agent` binary next to this one, restarted with it. On first run
//! it writes credentials and an `acls.json` that makes `operator` the
//! cluster's administrator; both are kept (and may be edited) afterwards.

use std::path::PathBuf;
use std::process::Stdio;

use clap::Parser;
use mesos_common::atomic_file::write_atomic;
use mesos_master::flags::Flags as MasterFlags;

/// A local cluster: one master and one agent on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "mesos-local", rename_all = "snake_case", version = mesos_common::MESOS_VERSION)]
struct Flags {
    /// Master port.
    #[arg(long, env = "MESOS_LOCAL_MASTER_PORT", default_value_t = 5050)]
    master_port: u16,
    /// Agent port.
    #[arg(long, env = "MESOS_LOCAL_AGENT_PORT", default_value_t = 5051)]
    agent_port: u16,
    /// Directory for the registry, sandboxes and logs.
    #[arg(long, env = "MESOS_LOCAL_WORK_DIR", default_value = "/tmp/mesos-local")]
    work_dir: PathBuf,
    /// Agent resources in Mesos syntax (default: detected).
    #[arg(long, env = "MESOS_LOCAL_RESOURCES")]
    resources: Option<String>,
}

fn main() {
    let flags: Flags = mesos_common::flags::parse_or_exit();
    mesos_common::init_logging("info");
    let agent_binary = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("mesos-agent"),
        Err(e) => mesos_common::flags::fail(format!("cannot locate mesos-agent: {e}")),
    };
    if !agent_binary.exists() {
        mesos_common::flags::fail(format!(
            "{} not found: build it with `cargo build --bins`",
            agent_binary.display()
        ));
    }
    let master_dir = flags.work_dir.join("master");
    let agent_dir = flags.work_dir.join("agent");
    let credentials = match Credentials::ensure(&flags.work_dir) {
        Ok(c) => c,
        Err(e) => mesos_common::flags::fail(format!(
            "cannot write credentials under {}: {e}",
            flags.work_dir.display()
        )),
    };
    let acls = match ensure_acls(&flags.work_dir) {
        Ok(path) => path,
        Err(e) => mesos_common::flags::fail(format!(
            "cannot write {}: {e}",
            flags.work_dir.join("acls.json").display()
        )),
    };
    let tls = local_tls(&flags.work_dir);
    let mut master_flags = match MasterFlags::try_parse_from([
        "mesos-master".to_string(),
        "--ip=127.0.0.1".to_string(),
        format!("--port={}", flags.master_port),
        format!("--work_dir={}", master_dir.display()),
        format!("--credentials={}", credentials.all.display()),
        format!("--acls={}", acls.display()),
    ]) {
        Ok(f) => f,
        Err(e) => mesos_common::flags::fail(e),
    };
    if let Err(e) = master_flags.validate() {
        mesos_common::flags::fail(e);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => mesos_common::flags::fail(format!("cannot start the runtime: {e}")),
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let master = tokio::spawn(mesos_master::run::run(master_flags));
        let mut command = tokio::process::Command::new(&agent_binary);
        command
            .arg(format!("--master=127.0.0.1:{}", flags.master_port))
            .arg("--ip=127.0.0.1")
            .arg(format!("--port={}", flags.agent_port))
            .arg(format!("--work_dir={}", agent_dir.display()))
            .arg(format!("--credential={}", credentials.agent.display()))
            .arg(format!("--http_credentials={}", credentials.all.display()))
            .arg(format!("--acls={}", acls.display()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(resources) = &flags.resources {
            command.arg(format!("--resources={resources}"));
        }
        if let Some(certs) = &tls {
            command
                .env("LIBPROCESS_SSL_CERT_FILE", certs.cert("agent"))
                .env("LIBPROCESS_SSL_KEY_FILE", certs.key("agent"));
        }
        let mut agent = command.spawn()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        if let Some(certs) = &tls {
            println!(
                "mesos-local: TLS is on; the CA is {} (e.g. curl --cacert {} https://127.0.0.1:{}/health); \
                 set LIBPROCESS_SSL_ENABLED=false for plaintext",
                certs.ca().display(),
                certs.ca().display(),
                flags.master_port,
            );
        }
        println!(
            "mesos-local: master at {scheme}://127.0.0.1:{} (agent at {scheme}://127.0.0.1:{}, work dir {})",
            flags.master_port,
            flags.agent_port,
            flags.work_dir.display()
        );
        println!(
            "mesos-local: authentication is on; principals {} and their secrets are in {} \
             (e.g. curl --netrc-file {}{} {scheme}://127.0.0.1:{}/master/slaves)",
            Credentials::PRINCIPALS.join(", "),
            credentials.all.display(),
            flags.work_dir.join("operator.netrc").display(),
            tls.as_ref()
                .map(|c| format!(" --cacert {}", c.ca().display()))
                .unwrap_or_default(),
            flags.master_port,
        );
        println!(
            "mesos-local: authorization: {} grants operator every action, and framework the \
             roles *, framework and framework/..., tasks as {}, and reservations and volumes of its own \
             in those roles (edit it and restart to change it)",
            acls.display(),
            task_users().join(" or "),
        );
        // SIGTERM as well as ^C: either way the agent goes down with us
        // (kill_on_drop alone is skipped when a signal ends the process).
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = master => { r??; }
            status = agent.wait() => anyhow::bail!("the agent exited: {}", status?),
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        }
        let _ = agent.start_kill();
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("mesos-local: {e:#}");
        std::process::exit(1);
    }
}

/// TLS by default: unless `LIBPROCESS_SSL_ENABLED` is set already, makes
/// (first run) or reuses a CA and certificates under `<work_dir>/ssl` and
/// sets the `LIBPROCESS_SSL_*` variables that the master (in this process)
/// and the agent (inheriting them) read.
fn local_tls(work_dir: &std::path::Path) -> Option<mesos_common::tls::certs::ClusterCerts> {
    use mesos_common::tls::certs::ClusterCerts;
    if std::env::var_os("LIBPROCESS_SSL_ENABLED").is_some() {
        return None;
    }
    let dir = std::path::absolute(work_dir.join("ssl")).unwrap_or_else(|_| work_dir.join("ssl"));
    let certs = ClusterCerts::ensure(
        &dir,
        &["master", "agent", "framework"],
        &["localhost", "127.0.0.1"],
        365,
    )
    .unwrap_or_else(|e| mesos_common::flags::fail(format!("cannot make TLS certificates: {e}")));
    // Still single-threaded here: no other thread reads the environment.
    std::env::set_var("LIBPROCESS_SSL_ENABLED", "true");
    std::env::set_var("LIBPROCESS_SSL_CERT_FILE", certs.cert("master"));
    std::env::set_var("LIBPROCESS_SSL_KEY_FILE", certs.key("master"));
    std::env::set_var("LIBPROCESS_SSL_CA_FILE", certs.ca());
    std::env::set_var("LIBPROCESS_SSL_VERIFY_IPADD", "true");
    Some(certs)
}

/// The users the `framework` principal may run tasks as: the invoking
/// user unless it is root, and `nobody`.
fn task_users() -> Vec<String> {
    let mut users = Vec::new();
    let uid = nix::unistd::getuid();
    if !uid.is_root() {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
            users.push(user.name);
        }
    }
    users.push("nobody".to_string());
    users
}

/// Writes `<work_dir>/acls.json` (Mesos's ACL JSON) unless it exists, and
/// returns its path. `operator` gets every action with any object;
/// `framework` may register in `*` and its own role name space, run tasks
/// as [`task_users`], view frameworks, tasks, executors and sandboxes of
/// those users (ACLs match users, not owners), and tear down its own
/// frameworks; `agent` may register agents.
fn ensure_acls(work_dir: &std::path::Path) -> std::io::Result<PathBuf> {
    use mesos_acls::Action;
    use serde_json::{json, Map, Value};
    std::fs::create_dir_all(work_dir)?;
    let path = std::path::absolute(work_dir.join("acls.json"))?;
    if path.exists() {
        return Ok(path);
    }
    // Viewing uses the same users, never root's: that would show
    // `framework` everything run as root.
    let run_as = task_users();
    let entry = |principal: &str, action: Action, object: Value| {
        let mut e = Map::new();
        e.insert("principals".into(), json!({ "values": [principal] }));
        e.insert(action.object_key().into(), object);
        Value::Object(e)
    };
    let mut acls = Map::new();
    acls.insert("permissive".into(), json!(false));
    for action in Action::ALL {
        let mut entries = vec![entry("operator", *action, json!({ "type": "ANY" }))];
        let framework = match action {
            Action::RegisterFrameworks => {
                Some(json!({ "values": ["*", "framework", "framework/%"] }))
            }
            Action::RunTasks => Some(json!({ "values": run_as })),
            Action::ViewFrameworks
            | Action::ViewTasks
            | Action::ViewExecutors
            | Action::AccessSandboxes => Some(json!({ "values": run_as })),
            Action::TeardownFrameworks => Some(json!({ "values": ["framework"] })),
            // Reservations and volumes in its own roles, and only its own
            // ones to undo, resize or use.
            Action::ReserveResources | Action::CreateVolumes | Action::ResizeVolumes => {
                Some(json!({ "values": ["framework", "framework/%"] }))
            }
            Action::UnreserveResources | Action::DestroyVolumes | Action::UseVolumes => {
                Some(json!({ "values": ["framework"] }))
            }
            _ => None,
        };
        if let Some(object) = framework {
            entries.push(entry("framework", *action, object));
        }
        if *action == Action::RegisterAgents {
            entries.push(entry("agent", *action, json!({ "type": "ANY" })));
        }
        acls.insert(action.as_str().into(), Value::Array(entries));
    }
    let text = serde_json::to_string_pretty(&Value::Object(acls))?;
    // Not secret, but only its owner should change who may do what.
    write_atomic(&path, format!("{text}\n").as_bytes(), 0o644)?;
    Ok(path)
}

/// The credentials of a local cluster, generated on first run and kept,
/// and the same secrets in the forms clients take: `operator.netrc` for
/// `curl --netrc-file`, `framework.env` (`MESOS_PRINCIPAL=`,
/// `MESOS_SECRET=` lines) for frameworks. All mode 0600.
struct Credentials {
    /// `--credentials` for the master (and the agent's HTTP side).
    all: PathBuf,
    /// `--credential` for the agent.
    agent: PathBuf,
}

impl Credentials {
    const PRINCIPALS: [&'static str; 3] = ["operator", "framework", "agent"];

    /// Writes both files (mode 0600) unless they exist.
    fn ensure(work_dir: &std::path::Path) -> std::io::Result<Credentials> {
        std::fs::create_dir_all(work_dir)?;
        let all = work_dir.join("credentials.json");
        let agent = work_dir.join("agent-credential.json");
        if !all.exists() || !agent.exists() {
            let secrets: Vec<(String, String)> = Self::PRINCIPALS
                .iter()
                .map(|p| (p.to_string(), uuid::Uuid::new_v4().simple().to_string()))
                .collect();
            let list: Vec<serde_json::Value> = secrets
                .iter()
                .map(|(p, s)| serde_json::json!({"principal": p, "secret": s}))
                .collect();
            let all_json = serde_json::json!({ "credentials": list }).to_string();
            write_atomic(&all, all_json.as_bytes(), 0o600)?;
            let (principal, secret) = &secrets[2];
            let agent_json = serde_json::json!({"principal": principal, "secret": secret});
            write_atomic(&agent, agent_json.to_string().as_bytes(), 0o600)?;
            // New secrets: the client files of the old ones are stale.
            for stale in ["operator.netrc", "framework.env"] {
                match std::fs::remove_file(work_dir.join(stale)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Self::ensure_client_files(work_dir, &all)?;
        Ok(Credentials { all, agent })
    }

    /// Writes `operator.netrc` and `framework.env` from `all` unless they
    /// exist (work dirs made before they were).
    fn ensure_client_files(
        work_dir: &std::path::Path,
        all: &std::path::Path,
    ) -> std::io::Result<()> {
        let netrc = work_dir.join("operator.netrc");
        let env = work_dir.join("framework.env");
        if netrc.exists() && env.exists() {
            return Ok(());
        }
        let credentials = mesos_common::auth::credentials::load_credentials(&all.to_string_lossy())
            .map_err(std::io::Error::other)?;
        let secret_of = |principal: &str| {
            credentials
                .secret(principal)
                .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
        };
        if let (false, Some(secret)) = (netrc.exists(), secret_of("operator")) {
            let text = format!("machine 127.0.0.1 login operator password {secret}\n");
            write_atomic(&netrc, text.as_bytes(), 0o600)?;
        }
        if let (false, Some(secret)) = (env.exists(), secret_of("framework")) {
            let text = format!("MESOS_PRINCIPAL=framework\nMESOS_SECRET={secret}\n");
            write_atomic(&env, text.as_bytes(), 0o600)?;
        }
        Ok(())
    }
}
