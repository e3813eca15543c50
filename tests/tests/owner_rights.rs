//! The secure default (credentials, no `--acls`) gives a principal its own
//! frameworks: it sees them and their tasks, tears them down and reads
//! their sandboxes; any other principal is filtered out or refused with
//! the rule `not-own-framework` and the ACL to add.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesos_tests::{
    blocking_client_as, python, script, streaming_client_as, wait_until, Cluster, RecordIo,
    FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, NO_DEFAULT_ACLS, OPERATOR_PRINCIPAL, OPERATOR_SECRET,
};
use serde_json::Value;

const OWNER: (&str, &str) = (FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
const OTHER: (&str, &str) = (OPERATOR_PRINCIPAL, OPERATOR_SECRET);

fn require_python() -> bool {
    if python().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must provide pymesos (scripts/setup-python.sh)");
    }
    eprintln!("skipping: no Python with pymesos (run scripts/setup-python.sh)");
    false
}

/// A master and one agent, both under the secure default policy.
fn secure_default_cluster() -> Cluster {
    let mut cluster = Cluster::prepare(&[NO_DEFAULT_ACLS]);
    cluster.agent_args.push(NO_DEFAULT_ACLS.to_string());
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    cluster
}

/// GET `url` as `who`: status and body.
fn get_as(url: &str, who: (&str, &str)) -> (u16, String) {
    let response = blocking_client_as(who.0, who.1)
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url} should be answered: {e}"));
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

/// GET `url` as `who`, expecting 200 and JSON.
fn json_as(url: &str, who: (&str, &str)) -> Value {
    let (status, body) = get_as(url, who);
    assert_eq!(status, 200, "GET {url} as {}: {body}", who.0);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url} answers JSON ({e}): {body}"))
}

/// POST `/master/teardown` with `frameworkId` as `who`: status and body.
fn teardown_as(cluster: &Cluster, framework_id: &str, who: (&str, &str)) -> (u16, String) {
    let response = blocking_client_as(who.0, who.1)
        .post(format!("{}/master/teardown", cluster.master_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("frameworkId={framework_id}"))
        .send()
        .expect("/master/teardown should answer");
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

/// The ids in `list` (`frameworks`, `completed_frameworks`, `tasks`...)
/// of a JSON document.
fn ids(document: &Value, list: &str) -> Vec<String> {
    document[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect()
}

/// The sandbox directory of `task_id` in the agent's `/state`, as the
/// framework's owner sees it.
fn agent_sandbox_of(agent_url: &str, task_id: &str) -> Option<String> {
    mesos_tests::sandbox_in_state(&json_as(&format!("{agent_url}/state"), OWNER), task_id)
}

/// `pymesos_echo.py --long --teardown-on-eof` running one task as
/// `nobody`: killed on drop; closing its stdin tears the framework down.
struct LongScheduler {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
}

impl LongScheduler {
    fn start(cluster: &Cluster, who: (&str, &str), command: &str) -> LongScheduler {
        let stderr = cluster.dir.path().join("pymesos-long.log");
        let mut child = Command::new(python().expect("python"))
            .arg(script("pymesos_echo.py"))
            .args([
                "--master",
                &cluster.master_address(),
                "--long",
                "--teardown-on-eof",
                "--user",
                "nobody",
                "--cmd",
                command,
                "--timeout",
                "60",
            ])
            .env("MESOS_PRINCIPAL", who.0)
            .env("MESOS_SECRET", who.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("create the pymesos log"))
            .spawn()
            .expect("start pymesos");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("pymesos stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LongScheduler {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The next JSON line that has `key`; panics on a final error line or
    /// after `timeout`.
    fn wait_for(&self, key: &str, timeout: Duration, cluster: &Cluster) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "pymesos printed no line with {key:?} within {timeout:?}:\n{}\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                    cluster.logs()
                )
            });
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if value.get(key).is_some() {
                return value;
            }
            if value.get("error").is_some() && value.get("event").is_none() {
                panic!(
                    "pymesos gave up: {value}\n{}\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                    cluster.logs()
                );
            }
        }
    }

    /// Closes stdin (pymesos then sends TEARDOWN) and waits for its exit
    /// code.
    fn tear_down(&mut self) -> i32 {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "pymesos did not exit after its stdin closed:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }
}

impl Drop for LongScheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn secure_default_shows_a_framework_and_its_tasks_only_to_the_principal_that_registered_it() {
    if !require_python() {
        return;
    }
    let cluster = secure_default_cluster();
    let master = cluster.master_url();
    let mut scheduler = LongScheduler::start(&cluster, OWNER, "sleep 3600");
    let running = scheduler.wait_for("running", Duration::from_secs(60), &cluster);
    let framework_id = running["framework_id"]
        .as_str()
        .expect("pymesos reports its framework id")
        .to_string();
    let task_id = running["running"]
        .as_str()
        .expect("pymesos reports its running task")
        .to_string();

    // The owner sees its framework, and its task running.
    let frameworks = json_as(&format!("{master}/master/frameworks"), OWNER);
    assert_eq!(
        ids(&frameworks, "frameworks"),
        [framework_id.as_str()],
        "{frameworks}"
    );
    let tasks = json_as(&format!("{master}/master/tasks"), OWNER);
    let task = tasks["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == task_id.as_str()))
        .unwrap_or_else(|| panic!("the owner sees task {task_id}: {tasks}"));
    assert_eq!(task["framework_id"], framework_id.as_str(), "{task}");
    assert_eq!(task["state"], "TASK_RUNNING", "{task}");
    let state = json_as(&format!("{master}/master/state"), OWNER);
    assert_eq!(
        ids(&state, "frameworks"),
        [framework_id.as_str()],
        "{state}"
    );

    // Another principal (with no ACLs to help it) sees neither.
    let frameworks = json_as(&format!("{master}/master/frameworks"), OTHER);
    assert!(
        ids(&frameworks, "frameworks").is_empty()
            && ids(&frameworks, "completed_frameworks").is_empty(),
        "{frameworks}"
    );
    let tasks = json_as(&format!("{master}/master/tasks"), OTHER);
    assert_eq!(tasks["tasks"], serde_json::json!([]), "{tasks}");
    let state = json_as(&format!("{master}/master/state"), OTHER);
    assert!(ids(&state, "frameworks").is_empty(), "{state}");
    assert!(!state.to_string().contains(&task_id), "{state}");

    // Torn down, it is a completed framework: still the owner's only.
    let code = scheduler.tear_down();
    assert_eq!(code, 0, "pymesos tears down cleanly");
    let url = format!("{master}/master/frameworks");
    wait_until(
        Duration::from_secs(20),
        "the framework among the owner's completed frameworks",
        || ids(&json_as(&url, OWNER), "completed_frameworks").contains(&framework_id),
    );
    let frameworks = json_as(&url, OWNER);
    assert!(
        ids(&frameworks, "frameworks").is_empty(),
        "no longer active: {frameworks}"
    );
    let completed = frameworks["completed_frameworks"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["id"] == framework_id.as_str()))
        .expect("the completed framework");
    let killed: Vec<&Value> = completed["completed_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["id"] == task_id.as_str())
        .collect();
    assert_eq!(killed.len(), 1, "its task is completed: {completed}");
    assert_eq!(killed[0]["state"], "TASK_KILLED", "{completed}");

    let frameworks = json_as(&url, OTHER);
    assert!(
        ids(&frameworks, "frameworks").is_empty()
            && ids(&frameworks, "completed_frameworks").is_empty(),
        "{frameworks}"
    );
    let state = json_as(&format!("{master}/master/state"), OTHER);
    assert!(ids(&state, "completed_frameworks").is_empty(), "{state}");
    let state = json_as(&format!("{master}/master/state"), OWNER);
    assert_eq!(
        ids(&state, "completed_frameworks"),
        [framework_id.as_str()],
        "{state}"
    );
}

#[test]
fn secure_default_lets_a_framework_read_its_own_sandbox_and_refuses_another_principal() {
    if !require_python() {
        return;
    }
    let cluster = secure_default_cluster();
    let mut scheduler =
        LongScheduler::start(&cluster, OWNER, "echo owner-says-hello; exec sleep 3600");
    let running = scheduler.wait_for("running", Duration::from_secs(60), &cluster);
    let task_id = running["running"]
        .as_str()
        .expect("running task id")
        .to_string();
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    let mut sandbox = None;
    wait_until(Duration::from_secs(10), "the task's sandbox", || {
        sandbox = agent_sandbox_of(&agent_url, &task_id);
        sandbox.is_some()
    });
    let sandbox = sandbox.expect("sandbox");
    let read = format!("{agent_url}/files/read?path={sandbox}/stdout&offset=0");

    let mut last = (0, String::new());
    wait_until(
        Duration::from_secs(20),
        "the task's output read by its framework's principal",
        || {
            last = get_as(&read, OWNER);
            last.0 == 200 && last.1.contains("owner-says-hello")
        },
    );
    let body: Value = serde_json::from_str(&last.1).expect("/files/read answers JSON");
    assert!(
        body["data"]
            .as_str()
            .is_some_and(|d| d.contains("owner-says-hello")),
        "{body}"
    );

    let (status, body) = get_as(&read, OTHER);
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("403 Forbidden."), "{body}");
    assert!(
        body.contains("'not-own-framework'") && body.contains("to allow it, add"),
        "{body}"
    );
    assert!(
        body.contains(OPERATOR_PRINCIPAL) && body.contains("access_sandboxes"),
        "{body}"
    );
    assert!(!body.contains("owner-says-hello"), "{body}");

    // Torn down, the framework is a completed one on the agent: its
    // sandbox is still its owner's to read, and still not the other's.
    assert_eq!(scheduler.tear_down(), 0, "pymesos tears down cleanly");
    wait_until(
        Duration::from_secs(20),
        "the framework completed on the agent",
        || {
            let state = json_as(&format!("{agent_url}/state"), OWNER);
            ids(&state, "frameworks").is_empty() && !ids(&state, "completed_frameworks").is_empty()
        },
    );
    let (status, body) = get_as(&read, OWNER);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("owner-says-hello"), "{body}");
    let (status, body) = get_as(&read, OTHER);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'not-own-framework'"), "{body}");
}

/// SUBSCRIBE over JSON as `who` (user `nobody`, a long failover timeout)
/// and the first event; the framework stays connected while the stream
/// lives.
fn subscribe(
    cluster: &Cluster,
    who: (&str, &str),
) -> (RecordIo<reqwest::blocking::Response>, Value) {
    let body = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "nobody", "name": "owner-test", "failover_timeout": 3600.0}}});
    let response = streaming_client_as(who.0, who.1)
        .post(format!("{}/api/v1/scheduler", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .expect("SUBSCRIBE should be answered");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = RecordIo::new(response);
    let event = stream.next_json().expect("a first event");
    (stream, event)
}

#[test]
fn secure_default_lets_only_the_owner_tear_down_its_framework() {
    let cluster = secure_default_cluster();
    let (stream, event) = subscribe(&cluster, OWNER);
    assert_eq!(event["type"], "SUBSCRIBED", "{event}");
    let framework_id = event["subscribed"]["framework_id"]["value"]
        .as_str()
        .expect("framework id")
        .to_string();
    let frameworks = format!("{}/master/frameworks", cluster.master_url());

    // Another principal: 403 naming the rule and the ACL to add, on the
    // endpoint and on the operator API; the framework stays.
    let (status, body) = teardown_as(&cluster, &framework_id, OTHER);
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("403 Forbidden."), "{body}");
    assert!(
        body.contains("'not-own-framework'") && body.contains("to allow it, add"),
        "{body}"
    );
    assert!(body.contains("teardown_frameworks"), "{body}");
    let call = serde_json::json!({"type": "TEARDOWN",
        "teardown": {"framework_id": {"value": framework_id}}});
    let response = blocking_client_as(OTHER.0, OTHER.1)
        .post(format!("{}/api/v1", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(call.to_string())
        .send()
        .expect("TEARDOWN should be answered");
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().unwrap_or_default();
    assert!(body.contains("'not-own-framework'"), "{body}");
    assert_eq!(
        ids(&json_as(&frameworks, OWNER), "frameworks"),
        [framework_id.as_str()],
        "still registered after the refused teardowns"
    );

    // The owner: 200, and the framework is completed.
    let (status, body) = teardown_as(&cluster, &framework_id, OWNER);
    assert_eq!(status, 200, "{body}");
    let after = json_as(&frameworks, OWNER);
    assert!(ids(&after, "frameworks").is_empty(), "{after}");
    assert_eq!(
        ids(&after, "completed_frameworks"),
        [framework_id.as_str()],
        "{after}"
    );
    // Gone already: a second teardown finds nothing to tear down.
    let (status, body) = teardown_as(&cluster, &framework_id, OWNER);
    assert_eq!(status, 400, "{body}");
    drop(stream);
}

#[test]
fn after_a_master_restart_the_owner_sees_its_framework_before_the_scheduler_returns() {
    if !require_python() {
        return;
    }
    let mut cluster = secure_default_cluster();
    let mut scheduler = LongScheduler::start(&cluster, OWNER, "sleep 3600");
    let running = scheduler.wait_for("running", Duration::from_secs(60), &cluster);
    let framework_id = running["framework_id"]
        .as_str()
        .expect("pymesos reports its framework id")
        .to_string();
    // The scheduler goes away without TEARDOWN; its task keeps running.
    let _ = scheduler.child.kill();
    let _ = scheduler.child.wait();

    cluster.master.as_mut().expect("master").kill();
    cluster.start_master();
    cluster.wait_for_agents(1);
    let frameworks = format!("{}/master/frameworks", cluster.master_url());
    wait_until(
        Duration::from_secs(30),
        "the owner to see the framework recovered from the agent",
        || ids(&json_as(&frameworks, OWNER), "frameworks") == [framework_id.as_str()],
    );
    assert!(
        ids(&json_as(&frameworks, OTHER), "frameworks").is_empty(),
        "another principal must not see the recovered framework"
    );
    let (status, body) = teardown_as(&cluster, &framework_id, OTHER);
    assert_eq!(status, 403, "{body}");
    // Only agents vouch for the owner until the scheduler returns: it may
    // look, not tear down.
    let (status, body) = teardown_as(&cluster, &framework_id, OWNER);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not-own-framework"), "{body}");
}

#[test]
fn the_agents_state_shows_a_framework_only_to_its_owner() {
    if !require_python() {
        return;
    }
    let cluster = secure_default_cluster();
    let scheduler = LongScheduler::start(&cluster, OWNER, "sleep 3600");
    let running = scheduler.wait_for("running", Duration::from_secs(60), &cluster);
    let framework_id = running["framework_id"]
        .as_str()
        .expect("pymesos reports its framework id")
        .to_string();
    let task_id = running["running"].as_str().expect("task id").to_string();
    let state = format!("http://127.0.0.1:{}/state", cluster.agent_ports[0]);

    let owners = json_as(&state, OWNER);
    assert_eq!(
        ids(&owners, "frameworks"),
        [framework_id.as_str()],
        "{owners}"
    );
    assert!(
        agent_sandbox_of(
            &format!("http://127.0.0.1:{}", cluster.agent_ports[0]),
            &task_id
        )
        .is_some(),
        "the owner sees its executor and task: {owners}"
    );
    let others = json_as(&state, OTHER);
    assert!(ids(&others, "frameworks").is_empty(), "{others}");
    assert!(
        !others.to_string().contains(&task_id),
        "another principal learns nothing of the task: {others}"
    );
    // view_flags is nobody's under the secure default.
    assert!(owners.get("flags").is_none(), "{owners}");
    let (status, body) = get_as(
        &format!("http://127.0.0.1:{}/flags", cluster.agent_ports[0]),
        OWNER,
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("view_flags") && body.contains("to allow it, add"),
        "{body}"
    );
    assert!(
        others.get("id").is_some(),
        "the agent itself is still described"
    );
}
