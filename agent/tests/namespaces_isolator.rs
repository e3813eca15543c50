//! The namespace isolators for real: the `mesos-agent` binary runs command
//! tasks in a user namespace (root inside is an unprivileged host id that
//! cannot touch root's files but can write its sandbox), and by default in
//! pid and IPC namespaces of their own. Needs root and namespaces: skips with
//! a reason otherwise, except under `CI`, where it must run.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{command_task, framework, spawn_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

/// The host ids the tests' user namespaces map to.
const FIRST_ID: u32 = 300_000;
const RANGE: &str = "--user_namespace_range=[300000-365535]";

fn runnable() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("namespaces need root".to_string())
    } else if common::test_launcher() != "linux" {
        Some(format!(
            "the tests' launcher is {}, not linux",
            common::test_launcher()
        ))
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("CI is set but {why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

struct Cluster {
    master: FakeMaster,
    agent: mesos_common::Upid,
    work_dir: tempfile::TempDir,
    _process: common::AgentProcess,
}

/// A work dir that unprivileged ids may traverse (as `/var/lib/mesos` is),
/// so a task can reach its sandbox by its absolute path.
async fn cluster(flags: &[&str]) -> Cluster {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    std::fs::set_permissions(work_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod work dir");
    let process = spawn_agent(
        master.port,
        work_dir.path(),
        common::free_port(),
        flags,
        Stdio::inherit(),
    );
    let (agent, _) = master.register("S1").await;
    Cluster {
        master,
        agent,
        work_dir,
        _process: process,
    }
}

impl Cluster {
    /// Runs `command` as a root task and returns its terminal update.
    async fn run(&mut self, id: &str, command: &str, expected: v1::TaskState) -> m::StatusUpdate {
        let mut framework = framework("F1");
        framework.user = "root".into();
        self.master.send(
            &self.agent,
            &m::RunTaskMessage {
                framework,
                task: command_task(id, "S1", command),
                pid: Some("scheduler@127.0.0.1:1".into()),
                ..Default::default()
            },
        );
        for state in [v1::TaskState::TaskStarting, v1::TaskState::TaskRunning] {
            let update = self.master.update(state).await;
            self.master.ack(&self.agent, &update);
        }
        let update = self.master.update(expected).await;
        self.master.ack(&self.agent, &update);
        update
    }

    /// The task's sandbox (the one directory holding `name`).
    fn sandbox_file(&self, name: &str) -> PathBuf {
        find(&self.work_dir.path().join("slaves"), name)
            .unwrap_or_else(|| panic!("no {name} in any sandbox"))
    }
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

#[tokio::test]
async fn root_in_a_user_namespaced_task_cannot_write_a_root_owned_host_file_but_writes_its_sandbox()
{
    if !runnable() {
        return;
    }
    // A host file only root may write, where anyone can see it.
    let shared = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let host_file = shared.path().join("root-only");
    std::fs::write(&host_file, "original\n").expect("write");
    std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let launcher = common::world_reachable_executor();
    let launcher_dir = format!("--launcher_dir={}", launcher.path().display());
    let mut c = cluster(&[
        "--isolation=cgroups/cpu,cgroups/mem,linux/capabilities,linux/nnp,linux/seccomp,namespaces/user,namespaces/pid,namespaces/ipc",
        RANGE,
        &launcher_dir,
    ])
    .await;
    let command = format!(
        "id -u > report; id -g >> report; \
         echo mine > \"$MESOS_SANDBOX/mine\" && echo sandbox-ok >> report; \
         (echo pwned >> {host}) 2>/dev/null && echo wrote >> report || echo refused >> report",
        host = host_file.display()
    );
    c.run("userns", &command, v1::TaskState::TaskFinished).await;

    let report = std::fs::read_to_string(c.sandbox_file("report")).expect("report");
    assert_eq!(
        report.lines().collect::<Vec<_>>(),
        ["0", "0", "sandbox-ok", "refused"],
        "root inside, its sandbox writable, the host's root file not"
    );
    assert_eq!(
        std::fs::read_to_string(&host_file).expect("host file"),
        "original\n",
        "the host file is untouched"
    );
    let mine = std::fs::metadata(c.sandbox_file("mine")).expect("written by the task");
    assert_eq!(
        (mine.uid(), mine.gid()),
        (FIRST_ID, FIRST_ID),
        "on the host the task's root is the first mapped id"
    );
    let sandbox = c.sandbox_file("mine");
    let sandbox = std::fs::metadata(sandbox.parent().expect("sandbox")).expect("sandbox");
    assert_eq!(
        sandbox.uid(),
        FIRST_ID,
        "the sandbox is chowned to the mapped root"
    );
}

#[tokio::test]
async fn by_default_a_task_has_pid_and_ipc_namespaces_of_its_own_with_the_executor_as_pid_1() {
    if !runnable() {
        return;
    }
    let mut c = cluster(&[]).await;
    let command = "tr '\\0' ' ' < /proc/1/cmdline > report; echo >> report; \
                   readlink /proc/self/ns/pid >> report; readlink /proc/self/ns/ipc >> report; \
                   ls /proc | grep -c '^[0-9]' >> report";
    c.run("private", command, v1::TaskState::TaskFinished).await;
    let report = std::fs::read_to_string(c.sandbox_file("report")).expect("report");
    let lines: Vec<&str> = report.lines().collect();
    assert!(
        lines[0].contains("mesos-executor"),
        "pid 1 is the executor: {report}"
    );
    for (line, ns) in lines[1..3].iter().zip(["pid", "ipc"]) {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("ours");
        assert_ne!(
            *line,
            ours.display().to_string(),
            "a {ns} namespace of its own: {report}"
        );
    }
    let visible: u32 = lines[3].parse().expect("a count");
    assert!(
        visible < 10,
        "its /proc shows its own few processes: {report}"
    );
}

#[tokio::test]
async fn a_task_may_share_the_agents_pid_namespace_unless_the_agent_disallows_it() {
    if !runnable() {
        return;
    }
    let shared = |id: &str| {
        let mut task = command_task(id, "S1", "readlink /proc/self/ns/pid > report");
        task.container = Some(v1::ContainerInfo {
            r#type: v1::container_info::Type::Mesos as i32,
            linux_info: Some(v1::LinuxInfo {
                share_pid_namespace: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        task
    };
    let mut c = cluster(&["--disallow_sharing_agent_pid_namespace"]).await;
    c.master.send(
        &c.agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: shared("refused"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    let update = c.master.any_update().await;
    assert_eq!(update.status.state, v1::TaskState::TaskFailed as i32);
    assert!(
        update
            .status
            .message
            .as_deref()
            .is_some_and(|m| m
                .contains("Sharing agent pid namespace with top-level container is not allowed")),
        "{:?}",
        update.status.message
    );

    let mut c = cluster(&[]).await;
    c.master.send(
        &c.agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: shared("sharing"),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    for state in [
        v1::TaskState::TaskStarting,
        v1::TaskState::TaskRunning,
        v1::TaskState::TaskFinished,
    ] {
        let update = c.master.update(state).await;
        c.master.ack(&c.agent, &update);
    }
    let report = std::fs::read_to_string(c.sandbox_file("report")).expect("report");
    let ours = std::fs::read_link("/proc/self/ns/pid").expect("ours");
    assert_eq!(
        report.trim(),
        ours.display().to_string(),
        "the agent's pid namespace"
    );
}

#[tokio::test]
async fn namespaces_user_without_ids_to_map_is_one_startup_error_saying_what_to_add() {
    let work_dir = tempfile::tempdir().expect("work dir");
    if !runnable() {
        return;
    }
    if std::path::Path::new("/etc/subuid").exists() {
        // The agent would find ids there: nothing to refuse on this host.
        eprintln!("skipped: this host has an /etc/subuid");
        return;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
        .arg("--master=127.0.0.1:5050")
        .arg(format!("--work_dir={}", work_dir.path().display()))
        .arg("--launcher=linux")
        .arg("--isolation=namespaces/user")
        .arg("--insecure")
        .output()
        .expect("run mesos-agent");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/etc/subuid has none for 'root'")
            && stderr.contains("--user_namespace_range=[100000-165535]"),
        "{stderr}"
    );
}
