//! The operator event stream (`SUBSCRIBE` on `/api/v1`) shows a framework
//! arriving and its task being launched and running, as a Mesos operator's
//! tool would see them.

use std::time::Duration;

use futures::StreamExt;
use mesos_proto::v1::TaskState;
use mesos_tests::scheduler::{run_one_task, OneTask};
use serde_json::Value;
use tokio::sync::mpsc;

/// Subscribes to the operator stream in JSON and forwards its events.
async fn operator_events(client: &reqwest::Client, master: &str) -> mpsc::UnboundedReceiver<Value> {
    let response = client
        .post(format!("{master}/api/v1"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(r#"{"type":"SUBSCRIBE"}"#)
        .send()
        .await
        .expect("operator subscribe");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut decoder = mesos_proto::recordio::Decoder::default();
        while let Some(Ok(chunk)) = body.next().await {
            decoder.feed(&chunk);
            while let Ok(Some(record)) = decoder.next_record() {
                let event: Value = serde_json::from_slice(&record).expect("JSON operator event");
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// A one-agent cluster, an operator client, and its event stream with the
/// first event (SUBSCRIBED) taken off.
async fn subscribed_to_one_agent() -> (
    mesos_tests::Cluster,
    reqwest::Client,
    mpsc::UnboundedReceiver<Value>,
    Value,
) {
    let cluster = tokio::task::spawn_blocking(|| mesos_tests::Cluster::start(1))
        .await
        .expect("cluster");
    let client = mesos_tests::operator_client();
    let mut events = operator_events(&client, &cluster.master_url()).await;
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("SUBSCRIBED in time")
        .expect("stream open");
    (cluster, client, events, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_stream_shows_a_framework_and_its_task_running() {
    let (cluster, _client, mut events, first) = subscribed_to_one_agent().await;
    let master = cluster.master_url();
    assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    assert_eq!(first["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let agents = &first["subscribed"]["get_state"]["get_agents"]["agents"];
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{first}");

    run_one_task(
        &master,
        OneTask {
            framework: "operator-stream-test",
            task_id: "watched-task",
            command: "sleep 30",
            until: TaskState::TaskRunning,
        },
    )
    .await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut running = false;
    while !running {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        running = event["type"] == "TASK_UPDATED"
            && event["task_updated"]["state"] == "TASK_RUNNING"
            && event["task_updated"]["status"]["task_id"]["value"] == "watched-task";
        seen.push(event);
    }
    let kinds: Vec<&str> = seen.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        running,
        "no TASK_UPDATED(TASK_RUNNING) in {kinds:?}\n{}",
        cluster.logs()
    );
    let added = seen
        .iter()
        .find(|e| e["type"] == "FRAMEWORK_ADDED")
        .expect("FRAMEWORK_ADDED");
    assert_eq!(
        added["framework_added"]["framework"]["framework_info"]["name"],
        "operator-stream-test"
    );
    let task_added = seen
        .iter()
        .position(|e| e["type"] == "TASK_ADDED")
        .expect("TASK_ADDED");
    assert_eq!(
        seen[task_added]["task_added"]["task"]["task_id"]["value"],
        "watched-task"
    );
    let framework_added = seen
        .iter()
        .position(|e| e["type"] == "FRAMEWORK_ADDED")
        .expect("FRAMEWORK_ADDED");
    assert!(framework_added < task_added, "{kinds:?}");

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("teardown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_stream_shows_each_subscriber_only_what_it_may_view() {
    // The framework's principal may view everything; the operator only
    // frameworks and tasks of user `nobody` (the task runs as root).
    let acls = serde_json::json!({
        "permissive": true,
        "view_frameworks": [
            {"principals": {"values": [mesos_tests::FRAMEWORK_PRINCIPAL]}, "users": {"type": "ANY"}},
            {"principals": {"values": [mesos_tests::OPERATOR_PRINCIPAL]}, "users": {"values": ["nobody"]}},
            {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}
        ],
        "view_tasks": [
            {"principals": {"values": [mesos_tests::FRAMEWORK_PRINCIPAL]}, "users": {"type": "ANY"}},
            {"principals": {"values": [mesos_tests::OPERATOR_PRINCIPAL]}, "users": {"values": ["nobody"]}}
        ]
    });
    let flag = format!("--acls={acls}");
    let cluster =
        tokio::task::spawn_blocking(move || mesos_tests::Cluster::start_with(1, &[&flag]))
            .await
            .expect("cluster");
    let master = cluster.master_url();
    // Subscribing is no longer refused to a reader with a partial view.
    let mut limited = operator_events(&mesos_tests::operator_client(), &master).await;
    let mut full = operator_events(&mesos_tests::framework_client(), &master).await;
    for events in [&mut limited, &mut full] {
        let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("SUBSCRIBED in time")
            .expect("stream open");
        assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    }

    run_one_task(
        &master,
        OneTask {
            framework: "filtered-stream-test",
            task_id: "filtered-task",
            command: "sleep 30",
            until: TaskState::TaskRunning,
        },
    )
    .await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut running = false;
    while !running {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, full.recv()).await else {
            break;
        };
        running =
            event["type"] == "TASK_UPDATED" && event["task_updated"]["state"] == "TASK_RUNNING";
        seen.push(event);
    }
    let kinds: Vec<&str> = seen.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(running, "full view: {kinds:?}\n{}", cluster.logs());
    assert!(
        kinds.contains(&"FRAMEWORK_ADDED") && kinds.contains(&"TASK_ADDED"),
        "{kinds:?}"
    );

    // The limited subscriber got none of it (its SUBSCRIBED already came;
    // anything else queued by now would be a leak).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut leaked = Vec::new();
    while let Ok(event) = limited.try_recv() {
        if event["type"] != "HEARTBEAT" {
            leaked.push(event);
        }
    }
    assert!(leaked.is_empty(), "{leaked:?}");

    // A new limited subscriber's snapshot hides the framework and task too.
    let mut late = operator_events(&mesos_tests::operator_client(), &master).await;
    let first = tokio::time::timeout(Duration::from_secs(10), late.recv())
        .await
        .expect("SUBSCRIBED in time")
        .expect("stream open");
    let state = &first["subscribed"]["get_state"];
    assert!(
        state["get_frameworks"]["frameworks"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{first}"
    );
    assert!(
        state["get_tasks"]["tasks"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{first}"
    );
    assert_eq!(
        state["get_agents"]["agents"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("teardown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_stream_reports_a_reservation_with_the_agents_new_total() {
    let (cluster, client, mut events, first) = subscribed_to_one_agent().await;
    let master = cluster.master_url();
    let agent_id = first["subscribed"]["get_state"]["get_agents"]["agents"][0]["agent_info"]["id"]
        ["value"]
        .as_str()
        .expect("agent id")
        .to_string();
    let reserve = serde_json::json!({
        "type": "RESERVE_RESOURCES",
        "reserve_resources": {
            "agent_id": {"value": agent_id},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0},
                "reservations": [{"type": "DYNAMIC", "role": "ops",
                                  "principal": mesos_tests::OPERATOR_PRINCIPAL}]}]
        }
    });
    let response = client
        .post(format!("{master}/api/v1"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(reserve.to_string())
        .send()
        .await
        .expect("RESERVE_RESOURCES");
    assert_eq!(response.status().as_u16(), 202);
    let update = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if event["type"] == "AGENT_ADDED" {
                return event;
            }
        }
        Value::Null
    })
    .await
    .expect("AGENT_ADDED after the reservation");
    let total = &update["agent_added"]["agent"]["total_resources"];
    let reserved = total
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["reservations"][0]["role"] == "ops"));
    assert!(reserved, "{update}");
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("teardown");
}
