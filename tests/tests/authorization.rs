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

#[test]
fn denials_and_state_changing_decisions_go_to_the_audit_log() {
    let acls = format!("--acls={}", workshop_acls());
    let mut cluster = Cluster::prepare(&[&acls]);
    let audit = cluster.dir.path().join("audit.log");
    cluster
        .master_args
        .push(format!("--audit_log={}", audit.display()));
    cluster.start_master();
    // Denied: `prod` is nobody's. Allowed: `dev` for the framework.
    let denied = subscribe_events(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, "prod");
    assert_eq!(denied[0]["type"], "ERROR", "{denied:?}");
    let allowed = subscribe_events(&cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET, "dev");
    assert_eq!(allowed[0]["type"], "SUBSCRIBED", "{allowed:?}");
    // A denied read (view_flags is not granted).
    let response = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
        .get(format!("{}/master/flags", cluster.master_url()))
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 403);

    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &Value| {
                l["mechanism"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("acl:"))
            })
            .collect()
    };
    let find = |action: &str, object: Option<&str>, outcome: &str| -> Option<Value> {
        lines().into_iter().find(|l| {
            l["action"] == action
                && l["outcome"] == outcome
                && object.is_none_or(|o| l["object"] == o)
        })
    };
    mesos_tests::wait_until(Duration::from_secs(5), "audit lines", || {
        find("view_flags", None, "failure").is_some()
    });
    let denial = find("register_frameworks", Some("prod"), "failure").expect("denial audited");
    assert_eq!(denial["principal"], FRAMEWORK_PRINCIPAL, "{denial}");
    assert_eq!(denial["mechanism"], "acl:register_frameworks", "{denial}");
    assert!(
        denial["reason"]
            .as_str()
            .is_some_and(|r| r.contains("to allow it, add")),
        "{denial}"
    );
    assert!(denial["rule"].as_str().is_some(), "{denial}");
    let grant = find("register_frameworks", Some("dev"), "success").expect("grant audited");
    assert!(grant.get("reason").is_none(), "{grant}");
    let flags = find("view_flags", None, "failure").expect("view_flags denial audited");
    assert_eq!(flags["principal"], OPERATOR_PRINCIPAL, "{flags}");
    // No secret ever reaches the log.
    let text = std::fs::read_to_string(&audit).expect("audit log");
    assert!(!text.contains(FRAMEWORK_SECRET) && !text.contains(OPERATOR_SECRET));
}

#[test]
fn authorize_explain_operator_call_answers_in_json_and_protobuf() {
    use prost::Message as _;
    let acls = format!("--acls={}", workshop_acls());
    let cluster = Cluster::start_with(0, &[&acls]);
    let client = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET);
    let url = format!("{}/api/v1", cluster.master_url());

    // JSON.
    let call = serde_json::json!({"type": "AUTHORIZE_EXPLAIN", "authorize_explain": {
        "action": "register_frameworks", "principal": FRAMEWORK_PRINCIPAL, "object": "prod"}});
    let response = client
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(call.to_string())
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().expect("JSON response");
    assert_eq!(answer["type"], "AUTHORIZE_EXPLAIN", "{answer}");
    let explained = &answer["authorize_explain"];
    assert_eq!(explained["allowed"], false, "{answer}");
    assert!(
        explained["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("\"permissive\" is false")),
        "{answer}"
    );
    assert!(explained["rule"]
        .as_str()
        .is_some_and(|r| r.contains("NoMatch")));

    // Protobuf, allowed by entry #0.
    use mesos_proto::v1::master::{call, response as master_response, Call, Response};
    let call = Call {
        r#type: Some(call::Type::AuthorizeExplain as i32),
        authorize_explain: Some(call::AuthorizeExplain {
            action: "register_frameworks".into(),
            principal: Some(FRAMEWORK_PRINCIPAL.into()),
            object: Some("dev".into()),
        }),
        ..Default::default()
    };
    let response = client
        .post(&url)
        .header("Content-Type", "application/x-protobuf")
        .header("Accept", "application/x-protobuf")
        .body(call.encode_to_vec())
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    let answer = Response::decode(response.bytes().expect("body")).expect("protobuf response");
    assert_eq!(
        answer.r#type,
        Some(master_response::Type::AuthorizeExplain as i32)
    );
    let explained = answer.authorize_explain.expect("authorize_explain");
    assert!(explained.allowed, "{explained:?}");
    assert!(
        explained
            .explanation
            .contains("entry #0 of \"register_frameworks\""),
        "{explained:?}"
    );

    // A typo is a 400 naming the closest action; a missing body is a 400.
    for body in [
        serde_json::json!({"type": "AUTHORIZE_EXPLAIN", "authorize_explain": {"action": "run_task"}}),
        serde_json::json!({"type": "AUTHORIZE_EXPLAIN"}),
    ] {
        let response = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.to_string())
            .send()
            .expect("response");
        assert_eq!(response.status().as_u16(), 400, "{body}");
    }
}

/// The sandbox directory of `task_id` in the agent's `/state`.
fn agent_sandbox_of(agent_url: &str, task_id: &str) -> Option<String> {
    mesos_tests::sandbox_in_state(
        &mesos_tests::get_json(&format!("{agent_url}/state"))?,
        task_id,
    )
}

/// GET `url` as `principal`: status and body.
fn get_as(url: &str, principal: &str, secret: &str) -> (u16, String) {
    let response = blocking_client_as(principal, secret)
        .get(url)
        .send()
        .expect("response");
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

#[test]
fn agent_files_need_access_sandboxes_on_the_executor_user() {
    // The operator may read root's sandboxes; the framework's principal
    // may read nobody's.
    let acls = serde_json::json!({
        "permissive": false,
        "access_sandboxes": [
            {"principals": {"values": [OPERATOR_PRINCIPAL]}, "users": {"values": ["root"]}}
        ],
        // To find the sandbox in the agent's /state.
        "view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "view_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]
    });
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_args.push(format!("--acls={acls}"));
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let states = runtime.block_on(mesos_tests::scheduler::run_one_task(
        &cluster.master_url(),
        mesos_tests::scheduler::OneTask {
            framework: "sandbox-authz",
            task_id: "sandbox-task",
            command: "echo sandbox-says-hello",
            until: mesos_proto::v1::TaskState::TaskFinished,
        },
    ));
    assert_eq!(
        states.last(),
        Some(&mesos_proto::v1::TaskState::TaskFinished),
        "{}",
        cluster.logs()
    );
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    let mut sandbox = None;
    mesos_tests::wait_until(Duration::from_secs(10), "the task's sandbox", || {
        sandbox = agent_sandbox_of(&agent_url, "sandbox-task");
        sandbox.is_some()
    });
    let sandbox = sandbox.expect("sandbox");
    let read = format!("{agent_url}/files/read?path={sandbox}/stdout&offset=0");
    let browse = format!("{agent_url}/files/browse?path={sandbox}");
    let download = format!("{agent_url}/files/download?path={sandbox}/stdout");

    for url in [&read, &browse, &download] {
        let (status, body) = get_as(url, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
        assert_eq!(status, 403, "{url}: {body}");
        assert!(body.starts_with("403 Forbidden."), "{body}");
        assert!(
            body.contains("access_sandboxes") && body.contains("'root'"),
            "{body}"
        );
    }
    let (status, body) = get_as(&read, OPERATOR_PRINCIPAL, OPERATOR_SECRET);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sandbox-says-hello"), "{body}");
    for url in [&browse, &download] {
        let (status, body) = get_as(url, OPERATOR_PRINCIPAL, OPERATOR_SECRET);
        assert_eq!(status, 200, "{url}: {body}");
    }
    // Above any executor's sandbox the object is ANY: not granted here.
    let (status, _) = get_as(
        &format!(
            "{agent_url}/files/browse?path={}",
            cluster.dir.path().join("agent0/slaves").display()
        ),
        OPERATOR_PRINCIPAL,
        OPERATOR_SECRET,
    );
    assert_eq!(status, 403);
    drop(runtime);
}

#[test]
fn agent_without_acls_denies_sandboxes_and_says_what_to_add() {
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_args.push(NO_DEFAULT_ACLS.to_string());
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    let root = cluster.dir.path().join("agent0/slaves");
    let (status, body) = get_as(
        &format!("{agent_url}/files/browse?path={}", root.display()),
        OPERATOR_PRINCIPAL,
        OPERATOR_SECRET,
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("default policy") && body.contains("to \"access_sandboxes\""),
        "{body}"
    );
}

/// One ACL shape of the matrix: `permissive`, the entries of the action
/// under test (built from the principal under test, another principal,
/// and an object value that matches the request or not), and whether the
/// request is then allowed.
#[derive(Debug, Clone, Copy)]
enum Shape {
    NoEntryStrict,
    NoEntryPermissive,
    SubjectSome,
    SubjectOther,
    SubjectAny,
    SubjectNone,
    ObjectSome,
    ObjectOther,
    ObjectNone,
}

impl Shape {
    const ALL: [Shape; 9] = [
        Shape::NoEntryStrict,
        Shape::NoEntryPermissive,
        Shape::SubjectSome,
        Shape::SubjectOther,
        Shape::SubjectAny,
        Shape::SubjectNone,
        Shape::ObjectSome,
        Shape::ObjectOther,
        Shape::ObjectNone,
    ];

    /// `(permissive, entries, allowed)` for `object_key`, with
    /// `matching`/`other` object values (`None` for ANY-only actions).
    fn policy(self, object_key: &str, values: Option<(&str, &str)>) -> Option<(bool, Value, bool)> {
        use serde_json::json;
        let me = FRAMEWORK_PRINCIPAL;
        let entry = |principals: Value, object: Value| {
            let mut e = serde_json::Map::new();
            e.insert("principals".into(), principals);
            e.insert(object_key.into(), object);
            Value::Object(e)
        };
        let any = json!({"type": "ANY"});
        Some(match self {
            Shape::NoEntryStrict => (false, json!([]), false),
            Shape::NoEntryPermissive => (true, json!([]), true),
            Shape::SubjectSome => (false, json!([entry(json!({"values": [me]}), any)]), true),
            Shape::SubjectOther => (
                false,
                json!([entry(json!({"values": [OPERATOR_PRINCIPAL]}), any)]),
                false,
            ),
            Shape::SubjectAny => (false, json!([entry(any.clone(), any)]), true),
            Shape::SubjectNone => (true, json!([entry(json!({"type": "NONE"}), any)]), false),
            Shape::ObjectSome => {
                let (matching, _) = values?;
                (
                    false,
                    json!([entry(
                        json!({"values": [me]}),
                        json!({"values": [matching]})
                    )]),
                    true,
                )
            }
            Shape::ObjectOther => {
                let (_, other) = values?;
                (
                    false,
                    json!([entry(json!({"values": [me]}), json!({"values": [other]}))]),
                    false,
                )
            }
            Shape::ObjectNone => (
                true,
                json!([entry(json!({"values": [me]}), json!({"type": "NONE"}))]),
                false,
            ),
        })
    }
}

/// The master actions enforced today: ACL key, object key, matching and
/// non-matching object values (`None`: the object is always ANY).
type MatrixAction = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const MATRIX_ACTIONS: &[MatrixAction] = &[
    ("register_frameworks", "roles", Some(("matrix", "prod"))),
    ("run_tasks", "users", Some(("root", "nobody"))),
    (
        "teardown_frameworks",
        "framework_principals",
        Some((FRAMEWORK_PRINCIPAL, OPERATOR_PRINCIPAL)),
    ),
    ("view_frameworks", "users", Some(("root", "nobody"))),
    ("view_tasks", "users", Some(("root", "nobody"))),
    ("view_flags", "flags", None),
    (
        "get_endpoints",
        "paths",
        Some(("/metrics/snapshot", "/logging/toggle")),
    ),
    // Enforced by the agent, on its own `--acls` file.
    ("access_sandboxes", "users", Some(("root", "nobody"))),
];

/// Writes the `--acls` file: `action`'s entries as given, every other
/// matrix action open to anyone, and a generation marker (a
/// `set_log_level` entry for principal `gen-<n>`) to know when the master
/// has reloaded it.
fn write_matrix_acls(
    path: &std::path::Path,
    generation: usize,
    permissive: bool,
    action: &str,
    entries: Value,
) {
    let mut acls = serde_json::Map::new();
    acls.insert("permissive".into(), Value::Bool(permissive));
    for (other, object_key, _) in MATRIX_ACTIONS {
        if *other != action {
            acls.insert(
                (*other).into(),
                serde_json::json!([{"principals": {"type": "ANY"}, *object_key: {"type": "ANY"}}]),
            );
        }
    }
    acls.insert(action.into(), entries);
    acls.insert(
        "set_log_level".into(),
        serde_json::json!([{"principals": {"values": [format!("gen-{generation}")]}, "level": {"type": "ANY"}}]),
    );
    std::fs::write(path, Value::Object(acls).to_string()).expect("write --acls file");
}

/// SIGHUPs the master and waits until generation `generation` is in force.
fn reload_master_acls(cluster: &Cluster, generation: usize) {
    let pid = cluster.master.as_ref().expect("master").child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let url = format!(
        "{}/acls/explain?action=set_log_level&principal=gen-{generation}",
        cluster.master_url()
    );
    mesos_tests::wait_until(Duration::from_secs(5), "the --acls reload", || {
        let (_, body) = get_as(&url, OPERATOR_PRINCIPAL, OPERATOR_SECRET);
        body.contains("Acl {")
    });
}

/// Writes the agent's `--acls` file (access_sandboxes only), SIGHUPs the
/// agent and waits for its `reloads`-th reload.
fn reload_agent_acls(
    cluster: &Cluster,
    path: &std::path::Path,
    permissive: bool,
    entries: Value,
    reloads: usize,
) {
    // Anyone may view /state (as with Mesos's agent, a view ACL is needed
    // to find a sandbox there).
    let view = serde_json::json!([{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]);
    let acls = serde_json::json!({"permissive": permissive, "access_sandboxes": entries,
        "view_frameworks": view, "view_executors": view, "view_tasks": view});
    std::fs::write(path, acls.to_string()).expect("write the agent's --acls file");
    let pid = cluster.agents[0].as_ref().expect("agent").child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    mesos_tests::wait_until(Duration::from_secs(5), "the agent's --acls reload", || {
        cluster
            .agent_log(0)
            .matches("SIGHUP: reloaded --acls")
            .count()
            >= reloads
    });
}

/// Does the action's enforcement point let `FRAMEWORK_PRINCIPAL` through?
fn observe(cluster: &Cluster, runtime: &tokio::runtime::Runtime, action: &str, run: usize) -> bool {
    let master = cluster.master_url();
    let me = (FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
    let state = || -> Value {
        blocking_client_as(me.0, me.1)
            .get(format!("{master}/master/state"))
            .send()
            .expect("state")
            .json()
            .expect("state JSON")
    };
    let all_frameworks = |state: &Value| -> Vec<Value> {
        ["frameworks", "completed_frameworks"]
            .iter()
            .flat_map(|k| state[*k].as_array().cloned().unwrap_or_default())
            .collect()
    };
    match action {
        "register_frameworks" => {
            let events = subscribe_events(cluster, me.0, me.1, "matrix");
            match events[0]["type"].as_str() {
                Some("SUBSCRIBED") => true,
                Some("ERROR") => false,
                other => panic!("unexpected first event {other:?}: {events:?}"),
            }
        }
        "run_tasks" => {
            let states = runtime.block_on(mesos_tests::scheduler::run_one_task(
                &master,
                mesos_tests::scheduler::OneTask {
                    framework: "matrix",
                    task_id: &format!("matrix-{run}"),
                    command: "sleep 30",
                    until: mesos_proto::v1::TaskState::TaskRunning,
                },
            ));
            states.last() != Some(&mesos_proto::v1::TaskState::TaskError)
        }
        "teardown_frameworks" => {
            let events = subscribe_events(cluster, me.0, me.1, "*");
            let framework_id = events[0]["subscribed"]["framework_id"]["value"]
                .as_str()
                .expect("framework id")
                .to_string();
            let response = blocking_client_as(me.0, me.1)
                .post(format!("{master}/master/teardown"))
                .body(format!("frameworkId={framework_id}"))
                .send()
                .expect("teardown");
            match response.status().as_u16() {
                200 => true,
                403 => false,
                other => panic!("teardown answered {other}"),
            }
        }
        "view_frameworks" => !all_frameworks(&state()).is_empty(),
        "view_tasks" => all_frameworks(&state()).iter().any(|f| {
            ["tasks", "completed_tasks"]
                .iter()
                .any(|k| f[*k].as_array().is_some_and(|t| !t.is_empty()))
        }),
        "view_flags" | "get_endpoints" => {
            let path = if action == "view_flags" {
                "/master/flags"
            } else {
                "/metrics/snapshot"
            };
            let (status, body) = get_as(&format!("{master}{path}"), me.0, me.1);
            match status {
                200 => true,
                403 => {
                    assert!(body.contains(action), "{body}");
                    false
                }
                other => panic!("{path} answered {other}: {body}"),
            }
        }
        "access_sandboxes" => {
            let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
            let sandbox = agent_sandbox_of(&agent_url, "matrix-setup").expect("setup sandbox");
            let (status, body) = get_as(
                &format!("{agent_url}/files/read?path={sandbox}/stdout&offset=0"),
                me.0,
                me.1,
            );
            match status {
                200 => true,
                403 => {
                    assert!(body.contains(action), "{body}");
                    false
                }
                other => panic!("/files/read answered {other}: {body}"),
            }
        }
        other => panic!("no enforcement point for {other}"),
    }
}

#[test]
fn every_enforced_action_follows_its_acls_at_the_enforcement_point_across_sighup_reloads() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::prepare(&[]);
    let acls_file = cluster.dir.path().join("acls.json");
    write_matrix_acls(&acls_file, 0, true, "view_flags", serde_json::json!([]));
    cluster
        .master_args
        .push(format!("--acls={}", acls_file.display()));
    let agent_acls_file = cluster.dir.path().join("agent-acls.json");
    std::fs::write(&agent_acls_file, r#"{"permissive":true}"#).expect("write");
    cluster
        .agent_args
        .push(format!("--acls={}", agent_acls_file.display()));
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Something to view: a finished task of a completed framework.
    let states = runtime.block_on(mesos_tests::scheduler::run_one_task(
        &cluster.master_url(),
        mesos_tests::scheduler::OneTask {
            framework: "matrix-setup",
            task_id: "matrix-setup",
            command: "true",
            until: mesos_proto::v1::TaskState::TaskFinished,
        },
    ));
    assert_eq!(
        states.last(),
        Some(&mesos_proto::v1::TaskState::TaskFinished),
        "{}",
        cluster.logs()
    );

    let mut generation = 0;
    let mut agent_reloads = 0;
    let mut failures = Vec::new();
    for (action, object_key, values) in MATRIX_ACTIONS {
        for shape in Shape::ALL {
            let Some((permissive, entries, expected)) = shape.policy(object_key, *values) else {
                continue;
            };
            generation += 1;
            if *action == "access_sandboxes" {
                agent_reloads += 1;
                reload_agent_acls(
                    &cluster,
                    &agent_acls_file,
                    permissive,
                    entries,
                    agent_reloads,
                );
            } else {
                write_matrix_acls(&acls_file, generation, permissive, action, entries);
                reload_master_acls(&cluster, generation);
            }
            let observed = observe(&cluster, &runtime, action, generation);
            if observed != expected {
                failures.push(format!(
                    "{action} {shape:?} (permissive {permissive}): expected allowed={expected}, observed {observed}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        cluster.master_log()
    );

    // A broken file on SIGHUP keeps the ACLs in force.
    let generation = generation - agent_reloads;
    std::fs::write(&acls_file, "{not json").expect("write");
    let pid = cluster.master.as_ref().expect("master").child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    mesos_tests::wait_until(Duration::from_secs(5), "the refused reload", || {
        cluster.master_log().contains("keeping the current ACLs")
    });
    let (_, body) = get_as(
        &format!(
            "{}/acls/explain?action=set_log_level&principal=gen-{generation}",
            cluster.master_url()
        ),
        OPERATOR_PRINCIPAL,
        OPERATOR_SECRET,
    );
    assert!(body.contains("Acl {"), "{body}");
    eprintln!("matrix: {generation} policies in {:?}", started.elapsed());
    drop(runtime);
}
