//! Our own scheduler client speaking protobuf bodies and a protobuf event
//! stream runs a task to TASK_FINISHED.

use std::time::Duration;

use futures::StreamExt;
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use mesos_proto::v1::{self as v1, offer::operation};
use prost::Message;

const PROTOBUF: &str = "application/x-protobuf";

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_scheduler_runs_a_task_to_finished() {
    let cluster = tokio::task::spawn_blocking(|| mesos_tests::Cluster::start(1))
        .await
        .expect("cluster");
    let url = format!("{}/api/v1/scheduler", cluster.master_url());
    let client = reqwest::Client::new();
    let subscribe = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: "protobuf-test".into(),
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
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let stream_id = response.headers()["mesos-stream-id"]
        .to_str()
        .expect("stream id")
        .to_string();
    let mut body = response.bytes_stream();
    let mut decoder = mesos_proto::recordio::Decoder::default();
    let mut framework_id = None;
    let mut launched = false;
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    'outer: while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
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
                        name: "echo".into(),
                        task_id: v1::TaskId {
                            value: "pb-task".into(),
                        },
                        agent_id: offer.agent_id.clone(),
                        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
                        command: Some(v1::CommandInfo {
                            value: Some("echo hello".into()),
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
                    states.push(status.state());
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
                    if status.state() == v1::TaskState::TaskFinished {
                        break 'outer;
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        states,
        [
            v1::TaskState::TaskStarting,
            v1::TaskState::TaskRunning,
            v1::TaskState::TaskFinished
        ],
        "{}",
        cluster.logs()
    );
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("teardown");
}
