//! `POST /api/v1/scheduler`: decoding, Mesos's status codes in Mesos's
//! order, and the SUBSCRIBE event stream with heartbeats.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};
use mesos_common::http::{decode_body, negotiate, request_content_type, ContentType, HttpError};
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use tokio::sync::{mpsc, oneshot};

use super::AppState;
use crate::actor::{Command, MasterHandle};
use crate::authn::Principal;
use crate::core::framework::encode_event;
use crate::core::scheduler::{validate_call, CallReply};

/// The handler.
pub async fn handle(
    State(app): State<AppState>,
    Principal(principal): Principal,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match scheduler(app, principal, method, headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn scheduler(
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
    let mut call: Call = decode_body(content_type, &body)?;
    validate_call(&call)
        .and_then(|()| adopt_principal(&mut call, principal.as_deref()))
        .map_err(|e| HttpError::bad_request(format!("Failed to validate scheduler::Call: {e}")))?;
    let stream_id = headers
        .get("mesos-stream-id")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    if call.r#type == Some(call::Type::Subscribe as i32) {
        let Some(accept) = negotiate(&headers) else {
            return Err(HttpError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow 'application/json' or 'application/x-protobuf'",
            ));
        };
        if stream_id.is_some() {
            return Err(HttpError::bad_request(
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            ));
        }
        let (tx, rx) = oneshot::channel();
        app.master.send(Command::Subscribe {
            call,
            content_type: accept,
            principal: principal.clone(),
            reply: tx,
        });
        let subscription = rx.await.map_err(|_| unavailable())?;
        let stream = event_stream(
            subscription.records,
            accept,
            app.master.clone(),
            subscription.framework_id,
            subscription.stream_id.clone(),
        );
        return Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, accept.as_str().to_string()),
                (
                    header::HeaderName::from_static("mesos-stream-id"),
                    subscription.stream_id,
                ),
            ],
            Body::from_stream(stream),
        )
            .into_response());
    }
    let (tx, rx) = oneshot::channel();
    app.master.send(Command::Call {
        call,
        stream_id,
        principal,
        reply: tx,
    });
    match rx.await.map_err(|_| unavailable())?? {
        CallReply::Accepted => Ok(StatusCode::ACCEPTED.into_response()),
        CallReply::Ok => Ok(StatusCode::OK.into_response()),
    }
}

/// SUBSCRIBE from an authenticated scheduler: `FrameworkInfo.principal`
/// must be the authenticated one, and is set to it when absent (pymesos
/// never sets it; Mesos fills it in the same way).
fn adopt_principal(call: &mut Call, principal: Option<&str>) -> Result<(), String> {
    let (Some(principal), Some(subscribe)) = (principal, call.subscribe.as_mut()) else {
        return Ok(());
    };
    let info = &mut subscribe.framework_info;
    match info.principal.as_deref() {
        Some(claimed) if claimed != principal => Err(format!(
            "Authenticated principal '{principal}' does not match principal '{claimed}' set in `FrameworkInfo`"
        )),
        Some(_) => Ok(()),
        None => {
            info.principal = Some(principal.to_string());
            Ok(())
        }
    }
}

fn unavailable() -> HttpError {
    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down")
}

/// Tells the master when the HTTP response is dropped (client gone).
struct CloseGuard {
    master: MasterHandle,
    framework_id: Option<String>,
    stream_id: String,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if let Some(framework_id) = self.framework_id.take() {
            self.master.send(Command::StreamClosed {
                framework_id,
                stream_id: std::mem::take(&mut self.stream_id),
            });
        }
    }
}

/// The response body: records from the master, plus a HEARTBEAT every 15 s
/// (the first one is queued by the master right after SUBSCRIBED). Ends when
/// the master drops the sender; telling the master when the client goes away.
fn event_stream(
    records: mpsc::UnboundedReceiver<Bytes>,
    content_type: ContentType,
    master: MasterHandle,
    framework_id: Option<String>,
    stream_id: String,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let heartbeat = Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    };
    super::stream::record_stream(
        records,
        encode_event(&heartbeat, content_type),
        CloseGuard {
            master,
            framework_id,
            stream_id,
        },
    )
}
