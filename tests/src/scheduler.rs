//! A minimal v1 scheduler of our own that speaks protobuf bodies and reads a
//! protobuf event stream: launches one command task on the first offer,
//! acknowledges every update that carries a uuid, and reports the states it
//! saw.

use std::time::Duration;

use futures::StreamExt;
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use mesos_proto::v1::{self as v1, offer::operation};
use prost::Message;

const PROTOBUF: &str = "application/x-protobuf";

/// A resource of type SCALAR.
pub fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

/// What to run and when to stop.
pub struct OneTask<'a> {
    /// Framework name.
    pub framework: &'a str,
    /// Task id.
    pub task_id: &'a str,
    /// Shell command.
    pub command: &'a str,
    /// Stop once the task reaches this state.
    pub until: v1::TaskState,
}

/// Subscribes to `master_url` (`http://host:port`), runs the task and
/// returns the task states seen in order, ending with `until` or
/// `TASK_ERROR` (panics if neither comes within 60 s).
pub async fn run_one_task(master_url: &str, job: OneTask<'_>) -> Vec<v1::TaskState> {
    let client = crate::framework_client();
    let url = format!("{master_url}/api/v1/scheduler");
    let post = |body: Vec<u8>, stream_id: Option<String>| {
        let mut request = client
            .post(&url)
            .header("Content-Type", PROTOBUF)
            .body(body);
        if let Some(id) = stream_id {
            request = request.header("Mesos-Stream-Id", id);
        }
        request.send()
    };
    let subscribe = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: job.framework.into(),
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
                        name: job.task_id.into(),
                        task_id: v1::TaskId {
                            value: job.task_id.into(),
                        },
                        agent_id: offer.agent_id.clone(),
                        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
                        command: Some(v1::CommandInfo {
                            value: Some(job.command.into()),
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
                    let r = post(accept.encode_to_vec(), Some(stream_id.clone()))
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
                        let r = post(ack.encode_to_vec(), Some(stream_id.clone()))
                            .await
                            .expect("ack");
                        assert_eq!(r.status().as_u16(), 202);
                    }
                    // TASK_ERROR is final: the task never ran (e.g. refused
                    // by run_tasks); the caller asserts on the states.
                    if status.state() == job.until || status.state() == v1::TaskState::TaskError {
                        return states;
                    }
                }
                _ => {}
            }
        }
    }
    panic!(
        "task {} did not reach {:?}; saw {states:?}",
        job.task_id, job.until
    );
}
