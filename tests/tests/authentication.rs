//! Authentication end to end, with real processes: the workshop's steps 3
//! (agents), 4 (frameworks) and 6 (HTTP endpoints), SASL misuse, and no
//! secret anywhere a user can read.

use std::process::Command;
use std::time::Duration;

use mesos_common::transport::{with_messages, Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::internal as msg;
use mesos_tests::{
    basic_auth, get_json, http_status, http_status_anonymous, python, script, wait_until,
    write_private, Cluster, AGENT_PRINCIPAL, AGENT_SECRET, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET,
    OPERATOR_SECRET,
};
use prost::{Message as _, Name};
use tokio::sync::mpsc;

const WRONG_SECRET: &str = "not-the-secret-5e1d";

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[test]
fn agent_without_credential_is_told_to_shut_down() {
    let mut cluster = Cluster::master_only(&[]);
    cluster.agent_credential = false;
    let index = cluster.add_agent();
    // Shut down as asked (Mesos's agent exits normally).
    cluster.wait_agent_exit(index, Duration::from_secs(30));
    let agent_log = cluster.agent_log(index);
    assert!(
        agent_log
            .contains("No credentials provided. Attempting to register without authentication"),
        "{agent_log}"
    );
    let expected = format!(
        "Agent asked to shut down by master@{} because 'Agent is not authenticated'",
        cluster.master_address()
    );
    assert!(agent_log.contains(&expected), "{agent_log}");
    let master_log = cluster.master_log();
    assert!(
        master_log.contains("because it is not authenticated"),
        "{master_log}"
    );
    let slaves = get_json(&format!("{}/master/slaves", cluster.master_url())).expect("slaves");
    assert_eq!(slaves["slaves"].as_array().map(Vec::len), Some(0));
}

#[test]
fn agents_authenticate_with_scram_or_cram_md5_and_register() {
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.log");
    let audit_flag = format!("--audit_log={}", audit.display());
    let mut cluster = Cluster::master_only(&[&audit_flag]);
    cluster.add_agent();
    cluster.wait_for_agents(1);
    cluster.agent_args = vec!["--authenticatee=crammd5".into()];
    cluster.add_agent();
    cluster.wait_for_agents(2);

    let master_log = cluster.master_log();
    assert!(
        master_log.contains(&format!(
            "Successfully authenticated principal '{AGENT_PRINCIPAL}'"
        )),
        "{master_log}"
    );
    assert!(
        cluster.agent_log(0).contains(&format!(
            "Successfully authenticated with master master@{}",
            cluster.master_address()
        )),
        "{}",
        cluster.agent_log(0)
    );
    let lines = audit_lines(&audit);
    let mechanisms: Vec<&str> = lines
        .iter()
        .filter(|l| l["outcome"] == "success" && l["principal"] == AGENT_PRINCIPAL)
        .filter_map(|l| l["mechanism"].as_str())
        .collect();
    assert!(mechanisms.contains(&"SCRAM-SHA-256"), "{lines:?}");
    assert!(mechanisms.contains(&"CRAM-MD5"), "{lines:?}");
    for line in &lines {
        assert!(
            line["time"].is_string() && line["peer"].is_string(),
            "{line}"
        );
    }
    let text = std::fs::read_to_string(&audit).expect("audit log");
    assert!(!text.contains(AGENT_SECRET), "secret in the audit log");
}

#[test]
fn agent_with_a_wrong_secret_is_refused_and_exits() {
    let mut cluster = Cluster::master_only(&[]);
    let bad = cluster.dir.path().join("bad-credential.json");
    write_private(
        &bad,
        &serde_json::json!({"principal": AGENT_PRINCIPAL, "secret": WRONG_SECRET}).to_string(),
    );
    cluster.agent_args = vec![format!("--credential={}", bad.display())];
    let index = cluster.add_agent();
    let code = cluster.wait_agent_exit(index, Duration::from_secs(30));
    assert_ne!(code, Some(0));
    let agent_log = cluster.agent_log(index);
    assert!(agent_log.contains("refused authentication"), "{agent_log}");
    let master_log = cluster.master_log();
    assert!(
        master_log.contains("Failed to authenticate"),
        "{master_log}"
    );
    for log in [&agent_log, &master_log] {
        assert!(!log.contains(WRONG_SECRET) && !log.contains(AGENT_SECRET));
    }
}

fn subscribe_body(principal: Option<&str>) -> String {
    let mut info = serde_json::json!({"user": "nobody", "name": "auth-test"});
    if let Some(p) = principal {
        info["principal"] = p.into();
    }
    serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}).to_string()
}

/// SUBSCRIBE with `authorization`; the status, `WWW-Authenticate` and
/// (for non-200) the body.
fn subscribe(
    cluster: &Cluster,
    authorization: Option<&str>,
    principal: Option<&str>,
) -> (u16, String, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut request = client
        .post(format!("{}/api/v1/scheduler", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(subscribe_body(principal));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().expect("response");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let body = if status == 200 {
        String::new()
    } else {
        response.text().unwrap_or_default()
    };
    (status, challenge, body)
}

#[test]
fn http_schedulers_must_authenticate_with_basic() {
    let cluster = Cluster::master_only(&[]);
    let (status, challenge, body) = subscribe(&cluster, None, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(challenge, r#"Basic realm="mesos-master-scheduler""#);
    assert!(body.starts_with("401 Unauthorized."), "{body}");

    let wrong = basic_auth(FRAMEWORK_PRINCIPAL, WRONG_SECRET);
    let (status, _, body) = subscribe(&cluster, Some(&wrong), None);
    assert_eq!(status, 401);
    assert!(!body.contains(WRONG_SECRET), "{body}");

    let good = basic_auth(FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
    let (status, _, body) = subscribe(&cluster, Some(&good), Some("someone-else"));
    assert_eq!(status, 400);
    assert_eq!(
        body,
        format!("Failed to validate scheduler::Call: Authenticated principal '{FRAMEWORK_PRINCIPAL}' does not match principal 'someone-else' set in `FrameworkInfo`")
    );

    let (status, _, _) = subscribe(&cluster, Some(&good), None);
    assert_eq!(status, 200);
    // The framework took the authenticated principal.
    wait_until(Duration::from_secs(10), "framework listed", || {
        get_json(&format!("{}/master/frameworks", cluster.master_url())).is_some_and(|v| {
            v["frameworks"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(v["completed_frameworks"].as_array().into_iter().flatten())
                .any(|f| f["principal"] == FRAMEWORK_PRINCIPAL)
        })
    });
}

fn run_pymesos(cluster: &Cluster, secret: Option<&str>) -> (i32, serde_json::Value) {
    let python = python().expect("python with pymesos");
    let mut command = Command::new(python);
    command
        .arg(script("pymesos_echo.py"))
        .args(["--master", &cluster.master_address(), "--timeout", "30"])
        .env_remove("MESOS_PRINCIPAL")
        .env_remove("MESOS_SECRET");
    if let Some(secret) = secret {
        command
            .env("MESOS_PRINCIPAL", FRAMEWORK_PRINCIPAL)
            .env("MESOS_SECRET", secret);
    }
    let output = command.output().expect("run pymesos");
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

#[test]
fn pymesos_needs_the_right_credentials_to_run_a_task() {
    if python().is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("CI must provide pymesos (scripts/setup-python.sh)");
        }
        eprintln!("skipping: no Python with pymesos (run scripts/setup-python.sh)");
        return;
    }
    let cluster = Cluster::start(1);
    for secret in [None, Some(WRONG_SECRET)] {
        let (code, result) = run_pymesos(&cluster, secret);
        assert_eq!(code, 1, "{result}");
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.contains("Failed with HTTP 401"), "{result}");
    }
    let (code, result) = run_pymesos(&cluster, Some(FRAMEWORK_SECRET));
    assert_eq!(code, 0, "{result}\n{}", cluster.logs());
    let states: Vec<&str> = result["updates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["state"].as_str())
        .collect();
    assert_eq!(states.last(), Some(&"TASK_FINISHED"), "{result}");
}

#[test]
fn endpoints_answer_401_without_credentials_and_200_with_them() {
    let cluster = Cluster::master_only(&[]);
    let url = cluster.master_url();
    for (path, realm) in [
        ("/master/state", "mesos-master-readonly"),
        ("/state", "mesos-master-readonly"),
        ("/master/flags", "mesos-master-readonly"),
        ("/master/frameworks/", "mesos-master-readonly"),
        ("/slaves", "mesos-master-readonly"),
        ("/metrics/snapshot", "mesos-master-readonly"),
    ] {
        let response = reqwest::blocking::get(format!("{url}{path}")).expect("response");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            format!("Basic realm=\"{realm}\"").as_str(),
            "{path}"
        );
        assert_eq!(http_status(&format!("{url}{path}")), Some(200), "{path}");
    }
    let client = reqwest::blocking::Client::new();
    for (path, body) in [
        ("/api/v1", r#"{"type":"GET_HEALTH"}"#),
        ("/master/teardown", "frameworkId=x"),
    ] {
        let response = client
            .post(format!("{url}{path}"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .expect("response");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"mesos-master-readwrite\"",
            "{path}"
        );
    }
    let operator = mesos_tests::blocking_client_as(
        mesos_tests::OPERATOR_PRINCIPAL,
        mesos_tests::OPERATOR_SECRET,
    );
    let response = operator
        .post(format!("{url}/api/v1"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(r#"{"type":"GET_HEALTH"}"#)
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    for path in ["/health", "/version", "/master/health"] {
        assert_eq!(
            http_status_anonymous(&format!("{url}{path}")),
            Some(200),
            "{path}"
        );
    }
}

#[test]
fn insecure_master_lets_everyone_in_and_says_so() {
    let mut cluster = Cluster::master_only(&["--insecure"]);
    cluster.agent_credential = false;
    cluster.agent_args = vec!["--insecure".into()];
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let url = cluster.master_url();
    assert_eq!(
        http_status_anonymous(&format!("{url}/master/state")),
        Some(200)
    );
    let flags = get_json(&format!("{url}/master/flags")).expect("flags");
    assert_eq!(flags["flags"]["insecure"], "true");
    assert_eq!(flags["flags"]["authenticate_agents"], "false");
    let warnings = flags["security_warnings"].as_array().expect("warnings");
    assert!(!warnings.is_empty());
    assert!(
        cluster.master_log().contains("SECURITY: --insecure"),
        "{}",
        cluster.master_log()
    );
}

#[test]
fn no_secret_reaches_logs_flags_error_bodies_or_the_audit_log() {
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.log");
    let audit_flag = format!("--audit_log={}", audit.display());
    let cluster = Cluster::start_with(1, &[&audit_flag]);
    let url = cluster.master_url();
    let client = reqwest::blocking::Client::new();
    let wrong = client
        .get(format!("{url}/master/state"))
        .header("Authorization", basic_auth("test-operator", WRONG_SECRET))
        .send()
        .expect("response");
    assert_eq!(wrong.status().as_u16(), 401);
    let error_body = wrong.text().expect("body");
    let flags = client
        .get(format!("{url}/master/flags"))
        .header("Authorization", mesos_tests::operator_auth())
        .send()
        .expect("flags")
        .text()
        .expect("flags body");
    let agent_flags = client
        .get(format!("http://127.0.0.1:{}/flags", cluster.agent_ports[0]))
        .header("Authorization", mesos_tests::operator_auth())
        .send()
        .expect("agent flags")
        .text()
        .expect("agent flags body");
    assert!(flags.contains("credentials"), "{flags}");
    let audit_text = std::fs::read_to_string(&audit).expect("audit log");
    assert!(audit_text.contains("failure"), "{audit_text}");
    let logs = cluster.logs();
    for secret in [
        AGENT_SECRET,
        FRAMEWORK_SECRET,
        OPERATOR_SECRET,
        WRONG_SECRET,
    ] {
        for (what, text) in [
            ("logs", &logs),
            ("/master/flags", &flags),
            ("agent /flags", &agent_flags),
            ("401 body", &error_body),
            ("audit log", &audit_text),
        ] {
            assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
        }
    }
}

#[test]
fn garbage_authorization_headers_are_refused_and_the_master_keeps_serving() {
    let cluster = Cluster::master_only(&[]);
    let url = format!("{}/master/state", cluster.master_url());
    let client = reqwest::blocking::Client::new();
    let huge = format!("Basic {}", "A".repeat(64 * 1024));
    for value in [
        "Basic",
        "Basic !!!!",
        "Bearer abc",
        "Basic dXNlcg==",           // "user": no colon
        "Basic YTpiOmM=",           // "a:b:c": Mesos wants exactly two parts
        "basic dGVzdC1vcGVyYXRvcg", // bad padding
        huge.as_str(),
    ] {
        let status = client
            .get(&url)
            .header("Authorization", value)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert!(
            matches!(status, 401 | 429 | 431 | 400),
            "{value:.40}: {status}"
        );
    }
    // The limiter delays this address for a moment after the failures.
    wait_until(Duration::from_secs(70), "master serves again", || {
        http_status(&url) == Some(200)
    });
}

/// Collects the libprocess messages sent to our fake authenticatee.
#[derive(Clone)]
struct Inbox(mpsc::UnboundedSender<Message>);

impl MessageSink for Inbox {
    fn deliver(&self, message: Message) -> bool {
        self.0.send(message).is_ok()
    }
}

async fn next(inbox: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("a reply in time")
        .expect("inbox open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_sasl_messages_are_refused_cleanly() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::master_only(&[]))
        .await
        .expect("cluster");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut inbox) = mpsc::unbounded_channel();
    let app = with_messages(axum::Router::new(), Inbox(tx));
    tokio::spawn(mesos_common::net::serve(listener, app));
    let me = Upid::new("authenticatee(1)", "127.0.0.1", port);
    let master = Upid::new("master", "127.0.0.1", cluster.master_port);
    let transport = Transport::default();

    // Out of order: a step before start.
    transport.send(
        &me,
        &master,
        &msg::AuthenticateMessage {
            pid: me.to_string(),
        },
    );
    let mechanisms = next(&mut inbox).await;
    assert_eq!(
        mechanisms.name,
        msg::AuthenticationMechanismsMessage::full_name()
    );
    let offered =
        msg::AuthenticationMechanismsMessage::decode(mechanisms.body.clone()).expect("mechanisms");
    assert!(
        offered.mechanisms.contains(&"CRAM-MD5".to_string()),
        "{offered:?}"
    );
    let session = mechanisms.from.clone();
    transport.send(
        &me,
        &session,
        &msg::AuthenticationStepMessage {
            data: b"x".to_vec().into(),
        },
    );
    let error = next(&mut inbox).await;
    assert_eq!(error.name, msg::AuthenticationErrorMessage::full_name());
    let error = msg::AuthenticationErrorMessage::decode(error.body).expect("error");
    assert_eq!(
        error.error.as_deref(),
        Some("Unexpected authentication 'step' received")
    );

    // Garbage bytes as a start message, and an unknown mechanism.
    transport.send(
        &me,
        &master,
        &msg::AuthenticateMessage {
            pid: me.to_string(),
        },
    );
    let session = next(&mut inbox).await.from;
    transport.send_raw(
        &me,
        &session,
        msg::AuthenticationStartMessage::full_name(),
        bytes::Bytes::from_static(&[0xff, 0xff, 0xff]),
    );
    let reply = next(&mut inbox).await;
    assert_eq!(reply.name, msg::AuthenticationErrorMessage::full_name());

    transport.send(
        &me,
        &master,
        &msg::AuthenticateMessage {
            pid: me.to_string(),
        },
    );
    let session = next(&mut inbox).await.from;
    transport.send(
        &me,
        &session,
        &msg::AuthenticationStartMessage {
            mechanism: "KERBEROS".into(),
            data: None,
        },
    );
    let reply = next(&mut inbox).await;
    assert_eq!(reply.name, msg::AuthenticationErrorMessage::full_name());

    // A malformed CRAM-MD5 response fails the attempt.
    transport.send(
        &me,
        &master,
        &msg::AuthenticateMessage {
            pid: me.to_string(),
        },
    );
    let session = next(&mut inbox).await.from;
    transport.send(
        &me,
        &session,
        &msg::AuthenticationStartMessage {
            mechanism: "CRAM-MD5".into(),
            data: Some(Vec::new().into()),
        },
    );
    let challenge = next(&mut inbox).await;
    assert_eq!(challenge.name, msg::AuthenticationStepMessage::full_name());
    transport.send(
        &me,
        &session,
        &msg::AuthenticationStepMessage {
            data: vec![b'z'; 3000].into(),
        },
    );
    let reply = next(&mut inbox).await;
    assert!(
        reply.name == msg::AuthenticationFailedMessage::full_name()
            || reply.name == msg::AuthenticationErrorMessage::full_name(),
        "{}",
        reply.name
    );

    // The master still serves.
    let url = format!("{}/health", cluster.master_url());
    let status = tokio::task::spawn_blocking(move || http_status(&url))
        .await
        .expect("health");
    assert_eq!(status, Some(200));
    drop(cluster);
}

#[test]
fn sighup_reloads_credentials_and_keeps_authenticated_agents() {
    let cluster = Cluster::start(1);
    let url = format!("{}/master/state", cluster.master_url());
    let status_as = |principal: &str, secret: &str| {
        mesos_tests::blocking_client_as(principal, secret)
            .get(&url)
            .send()
            .map(|r| r.status().as_u16())
            .ok()
    };
    assert_eq!(
        status_as("rotated-operator", "rotated-secret-3b7"),
        Some(401)
    );
    let rotated = serde_json::json!({"credentials": [
        {"principal": AGENT_PRINCIPAL, "secret": AGENT_SECRET},
        {"principal": mesos_tests::OPERATOR_PRINCIPAL, "secret": OPERATOR_SECRET},
        {"principal": "rotated-operator", "secret": "rotated-secret-3b7"},
    ]});
    write_private(&cluster.credentials_path(), &rotated.to_string());
    let pid = cluster.master.as_ref().expect("master").child.id();
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
    };
    hup();
    wait_until(Duration::from_secs(10), "the new principal works", || {
        status_as("rotated-operator", "rotated-secret-3b7") == Some(200)
    });
    // The framework principal was removed: its secret no longer works.
    let scheduler = format!("{}/api/v1/scheduler", cluster.master_url());
    let status = mesos_tests::blocking_client_as(FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET)
        .post(&scheduler)
        .header("Content-Type", "application/json")
        .body(subscribe_body(None))
        .send()
        .expect("response")
        .status()
        .as_u16();
    assert_eq!(status, 401);
    // The agent authenticated before the reload stays registered.
    let slaves = get_json(&format!("{}/master/slaves", cluster.master_url())).expect("slaves");
    assert_eq!(slaves["slaves"][0]["active"], true, "{slaves}");

    // A broken file keeps the credentials in force and says why.
    write_private(&cluster.credentials_path(), "{\"credentials\": [");
    hup();
    wait_until(Duration::from_secs(10), "the refusal is logged", || {
        cluster
            .master_log()
            .contains("keeping the current credentials")
    });
    assert_eq!(
        status_as("rotated-operator", "rotated-secret-3b7"),
        Some(200)
    );
}

#[test]
fn agent_reloads_http_credentials_on_sighup() {
    let cluster = Cluster::start(1);
    let url = format!("http://127.0.0.1:{}/state", cluster.agent_ports[0]);
    let status_as = |principal: &str, secret: &str| {
        mesos_tests::blocking_client_as(principal, secret)
            .get(&url)
            .send()
            .map(|r| r.status().as_u16())
            .ok()
    };
    assert_eq!(status_as("agent-reader", "reader-secret-77"), Some(401));
    let added = serde_json::json!({"credentials": [
        {"principal": AGENT_PRINCIPAL, "secret": AGENT_SECRET},
        {"principal": mesos_tests::OPERATOR_PRINCIPAL, "secret": OPERATOR_SECRET},
        {"principal": "agent-reader", "secret": "reader-secret-77"},
    ]});
    write_private(&cluster.credentials_path(), &added.to_string());
    let pid = cluster.agents[0].as_ref().expect("agent").child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    wait_until(
        Duration::from_secs(10),
        "the agent accepts the new principal",
        || status_as("agent-reader", "reader-secret-77") == Some(200),
    );
    // Still running and registered.
    cluster.wait_for_agents(1);
}
