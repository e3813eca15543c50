//! The `cgroups/cpu` and `cgroups/mem` isolators for real: the `mesos-agent`
//! binary with `--launcher=linux` (whose default isolation they are) runs
//! tasks, and the test reads the container's cgroup control files under
//! `/sys/fs/cgroup` and sees what a framework would when a task runs out of
//! memory. Needs root and cgroups: skips with a reason otherwise, except under
//! `CI`, where it must run.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{command_task, framework, start_agent, FakeMaster};
use mesos_agent::launcher::cgroups::{cfs_quota_us, cpu_shares, cpu_weight, Layout, CFS_PERIOD_US};
use mesos_proto::internal as m;
use mesos_proto::v1;

const PYTHON: &str = "/usr/bin/python3";

/// Whether this machine can run the test; panics under `CI` when it cannot.
fn runnable() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("the cgroups isolators need root (--launcher=linux)".to_string())
    } else if common::test_launcher() != "linux" {
        Some(format!(
            "the tests' launcher is {} (no usable cgroups, or MESOS_TEST_LAUNCHER), not linux",
            common::test_launcher()
        ))
    } else if !Path::new(PYTHON).exists() {
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

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

fn task(id: &str, command: &str, cpus: f64, mem: f64) -> v1::TaskInfo {
    let mut task = command_task(id, "S1", command);
    task.resources = vec![scalar("cpus", cpus), scalar("mem", mem)];
    task
}

#[tokio::test]
async fn a_memory_hog_fails_with_a_memory_limitation_naming_the_mem_resource() {
    if !runnable() {
        return;
    }
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(master.port, work_dir.path(), common::free_port(), &[]);
    let (agent, _) = master.register("S1").await;
    let hog = format!("exec {PYTHON} -c 'x = bytearray(512*1024*1024)'");
    master.send(
        &agent,
        &m::RunTaskMessage {
            framework: framework("F1"),
            task: task("hog", &hog, 0.1, 64.0),
            pid: Some("scheduler@127.0.0.1:1".into()),
            ..Default::default()
        },
    );
    let failed = loop {
        let update = master.any_update().await;
        master.ack(&agent, &update);
        if update.status.state == v1::TaskState::TaskFailed as i32 {
            break update;
        }
        assert!(
            [v1::TaskState::TaskStarting, v1::TaskState::TaskRunning]
                .map(|s| s as i32)
                .contains(&update.status.state),
            "unexpected {:?}: {:?}",
            v1::TaskState::try_from(update.status.state),
            update.status.message
        );
    };
    let status = &failed.status;
    assert_eq!(status.task_id.value, "hog");
    assert_eq!(
        status.source,
        Some(v1::task_status::Source::Agent as i32),
        "SOURCE_AGENT: {:?}",
        status.message
    );
    assert_eq!(
        status.reason,
        Some(v1::task_status::Reason::ContainerLimitationMemory as i32),
        "REASON_CONTAINER_LIMITATION_MEMORY: {:?}",
        status.message
    );
    let message = status.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("Memory limit exceeded: Requested: ")
            && message.contains(" Maximum Used: ")
            && message.contains("\n\nMEMORY STATISTICS: \n"),
        "Mesos's message, got {message:?}"
    );
    let limitation = status.limitation.as_ref().expect("limitation set");
    assert_eq!(limitation.resources.len(), 1, "{limitation:?}");
    let mem = &limitation.resources[0];
    assert_eq!(mem.name, "mem");
    assert_eq!(mem.r#type, v1::value::Type::Scalar as i32);
    let used = mem.scalar.as_ref().map(|s| s.value).unwrap_or_default();
    assert!(
        (64.0..512.0).contains(&used),
        "the maximum used, in MB, is about the limit: {used}"
    );
    assert!(failed.uuid.is_some(), "reliable: it carries a uuid");
    let exited = master.next("mesos.internal.ExitedExecutorMessage").await;
    let exited: m::ExitedExecutorMessage = exited.decode().expect("valid ExitedExecutorMessage");
    assert_eq!(exited.executor_id.value, "hog");
}

#[tokio::test]
async fn an_executor_killed_for_lack_of_memory_fails_its_tasks_with_a_memory_limitation() {
    if !runnable() {
        return;
    }
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let _agent = start_agent(master.port, work_dir.path(), common::free_port(), &[]);
    let (agent, _) = master.register("S1").await;
    // A custom executor that is the hog itself: no executor reports the
    // task's end; the agent sees the executor die and finds the OOM kill.
    let mut task = task("victim", "unused", 0.1, 32.0);
    task.command = None;
    task.executor = Some(v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Custom as i32),
        executor_id: v1::ExecutorId {
            value: "hog-executor".into(),
        },
        command: Some(v1::CommandInfo {
            value: Some(format!(
                "exec {PYTHON} -c 'import time; x = bytearray(512*1024*1024); time.sleep(60)'"
            )),
            ..Default::default()
        }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
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
    let failed = master.update(v1::TaskState::TaskFailed).await;
    let status = &failed.status;
    assert_eq!(
        status.reason,
        Some(v1::task_status::Reason::ContainerLimitationMemory as i32),
        "{:?}",
        status.message
    );
    assert_eq!(status.source, Some(v1::task_status::Source::Agent as i32));
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Memory limit exceeded: Requested: 64MB ")),
        "{:?}",
        status.message
    );
    let limitation = status.limitation.as_ref().expect("limitation set");
    assert_eq!(limitation.resources.len(), 1);
    assert_eq!(limitation.resources[0].name, "mem");
    master.ack(&agent, &failed);
    master.next("mesos.internal.ExitedExecutorMessage").await;
}

/// The container's directory for `controller` (v1) or its only one (v2).
fn container_dir(root: &str, controller: &str) -> Option<PathBuf> {
    let layout = Layout::detect_host(Path::new("/sys/fs/cgroup")).ok()?;
    let base = match &layout {
        Layout::V1 { mounts, .. } => mounts.get(controller)?.join(root),
        Layout::V2 { hierarchy, .. } => hierarchy.join(root),
    };
    let mut dirs = std::fs::read_dir(&base)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path());
    let dir = dirs.next()?;
    assert!(
        dirs.next().is_none(),
        "one container under {}",
        base.display()
    );
    Some(dir)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(file).display()))
}

/// The limit files' values for `cpus` and `mem` MB, as `(file, value)`.
fn expected(v2: bool, cpus: f64, mem: f64) -> Vec<(&'static str, &'static str, String)> {
    let bytes = ((mem * 1024.0 * 1024.0) as u64).to_string();
    if v2 {
        vec![
            (
                "cpu",
                "cpu.weight",
                cpu_weight(cpu_shares(cpus)).to_string(),
            ),
            (
                "cpu",
                "cpu.max",
                format!("{} {CFS_PERIOD_US}", cfs_quota_us(cpus)),
            ),
            ("memory", "memory.max", bytes),
        ]
    } else {
        vec![
            ("cpu", "cpu.shares", cpu_shares(cpus).to_string()),
            ("cpu", "cpu.cfs_period_us", CFS_PERIOD_US.to_string()),
            ("cpu", "cpu.cfs_quota_us", cfs_quota_us(cpus).to_string()),
            ("memory", "memory.limit_in_bytes", bytes.clone()),
            ("memory", "memory.soft_limit_in_bytes", bytes),
        ]
    }
}

/// Kills what is left in the test's containers when dropped: the agent is
/// killed at the end of a test and its executors outlive it (as they should).
struct KillContainers(String);

impl Drop for KillContainers {
    fn drop(&mut self) {
        let Ok(layout) = Layout::detect_host(Path::new("/sys/fs/cgroup")) else {
            return;
        };
        let base = match &layout {
            Layout::V1 { mounts, .. } => match mounts.get("freezer") {
                Some(m) => m.join(&self.0),
                None => return,
            },
            Layout::V2 { hierarchy, .. } => hierarchy.join(&self.0),
        };
        let Ok(containers) = std::fs::read_dir(base) else {
            return;
        };
        let containers: Vec<_> = containers.filter_map(Result::ok).collect();
        for container in &containers {
            let procs = std::fs::read_to_string(container.path().join("cgroup.procs"));
            for pid in procs.unwrap_or_default().lines() {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        // Then their (empty) cgroups and the test's root, in every hierarchy.
        std::thread::sleep(Duration::from_millis(300));
        let hierarchies: Vec<PathBuf> = match &layout {
            Layout::V1 { mounts, .. } => mounts.values().cloned().collect(),
            Layout::V2 { hierarchy, .. } => vec![hierarchy.clone()],
        };
        for hierarchy in hierarchies {
            for container in &containers {
                let _ = std::fs::remove_dir(hierarchy.join(&self.0).join(container.file_name()));
            }
            let _ = std::fs::remove_dir(hierarchy.join(&self.0));
        }
    }
}

/// Polls the container's limit files until they hold `want`.
async fn limits_become(root: &str, want: &[(&'static str, &'static str, String)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<(&str, &str, String)> = want
            .iter()
            .map(|(controller, file, _)| {
                let dir = container_dir(root, controller).expect("the container's cgroup");
                (*controller, *file, read(&dir, file))
            })
            .collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cgroup limits: expected {want:?}, got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cgroup_limit_files_hold_the_tasks_resources_and_follow_a_second_task() {
    if !runnable() {
        return;
    }
    let v2 = matches!(
        Layout::detect_host(Path::new("/sys/fs/cgroup")),
        Ok(Layout::V2 { .. })
    );
    let mut master = FakeMaster::start().await;
    let work_dir = tempfile::tempdir().expect("work dir");
    let root = common::cgroups_root(work_dir.path());
    let _kill = KillContainers(root.clone());
    let _agent = start_agent(
        master.port,
        work_dir.path(),
        common::free_port(),
        &["--isolation=cgroups", "--cgroups_enable_cfs"],
    );
    let (agent, _) = master.register("S1").await;
    let executor = v1::ExecutorInfo {
        r#type: Some(v1::executor_info::Type::Default as i32),
        executor_id: v1::ExecutorId {
            value: "default".into(),
        },
        framework_id: Some(v1::FrameworkId { value: "F1".into() }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..Default::default()
    };
    let launch = |id: &str| m::RunTaskGroupMessage {
        framework: framework("F1"),
        executor: executor.clone(),
        task_group: v1::TaskGroupInfo {
            tasks: vec![task(id, "sleep 1000", 0.5, 128.0)],
        },
        ..Default::default()
    };
    async fn running(master: &mut FakeMaster, agent: &mesos_common::Upid, id: &str) {
        loop {
            let update = master.any_update().await;
            master.ack(agent, &update);
            assert_eq!(update.status.task_id.value, id);
            match v1::TaskState::try_from(update.status.state) {
                Ok(v1::TaskState::TaskStarting) => {}
                Ok(v1::TaskState::TaskRunning) => return,
                other => panic!("{id}: unexpected {other:?}: {:?}", update.status.message),
            }
        }
    }

    master.send(&agent, &launch("first"));
    running(&mut master, &agent, "first").await;
    // The executor's 0.1 cpus and 32 MB plus the task's 0.5 and 128.
    limits_become(&root, &expected(v2, 0.1 + 0.5, 32.0 + 128.0)).await;

    master.send(&agent, &launch("second"));
    running(&mut master, &agent, "second").await;
    limits_become(&root, &expected(v2, 0.1 + 0.5 + 0.5, 32.0 + 128.0 + 128.0)).await;
}
