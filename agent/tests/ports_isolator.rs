//! The `network/ports` isolator for real: the `mesos-agent` binary with
//! `--launcher=linux --isolation=network/ports` runs command tasks that listen
//! (with Python) on a port they were allocated or not, over IPv4 and IPv6, and
//! the fake master sees what a framework would. Needs root and cgroups: skips
//! with a reason otherwise, except under `CI`, where it must run.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{command_task, framework, spawn_agent, FakeMaster};
use mesos_proto::internal as m;
use mesos_proto::v1;

/// The scan interval the tests give the agent.
const INTERVAL: Duration = Duration::from_secs(1);
/// What "within one interval" may add: the destroy and the update's delivery.
const SLACK: Duration = Duration::from_millis(1500);

/// Whether this machine can run the test; panics under `CI` when it cannot.
fn runnable() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("the network/ports isolator needs root (--launcher=linux)".to_string())
    } else if common::test_launcher() != "linux" {
        Some(format!(
            "the tests' launcher is {} (no usable cgroups, or MESOS_TEST_LAUNCHER), not linux",
            common::test_launcher()
        ))
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

/// [`runnable`], and the machine has an IPv6 loopback (it must under `CI`).
fn runnable_with_ipv6() -> bool {
    if !runnable() {
        return false;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but this machine has no IPv6 loopback");
        }
        eprintln!("skipped: no IPv6 loopback");
        return false;
    }
    true
}

const PYTHON: &str = "/usr/bin/python3";

/// A shell command listening on `host:port` for `seconds`, then exiting 0.
fn listen_command(host: &str, port: u16, seconds: u32) -> String {
    let family = if host.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    format!(
        "exec {PYTHON} -c 'import socket,time\n\
         s=socket.socket(socket.{family})\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind((\"{host}\", {port}))\n\
         s.listen()\n\
         time.sleep({seconds})'"
    )
}

/// A free port on `host` (IPv4 or IPv6 loopback).
fn free_port_on(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ports_resource(port: u16) -> v1::Resource {
    v1::Resource {
        name: "ports".into(),
        r#type: v1::value::Type::Ranges as i32,
        ranges: Some(v1::value::Ranges {
            range: vec![v1::value::Range {
                begin: u64::from(port),
                end: u64::from(port),
            }],
        }),
        ..Default::default()
    }
}

/// An agent with the isolator, its stderr collected in `log`.
struct Cluster {
    master: FakeMaster,
    agent: mesos_common::Upid,
    log: Arc<Mutex<String>>,
    process: common::AgentProcess,
    _work_dir: tempfile::TempDir,
}

/// An agent whose scan alone enforces (the bind filter off, so that the
/// scan's own behaviour is what the test sees).
async fn cluster(enforce: bool) -> Cluster {
    cluster_with(enforce, false).await
}

async fn cluster_with(enforce: bool, at_bind: bool) -> Cluster {
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let interval = format!(
        "--container_ports_watch_interval={}ms",
        INTERVAL.as_millis()
    );
    let enforce = format!("--enforce_container_ports={enforce}");
    let at_bind = format!("--container_ports_enforce_at_bind={at_bind}");
    let mut process = spawn_agent(
        master.port,
        work_dir.path(),
        common::free_port(),
        // spawn_agent passes --launcher=linux (checked by runnable()).
        &["--isolation=network/ports", &interval, &enforce, &at_bind],
        Stdio::piped(),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = process.child.stderr.take().expect("piped stderr");
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("agent: {line}");
            if let Ok(mut log) = sink.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let (agent, _) = master.register("S1").await;
    Cluster {
        master,
        agent,
        log,
        process,
        _work_dir: work_dir,
    }
}

impl Cluster {
    /// Runs `command` as task `id` with `ports` allocated, acknowledging its
    /// STARTING and RUNNING updates.
    async fn run(&mut self, id: &str, command: &str, allocated: u16) {
        let mut task = command_task(id, "S1", command);
        task.resources.push(ports_resource(allocated));
        self.master.send(
            &self.agent,
            &m::RunTaskMessage {
                framework: framework("F1"),
                task,
                pid: Some("scheduler@127.0.0.1:1".into()),
                ..Default::default()
            },
        );
        for state in [v1::TaskState::TaskStarting, v1::TaskState::TaskRunning] {
            let update = self.master.update(state).await;
            self.master.ack(&self.agent, &update);
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Waits until something accepts connections on `host:port`; returns when.
async fn listening(host: &str, port: u16) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect((host, port)).is_ok() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {host}:{port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn unallocated_listener_is_killed_within_one_interval(host: &str) {
    let mut c = cluster(true).await;
    let allocated = free_port_on(host);
    let port = free_port_on(host);
    c.run("bad", &listen_command(host, port, 300), allocated)
        .await;
    let since = listening(host, port).await;
    let update = c.master.update(v1::TaskState::TaskFailed).await;
    let took = since.elapsed();
    assert!(
        took <= INTERVAL + SLACK,
        "killed {took:?} after it listened; the interval is {INTERVAL:?}"
    );
    let status = &update.status;
    assert_eq!(status.task_id.value, "bad");
    assert_eq!(
        status.source,
        Some(v1::task_status::Source::Agent as i32),
        "SOURCE_AGENT"
    );
    assert_eq!(
        status.reason,
        Some(v1::task_status::Reason::ContainerLimitation as i32),
        "REASON_CONTAINER_LIMITATION"
    );
    let message = status.message.as_deref().unwrap_or_default();
    let suffix = format!(" is listening on unallocated port(s): [{port}-{port}]");
    let container = message
        .strip_prefix("Container ")
        .and_then(|m| m.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("Mesos's message, got {message:?}"));
    assert!(
        uuid::Uuid::parse_str(container).is_ok(),
        "names the container: {message}"
    );
    let limitation = status.limitation.as_ref().expect("limitation set");
    assert_eq!(limitation.resources, vec![ports_resource(port)]);
    assert!(update.uuid.is_some(), "reliable: it carries a uuid");
    c.master.ack(&c.agent, &update);
    // The listener died with its container.
    assert!(
        std::net::TcpStream::connect((host, port)).is_err(),
        "the task's listener is gone"
    );
    let exited = c.master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "bad");
}

#[tokio::test]
async fn a_task_listening_on_an_unallocated_ipv4_port_fails_with_a_container_limitation() {
    if runnable() {
        unallocated_listener_is_killed_within_one_interval("127.0.0.1").await;
    }
}

#[tokio::test]
async fn a_task_listening_on_an_unallocated_ipv6_port_fails_with_a_container_limitation() {
    if !runnable_with_ipv6() {
        return;
    }
    unallocated_listener_is_killed_within_one_interval("::1").await;
}

#[tokio::test]
async fn a_task_listening_on_its_allocated_port_is_left_alone() {
    if !runnable() {
        return;
    }
    let mut c = cluster(true).await;
    let port = free_port_on("127.0.0.1");
    // Listens for three intervals and then finishes on its own.
    c.run("good", &listen_command("127.0.0.1", port, 3), port)
        .await;
    listening("127.0.0.1", port).await;
    let update = c.master.update(v1::TaskState::TaskFinished).await;
    assert_eq!(
        update.status.source,
        Some(v1::task_status::Source::Executor as i32)
    );
    assert!(update.status.limitation.is_none());
    assert!(
        !c.log().contains("unallocated port"),
        "no violation logged:\n{}",
        c.log()
    );
}

#[tokio::test]
async fn without_enforcement_a_violation_is_only_logged_once() {
    if !runnable() {
        return;
    }
    let mut c = cluster(false).await;
    let allocated = free_port_on("127.0.0.1");
    let port = free_port_on("127.0.0.1");
    // Listens for three intervals and then finishes on its own.
    c.run(
        "tolerated",
        &listen_command("127.0.0.1", port, 3),
        allocated,
    )
    .await;
    listening("127.0.0.1", port).await;
    let update = c.master.update(v1::TaskState::TaskFinished).await;
    assert!(update.status.limitation.is_none());
    let wanted = format!(" is listening on unallocated port(s): [{port}-{port}]");
    let log = c.log();
    assert_eq!(
        log.matches(&wanted).count(),
        1,
        "logged once, not once per scan:\n{log}"
    );
    assert!(log.contains("not enforced"), "{log}");
}

#[tokio::test]
async fn the_isolator_refuses_the_posix_launcher_like_mesos() {
    let work_dir = tempfile::tempdir().expect("work dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-agent"))
        .arg("--master=127.0.0.1:5050")
        .arg(format!("--work_dir={}", work_dir.path().display()))
        .arg("--launcher=posix")
        .arg("--isolation=network/ports")
        .arg("--insecure")
        .output()
        .expect("run mesos-agent");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("The 'network/ports' isolator requires the 'linux' launcher"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_task_group_member_on_an_unallocated_port_fails_the_whole_group() {
    if !runnable() {
        return;
    }
    let mut c = cluster(true).await;
    let (mine, other, unallocated) = (
        free_port_on("127.0.0.1"),
        free_port_on("127.0.0.1"),
        free_port_on("127.0.0.1"),
    );
    let mut good = command_task("good", "S1", &listen_command("127.0.0.1", mine, 300));
    good.resources.push(ports_resource(mine));
    // Its port is allocated to the group (to "good"), and "bad" also listens
    // on one nobody was given.
    let mut bad = command_task("bad", "S1", &listen_command("127.0.0.1", unallocated, 300));
    bad.resources.push(ports_resource(other));
    let executor = v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Default as i32),
        executor_id: v1::ExecutorId {
            value: "group-executor".into(),
        },
        framework_id: Some(v1::FrameworkId { value: "F1".into() }),
        ..Default::default()
    };
    c.master.send(
        &c.agent,
        &m::RunTaskGroupMessage {
            framework: framework("F1"),
            executor,
            task_group: v1::TaskGroupInfo {
                tasks: vec![good, bad],
            },
            ..Default::default()
        },
    );
    let mut last = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last.len() < 2
        || !last
            .values()
            .all(|u: &m::StatusUpdate| u.status.state == v1::TaskState::TaskFailed as i32)
    {
        assert!(
            Instant::now() < deadline,
            "both tasks should fail: {last:?}"
        );
        let update = c.master.any_update().await;
        c.master.ack(&c.agent, &update);
        last.insert(update.status.task_id.value.clone(), update);
    }
    let suffix = format!(" is listening on unallocated port(s): [{unallocated}-{unallocated}]");
    for (task, update) in &last {
        let status = &update.status;
        assert_eq!(
            status.reason,
            Some(v1::task_status::Reason::ContainerLimitation as i32),
            "{task}"
        );
        assert_eq!(status.source, Some(v1::task_status::Source::Agent as i32));
        assert!(
            status
                .message
                .as_deref()
                .is_some_and(|m| m.ends_with(&suffix)),
            "{task}: {:?}",
            status.message
        );
        assert_eq!(
            status.limitation.as_ref().map(|l| l.resources.clone()),
            Some(vec![ports_resource(unallocated)])
        );
    }
    assert_eq!(
        last["good"].status.message, last["bad"].status.message,
        "one limitation, raised against the executor's container"
    );
}

#[tokio::test]
async fn a_recovered_container_keeps_its_allocation_and_is_still_watched() {
    if !runnable() {
        return;
    }
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let agent_port = common::free_port();
    let interval = format!(
        "--container_ports_watch_interval={}ms",
        INTERVAL.as_millis()
    );
    let flags = [
        "--isolation=network/ports",
        "--enforce_container_ports",
        // The scan's recovery is under test: the bind filter would refuse the late listener.
        "--container_ports_enforce_at_bind=false",
        interval.as_str(),
    ];
    let mut first = spawn_agent(
        master.port,
        work_dir.path(),
        agent_port,
        &flags,
        Stdio::inherit(),
    );
    let (agent, _) = master.register("S1").await;
    let (allocated, unallocated) = (free_port_on("127.0.0.1"), free_port_on("127.0.0.1"));
    // Listens on its own port at once, and on one it was not given 4s later,
    // when a restarted agent has taken over.
    let command = format!(
        "exec {PYTHON} -c 'import socket,time\n\
         def listen(p):\n  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n  s.bind((\"127.0.0.1\", p)); s.listen(); return s\n\
         a=listen({allocated})\n\
         time.sleep(4)\n\
         b=listen({unallocated})\n\
         time.sleep(300)'"
    );
    let mut task = command_task("late", "S1", &command);
    task.resources.push(ports_resource(allocated));
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task,
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    for state in [v1::TaskState::TaskStarting, v1::TaskState::TaskRunning] {
        let update = master.update(state).await;
        master.ack(&agent, &update);
    }
    listening("127.0.0.1", allocated).await;
    master.expect_no_update(Duration::from_millis(300)).await;
    first.crash();

    let _second = spawn_agent(
        master.port,
        work_dir.path(),
        agent_port,
        &flags,
        Stdio::inherit(),
    );
    master.next("mesos.internal.ReregisterSlaveMessage").await;
    master.send(
        &agent,
        &m::SlaveReregisteredMessage {
            slave_id: v1::AgentId { value: "S1".into() },
            reconciliations: Vec::new(),
            connection: None,
        },
    );
    let update = master.update(v1::TaskState::TaskFailed).await;
    let status = &update.status;
    assert_eq!(
        status.reason,
        Some(v1::task_status::Reason::ContainerLimitation as i32)
    );
    let suffix = format!(" is listening on unallocated port(s): [{unallocated}-{unallocated}]");
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.ends_with(&suffix)),
        "only the unallocated port is named (the allocation was recovered): {:?}",
        status.message
    );
    assert_eq!(
        status.limitation.as_ref().map(|l| l.resources.clone()),
        Some(vec![ports_resource(unallocated)])
    );
}

/// A task that, once `trigger` exists (at once when it is `None`), tries to
/// bind `host:unallocated` and then `host:allocated`, writes what each gave
/// (`ok` or the errno name) to `out`, and keeps the sockets for a while.
fn bind_probe_command(
    host: &str,
    unallocated: u16,
    allocated: u16,
    trigger: Option<&std::path::Path>,
    out: &std::path::Path,
) -> String {
    let family = if host.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let trigger = trigger.map(|t| t.display().to_string()).unwrap_or_default();
    format!(
        "exec {PYTHON} -c 'import errno,os,socket,time\n\
         while \"{trigger}\" and not os.path.exists(\"{trigger}\"): time.sleep(0.05)\n\
         def attempt(p):\n  s=socket.socket(socket.{family})\n  try:\n    s.bind((\"{host}\", p)); s.listen(); return s, \"ok\"\n  except OSError as e:\n    return None, errno.errorcode.get(e.errno, str(e.errno))\n\
         bad=attempt({unallocated})\n\
         good=attempt({allocated})\n\
         open(\"{out}.tmp\", \"w\").write(\"unallocated=%s allocated=%s\" % (bad[1], good[1]))\n\
         os.rename(\"{out}.tmp\", \"{out}\")\n\
         time.sleep(300)'",
        out = out.display()
    )
}

/// Waits for the probe's report.
async fn probe_report(out: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(out) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the task wrote no {}",
            out.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory every user can write (the task may not run as us).
fn shared_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("shared dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

async fn bind_to_an_unallocated_port_fails_with_eperm(host: &str) {
    let mut c = cluster_with(true, true).await;
    assert!(
        !c.log().contains("is not possible here"),
        "bind enforcement works on this host:\n{}",
        c.log()
    );
    let (allocated, unallocated) = (free_port_on(host), free_port_on(host));
    let dir = shared_dir();
    let out = dir.path().join("report");
    c.run(
        "probe",
        &bind_probe_command(host, unallocated, allocated, None, &out),
        allocated,
    )
    .await;
    assert_eq!(
        probe_report(&out).await,
        "unallocated=EPERM allocated=ok",
        "the kernel refused the unallocated port and allowed the allocated one"
    );
    assert!(
        std::net::TcpStream::connect((host, unallocated)).is_err(),
        "no listener ever existed on the unallocated port"
    );
    listening(host, allocated).await;
    // Nothing listened where it should not: the scan finds no violation and
    // the task keeps running.
    c.master.expect_no_update(INTERVAL * 2).await;
    assert!(!c.log().contains("unallocated port(s)"), "{}", c.log());
}

#[tokio::test]
async fn with_bind_enforcement_an_ipv4_bind_to_an_unallocated_port_fails_with_eperm() {
    if runnable() {
        bind_to_an_unallocated_port_fails_with_eperm("127.0.0.1").await;
    }
}

#[tokio::test]
async fn with_bind_enforcement_an_ipv6_bind_to_an_unallocated_port_fails_with_eperm() {
    if !runnable_with_ipv6() {
        return;
    }
    bind_to_an_unallocated_port_fails_with_eperm("::1").await;
}

#[tokio::test]
async fn with_bind_enforcement_binds_are_refused_while_the_agent_is_down() {
    if !runnable() {
        return;
    }
    let mut c = cluster_with(true, true).await;
    let (allocated, unallocated) = (free_port_on("127.0.0.1"), free_port_on("127.0.0.1"));
    let dir = shared_dir();
    let (trigger, out) = (dir.path().join("go"), dir.path().join("report"));
    c.run(
        "patient",
        &bind_probe_command("127.0.0.1", unallocated, allocated, Some(&trigger), &out),
        allocated,
    )
    .await;
    c.process.crash();
    std::fs::write(&trigger, "").expect("trigger");
    assert_eq!(
        probe_report(&out).await,
        "unallocated=EPERM allocated=ok",
        "the kernel enforces the allocation with no agent running"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", unallocated)).is_err());
    listening("127.0.0.1", allocated).await;
}
