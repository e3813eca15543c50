//! Hand-written JSON for the messages on the master's hottest path: the
//! UPDATE event it writes for every status update, the ACKNOWLEDGE call it
//! reads for each of them, and the ACCEPT call that launches tasks. The reflective mapping in [`crate::json`]
//! allocates per field; these do not. Each one only takes the shapes it
//! can reproduce exactly and returns `None` otherwise, so the caller falls
//! back to the reflective path; tests pin that both give identical results.

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::v1::scheduler::{call, event, Call, Event};
use crate::v1::{self as v1, task_status, TaskState};

/// A message read from a JSON object only. serde's derived structs also
/// take arrays (fields by position), which the Mesos mapping refuses.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Visit(std::marker::PhantomData))
            .map(Object)
    }
}

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
    agent_id: Object<OwnedId>,
    task_id: Object<OwnedId>,
    uuid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeCall {
    r#type: String,
    framework_id: Option<Object<OwnedId>>,
    acknowledge: Object<Acknowledge>,
}

/// An ACKNOWLEDGE call with exactly the fields clients send; anything else
/// (unknown keys, other payloads, odd base64) goes the reflective way.
pub(crate) fn acknowledge_call(body: &[u8]) -> Option<Call> {
    let Object(parsed) = serde_json::from_slice::<Object<AcknowledgeCall>>(body).ok()?;
    if parsed.r#type != "ACKNOWLEDGE" {
        return None;
    }
    let Object(acknowledge) = parsed.acknowledge;
    let uuid = base64::engine::general_purpose::STANDARD
        .decode(acknowledge.uuid.as_bytes())
        .ok()?;
    Some(Call {
        framework_id: parsed
            .framework_id
            .map(|f| v1::FrameworkId { value: f.0.value }),
        r#type: Some(call::Type::Acknowledge as i32),
        acknowledge: Some(call::Acknowledge {
            agent_id: v1::AgentId {
                value: acknowledge.agent_id.0.value,
            },
            task_id: v1::TaskId {
                value: acknowledge.task_id.0.value,
            },
            uuid: Bytes::from(uuid),
        }),
        ..Default::default()
    })
}

/// `null` is not a value here: serde would read it as an absent optional
/// field, and the reflective mapping may not; such bodies go that way.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scalar {
    value: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resource {
    name: String,
    r#type: String,
    #[serde(default, deserialize_with = "present")]
    scalar: Option<Object<Scalar>>,
    #[serde(default, deserialize_with = "present")]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    #[serde(default, deserialize_with = "present")]
    shell: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    value: Option<String>,
    #[serde(default, deserialize_with = "present")]
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Task {
    name: String,
    task_id: Object<OwnedId>,
    agent_id: Object<OwnedId>,
    #[serde(default)]
    resources: Vec<Object<Resource>>,
    #[serde(default, deserialize_with = "present")]
    command: Option<Object<Command>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Launch {
    #[serde(default)]
    task_infos: Vec<Object<Task>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Operation {
    #[serde(default, deserialize_with = "present")]
    r#type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    launch: Option<Object<Launch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(default, deserialize_with = "present")]
    refuse_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    #[serde(default)]
    offer_ids: Vec<Object<OwnedId>>,
    #[serde(default)]
    operations: Vec<Object<Operation>>,
    #[serde(default, deserialize_with = "present")]
    filters: Option<Object<Filters>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptCall {
    r#type: String,
    #[serde(default, deserialize_with = "present")]
    framework_id: Option<Object<OwnedId>>,
    accept: Object<Accept>,
}

fn resource(Object(r): Object<Resource>) -> Option<v1::Resource> {
    Some(v1::Resource {
        name: r.name,
        r#type: v1::value::Type::from_str_name(&r.r#type)? as i32,
        scalar: r.scalar.map(|s| v1::value::Scalar { value: s.0.value }),
        role: r.role,
        ..Default::default()
    })
}

fn task(Object(t): Object<Task>) -> Option<v1::TaskInfo> {
    Some(v1::TaskInfo {
        name: t.name,
        task_id: v1::TaskId {
            value: t.task_id.0.value,
        },
        agent_id: v1::AgentId {
            value: t.agent_id.0.value,
        },
        resources: t
            .resources
            .into_iter()
            .map(resource)
            .collect::<Option<_>>()?,
        command: t.command.map(|Object(c)| v1::CommandInfo {
            shell: c.shell,
            value: c.value,
            user: c.user,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn operation(Object(o): Object<Operation>) -> Option<v1::offer::Operation> {
    let r#type = match o.r#type {
        Some(name) => Some(v1::offer::operation::Type::from_str_name(&name)? as i32),
        None => None,
    };
    let launch = match o.launch {
        Some(Object(l)) => Some(v1::offer::operation::Launch {
            task_infos: l.task_infos.into_iter().map(task).collect::<Option<_>>()?,
        }),
        None => None,
    };
    Some(v1::offer::Operation {
        r#type,
        launch,
        ..Default::default()
    })
}

/// An ACCEPT call launching plain tasks (name, ids, scalar resources, a
/// command), the shape schedulers send by the thousand; anything else
/// (unknown keys, executors, containers, other operations' payloads,
/// unknown enum names, `null`) goes the reflective way.
pub(crate) fn accept_call(body: &[u8]) -> Option<Call> {
    let Object(parsed) = serde_json::from_slice::<Object<AcceptCall>>(body).ok()?;
    if parsed.r#type != "ACCEPT" {
        return None;
    }
    let Object(accept) = parsed.accept;
    Some(Call {
        framework_id: parsed
            .framework_id
            .map(|f| v1::FrameworkId { value: f.0.value }),
        r#type: Some(call::Type::Accept as i32),
        accept: Some(call::Accept {
            offer_ids: accept
                .offer_ids
                .into_iter()
                .map(|o| v1::OfferId { value: o.0.value })
                .collect(),
            operations: accept
                .operations
                .into_iter()
                .map(operation)
                .collect::<Option<_>>()?,
            filters: accept.filters.map(|Object(f)| v1::Filters {
                refuse_seconds: f.refuse_seconds,
            }),
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

    /// A JSON number as clients write it: integral or not, any sign.
    fn number() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (-1e9f64..1e9).prop_map(|f| serde_json::json!(f)),
            (0u32..100_000).prop_map(|n| serde_json::json!(n)),
            (-1000i32..0).prop_map(|n| serde_json::json!(n)),
        ]
    }

    fn resource_json() -> impl Strategy<Value = serde_json::Value> {
        (
            "[a-z]{1,6}|.{0,8}",
            prop_oneof![Just("SCALAR"), Just("RANGES"), Just("SET"), Just("TEXT")],
            proptest::option::of(number()),
            proptest::option::of("[*a-z/]{0,8}"),
        )
            .prop_map(|(name, kind, scalar, role)| {
                let mut r = serde_json::json!({ "name": name, "type": kind });
                if let Some(value) = scalar {
                    r["scalar"] = serde_json::json!({ "value": value });
                }
                if let Some(role) = role {
                    r["role"] = serde_json::json!(role);
                }
                r
            })
    }

    fn task_json() -> impl Strategy<Value = serde_json::Value> {
        (
            ".{0,12}",
            ".{0,12}",
            "[a-zA-Z0-9-]{0,40}",
            proptest::option::of(proptest::collection::vec(resource_json(), 0..4)),
            proptest::option::of((
                proptest::option::of(any::<bool>()),
                proptest::option::of(".{0,16}"),
                proptest::option::of("[a-z]{0,8}"),
            )),
        )
            .prop_map(|(name, task_id, agent_id, resources, command)| {
                let mut t = serde_json::json!({
                    "name": name,
                    "task_id": { "value": task_id },
                    "agent_id": { "value": agent_id },
                });
                if let Some(resources) = resources {
                    t["resources"] = serde_json::Value::Array(resources);
                }
                if let Some((shell, value, user)) = command {
                    let mut c = serde_json::json!({});
                    if let Some(shell) = shell {
                        c["shell"] = serde_json::json!(shell);
                    }
                    if let Some(value) = value {
                        c["value"] = serde_json::json!(value);
                    }
                    if let Some(user) = user {
                        c["user"] = serde_json::json!(user);
                    }
                    t["command"] = c;
                }
                t
            })
    }

    fn accept_json() -> impl Strategy<Value = serde_json::Value> {
        (
            proptest::option::of("[a-z0-9-]{1,40}"),
            proptest::option::of(proptest::collection::vec("[a-z0-9-]{0,40}", 0..3)),
            proptest::option::of(proptest::collection::vec(
                (
                    proptest::option::of(prop_oneof![
                        Just("LAUNCH"),
                        Just("LAUNCH_GROUP"),
                        Just("RESERVE")
                    ]),
                    proptest::option::of(proptest::option::of(proptest::collection::vec(
                        task_json(),
                        0..4,
                    ))),
                ),
                0..3,
            )),
            proptest::option::of(proptest::option::of(number())),
        )
            .prop_map(|(fid, offers, operations, filters)| {
                let mut accept = serde_json::json!({});
                if let Some(offers) = offers {
                    accept["offer_ids"] = offers
                        .into_iter()
                        .map(|o| serde_json::json!({ "value": o }))
                        .collect();
                }
                if let Some(operations) = operations {
                    accept["operations"] = operations
                        .into_iter()
                        .map(|(kind, launch)| {
                            let mut o = serde_json::json!({});
                            if let Some(kind) = kind {
                                o["type"] = serde_json::json!(kind);
                            }
                            if let Some(tasks) = launch {
                                let mut l = serde_json::json!({});
                                if let Some(tasks) = tasks {
                                    l["task_infos"] = serde_json::Value::Array(tasks);
                                }
                                o["launch"] = l;
                            }
                            o
                        })
                        .collect();
                }
                if let Some(filters) = filters {
                    let mut f = serde_json::json!({});
                    if let Some(refuse) = filters {
                        f["refuse_seconds"] = refuse;
                    }
                    accept["filters"] = f;
                }
                let mut call = serde_json::json!({ "type": "ACCEPT", "accept": accept });
                if let Some(fid) = fid {
                    call["framework_id"] = serde_json::json!({ "value": fid });
                }
                call
            })
    }

    proptest! {
        #[test]
        fn fast_accept_parse_equals_the_reflective_one(body in accept_json()) {
            let bytes = serde_json::to_vec(&body).expect("serializes");
            let fast = accept_call(&bytes).expect("the plain shape takes the fast path");
            let reflective: Call = crate::json::reflective_from_slice(&bytes).expect("valid call");
            prop_assert_eq!(fast, reflective);
        }

        #[test]
        fn an_accept_the_fast_path_takes_is_parsed_as_the_reflective_one(
            body in accept_json(),
            path in proptest::collection::vec(0usize..8, 1..6),
            replacement in prop_oneof![
                Just(serde_json::Value::Null),
                Just(serde_json::json!("text")),
                Just(serde_json::json!(1.5)),
                Just(serde_json::json!([])),
                Just(serde_json::json!({})),
                Just(serde_json::json!({ "unknown": 1 })),
                Just(serde_json::json!("FUTURE_NAME")),
            ],
        ) {
            // Damage the body somewhere: whatever the fast path still
            // takes must mean what the reflective mapping says.
            let mut body = body;
            let mut pointer = String::new();
            let mut at = &body;
            for step in path {
                let next = match at {
                    serde_json::Value::Object(map) if !map.is_empty() => {
                        map.iter().nth(step % map.len()).map(|(key, value)| {
                            pointer.push('/');
                            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                            value
                        })
                    }
                    serde_json::Value::Array(items) if !items.is_empty() => {
                        let i = step % items.len();
                        pointer.push_str(&format!("/{i}"));
                        items.get(i)
                    }
                    _ => None,
                };
                match next {
                    Some(next) => at = next,
                    None => break,
                }
            }
            if let Some(slot) = body.pointer_mut(&pointer) {
                *slot = replacement;
            }
            let bytes = serde_json::to_vec(&body).expect("serializes");
            if let Some(fast) = accept_call(&bytes) {
                let reflective: Result<Call, _> = crate::json::reflective_from_slice(&bytes);
                prop_assert!(reflective.is_ok(), "fast path took a body the mapping refuses: {}", body);
                prop_assert_eq!(fast, reflective.expect("checked"));
            }
        }
    }

    #[test]
    fn the_loadgen_accept_takes_the_fast_path_and_matches() {
        let body = br#"{"accept":{"filters":{"refuse_seconds":0.0},"offer_ids":[{"value":"o-1"}],"operations":[{"launch":{"task_infos":[{"agent_id":{"value":"a-S0"},"command":{"shell":true,"value":"true"},"name":"loadgen","resources":[{"name":"cpus","scalar":{"value":0.01},"type":"SCALAR"},{"name":"mem","scalar":{"value":1.0},"type":"SCALAR"}],"task_id":{"value":"lg-0-1"}}]},"type":"LAUNCH"}]},"framework_id":{"value":"f-0000"},"type":"ACCEPT"}"#;
        let fast = accept_call(body).expect("plain ACCEPT takes the fast path");
        let reflective: Call = crate::json::reflective_from_slice(body).expect("valid call");
        assert_eq!(fast, reflective);
        let tasks: Vec<serde_json::Value> = (0..3)
            .map(|i| {
                serde_json::json!({
                    "name": "loadgen",
                    "task_id": { "value": format!("lg-0-{i}") },
                    "agent_id": { "value": "a-S0" },
                    "resources": [
                        { "name": "cpus", "type": "SCALAR", "scalar": { "value": 0.01 } },
                        { "name": "mem", "type": "SCALAR", "scalar": { "value": 1.0 } }
                    ],
                    "command": { "shell": true, "value": "true" }
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "framework_id": { "value": "f-0000" },
            "type": "ACCEPT",
            "accept": {
                "offer_ids": [{ "value": "o-1" }],
                "operations": [{ "type": "LAUNCH", "launch": { "task_infos": tasks } }],
                "filters": { "refuse_seconds": 0.0 }
            }
        }))
        .expect("serializes");
        let fast = accept_call(&body).expect("the loadgen's ACCEPT takes the fast path");
        let reflective: Call = crate::json::reflective_from_slice(&body).expect("valid call");
        assert_eq!(fast, reflective);
        // Anything unusual falls back.
        assert!(
            accept_call(br#"{"type":"ACCEPT","accept":{"offer_ids":[{"value":"o"}]},"x":1}"#)
                .is_none()
        );
        assert!(accept_call(br#"{"type":"ACCEPT","accept":{"filters":null}}"#).is_none());
        assert!(accept_call(br#"{"type":"DECLINE","accept":{}}"#).is_none());
        assert!(
            accept_call(br#"{"type":"ACCEPT","accept":{"operations":[{"type":"FUTURE"}]}}"#)
                .is_none()
        );
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
        // serde would read these arrays as structs; the mapping does not.
        assert!(acknowledge_call(
            br#"{"type":"ACKNOWLEDGE","acknowledge":[{"value":"a"},{"value":"t"},"AAAA"]}"#
        )
        .is_none());
        assert!(acknowledge_call(
            br#"["ACKNOWLEDGE",null,{"agent_id":{"value":"a"},"task_id":["t"],"uuid":"AAAA"}]"#
        )
        .is_none());
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
