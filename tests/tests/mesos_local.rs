//! `mesos-local` makes `operator` the administrator of the cluster it
//! starts, through an `acls.json` it writes once and then keeps: the
//! printed administrator can read the cluster's endpoints, and an edit to
//! the file takes effect on the next start.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesos_tests::{basic_auth, binary, free_port, https_get, wait_until};
use serde_json::Value;

/// A running `mesos-local` (its own process group, so the agent it starts
/// goes with it): stopped with SIGINT, then the group SIGKILLed on drop.
struct Local {
    child: Child,
    /// Its stderr (logs).
    log: PathBuf,
    /// Its stdout (the `mesos-local:` lines).
    out: PathBuf,
    master_port: u16,
    agent_port: u16,
    cgroups_root: String,
}

impl Local {
    /// Starts it; its agent puts containers under `cgroups_root` (through
    /// the inherited `MESOS_CGROUPS_ROOT`): a restarted agent destroys the
    /// unknown containers under its root, so it must not share Mesos's
    /// default `mesos` with anything else on the machine.
    fn start(
        work_dir: &Path,
        log: &Path,
        master_port: u16,
        agent_port: u16,
        cgroups_root: &str,
    ) -> Local {
        let out_path = log.with_extension("out");
        let out = std::fs::File::create(&out_path).expect("create the mesos-local stdout file");
        let err = std::fs::File::create(log).expect("create the mesos-local log");
        let child = Command::new(binary("mesos-local"))
            .args([
                format!("--master_port={master_port}"),
                format!("--agent_port={agent_port}"),
                format!("--work_dir={}", work_dir.display()),
                "--resources=cpus:1;mem:256;disk:100".to_string(),
            ])
            .env("RUST_LOG", "info")
            .env("MESOS_CGROUPS_ROOT", cgroups_root)
            .env_remove("LIBPROCESS_SSL_ENABLED")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start mesos-local");
        Local {
            child,
            log: log.to_path_buf(),
            out: out_path,
            master_port,
            agent_port,
            cgroups_root: cgroups_root.to_string(),
        }
    }

    /// What it printed on stdout.
    fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Its stdout and stderr, for failure messages.
    fn log_text(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout_text(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn master(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.master_port)
    }

    fn agent(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.agent_port)
    }

    /// SIGINT (mesos-local then stops its agent) and the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mesos-local did not stop on SIGINT:\n{}", self.log_text());
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Whatever is left of the group (the agent, if mesos-local died).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.cgroups_root));
        }
    }
}

/// The secret of `principal` in mesos-local's `credentials.json`.
fn secret_of(work_dir: &Path, principal: &str) -> String {
    let text =
        std::fs::read_to_string(work_dir.join("credentials.json")).expect("credentials.json");
    let credentials: Value = serde_json::from_str(&text).expect("credentials.json is JSON");
    credentials["credentials"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["principal"] == principal))
        .and_then(|c| c["secret"].as_str())
        .unwrap_or_else(|| panic!("a secret for {principal} in {credentials}"))
        .to_string()
}

/// GET over TLS as `auth`: status and body (panics when unreachable).
fn get(url: &str, auth: &str, local: &Local) -> (u16, String) {
    let (status, body) = https_get(url, Some(auth))
        .unwrap_or_else(|| panic!("{url} should answer over TLS:\n{}", local.log_text()));
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON expected ({e}): {body}"))
}

/// Waits for the CA, trusts it, then waits until the master lists one
/// agent and the agent says it is registered.
fn wait_for_cluster(local: &Local, work_dir: &Path, operator: &dyn Fn() -> String) {
    let ca = work_dir.join("ssl").join("ca.pem");
    wait_until(Duration::from_secs(30), "mesos-local's CA", || ca.exists());
    mesos_tests::trust_ca(&ca);
    wait_until(
        Duration::from_secs(30),
        "the local agent registered",
        || {
            https_get(&local.master("/master/slaves"), Some(&operator()))
                .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok())
                .and_then(|v| v["slaves"].as_array().map(Vec::len))
                == Some(1)
        },
    );
}

#[test]
fn mesos_local_makes_operator_the_administrator_and_keeps_an_edited_acls_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work_dir = dir.path().join("local");
    let (master_port, agent_port) = (free_port(), free_port());
    let cgroups_root = format!("mesos-test-{}", uuid::Uuid::new_v4());
    let mut local = Local::start(
        &work_dir,
        &dir.path().join("first.log"),
        master_port,
        agent_port,
        &cgroups_root,
    );
    let operator = || basic_auth("operator", &secret_of(&work_dir, "operator"));
    wait_for_cluster(&local, &work_dir, &operator);
    let operator = operator();

    // It says where the policy is.
    let acls_path = work_dir.join("acls.json");
    let printed = local.stdout_text();
    let line = printed
        .lines()
        .find(|l| l.starts_with("mesos-local: authorization: "))
        .unwrap_or_else(|| panic!("an authorization line on stdout:\n{}", local.log_text()));
    assert!(
        line.starts_with(&format!(
            "mesos-local: authorization: {} ",
            acls_path.display()
        )),
        "{line}"
    );
    let written = std::fs::read_to_string(&acls_path).expect("acls.json is written");
    let acls = json(&written);
    assert_eq!(acls["permissive"], false, "{acls}");

    // The administrator reads the master's metrics, flags and agents...
    let (status, body) = get(&local.master("/metrics/snapshot"), &operator, &local);
    assert_eq!(status, 200, "{body}");
    let metrics = json(&body);
    assert!(
        metrics["system/cpus_total"]
            .as_f64()
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let (status, body) = get(&local.master("/master/flags"), &operator, &local);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["flags"].is_object(), "{body}");
    let (status, body) = get(&local.master("/master/slaves"), &operator, &local);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["slaves"].as_array().map(Vec::len), Some(1));
    // ... and the agent's metrics, which say it is registered.
    let mut agent_metrics = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "slave/registered 1 on the agent",
        || {
            let (status, body) = get(&local.agent("/metrics/snapshot"), &operator, &local);
            assert_eq!(status, 200, "{body}");
            agent_metrics = json(&body);
            agent_metrics["slave/registered"] == 1
        },
    );
    assert!(
        agent_metrics["system/cpus_total"].as_f64().is_some(),
        "{agent_metrics}"
    );
    let (status, body) = get(&local.agent("/flags"), &operator, &local);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["flags"]["cgroups_root"],
        cgroups_root.as_str(),
        "the agent keeps out of other agents' cgroups"
    );
    // The framework principal lists frameworks.
    let framework = basic_auth("framework", &secret_of(&work_dir, "framework"));
    let (status, body) = get(&local.master("/master/frameworks"), &framework, &local);
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["frameworks"].is_array(), "{body}");

    // Stop, take get_endpoints away from everyone, start again.
    let status = local.stop();
    assert!(status.success(), "{status}:\n{}", local.log_text());
    drop(local);
    let mut edited = acls.clone();
    edited["get_endpoints"] = serde_json::json!([]);
    let edited = format!("{}\n", serde_json::to_string_pretty(&edited).expect("JSON"));
    std::fs::write(&acls_path, &edited).expect("edit acls.json");

    let mut local = Local::start(
        &work_dir,
        &dir.path().join("second.log"),
        master_port,
        agent_port,
        &cgroups_root,
    );
    let reader = || operator.clone();
    wait_for_cluster(&local, &work_dir, &reader);
    assert_eq!(
        std::fs::read_to_string(&acls_path).expect("acls.json"),
        edited,
        "the edited acls.json is kept as edited"
    );
    let (status, body) = get(&local.master("/metrics/snapshot"), &operator, &local);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("get_endpoints") && body.contains("/metrics/snapshot"),
        "{body}"
    );
    let (status, body) = get(&local.agent("/metrics/snapshot"), &operator, &local);
    assert_eq!(status, 403, "the agent reads the same file: {body}");
    assert!(body.contains("get_endpoints"), "{body}");
    // What the edit did not touch still works.
    let (status, body) = get(&local.master("/master/flags"), &operator, &local);
    assert_eq!(status, 200, "{body}");
    let status = local.stop();
    assert!(status.success(), "{status}:\n{}", local.log_text());
}
