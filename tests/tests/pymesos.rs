//! An unmodified pymesos scheduler against a real master and agent.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesos_tests::{get_json, script, wait_until, Cluster};
use serde_json::Value;

/// Finds the sandbox of `task_id` in the agent's /state.
fn sandbox_of(agent_url: &str, task_id: &str) -> Option<String> {
    mesos_tests::sandbox_in_state(&get_json(&format!("{agent_url}/state"))?, task_id)
}

#[test]
fn pymesos_runs_echo_tasks_to_finished_and_stdout_is_readable() {
    let Some(python) = mesos_tests::pymesos_or_skip() else {
        return;
    };
    let cluster = Cluster::start(1);
    let output = Command::new(&python)
        .env("MESOS_PRINCIPAL", mesos_tests::FRAMEWORK_PRINCIPAL)
        .env("MESOS_SECRET", mesos_tests::FRAMEWORK_SECRET)
        .arg(script("pymesos_echo.py"))
        .args([
            "--master",
            &cluster.master_address(),
            "--tasks",
            "2",
            "--timeout",
            "60",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("run pymesos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pymesos failed: {stdout}\n{stderr}\n{}",
        cluster.logs()
    );
    let result: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("result JSON");
    let updates = result["updates"].as_array().expect("updates");
    let mut task_ids: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["task_id"].as_str())
        .collect();
    task_ids.sort();
    task_ids.dedup();
    assert_eq!(task_ids.len(), 2, "{result}");
    for task_id in &task_ids {
        let states: Vec<&str> = updates
            .iter()
            .filter(|u| u["task_id"] == *task_id)
            .filter_map(|u| u["state"].as_str())
            .collect();
        assert_eq!(
            states,
            ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
            "task {task_id}: {result}"
        );
        assert!(
            updates
                .iter()
                .filter(|u| u["task_id"] == *task_id)
                .all(|u| u["has_uuid"] == true),
            "executor updates carry a uuid to acknowledge: {result}"
        );
    }

    // The master saw the same, and the task's stdout is on the agent.
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    let task_id = task_ids[0].to_string();
    let mut sandbox = None;
    wait_until(
        Duration::from_secs(10),
        "the task's sandbox in the agent's /state",
        || {
            sandbox = sandbox_of(&agent_url, &task_id);
            sandbox.is_some()
        },
    );
    let sandbox = sandbox.expect("sandbox");
    let read = get_json(&format!(
        "{agent_url}/files/read?path={sandbox}/stdout&offset=0"
    ))
    .expect("files/read");
    assert!(
        read["data"].as_str().unwrap_or_default().contains("hello"),
        "{read}"
    );

    let state = get_json(&format!("{}/master/state", cluster.master_url())).expect("state");
    let framework_id = result["framework_id"].as_str().expect("framework id");
    let completed = state["completed_frameworks"]
        .as_array()
        .expect("completed frameworks");
    let framework = completed
        .iter()
        .find(|f| f["id"] == framework_id)
        .expect("torn-down framework is completed");
    let finished = framework["completed_tasks"]
        .as_array()
        .expect("completed tasks");
    assert_eq!(finished.len(), 2, "{framework}");
    assert!(
        finished.iter().all(|t| t["state"] == "TASK_FINISHED"),
        "{framework}"
    );
}

/// Reads JSON lines from a long-running pymesos scheduler.
struct LongScheduler {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl LongScheduler {
    fn start(python: &std::path::Path, master: &str) -> Self {
        let mut child = Command::new(python)
            .env("MESOS_PRINCIPAL", mesos_tests::FRAMEWORK_PRINCIPAL)
            .env("MESOS_SECRET", mesos_tests::FRAMEWORK_SECRET)
            .arg(script("pymesos_echo.py"))
            .args(["--master", master, "--long", "--timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pymesos");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Self { child, lines }
    }

    fn next_matching(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => continue,
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

impl Drop for LongScheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn task_state(cluster: &Cluster, task_id: &str) -> Option<String> {
    let state = get_json(&format!("{}/master/state", cluster.master_url()))?;
    state["frameworks"].as_array()?.iter().find_map(|f| {
        f["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == task_id)
            .and_then(|t| t["state"].as_str().map(str::to_string))
    })
}

#[test]
fn master_sigkill_and_restart_keeps_the_running_task() {
    let Some(python) = mesos_tests::pymesos_or_skip() else {
        return;
    };
    let mut cluster = Cluster::start(1);
    let scheduler = LongScheduler::start(&python, &cluster.master_address());
    let running = scheduler.next_matching(Duration::from_secs(60), "TASK_RUNNING", |v| {
        v.get("running").is_some()
    });
    let task_id = running["running"].as_str().expect("task id").to_string();
    let framework_id = running["framework_id"]
        .as_str()
        .expect("framework id")
        .to_string();

    cluster.master.as_mut().expect("master").kill();
    cluster.start_master();
    cluster.wait_for_agents(1);
    // pymesos reconnects by itself and resubscribes with its id.
    scheduler.next_matching(Duration::from_secs(60), "resubscription", |v| {
        v["event"] == "subscribed" && v["framework_id"] == framework_id.as_str()
    });
    wait_until(
        Duration::from_secs(30),
        "the task RUNNING in the restarted master's state",
        || task_state(&cluster, &task_id).as_deref() == Some("TASK_RUNNING"),
    );
    let state = get_json(&format!("{}/master/state", cluster.master_url())).expect("state");
    let framework = state["frameworks"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["id"] == framework_id.as_str()))
        .expect("framework in the restarted master");
    assert_eq!(framework["active"], true, "{framework}");
}

#[test]
fn agent_sigkill_and_restart_keeps_the_task_and_delivers_its_end_once() {
    let Some(python) = mesos_tests::pymesos_or_skip() else {
        return;
    };
    let mut cluster = Cluster::start(1);
    let scheduler = LongScheduler::start(&python, &cluster.master_address());
    let running = scheduler.next_matching(Duration::from_secs(60), "TASK_RUNNING", |v| {
        v.get("running").is_some()
    });
    let task_id = running["running"].as_str().expect("task id").to_string();

    // Find the task's process on the host: `sleep 3600` under the sandbox.
    let pids_before = sleep_pids(cluster.dir.path());
    assert!(!pids_before.is_empty(), "the task's sleep process runs");

    cluster.agents[0].as_mut().expect("agent").kill();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        pids_before
            .iter()
            .all(|p| std::path::Path::new(&format!("/proc/{p}")).exists()),
        "the task survives the agent's death"
    );
    cluster.start_agent(0);
    cluster.wait_for_agents(1);
    wait_until(
        Duration::from_secs(30),
        "task still RUNNING after agent restart",
        || task_state(&cluster, &task_id).as_deref() == Some("TASK_RUNNING"),
    );

    // End the task from outside; the framework hears about it once.
    for pid in &pids_before {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let end = scheduler.next_matching(Duration::from_secs(60), "the task's terminal update", |v| {
        v["event"] == "update" && v["task_id"] == task_id.as_str() && v["state"] != "TASK_RUNNING"
    });
    assert!(
        ["TASK_FAILED", "TASK_KILLED", "TASK_FINISHED"]
            .contains(&end["state"].as_str().unwrap_or_default()),
        "{end}"
    );
    // No duplicate of the terminal update within a few seconds.
    std::thread::sleep(Duration::from_secs(3));
    let duplicates: Vec<Value> = scheduler
        .lines
        .try_iter()
        .filter(|v| {
            v["event"] == "update" && v["task_id"] == task_id.as_str() && v["state"] == end["state"]
        })
        .collect();
    assert!(
        duplicates.is_empty(),
        "terminal update delivered more than once: {duplicates:?}"
    );
}

/// Pids of `sleep 3600` processes (the long task's command) running in a
/// sandbox under `root` (tests run in parallel: other clusters' tasks are
/// not ours to kill).
fn sleep_pids(root: &std::path::Path) -> Vec<i32> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let in_cluster =
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root));
        if cmdline == b"sleep\x003600\x00" && in_cluster {
            pids.push(pid);
        }
    }
    pids
}
