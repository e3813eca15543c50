//! `POST /api/v1/executor`: authenticates the executor's token (realm
//! `mesos-agent-executor`), decodes and validates executor calls with the
//! same content-type, accept and error rules as the master's scheduler API,
//! checks the token is for the executor the call names, hands the call to
//! the agent task (which checks the token's container), and turns a
//! subscription into a chunked RecordIO event stream.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use mesos_common::http::{negotiate, request_content_type, ContentType, HttpError};
use mesos_common::net::PeerAddr;
use mesos_proto::v1;
use mesos_proto::v1::executor as exec;
use prost::Message as _;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::agent::{AgentHandle, ExecutorReply};
use crate::auth::HttpAuth;

/// What the executor API handler needs.
#[derive(Clone, Debug)]
pub struct ExecutorApi {
    /// The agent task.
    pub agent: AgentHandle,
    /// The authenticators (executor tokens).
    pub auth: HttpAuth,
}

/// Checks what Mesos's `validation::executor::call::validate` checks.
pub fn validate_call(call: &exec::Call) -> Result<(), String> {
    match call.r#type() {
        exec::call::Type::Unknown => Err("Expecting 'type' to be present".into()),
        exec::call::Type::Subscribe | exec::call::Type::Heartbeat => Ok(()),
        exec::call::Type::Message => match &call.message {
            Some(_) => Ok(()),
            None => Err("Expecting 'message' to be present".into()),
        },
        exec::call::Type::Update => {
            let update = call
                .update
                .as_ref()
                .ok_or("Expecting 'update' to be present")?;
            let status = &update.status;
            let uuid = status
                .uuid
                .as_ref()
                .ok_or("Expecting 'uuid' to be present")?;
            if uuid.len() != 16 {
                return Err(format!(
                    "Invalid UUID: expected 16 bytes, got {}",
                    uuid.len()
                ));
            }
            if status.state == v1::TaskState::TaskStaging as i32 {
                return Err("Received TASK_STAGING from executor which is not allowed".into());
            }
            if let Some(executor_id) = &status.executor_id {
                if executor_id.value != call.executor_id.value {
                    return Err(format!(
                        "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}",
                        call.executor_id.value, executor_id.value
                    ));
                }
            }
            if let Some(source) = status.source {
                if source != v1::task_status::Source::Executor as i32 {
                    return Err("Received Call from executor with invalid source".into());
                }
            }
            Ok(())
        }
    }
}

fn decode(content_type: ContentType, body: &[u8]) -> Result<exec::Call, HttpError> {
    mesos_common::http::decode_body(content_type, body)
}

fn encode_event(content_type: ContentType, event: &exec::Event) -> Bytes {
    let record = match content_type {
        ContentType::Json => mesos_proto::json::to_string(event).into_bytes(),
        ContentType::Protobuf => event.encode_to_vec(),
    };
    mesos_proto::recordio::encode(&record)
}

/// The handler for `/api/v1/executor`.
pub async fn executor_api(
    State(api): State<ExecutorApi>,
    peer: Option<Extension<PeerAddr>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(PeerAddr(addr))| addr);
    match handle(api, peer, method, headers, body).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn handle(
    api: ExecutorApi,
    peer: Option<std::net::SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    // Authentication comes first, as for every Mesos realm.
    let claims = api
        .auth
        .check_executor(&headers, peer)
        .map_err(IntoResponse::into_response)?;
    if method != Method::POST {
        return Err(HttpError::method_not_allowed("POST").into_response());
    }
    let content_type = request_content_type(&headers).map_err(IntoResponse::into_response)?;
    let call = decode(content_type, &body).map_err(IntoResponse::into_response)?;
    if let Some(claims) = &claims {
        api.auth
            .authorize_executor(
                claims,
                &call.framework_id.value,
                &call.executor_id.value,
                call.r#type() == exec::call::Type::Subscribe,
                peer,
            )
            .map_err(IntoResponse::into_response)?;
    }
    if call.r#type() == exec::call::Type::Heartbeat {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    validate_call(&call).map_err(|e| {
        HttpError::bad_request(format!("Failed to validate Executor::Call: {e}")).into_response()
    })?;
    let accept = if call.r#type() == exec::call::Type::Subscribe {
        negotiate(&headers).ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow application/json or application/x-protobuf",
            )
            .into_response()
        })?
    } else {
        ContentType::Json
    };
    let container = claims.map(|c| c.cid);
    match api.agent.executor_call(call, accept, container).await {
        ExecutorReply::Accepted => Ok(StatusCode::ACCEPTED.into_response()),
        ExecutorReply::Error(e) => Err(e.into_response()),
        ExecutorReply::Subscribed(rx, guard) => {
            let stream = UnboundedReceiverStream::new(rx).map(move |event| {
                // The guard lives as long as the response body.
                let _ = &guard;
                Ok::<_, std::convert::Infallible>(encode_event(accept, &event))
            });
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(accept.as_str()),
            );
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(uuid: Option<Vec<u8>>, state: v1::TaskState) -> exec::Call {
        exec::Call {
            executor_id: v1::ExecutorId { value: "e".into() },
            framework_id: v1::FrameworkId { value: "f".into() },
            r#type: Some(exec::call::Type::Update as i32),
            update: Some(exec::call::Update {
                status: v1::TaskStatus {
                    task_id: v1::TaskId { value: "t".into() },
                    state: state as i32,
                    uuid: uuid.map(Bytes::from),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    #[test]
    fn updates_need_a_16_byte_uuid_and_a_real_state() {
        assert!(validate_call(&update(Some(vec![1; 16]), v1::TaskState::TaskRunning)).is_ok());
        assert!(validate_call(&update(None, v1::TaskState::TaskRunning)).is_err());
        assert!(validate_call(&update(Some(vec![1; 3]), v1::TaskState::TaskRunning)).is_err());
        assert!(validate_call(&update(Some(vec![1; 16]), v1::TaskState::TaskStaging)).is_err());
        let mut typeless = update(Some(vec![1; 16]), v1::TaskState::TaskRunning);
        typeless.r#type = None;
        assert!(validate_call(&typeless).is_err());
    }

    #[test]
    fn pymesos_json_calls_decode() {
        let body = br#"{"type":"UPDATE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAAAAAAAAAAAAAAAAAAAAA==","timestamp":1700000000}}}"#;
        let call = decode(ContentType::Json, body).expect("decodes");
        assert!(validate_call(&call).is_ok());
        let err =
            decode(ContentType::Json, br#"{"type":"SUBSCRIBE"}"#).expect_err("ids are required");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}
