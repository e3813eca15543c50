//! The executor's HTTP side: the SUBSCRIBE stream and an ordered queue of
//! calls (UPDATE, MESSAGE) to the agent's `/api/v1/executor`, over
//! `mesos_common::net` connectors so TLS can plug in later. Every call
//! carries `Authorization: Bearer <token>` when the agent gave the executor
//! a token.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};

use mesos_common::net::{SharedConnector, TcpConnector};
use mesos_proto::v1::executor as exec;
use tokio::sync::mpsc;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The executor's authentication token (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`).
/// Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection.
    #[error("cannot connect to the agent at {0}: {1}")]
    Connect(String, String),
    /// HTTP-level failure.
    #[error("request to the agent failed: {0}")]
    Http(String),
    /// The agent answered with an error status.
    #[error("the agent answered {status}: {body}")]
    Status {
        /// Status code.
        status: StatusCode,
        /// Body text.
        body: String,
    },
}

static CONNECTOR: OnceLock<SharedConnector> = OnceLock::new();

/// Talks to the agent over TLS (`LIBPROCESS_SSL_*` the agent passed on).
/// Call once, before the first call to the agent.
pub fn use_tls(tls: Arc<mesos_common::tls::Tls>) {
    let _ = CONNECTOR.set(mesos_common::net::connector(Some(tls)));
}

async fn connect(endpoint: &str) -> Result<Sender, ClientError> {
    let stream = CONNECTOR
        .get_or_init(|| Arc::new(TcpConnector))
        .connect(endpoint.to_string())
        .await
        .map_err(|e| ClientError::Connect(endpoint.to_string(), e.to_string()))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Connect(endpoint.to_string(), e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(
    endpoint: &str,
    token: Option<&Token>,
    call: &exec::Call,
) -> Result<http::Request<Full<Bytes>>, ClientError> {
    let body = mesos_proto::json::to_string(call);
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/executor")
        .header(header::HOST, endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json");
    if let Some(Token(token)) = token {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::Http(
                "MESOS_EXECUTOR_AUTHENTICATION_TOKEN is not a valid header value".into(),
            )
        })?;
        value.set_sensitive(true);
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ClientError::Http(e.to_string()))
}

async fn error_status(response: http::Response<Incoming>) -> ClientError {
    let status = response.status();
    let body =
        match tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await {
            Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
            _ => String::new(),
        };
    ClientError::Status { status, body }
}

/// POSTs SUBSCRIBE and returns the event stream's body.
pub async fn subscribe(
    endpoint: &str,
    token: Option<&Token>,
    call: &exec::Call,
) -> Result<Incoming, ClientError> {
    let mut sender = connect(endpoint).await?;
    let response = sender
        .send_request(request(endpoint, token, call)?)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(error_status(response).await);
    }
    Ok(response.into_body())
}

/// Sends calls one at a time, in order, over a kept-alive connection. A
/// call that cannot be delivered is dropped: updates stay unacknowledged
/// and are resent with the next SUBSCRIBE.
pub fn spawn_call_sender(
    endpoint: String,
    token: Option<Token>,
) -> mpsc::UnboundedSender<exec::Call> {
    let (tx, mut rx) = mpsc::unbounded_channel::<exec::Call>();
    tokio::spawn(async move {
        let mut sender: Option<Sender> = None;
        while let Some(call) = rx.recv().await {
            for attempt in 0..2 {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    sender = connect(&endpoint).await.ok();
                }
                let Some(s) = sender.as_mut() else {
                    tracing::warn!("cannot reach the agent; the call is resent on re-subscription");
                    break;
                };
                if s.ready().await.is_err() {
                    sender = None;
                    continue;
                }
                let Ok(req) = request(&endpoint, token.as_ref(), &call) else {
                    break;
                };
                match s.send_request(req).await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.into_body().collect().await;
                        break;
                    }
                    Ok(response) => {
                        let err = error_status(response).await;
                        tracing::warn!("call refused: {err}");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(attempt, "call failed: {e}");
                        sender = None;
                    }
                }
            }
        }
    });
    tx
}
