//! Authorization end to end: the workshop's step 5 (ACLs on roles and
//! users), filtered views, the secure default policy, and every denial
//! explained.

use std::process::Command;
use std::time::Duration;

use mesos_tests::{
    blocking_client_as, python, script, Cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET,
    NO_DEFAULT_ACLS, OPERATOR_PRINCIPAL, OPERATOR_SECRET,
};
use serde_json::Value;

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

/// Runs the pymesos echo scheduler as `principal` with `role`; its exit
/// code and final JSON.
fn pymesos(cluster: &Cluster, principal: &str, secret: &str, role: &str) -> (i32, Value) {
    let output = Command::new(python().expect("python"))
        .arg(script("pymesos_echo.py"))
        .args([
            "--master",
            &cluster.master_address(),
            "--timeout",
            "30",
            "--role",
            role,
        ])
        .env("MESOS_PRINCIPAL", principal)
        .env("MESOS_SECRET", secret)
        .output()
        .expect("run pymesos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let result = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "pymesos printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), result)
}

/// SUBSCRIBE over JSON as `principal` with `role`; the events of the
/// stream when the master closes it (an ERROR), or the first two.
fn subscribe_events(cluster: &Cluster, principal: &str, secret: &str, role: &str) -> Vec<Value> {
    let body = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "authz-test", "role": role,
        // Outlives this client's stream, for the tests that act on it after.
        "failover_timeout": 3600.0}}});
    let mut response = blocking_client_as(principal, secret)
        .post(format!("{}/api/v1/scheduler", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    let mut events = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    use std::io::Read;
    while events.len() < 2 {
        let n = response.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
            let length: usize = std::str::from_utf8(&buffer[..newline])
                .expect("length")
                .trim()
                .parse()
                .expect("RecordIO length");
            if buffer.len() < newline + 1 + length {
                break;
            }
            let record = buffer[newline + 1..newline + 1 + length].to_vec();
            buffer.drain(..newline + 1 + length);
            events.push(serde_json::from_slice(&record).expect("JSON event"));
        }
    }
    events
}

fn workshop_acls() -> String {
    serde_json::json!({
        "permissive": false,
        "register_frameworks": [
            {"principals": {"values": [FRAMEWORK_PRINCIPAL, OPERATOR_PRINCIPAL]}, "roles": {"values": ["dev"]}}
        ],
        "run_tasks": [
            {"principals": {"values": [FRAMEWORK_PRINCIPAL]}, "users": {"type": "ANY"}},
            {"principals": {"type": "NONE"}, "users": {"values": ["root"]}}
        ],
        "view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "view_tasks": [
            {"principals": {"values": [FRAMEWORK_PRINCIPAL]}, "users": {"type": "ANY"}},
            {"principals": {"values": [OPERATOR_PRINCIPAL]}, "users": {"values": ["nobody"]}}
        ],
        "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "get_endpoints": [{"principals": {"type": "ANY"}, "paths": {"type": "ANY"}}]
    })
    .to_string()
}

#[test]
fn workshop_step_5_roles_and_users_are_authorized_by_acls() {
    if !require_python() {
        return;
    }
    let acls = format!("--acls={}", workshop_acls());
    let cluster = Cluster::start_with(1, &[&acls]);

    // Registering as `prod` is refused with one ERROR event that says why.
    let events = subscribe_events(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, "prod");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    let message = events[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Not authorized to register framework authz-test with roles { prod }"),
        "{message}"
    );
    assert!(message.contains("register_frameworks"), "{message}");

    // As `dev` it runs a task.
    let (code, result) = pymesos(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, "dev");
    assert_eq!(code, 0, "{result}\n{}", cluster.logs());
    let last = result["updates"].as_array().and_then(|u| u.last()).cloned();
    assert_eq!(
        last.as_ref().map(|u| u["state"].clone()),
        Some("TASK_FINISHED".into()),
        "{result}"
    );

    // Another principal, allowed `dev` but not to run tasks as root: the
    // task is refused with Mesos's reason.
    let (_, result) = pymesos(&cluster, OPERATOR_PRINCIPAL, OPERATOR_SECRET, "dev");
    let update = result["updates"]
        .as_array()
        .and_then(|u| u.first())
        .cloned()
        .unwrap_or_default();
    assert_eq!(update["state"], "TASK_ERROR", "{result}");
    assert_eq!(update["reason"], "REASON_TASK_UNAUTHORIZED", "{result}");
    let message = update["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "Principal '{OPERATOR_PRINCIPAL}' no authorized to launch task"
        )) && message.contains("under user 'root'")
            && message.contains("run_tasks"),
        "{message}"
    );

    // Views: the operator may see tasks of user `nobody` only, so none of
    // the root tasks; the framework's principal sees them all.
    let state_as = |principal: &str, secret: &str| -> Value {
        blocking_client_as(principal, secret)
            .get(format!("{}/master/state", cluster.master_url()))
            .send()
            .expect("state")
            .json()
            .expect("state JSON")
    };
    let count_tasks = |state: &Value| -> usize {
        state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                state["completed_frameworks"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .map(|f| {
                f["tasks"].as_array().map_or(0, Vec::len)
                    + f["completed_tasks"].as_array().map_or(0, Vec::len)
            })
            .sum()
    };
    let operator_view = state_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET);
    let framework_view = state_as(FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
    assert!(count_tasks(&framework_view) >= 1, "{framework_view}");
    assert_eq!(count_tasks(&operator_view), 0, "{operator_view}");
    // Flags are not shown to a reader view_flags does not allow.
    assert!(operator_view.get("flags").is_none());
    let tasks = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
        .get(format!("{}/master/tasks", cluster.master_url()))
        .send()
        .expect("tasks")
        .json::<Value>()
        .expect("tasks JSON");
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(0), "{tasks}");
}

#[test]
fn secure_default_confines_principals_to_their_roles_and_explains_denials() {
    let cluster = Cluster::start_with(1, &[NO_DEFAULT_ACLS]);
    // Its own role and `*` are fine.
    for role in [
        FRAMEWORK_PRINCIPAL,
        "*",
        &format!("{FRAMEWORK_PRINCIPAL}/batch"),
    ] {
        let events = subscribe_events(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, role);
        assert_eq!(events[0]["type"], "SUBSCRIBED", "{role}: {events:?}");
    }
    // Another principal's role is not.
    let events = subscribe_events(
        &cluster,
        FRAMEWORK_PRINCIPAL,
        FRAMEWORK_SECRET,
        OPERATOR_PRINCIPAL,
    );
    assert_eq!(events[0]["type"], "ERROR", "{events:?}");
    let message = events[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("default policy"), "{message}");
    assert!(
        message.contains(&format!(
            "add {{\"principals\":{{\"type\":\"SOME\",\"values\":[\"{FRAMEWORK_PRINCIPAL}\"]}},\"roles\""
        )) || message.contains("to \"register_frameworks\""),
        "{message}"
    );
    // Flags and metrics are denied with an explanation naming the ACL.
    for path in ["/master/flags", "/metrics/snapshot"] {
        let response = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
            .get(format!("{}{path}", cluster.master_url()))
            .send()
            .expect("response");
        assert_eq!(response.status().as_u16(), 403, "{path}");
        let body = response.text().unwrap_or_default();
        assert!(body.starts_with("403 Forbidden."), "{body}");
        assert!(body.contains("to allow it, add"), "{body}");
    }
    // Tasks as root are refused.
    if require_python() {
        let (_, result) = pymesos(
            &cluster,
            FRAMEWORK_PRINCIPAL,
            FRAMEWORK_SECRET,
            FRAMEWORK_PRINCIPAL,
        );
        let update = result["updates"]
            .as_array()
            .and_then(|u| u.first())
            .cloned()
            .unwrap_or_default();
        assert_eq!(update["reason"], "REASON_TASK_UNAUTHORIZED", "{result}");
    }
    let _ = Duration::ZERO;
}

#[test]
fn teardown_needs_teardown_frameworks() {
    let acls = serde_json::json!({
        "permissive": true,
        "teardown_frameworks": [
            {"principals": {"type": "NONE"}, "framework_principals": {"type": "ANY"}}
        ]
    });
    let cluster = Cluster::start_with(0, &[&format!("--acls={acls}")]);
    let events = subscribe_events(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, "*");
    let framework_id = events[0]["subscribed"]["framework_id"]["value"]
        .as_str()
        .expect("framework id")
        .to_string();
    let response = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
        .post(format!("{}/master/teardown", cluster.master_url()))
        .body(format!("frameworkId={framework_id}"))
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().unwrap_or_default();
    assert!(body.contains("teardown_frameworks"), "{body}");
}

#[test]
fn explain_says_which_rule_decides() {
    let acls = format!("--acls={}", workshop_acls());
    let cluster = Cluster::start_with(0, &[&acls]);
    let explain = |query: &str| -> (u16, Value) {
        let response = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
            .get(format!("{}/acls/explain?{query}", cluster.master_url()))
            .send()
            .expect("response");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or_default())
    };
    let (status, answer) = explain(&format!(
        "action=register_frameworks&principal={FRAMEWORK_PRINCIPAL}&object=dev"
    ));
    assert_eq!(status, 200);
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(
        answer["explanation"]
            .as_str()
            .unwrap_or_default()
            .contains("entry #0 of \"register_frameworks\""),
        "{answer}"
    );
    let (_, answer) = explain(&format!(
        "action=register_frameworks&principal={FRAMEWORK_PRINCIPAL}&object=prod"
    ));
    assert_eq!(answer["allowed"], false, "{answer}");
    assert!(
        answer["explanation"]
            .as_str()
            .unwrap_or_default()
            .contains("\"permissive\" is false"),
        "{answer}"
    );
    let (status, _) = explain("action=run_task");
    assert_eq!(status, 400);
    let anonymous = reqwest::blocking::get(format!(
        "{}/acls/explain?action=run_tasks",
        cluster.master_url()
    ))
    .expect("response");
    assert_eq!(anonymous.status().as_u16(), 401);
}
