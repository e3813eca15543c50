//! The operator event stream (`SUBSCRIBE` on `/api/v1`) shows a framework
//! arriving and its task being launched and running, as a Mesos operator's
//! tool would see them.

use std::time::Duration;

use futures::StreamExt;
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use mesos_proto::v1::{self as v1, offer::operation};
use prost::Message;
use serde_json::Value;
use tokio::sync::mpsc;

const PROTOBUF: &str = "application/x-protobuf";

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

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

/// Runs one long task with a protobuf scheduler until it is RUNNING.
async fn run_task(client: &reqwest::Client, master: &str) {
    let url = format!("{master}/api/v1/scheduler");
    let subscribe = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: "operator-stream-test".into(),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = client
        .post(&url)
        .header("Content-Type", PROTOBUF)
        .header("Accept", PROTOBUF)
        .body(subscribe.encode_to_vec())
        .send()
        .await
        .expect("subscribe");
    assert_eq!(response.status().as_u16(), 200);
    let stream_id = response.headers()["mesos-stream-id"]
        .to_str()
        .expect("stream id")
        .to_string();
    let mut body = response.bytes_stream();
    let mut decoder = mesos_proto::recordio::Decoder::default();
    let mut framework_id = None;
    let mut launched = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        decoder.feed(&chunk.expect("stream chunk"));
        while let Some(record) = decoder.next_record().expect("valid RecordIO") {
            let event = Event::decode(record).expect("protobuf event");
            match event.r#type() {
                event::Type::Subscribed => {
                    framework_id = Some(event.subscribed.expect("subscribed").framework_id);
                }
                event::Type::Offers if !launched => {
                    let offer = event.offers.expect("offers").offers.remove(0);
                    let task = v1::TaskInfo {
                        name: "sleeper".into(),
                        task_id: v1::TaskId {
                            value: "watched-task".into(),
                        },
                        agent_id: offer.agent_id.clone(),
                        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
                        command: Some(v1::CommandInfo {
                            value: Some("sleep 30".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let accept = Call {
                        framework_id: framework_id.clone(),
                        r#type: Some(call::Type::Accept as i32),
                        accept: Some(call::Accept {
                            offer_ids: vec![offer.id],
                            operations: vec![v1::offer::Operation {
                                r#type: Some(operation::Type::Launch as i32),
                                launch: Some(operation::Launch {
                                    task_infos: vec![task],
                                }),
                                ..Default::default()
                            }],
                            filters: None,
                        }),
                        ..Default::default()
                    };
                    let r = client
                        .post(&url)
                        .header("Content-Type", PROTOBUF)
                        .header("Mesos-Stream-Id", &stream_id)
                        .body(accept.encode_to_vec())
                        .send()
                        .await
                        .expect("accept");
                    assert_eq!(r.status().as_u16(), 202);
                    launched = true;
                }
                event::Type::Update => {
                    let status = event.update.expect("update").status;
                    if let Some(uuid) = status.uuid.clone() {
                        let ack = Call {
                            framework_id: framework_id.clone(),
                            r#type: Some(call::Type::Acknowledge as i32),
                            acknowledge: Some(call::Acknowledge {
                                agent_id: status.agent_id.clone().expect("agent id"),
                                task_id: status.task_id.clone(),
                                uuid,
                            }),
                            ..Default::default()
                        };
                        let r = client
                            .post(&url)
                            .header("Content-Type", PROTOBUF)
                            .header("Mesos-Stream-Id", &stream_id)
                            .body(ack.encode_to_vec())
                            .send()
                            .await
                            .expect("ack");
                        assert_eq!(r.status().as_u16(), 202);
                    }
                    if status.state() == v1::TaskState::TaskRunning {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
    panic!("the task did not reach TASK_RUNNING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_stream_shows_a_framework_and_its_task_running() {
    let cluster = tokio::task::spawn_blocking(|| mesos_tests::Cluster::start(1))
        .await
        .expect("cluster");
    let master = cluster.master_url();
    let client = reqwest::Client::new();
    let mut events = operator_events(&client, &master).await;

    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("SUBSCRIBED in time")
        .expect("stream open");
    assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    assert_eq!(first["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let agents = &first["subscribed"]["get_state"]["get_agents"]["agents"];
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{first}");

    run_task(&client, &master).await;

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
