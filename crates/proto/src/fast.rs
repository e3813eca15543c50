//! Hand-written JSON for the two messages on the master's hottest path: the
//! UPDATE event it writes for every status update and the ACKNOWLEDGE call
//! it reads for each of them. The reflective mapping in [`crate::json`]
//! allocates per field; these do not. Each one only takes the shapes it
//! can reproduce exactly and returns `None` otherwise, so the caller falls
//! back to the reflective path; tests pin that both give identical results.

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::v1::scheduler::{call, event, Call, Event};
use crate::v1::{self as v1, task_status, TaskState};

#[derive(Serialize)]
struct Id<'a> {
    value: &'a str,
}

/// TaskStatus fields in field-number order, as Mesos writes them.
#[derive(Serialize)]
struct Status<'a> {
    task_id: Id<'a>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<Id<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor_id: Option<Id<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
}

#[derive(Serialize)]
struct Update<'a> {
    status: Status<'a>,
}

#[derive(Serialize)]
struct UpdateEvent<'a> {
    r#type: &'static str,
    update: Update<'a>,
}

fn base64(bytes: &Bytes) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An UPDATE event whose status has only plain fields, as compact JSON
/// (not yet ASCII-escaped).
pub(crate) fn update_event(event: &Event) -> Option<String> {
    let plain_envelope = event.r#type == Some(event::Type::Update as i32)
        && event.subscribed.is_none()
        && event.offers.is_none()
        && event.inverse_offers.is_none()
        && event.rescind.is_none()
        && event.rescind_inverse_offer.is_none()
        && event.message.is_none()
        && event.failure.is_none()
        && event.error.is_none()
        && event.update_operation_status.is_none();
    if !plain_envelope {
        return None;
    }
    let s = &event.update.as_ref()?.status;
    let plain_status = s.labels.is_none()
        && s.container_status.is_none()
        && s.unreachable_time.is_none()
        && s.check_status.is_none()
        && s.limitation.is_none()
        && s.timestamp.is_none_or(f64::is_finite);
    if !plain_status {
        return None;
    }
    let status = Status {
        task_id: Id {
            value: &s.task_id.value,
        },
        state: TaskState::try_from(s.state).ok()?.as_str_name(),
        data: s.data.as_ref().map(base64),
        message: s.message.as_deref(),
        agent_id: s.agent_id.as_ref().map(|a| Id { value: &a.value }),
        timestamp: s.timestamp,
        executor_id: s.executor_id.as_ref().map(|e| Id { value: &e.value }),
        healthy: s.healthy,
        source: match s.source {
            Some(v) => Some(task_status::Source::try_from(v).ok()?.as_str_name()),
            None => None,
        },
        reason: match s.reason {
            Some(v) => Some(task_status::Reason::try_from(v).ok()?.as_str_name()),
            None => None,
        },
        uuid: s.uuid.as_ref().map(base64),
    };
    serde_json::to_string(&UpdateEvent {
        r#type: "UPDATE",
        update: Update { status },
    })
    .ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnedId {
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledge {
    agent_id: OwnedId,
    task_id: OwnedId,
    uuid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeCall {
    r#type: String,
    framework_id: Option<OwnedId>,
    acknowledge: Acknowledge,
}

/// An ACKNOWLEDGE call with exactly the fields clients send; anything else
/// (unknown keys, other payloads, odd base64) goes the reflective way.
pub(crate) fn acknowledge_call(body: &[u8]) -> Option<Call> {
    let parsed: AcknowledgeCall = serde_json::from_slice(body).ok()?;
    if parsed.r#type != "ACKNOWLEDGE" {
        return None;
    }
    let uuid = base64::engine::general_purpose::STANDARD
        .decode(parsed.acknowledge.uuid.as_bytes())
        .ok()?;
    Some(Call {
        framework_id: parsed
            .framework_id
            .map(|f| v1::FrameworkId { value: f.value }),
        r#type: Some(call::Type::Acknowledge as i32),
        acknowledge: Some(call::Acknowledge {
            agent_id: v1::AgentId {
                value: parsed.acknowledge.agent_id.value,
            },
            task_id: v1::TaskId {
                value: parsed.acknowledge.task_id.value,
            },
            uuid: Bytes::from(uuid),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status_strategy() -> impl Strategy<Value = v1::TaskStatus> {
        (
            ".{0,12}",
            0i32..16,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(".{0,20}"),
            proptest::option::of("[a-z0-9-]{0,40}"),
            proptest::option::of(-1e12f64..1e12),
            proptest::option::of("[a-zA-Z0-9_.-]{0,20}"),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0i32..4),
            proptest::option::of(0i32..40),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 16)),
        )
            .prop_map(
                |(
                    task_id,
                    state,
                    data,
                    message,
                    agent,
                    timestamp,
                    executor,
                    healthy,
                    source,
                    reason,
                    uuid,
                )| {
                    v1::TaskStatus {
                        task_id: v1::TaskId { value: task_id },
                        state,
                        data: data.map(Bytes::from),
                        message,
                        agent_id: agent.map(|value| v1::AgentId { value }),
                        timestamp,
                        executor_id: executor.map(|value| v1::ExecutorId { value }),
                        healthy,
                        source,
                        reason,
                        uuid: uuid.map(Bytes::from),
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn fast_update_event_is_byte_identical_to_the_reflective_mapping(status in status_strategy()) {
            let event = Event {
                r#type: Some(event::Type::Update as i32),
                update: Some(event::Update { status }),
                ..Default::default()
            };
            let reflective = crate::json::reflective_to_string(&event);
            if let Some(fast) = update_event(&event) {
                prop_assert_eq!(crate::json::escape_non_ascii(fast), reflective);
            }
        }

        #[test]
        fn fast_acknowledge_parse_equals_the_reflective_one(
            fid in proptest::option::of("[a-z0-9-]{1,40}"),
            aid in ".{0,20}",
            tid in ".{0,20}",
            uuid in proptest::collection::vec(any::<u8>(), 16),
        ) {
            let mut body = serde_json::json!({
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "agent_id": {"value": aid},
                    "task_id": {"value": tid},
                    "uuid": base64::engine::general_purpose::STANDARD.encode(&uuid),
                }
            });
            if let Some(fid) = fid {
                body["framework_id"] = serde_json::json!({"value": fid});
            }
            let bytes = serde_json::to_vec(&body).expect("serializes");
            let fast = acknowledge_call(&bytes).expect("the common shape takes the fast path");
            let reflective: Call = crate::json::reflective_from_slice(&bytes).expect("valid call");
            prop_assert_eq!(fast, reflective);
        }
    }

    #[test]
    fn a_typical_update_takes_the_fast_path_and_matches() {
        let event = Event {
            r#type: Some(event::Type::Update as i32),
            update: Some(event::Update {
                status: v1::TaskStatus {
                    task_id: v1::TaskId {
                        value: "t-\u{e9}\"1".into(),
                    },
                    state: TaskState::TaskRunning as i32,
                    message: Some("line\nbreak".into()),
                    source: Some(task_status::Source::Executor as i32),
                    agent_id: Some(v1::AgentId {
                        value: "a-S0".into(),
                    }),
                    timestamp: Some(1_763_800_000.123),
                    uuid: Some(Bytes::from_static(&[9; 16])),
                    ..Default::default()
                },
            }),
            ..Default::default()
        };
        let fast = update_event(&event).expect("plain status takes the fast path");
        assert_eq!(
            crate::json::escape_non_ascii(fast),
            crate::json::reflective_to_string(&event)
        );
    }

    #[test]
    fn unusual_shapes_fall_back() {
        assert!(acknowledge_call(br#"{"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAA"},"extra":1}"#).is_none());
        assert!(acknowledge_call(br#"{"type":"DECLINE","acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAA"}}"#).is_none());
        assert!(acknowledge_call(br#"{"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"}}}"#).is_none());
        let mut event = Event {
            r#type: Some(event::Type::Update as i32),
            update: Some(event::Update::default()),
            ..Default::default()
        };
        if let Some(update) = event.update.as_mut() {
            update.status.labels = Some(v1::Labels::default());
        }
        assert!(update_event(&event).is_none());
    }
}
