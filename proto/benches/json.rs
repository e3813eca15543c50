//! Cost of Mesos JSON on the master's hot path (UPDATE events out, ACCEPT
//! and ACKNOWLEDGE calls in) and of the required-field check on inbound
//! protobuf messages, against the raw prost encoding of the same
//! messages measured in the same run.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use mesos_proto::v1::{self as v1};
use prost::Message;

fn update() -> Event {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update {
            status: v1::TaskStatus {
                task_id: v1::TaskId {
                    value: "task-000123".into(),
                },
                state: v1::TaskState::TaskRunning as i32,
                source: Some(v1::task_status::Source::Executor as i32),
                agent_id: Some(v1::AgentId {
                    value: "8b1c6f0e-4d3a-4f8e-9d51-6a2b7c9e0f11-S3".into(),
                }),
                executor_id: Some(v1::ExecutorId {
                    value: "task-000123".into(),
                }),
                timestamp: Some(1_763_800_000.123),
                uuid: Some(bytes::Bytes::from_static(&[7u8; 16])),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

const ACK: &[u8] = br#"{"type":"ACKNOWLEDGE","framework_id":{"value":"8b1c6f0e-4d3a-4f8e-9d51-6a2b7c9e0f11-0000"},"acknowledge":{"agent_id":{"value":"8b1c6f0e-4d3a-4f8e-9d51-6a2b7c9e0f11-S3"},"task_id":{"value":"task-000123"},"uuid":"BwcHBwcHBwcHBwcHBwcHBw=="}}"#;

fn bench(c: &mut Criterion) {
    let event = update();
    let call: Call = mesos_proto::json::from_slice(ACK).expect("valid call");
    assert_eq!(call.r#type, Some(call::Type::Acknowledge as i32));
    let call_bytes = call.encode_to_vec();
    let mut group = c.benchmark_group("json");
    group.bench_function("baseline: prost encode UPDATE", |b| {
        b.iter(|| black_box(&event).encode_to_vec())
    });
    group.bench_function("to_string UPDATE", |b| {
        b.iter(|| mesos_proto::json::to_string(black_box(&event)))
    });
    group.bench_function("baseline: prost decode ACKNOWLEDGE", |b| {
        b.iter(|| Call::decode(black_box(call_bytes.as_slice())).expect("decodes"))
    });
    group.bench_function("baseline: serde_json::Value parse ACKNOWLEDGE", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(ACK)).expect("parses"))
    });
    group.bench_function("from_slice ACKNOWLEDGE", |b| {
        b.iter(|| mesos_proto::json::from_slice::<Call>(black_box(ACK)).expect("parses"))
    });
    let status_update = mesos_proto::internal::StatusUpdateMessage {
        update: mesos_proto::internal::StatusUpdate {
            framework_id: v1::FrameworkId {
                value: "8b1c6f0e-4d3a-4f8e-9d51-6a2b7c9e0f11-0000".into(),
            },
            executor_id: update().update.and_then(|u| u.status.executor_id),
            slave_id: update().update.and_then(|u| u.status.agent_id),
            status: update().update.map(|u| u.status).unwrap_or_default(),
            timestamp: 1_763_800_000.123,
            uuid: Some(bytes::Bytes::from_static(&[7u8; 16])),
            latest_state: None,
        },
        pid: Some("slave(1)@127.0.0.1:31000".into()),
    }
    .encode_to_vec();
    group.bench_function("baseline: prost decode StatusUpdateMessage", |b| {
        b.iter(|| {
            mesos_proto::internal::StatusUpdateMessage::decode(black_box(status_update.as_slice()))
                .expect("decodes")
        })
    });
    group.bench_function("decode_checked StatusUpdateMessage", |b| {
        b.iter(|| {
            mesos_proto::json::decode_checked::<mesos_proto::internal::StatusUpdateMessage>(
                black_box(status_update.as_slice()),
            )
            .expect("decodes")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
