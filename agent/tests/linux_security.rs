//! `linux/capabilities`, `linux/nnp` and `linux/seccomp` for real: the
//! `mesos-agent` binary, with its default `--isolation` (which includes all
//! three) or explicit flags, runs command tasks that try to open a raw ICMP
//! socket (which needs CAP_NET_RAW), call `keyctl` (which the built-in seccomp
//! profile refuses) and read their `NoNewPrivs` flag; the fake master sees what
//! a framework would. Needs root (and python3): skips with a reason otherwise,
//! except under `CI`, where it must run.

mod common;

use std::process::Stdio;

use common::{command_task, framework, spawn_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

const PYTHON: &str = "/usr/bin/python3";

/// Whether this machine can run the test; panics under `CI` when it cannot.
fn runnable() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("the linux/capabilities isolator needs root".to_string())
    } else if !std::path::Path::new(PYTHON).exists() {
        Some(format!("{PYTHON} is missing"))
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

/// Exits 0 when a raw socket opens, 10 when it is refused with
/// PermissionError; then (only on success) `NoNewPrivs` must be 1 or it exits 20.
fn raw_socket_command() -> String {
    format!(
        "{PYTHON} -c 'import socket,sys\n\
         try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
         except PermissionError:\n    sys.exit(10)\n' && \
         (grep -q \"^NoNewPrivs:[[:space:]]*1\" /proc/self/status || exit 20)"
    )
}

/// Same, but the `NoNewPrivs` check comes first and a refused socket is success.
fn raw_socket_refused_command() -> String {
    format!(
        "grep -q \"^NoNewPrivs:[[:space:]]*1\" /proc/self/status || exit 20; \
         {PYTHON} -c 'import socket,sys\n\
         try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
         except PermissionError:\n    sys.exit(0)\n\
         sys.exit(10)\n'"
    )
}

fn capability_info(names: &[&str]) -> v1::CapabilityInfo {
    use mesos_agent::isolators::capabilities::capability;
    v1::CapabilityInfo {
        capabilities: names
            .iter()
            .map(|n| i32::from(capability(n).expect("a known capability")) + 1000)
            .collect(),
    }
}

fn with_linux_info(mut task: v1::TaskInfo, linux_info: v1::LinuxInfo) -> v1::TaskInfo {
    task.container = Some(v1::ContainerInfo {
        r#type: v1::container_info::Type::Mesos as i32,
        linux_info: Some(linux_info),
        ..Default::default()
    });
    task
}

struct Cluster {
    master: FakeMaster,
    agent: mesos_common::Upid,
    _process: common::AgentProcess,
    _work_dir: tempfile::TempDir,
}

async fn cluster(flags: &[&str]) -> Cluster {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
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
        _process: process,
        _work_dir: work_dir,
    }
}

impl Cluster {
    fn run(&self, task: v1::TaskInfo) {
        self.master.send(
            &self.agent,
            &m::RunTaskMessage {
                framework: framework("F1"),
                task,
                pid: Some("scheduler@127.0.0.1:1".into()),
                ..Default::default()
            },
        );
    }

    /// Acknowledges STARTING and RUNNING, then returns the terminal update.
    async fn terminal(&mut self, expected: v1::TaskState) -> m::StatusUpdate {
        for state in [v1::TaskState::TaskStarting, v1::TaskState::TaskRunning] {
            let update = self.master.update(state).await;
            self.master.ack(&self.agent, &update);
        }
        self.master.update(expected).await
    }
}

/// The default bounding set plus NET_RAW, as an agent flag.
const BOUNDING_WITH_NET_RAW: &str = r#"--bounding_capabilities={"capabilities":["CHOWN","DAC_OVERRIDE","FOWNER","FSETID","KILL","SETGID","SETUID","NET_BIND_SERVICE","SYS_CHROOT","AUDIT_WRITE","NET_RAW"]}"#;

#[tokio::test]
async fn by_default_a_root_task_has_no_net_raw_and_runs_with_no_new_privs() {
    if !runnable() {
        return;
    }
    let mut c = cluster(&[]).await;
    c.run(command_task("plain", "S1", &raw_socket_refused_command()));
    let update = c.terminal(v1::TaskState::TaskFinished).await;
    assert_eq!(update.status.task_id.value, "plain");
}

#[tokio::test]
async fn a_task_granted_net_raw_by_linux_info_opens_a_raw_socket_even_as_nobody() {
    if !runnable() {
        return;
    }
    // The executor runs as nobody, which cannot reach a binary under a
    // private directory (a checkout in `mktemp -d`): give it one it can.
    let launcher = common::world_reachable_executor();
    let launcher_dir = format!("--launcher_dir={}", launcher.path().display());
    let mut c = cluster(&[BOUNDING_WITH_NET_RAW, &launcher_dir]).await;
    let asks = v1::LinuxInfo {
        effective_capabilities: Some(capability_info(&["NET_RAW"])),
        ..Default::default()
    };
    c.run(with_linux_info(
        command_task("root-raw", "S1", &raw_socket_command()),
        asks.clone(),
    ));
    let update = c.terminal(v1::TaskState::TaskFinished).await;
    assert_eq!(update.status.task_id.value, "root-raw");

    if nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!("skipped the non-root half: no user nobody");
        return;
    }
    // As nobody the capability comes through the ambient set.
    let mut task = command_task("nobody-raw", "S1", &raw_socket_command());
    if let Some(command) = task.command.as_mut() {
        command.user = Some("nobody".into());
    }
    c.run(with_linux_info(task, asks));
    let update = c.terminal(v1::TaskState::TaskFinished).await;
    assert_eq!(update.status.task_id.value, "nobody-raw");

    // Without the grant, nobody has nothing.
    let mut task = command_task("nobody-plain", "S1", &raw_socket_refused_command());
    if let Some(command) = task.command.as_mut() {
        command.user = Some("nobody".into());
    }
    c.run(task);
    c.terminal(v1::TaskState::TaskFinished).await;
}

#[tokio::test]
async fn the_agent_effective_capabilities_flag_grants_net_raw_to_every_task() {
    if !runnable() {
        return;
    }
    let mut c = cluster(&[r#"--effective_capabilities={"capabilities":["NET_RAW"]}"#]).await;
    c.run(command_task("flagged", "S1", &raw_socket_command()));
    c.terminal(v1::TaskState::TaskFinished).await;
}

#[tokio::test]
async fn a_task_asking_beyond_the_bounding_set_fails_to_launch_with_mesos_message() {
    if !runnable() {
        return;
    }
    let mut c = cluster(&[]).await;
    let greedy = v1::LinuxInfo {
        effective_capabilities: Some(capability_info(&["NET_RAW", "SYS_ADMIN"])),
        ..Default::default()
    };
    c.run(with_linux_info(
        command_task("greedy", "S1", "true"),
        greedy,
    ));
    let update = c.master.update(v1::TaskState::TaskFailed).await;
    let status = &update.status;
    assert_eq!(status.task_id.value, "greedy");
    assert_eq!(
        status.reason,
        Some(v1::task_status::Reason::ContainerLaunchFailed as i32),
        "REASON_CONTAINER_LAUNCH_FAILED"
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains(
            "Requested capabilities '{ NET_RAW, SYS_ADMIN }', but only '{ CHOWN, DAC_OVERRIDE, \
             FOWNER, FSETID, KILL, SETGID, SETUID, NET_BIND_SERVICE, SYS_CHROOT, AUDIT_WRITE }' \
             are allowed"
        ),
        "{message}"
    );
}

/// Exits 0 when `keyctl` (x86_64 syscall 250) fails with EPERM, else 10.
fn keyctl_refused_command() -> String {
    format!(
        "{PYTHON} -c 'import ctypes,sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(250, 0, 0, 0, 0)\n\
         sys.exit(0 if r == -1 and ctypes.get_errno() == 1 else 10)\n'"
    )
}

/// Exits 0 when `keyctl` is NOT refused with EPERM (the kernel's own answer
/// to `KEYCTL_GET_KEYRING_ID` of key 0 is another error or a result), else 10.
fn keyctl_allowed_command() -> String {
    format!(
        "{PYTHON} -c 'import ctypes,sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(250, 0, 0, 0, 0)\n\
         sys.exit(10 if r == -1 and ctypes.get_errno() == 1 else 0)\n'"
    )
}

#[tokio::test]
async fn the_default_seccomp_profile_refuses_keyctl_and_unconfined_lifts_it() {
    if !runnable() || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut c = cluster(&[]).await;
    c.run(command_task("filtered", "S1", &keyctl_refused_command()));
    c.terminal(v1::TaskState::TaskFinished).await;

    // The x32 alias of the same call (0x40000000 | 250) does not slip past
    // the filter: EPERM, not the kernel's ENOSYS or a result.
    let x32 = format!(
        "{PYTHON} -c 'import ctypes,sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(0x40000000 | 250, 0, 0, 0, 0)\n\
         sys.exit(0 if r == -1 and ctypes.get_errno() == 1 else 10)\n'"
    );
    c.run(command_task("x32", "S1", &x32));
    c.terminal(v1::TaskState::TaskFinished).await;

    let unconfined = v1::LinuxInfo {
        seccomp: Some(v1::SeccompInfo {
            profile_name: None,
            unconfined: Some(true),
        }),
        ..Default::default()
    };
    c.run(with_linux_info(
        command_task("unconfined", "S1", &keyctl_allowed_command()),
        unconfined,
    ));
    c.terminal(v1::TaskState::TaskFinished).await;
}

#[tokio::test]
async fn the_default_seccomp_profile_refuses_clone_into_new_namespaces_while_threads_and_forks_work(
) {
    if !runnable() || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut c = cluster(&[]).await;
    // clone(CLONE_NEWUSER | SIGCHLD) and clone(CLONE_NEWNET | SIGCHLD) fail with
    // EPERM; clone3 with ENOSYS (so the C library falls back to clone); a
    // thread and a plain fork still start.
    let command = format!(
        "{PYTHON} -c 'import ctypes,os,sys,threading\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         def clone(flags):\n  r = libc.syscall(56, flags | 17, 0, 0, 0, 0)\n  if r == 0: os._exit(0)\n  return r, ctypes.get_errno()\n\
         assert clone(0x10000000) == (-1, 1), clone(0x10000000)\n\
         assert clone(0x40000000) == (-1, 1), clone(0x40000000)\n\
         r = libc.syscall(435, 0, 0)\n\
         assert (r, ctypes.get_errno()) == (-1, 38), r\n\
         t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
         pid = os.fork()\n\
         if pid == 0: os._exit(7)\n\
         assert os.waitpid(pid, 0)[1] >> 8 == 7\n'"
    );
    c.run(command_task("no-new-namespaces", "S1", &command));
    let update = c.terminal(v1::TaskState::TaskFinished).await;
    assert_eq!(update.status.task_id.value, "no-new-namespaces");
}

#[tokio::test]
async fn a_task_names_a_profile_of_the_config_dir_whose_kill_action_kills_it() {
    if !runnable() || !cfg!(target_arch = "x86_64") {
        return;
    }
    let profiles = tempfile::tempdir().expect("profiles dir");
    std::fs::write(
        profiles.path().join("kill-keyctl.json"),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["keyctl"],"action":"SCMP_ACT_KILL","args":null,"includes":{},"excludes":{}}]}"#,
    )
    .expect("write profile");
    let dir = format!("--seccomp_config_dir={}", profiles.path().display());
    let mut c = cluster(&[&dir]).await;
    let named = v1::LinuxInfo {
        seccomp: Some(v1::SeccompInfo {
            profile_name: Some("kill-keyctl.json".into()),
            unconfined: None,
        }),
        ..Default::default()
    };
    c.run(with_linux_info(
        command_task("killed", "S1", &keyctl_allowed_command()),
        named,
    ));
    let update = c.terminal(v1::TaskState::TaskFailed).await;
    let message = update.status.message.clone().unwrap_or_default();
    // The shell reports its child's SIGSYS (31) as 128 + 31.
    assert!(
        message.contains("status 159") || message.contains("signal 31"),
        "killed by SIGSYS: {message}"
    );
}

#[test]
fn a_bad_profile_stops_the_agent_at_startup_naming_the_entry() {
    let profiles = tempfile::tempdir().expect("profiles dir");
    std::fs::write(
        profiles.path().join("bad.json"),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["keyctl"],"action":"SCMP_ACT_FOO","args":null,"includes":{},"excludes":{}}]}"#,
    )
    .expect("write profile");
    let work_dir = tempfile::tempdir().expect("work dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
        .arg("--master=127.0.0.1:1")
        .arg(format!("--work_dir={}", work_dir.path().display()))
        .arg("--launcher=posix")
        .arg("--insecure")
        .arg("--isolation=linux/seccomp")
        .arg(format!(
            "--seccomp_config_dir={}",
            profiles.path().display()
        ))
        .arg("--seccomp_profile_name=bad.json")
        .output()
        .expect("run mesos-agent");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("seccomp profile bad.json: syscalls[0]: unknown action 'SCMP_ACT_FOO'"),
        "{stderr}"
    );
}
