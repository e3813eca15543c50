//! The agent's `/metrics/snapshot`: Mesos's `system/*` gauges and its
//! `slave/*` ones, behind the read-only realm and `get_endpoints` like the
//! master's.

use std::time::Duration;

use mesos_tests::{
    blocking_client_as, wait_until, Cluster, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET,
    NO_DEFAULT_ACLS, OPERATOR_PRINCIPAL, OPERATOR_SECRET,
};
use serde_json::Value;

const SYSTEM_GAUGES: [&str; 6] = [
    "system/cpus_total",
    "system/mem_total_bytes",
    "system/mem_free_bytes",
    "system/load_1min",
    "system/load_5min",
    "system/load_15min",
];

/// GET `url` as `principal`: status and body.
fn get_as(url: &str, principal: &str, secret: &str) -> (u16, String) {
    let response = blocking_client_as(principal, secret)
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url} should be answered: {e}"));
    (
        response.status().as_u16(),
        response.text().unwrap_or_default(),
    )
}

fn number(metrics: &Value, name: &str) -> f64 {
    metrics[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is a number in {metrics}"))
}

#[test]
fn agent_metrics_report_system_gauges_and_registration_to_a_principal_granted_get_endpoints() {
    let acls = serde_json::json!({
        "permissive": false,
        "get_endpoints": [
            {"principals": {"values": [OPERATOR_PRINCIPAL]}, "paths": {"values": ["/metrics/snapshot"]}}
        ]
    });
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_args.push(format!("--acls={acls}"));
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let url = format!(
        "http://127.0.0.1:{}/metrics/snapshot",
        cluster.agent_ports[0]
    );

    let mut metrics = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "slave/registered 1 in the agent's metrics",
        || {
            let (status, body) = get_as(&url, OPERATOR_PRINCIPAL, OPERATOR_SECRET);
            assert_eq!(status, 200, "{body}\n{}", cluster.logs());
            metrics = serde_json::from_str(&body).expect("metrics are JSON");
            metrics["slave/registered"] == 1
        },
    );
    for name in SYSTEM_GAUGES {
        assert!(number(&metrics, name) >= 0.0, "{name}: {metrics}");
    }
    assert!(number(&metrics, "system/cpus_total") >= 1.0, "{metrics}");
    assert!(
        number(&metrics, "system/mem_free_bytes") <= number(&metrics, "system/mem_total_bytes"),
        "{metrics}"
    );
    // The agent's own: what it was given and that nothing runs.
    assert_eq!(number(&metrics, "slave/cpus_total"), 4.0, "{metrics}");
    assert_eq!(number(&metrics, "slave/mem_total"), 4096.0, "{metrics}");
    assert_eq!(number(&metrics, "slave/tasks_running"), 0.0, "{metrics}");
    assert!(number(&metrics, "slave/uptime_secs") >= 0.0, "{metrics}");
    // The Mesos spellings of the path answer the same.
    for path in ["/slave(1)/metrics/snapshot", "/metrics/snapshot/"] {
        let (status, body) = get_as(
            &format!("http://127.0.0.1:{}{path}", cluster.agent_ports[0]),
            OPERATOR_PRINCIPAL,
            OPERATOR_SECRET,
        );
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains("\"system/cpus_total\""), "{path}: {body}");
    }

    // Not granted: 403 naming the ACL.
    let (status, body) = get_as(&url, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET);
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("403 Forbidden."), "{body}");
    assert!(
        body.contains("get_endpoints") && body.contains(FRAMEWORK_PRINCIPAL),
        "{body}"
    );
    // No credentials: the read-only realm asks for them.
    let anonymous = mesos_tests::http_status_anonymous(&url);
    assert_eq!(anonymous, Some(401));

    // The master's snapshot has the system gauges too.
    let (status, body) = get_as(
        &format!("{}/metrics/snapshot", cluster.master_url()),
        OPERATOR_PRINCIPAL,
        OPERATOR_SECRET,
    );
    assert_eq!(status, 200, "{body}");
    let master: Value = serde_json::from_str(&body).expect("master metrics are JSON");
    for name in SYSTEM_GAUGES {
        assert!(number(&master, name) >= 0.0, "{name}: {master}");
    }
}

#[test]
fn agent_metrics_under_the_secure_default_are_denied_with_the_acl_to_add() {
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_args.push(NO_DEFAULT_ACLS.to_string());
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let url = format!(
        "http://127.0.0.1:{}/metrics/snapshot",
        cluster.agent_ports[0]
    );
    for (principal, secret) in [
        (OPERATOR_PRINCIPAL, OPERATOR_SECRET),
        (FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET),
    ] {
        let (status, body) = get_as(&url, principal, secret);
        assert_eq!(status, 403, "{principal}: {body}");
        assert!(body.starts_with("403 Forbidden."), "{body}");
        assert!(
            body.contains("default policy")
                && body.contains("to allow it, add")
                && body.contains("to \"get_endpoints\"")
                && body.contains("/metrics/snapshot"),
            "{body}"
        );
        assert!(!body.contains("system/cpus_total"), "{body}");
    }
}
