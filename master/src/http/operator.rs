//! Operator writes and the v1 operator API (`POST /api/v1`), including the
//! operator event stream (`SUBSCRIBE`).

use super::stream;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};
use mesos_common::http::{negotiate, request_content_type, ContentType, HttpError};
use mesos_proto::v1::master::{call, event, response, Call, Event, Response as MasterResponse};
use mesos_proto::v1::{self as v1};

use super::AppState;
use crate::authn::Principal;
use crate::core::authz::{Denied, Viewer};
use crate::core::operator::encode_operator_event;
use crate::core::{Master, OperatorSubscribeError};
use crate::flags::Flags;

/// `POST /master/teardown` with form body `frameworkId=<id>`.
pub async fn teardown(
    State(app): State<AppState>,
    Principal(principal): Principal,
    body: Bytes,
) -> Response {
    let framework_id = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "frameworkId")
        .map(|(_, v)| v.into_owned());
    let Some(framework_id) = framework_id else {
        return (
            StatusCode::BAD_REQUEST,
            "Missing 'frameworkId' query parameter in the request body",
        )
            .into_response();
    };
    let removed = app
        .master
        .write(move |m, now| {
            teardown_as(m, &framework_id, principal.as_deref(), now).map(|found| {
                found.then_some(()).ok_or(format!(
                    "No framework found with specified ID '{framework_id}'"
                ))
            })
        })
        .await;
    match removed {
        Some(Ok(Ok(()))) => StatusCode::OK.into_response(),
        Some(Ok(Err(message))) => (StatusCode::BAD_REQUEST, message).into_response(),
        Some(Err(denied)) => super::state::forbidden(&denied),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response(),
    }
}

/// `POST /api/v1`.
pub async fn api(
    State(app): State<AppState>,
    Principal(principal): Principal,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match operator(app, principal, method, headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn operator(
    app: AppState,
    principal: Option<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    if method != Method::POST {
        return Err(HttpError::method_not_allowed("POST"));
    }
    let content_type = request_content_type(&headers)?;
    let call: Call = mesos_common::http::decode_body(content_type, &body)?;
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err(HttpError::bad_request(
            "Failed to validate master::Call: Expecting 'type' to be present",
        ));
    };
    let accept = negotiate(&headers).ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow 'application/json' or 'application/x-protobuf'",
        )
    })?;
    if kind == call::Type::Subscribe {
        // Filtered per subscriber: it sees what its principal may view.
        return subscribe(&app, accept, principal).await;
    }
    if kind == call::Type::GetFlags {
        if let Err(denied) = app.authz.check(
            mesos_acls::Action::ViewFlags,
            principal.as_deref(),
            mesos_acls::Object::Any,
        ) {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!("403 Forbidden. {}", denied.explanation),
            ));
        }
    }
    if kind == call::Type::AuthorizeExplain {
        let question = call.authorize_explain.ok_or_else(|| {
            HttpError::bad_request(
                "Failed to validate master::Call: Expecting 'authorize_explain' to be present",
            )
        })?;
        let answer = super::explain::explain_request(
            &app.authz,
            &question.action,
            question.principal.as_deref(),
            question.object.as_deref(),
        )
        .map_err(HttpError::bad_request)?;
        let response = MasterResponse {
            r#type: Some(response::Type::AuthorizeExplain as i32),
            authorize_explain: Some(response::AuthorizeExplain {
                allowed: answer.allowed,
                rule: answer.rule,
                explanation: answer.explanation,
            }),
            ..Default::default()
        };
        return Ok(encode(&response, accept));
    }
    let flags = app.flags.clone();
    let response = match kind {
        call::Type::GetHealth => Some(MasterResponse {
            r#type: Some(response::Type::GetHealth as i32),
            get_health: Some(response::GetHealth { healthy: true }),
            ..Default::default()
        }),
        call::Type::GetFlags => Some(MasterResponse {
            r#type: Some(response::Type::GetFlags as i32),
            get_flags: Some(response::GetFlags {
                flags: flags_proto(&flags),
            }),
            ..Default::default()
        }),
        call::Type::GetVersion => Some(MasterResponse {
            r#type: Some(response::Type::GetVersion as i32),
            get_version: Some(response::GetVersion {
                version_info: version_info(),
            }),
            ..Default::default()
        }),
        call::Type::Teardown => {
            let framework_id = call.teardown.map(|t| t.framework_id.value).ok_or_else(|| {
                HttpError::bad_request(
                    "Failed to validate master::Call: Expecting 'teardown' to be present",
                )
            })?;
            let outcome = app
                .master
                .write(move |m, now| teardown_as(m, &framework_id, principal.as_deref(), now))
                .await;
            return match outcome {
                Some(Ok(true)) => Ok(StatusCode::OK.into_response()),
                Some(Ok(false)) => Err(HttpError::bad_request("Framework cannot be found")),
                Some(Err(denied)) => Err(HttpError::new(
                    StatusCode::FORBIDDEN,
                    format!("403 Forbidden. {}", denied.explanation),
                )),
                None => Err(HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Master is shutting down",
                )),
            };
        }
        call::Type::ReserveResources
        | call::Type::UnreserveResources
        | call::Type::CreateVolumes
        | call::Type::DestroyVolumes
        | call::Type::GrowVolume
        | call::Type::ShrinkVolume => {
            let (agent_id, op) = operation_call(call)?;
            return Ok(super::reservations::run(&app, agent_id, op, principal).await);
        }
        call::Type::GetOperations => {
            let operations = app
                .master
                .read(move |m| {
                    let mut viewer = m.config.authz.viewer(principal.as_deref());
                    m.frameworks
                        .values()
                        .filter(|f| viewer.framework(f))
                        .flat_map(|f| f.operations.iter().cloned())
                        .collect::<Vec<_>>()
                })
                .await
                .ok_or_else(|| {
                    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down")
                })?;
            Some(MasterResponse {
                r#type: Some(response::Type::GetOperations as i32),
                get_operations: Some(response::GetOperations { operations }),
                ..Default::default()
            })
        }
        _ => {
            let read = app
                .master
                .read(move |m| {
                    let mut viewer = m.config.authz.viewer(principal.as_deref());
                    read_call(m, kind, &mut viewer)
                })
                .await;
            match read {
                Some(Some(response)) => Some(response),
                Some(None) => None,
                None => {
                    return Err(HttpError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Master is shutting down",
                    ))
                }
            }
        }
    };
    let Some(response) = response else {
        return Err(HttpError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Operator call {} is not supported by this master",
                kind.as_str_name()
            ),
        ));
    };
    Ok(encode(&response, accept))
}

/// The agent and offer operation of a RESERVE_RESOURCES, UNRESERVE_RESOURCES,
/// CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME or SHRINK_VOLUME call.
fn operation_call(call: Call) -> Result<(String, v1::offer::Operation), HttpError> {
    use v1::offer::operation as op;
    let missing = |field: &str| {
        HttpError::bad_request(format!(
            "Failed to validate master::Call: Expecting '{field}' to be present"
        ))
    };
    let mut operation = v1::offer::Operation::default();
    let agent_id = match call.r#type.and_then(|t| call::Type::try_from(t).ok()) {
        Some(call::Type::ReserveResources) => {
            let c = call
                .reserve_resources
                .ok_or_else(|| missing("reserve_resources"))?;
            operation.r#type = Some(op::Type::Reserve as i32);
            operation.reserve = Some(op::Reserve {
                resources: c.resources,
                source: c.source,
            });
            Some(c.agent_id)
        }
        Some(call::Type::UnreserveResources) => {
            let c = call
                .unreserve_resources
                .ok_or_else(|| missing("unreserve_resources"))?;
            operation.r#type = Some(op::Type::Unreserve as i32);
            operation.unreserve = Some(op::Unreserve {
                resources: c.resources,
            });
            Some(c.agent_id)
        }
        Some(call::Type::CreateVolumes) => {
            let c = call
                .create_volumes
                .ok_or_else(|| missing("create_volumes"))?;
            operation.r#type = Some(op::Type::Create as i32);
            operation.create = Some(op::Create { volumes: c.volumes });
            Some(c.agent_id)
        }
        Some(call::Type::DestroyVolumes) => {
            let c = call
                .destroy_volumes
                .ok_or_else(|| missing("destroy_volumes"))?;
            operation.r#type = Some(op::Type::Destroy as i32);
            operation.destroy = Some(op::Destroy { volumes: c.volumes });
            Some(c.agent_id)
        }
        Some(call::Type::GrowVolume) => {
            let c = call.grow_volume.ok_or_else(|| missing("grow_volume"))?;
            operation.r#type = Some(op::Type::GrowVolume as i32);
            operation.grow_volume = Some(op::GrowVolume {
                volume: c.volume,
                addition: c.addition,
            });
            c.agent_id
        }
        Some(call::Type::ShrinkVolume) => {
            let c = call.shrink_volume.ok_or_else(|| missing("shrink_volume"))?;
            operation.r#type = Some(op::Type::ShrinkVolume as i32);
            operation.shrink_volume = Some(op::ShrinkVolume {
                volume: c.volume,
                subtract: c.subtract,
            });
            c.agent_id
        }
        _ => None,
    };
    let agent_id = agent_id.ok_or_else(|| {
        HttpError::bad_request(
            "Failed to validate master::Call: Expecting 'agent_id' to be present: volumes from resource providers are not supported",
        )
    })?;
    Ok((agent_id.value, operation))
}

/// `SUBSCRIBE`: 200 and a RecordIO stream of `master::Event`s.
async fn subscribe(
    app: &AppState,
    accept: ContentType,
    principal: Option<String>,
) -> Result<Response, HttpError> {
    let records = match app
        .master
        .write(move |m, _| m.subscribe_operator_as(accept, principal))
        .await
    {
        Some(Ok(records)) => records,
        Some(Err(OperatorSubscribeError::TooManySubscribers)) => {
            return Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Maximum number of subscribers reached",
            ))
        }
        None => {
            return Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Master is shutting down",
            ))
        }
    };
    let heartbeat = Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    };
    let body = stream::record_stream(records, encode_operator_event(&heartbeat, accept), ());
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, accept.as_str())],
        Body::from_stream(body),
    )
        .into_response())
}

fn encode(response: &MasterResponse, accept: ContentType) -> Response {
    let body = match accept {
        ContentType::Json => mesos_proto::json::to_string(response).into_bytes(),
        ContentType::Protobuf => prost::Message::encode_to_vec(response),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, accept.as_str())],
        body,
    )
        .into_response()
}

fn flags_proto(flags: &Flags) -> Vec<v1::Flag> {
    flags
        .to_map()
        .into_iter()
        .map(|(name, value)| v1::Flag {
            name,
            value: Some(value),
        })
        .collect()
}

fn version_info() -> v1::VersionInfo {
    v1::VersionInfo {
        version: mesos_common::MESOS_VERSION.to_string(),
        build_user: Some("mesos-rs".into()),
        ..Default::default()
    }
}

/// Tears `framework_id` down if `principal` may (teardown_frameworks on
/// the framework's principal); `Ok(false)` when there is no such
/// framework.
fn teardown_as(
    m: &mut Master,
    framework_id: &str,
    principal: Option<&str>,
    now: std::time::Instant,
) -> Result<bool, Denied> {
    let Some(framework) = m.frameworks.get(framework_id) else {
        return Ok(false);
    };
    let object = match framework.info.principal.as_deref() {
        Some(p) => mesos_acls::Object::Value(p),
        None => mesos_acls::Object::Any,
    };
    // A framework known only from agents' reports has an owner those
    // agents named; until its scheduler proves it by resubscribing, that
    // owner may view it but not tear it down.
    let owner = match framework.recovered {
        true => None,
        false => framework.principal.as_deref(),
    };
    m.config.authz.check_owned(
        mesos_acls::Action::TeardownFrameworks,
        principal,
        object,
        owner,
    )?;
    m.remove_framework(framework_id, now);
    Ok(true)
}

/// Drops what `viewer` may not see from a GET_* response.
fn filter_response(m: &Master, response: &mut MasterResponse, viewer: &mut Viewer) {
    match response.get_state.as_mut() {
        Some(state) => m.filter_views(
            state.get_frameworks.as_mut(),
            state.get_tasks.as_mut(),
            state.get_executors.as_mut(),
            viewer,
        ),
        None => m.filter_views(
            response.get_frameworks.as_mut(),
            response.get_tasks.as_mut(),
            response.get_executors.as_mut(),
            viewer,
        ),
    }
}

fn read_call(m: &Master, kind: call::Type, viewer: &mut Viewer) -> Option<MasterResponse> {
    let mut response = read_call_unfiltered(m, kind)?;
    filter_response(m, &mut response, viewer);
    Some(response)
}

fn read_call_unfiltered(m: &Master, kind: call::Type) -> Option<MasterResponse> {
    let mut response = MasterResponse::default();
    match kind {
        call::Type::GetMetrics => {
            let metrics = super::state::metrics_json(m);
            let list = metrics
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(name, value)| v1::Metric {
                            name: name.clone(),
                            value: value.as_f64(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            response.r#type = Some(response::Type::GetMetrics as i32);
            response.get_metrics = Some(response::GetMetrics { metrics: list });
        }
        call::Type::GetState => {
            response.r#type = Some(response::Type::GetState as i32);
            response.get_state = Some(m.get_state());
        }
        call::Type::GetAgents => {
            response.r#type = Some(response::Type::GetAgents as i32);
            response.get_agents = Some(m.get_agents());
        }
        call::Type::GetFrameworks => {
            response.r#type = Some(response::Type::GetFrameworks as i32);
            response.get_frameworks = Some(m.get_frameworks());
        }
        call::Type::GetExecutors => {
            response.r#type = Some(response::Type::GetExecutors as i32);
            response.get_executors = Some(m.get_executors());
        }
        call::Type::GetTasks => {
            response.r#type = Some(response::Type::GetTasks as i32);
            response.get_tasks = Some(m.get_tasks());
        }
        call::Type::GetRoles => {
            let roles = super::state::roles_json(m);
            let list = roles["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| v1::Role {
                            name: r["name"].as_str().unwrap_or_default().to_string(),
                            weight: r["weight"].as_f64().unwrap_or(1.0),
                            frameworks: r["frameworks"]
                                .as_array()
                                .map(|f| {
                                    f.iter()
                                        .filter_map(|id| id.as_str())
                                        .map(|id| v1::FrameworkId {
                                            value: id.to_string(),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                            ..Default::default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            response.r#type = Some(response::Type::GetRoles as i32);
            response.get_roles = Some(response::GetRoles { roles: list });
        }
        call::Type::GetMaster => {
            response.r#type = Some(response::Type::GetMaster as i32);
            response.get_master = Some(response::GetMaster {
                master_info: Some(m.info.clone()),
                start_time: Some(m.start_time),
                elected_time: Some(m.start_time),
            });
        }
        _ => return None,
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_call_without_its_body_or_agent_is_a_400_naming_what_is_missing() {
        for (kind, field) in [
            (call::Type::ReserveResources, "reserve_resources"),
            (call::Type::UnreserveResources, "unreserve_resources"),
            (call::Type::CreateVolumes, "create_volumes"),
            (call::Type::DestroyVolumes, "destroy_volumes"),
            (call::Type::GrowVolume, "grow_volume"),
            (call::Type::ShrinkVolume, "shrink_volume"),
        ] {
            let call = Call {
                r#type: Some(kind as i32),
                ..Default::default()
            };
            let err = operation_call(call).expect_err("no body");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(field), "{kind:?}: {}", err.message);
        }
        let grow = Call {
            r#type: Some(call::Type::GrowVolume as i32),
            grow_volume: Some(call::GrowVolume::default()),
            ..Default::default()
        };
        let err = operation_call(grow).expect_err("no agent id");
        assert!(err.message.contains("'agent_id'"), "{}", err.message);
    }
}
