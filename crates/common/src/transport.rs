//! libprocess-style messages over HTTP/1.1: a message is
//! `POST /<to-id>/<message-name>` with `Libprocess-From: <from-upid>` and the
//! serialized protobuf as body, answered `202 Accepted` by the receiver and
//! ignored by the sender. Replies travel on connections opened by the replier.
//!
//! Outbound: one persistent connection and one ordered queue per peer
//! address, so messages to a peer arrive in the order they were sent.
//! Inbound: [`MessageLayer`] recognises messages among ordinary HTTP requests
//! and hands them to a [`MessageSink`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::net::{PeerAddr, SharedConnector, TcpConnector};
use crate::upid::Upid;

/// Largest message body accepted.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Messages queued for one peer before new ones are dropped.
const PEER_QUEUE: usize = 65_536;

const PATH_SEGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'/').add(b'?').add(b'#').add(b'%');

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sender, from `Libprocess-From` (or the `User-Agent`).
    pub from: Upid,
    /// Receiving process id (first path segment).
    pub to: String,
    /// Fully qualified message name, e.g. `mesos.internal.RegisterSlaveMessage`.
    pub name: String,
    /// Serialized protobuf.
    pub body: Bytes,
    /// The socket address the message came from.
    pub peer: Option<std::net::SocketAddr>,
}

impl Message {
    /// Decodes the body as `M`.
    pub fn decode<M: prost::Message + Default + prost::Name>(
        &self,
    ) -> Result<M, mesos_proto::json::ConvertError> {
        mesos_proto::json::decode_checked(&self.body)
    }
}

/// Sends libprocess messages. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

struct TransportInner {
    connector: SharedConnector,
    peers: Mutex<HashMap<String, mpsc::Sender<Outgoing>>>,
}

struct Outgoing {
    from: Upid,
    to: Upid,
    name: String,
    body: Bytes,
}

impl Default for Transport {
    fn default() -> Self {
        Self::new(Arc::new(TcpConnector))
    }
}

impl Transport {
    /// A transport opening its connections through `connector`.
    pub fn new(connector: SharedConnector) -> Self {
        Self {
            inner: Arc::new(TransportInner {
                connector,
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Queues `message` from `from` to `to`. Delivery is best effort and in
    /// order per peer; a failure drops the message (as libprocess does) and
    /// the next message reconnects.
    pub fn send<M: prost::Message + prost::Name>(&self, from: &Upid, to: &Upid, message: &M) {
        self.send_raw(
            from,
            to,
            M::full_name(),
            Bytes::from(message.encode_to_vec()),
        );
    }

    /// Queues an already-encoded message.
    pub fn send_raw(&self, from: &Upid, to: &Upid, name: String, body: Bytes) {
        let address = to.address();
        let outgoing = Outgoing {
            from: from.clone(),
            to: to.clone(),
            name,
            body,
        };
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        let sender = peers.entry(address.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::spawn(peer_loop(self.inner.connector.clone(), address.clone(), rx));
            tx
        });
        if let Err(e) = sender.try_send(outgoing) {
            match e {
                mpsc::error::TrySendError::Full(m) => {
                    tracing::warn!(peer = %address, message = %m.name, "peer queue full; dropping message");
                }
                mpsc::error::TrySendError::Closed(m) => {
                    // The peer task ended; start a fresh one for this message.
                    let (tx, rx) = mpsc::channel(PEER_QUEUE);
                    tokio::spawn(peer_loop(self.inner.connector.clone(), address.clone(), rx));
                    let _ = tx.try_send(m);
                    *sender = tx;
                }
            }
        }
    }

    /// Resolves when the peer at `upid` goes away: a dedicated connection is
    /// held open and its closing (or failing to open) is the exit signal,
    /// like libprocess's `link()`/`exited()`.
    pub async fn link(&self, upid: &Upid) {
        let Ok(mut stream) = self.inner.connector.connect(upid.address()).await else {
            return;
        };
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }
}

type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn peer_loop(connector: SharedConnector, address: String, mut rx: mpsc::Receiver<Outgoing>) {
    let mut connection: Option<Connection> = None;
    // The task ends after a long idle period so unused peers cost nothing.
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(300), rx.recv()).await {
        for attempt in 0..2 {
            if connection.as_ref().is_none_or(|c| c.is_closed()) {
                connection = connect(&connector, &address).await;
            }
            let Some(sender) = connection.as_mut() else {
                tracing::debug!(peer = %address, message = %message.name, "cannot connect; dropping message");
                break;
            };
            if sender.ready().await.is_err() {
                connection = None;
                continue;
            }
            match sender.send_request(build_request(&message)).await {
                Ok(response) => {
                    if response.status() != StatusCode::ACCEPTED {
                        tracing::debug!(peer = %address, message = %message.name, status = %response.status(), "message not accepted");
                    }
                    // Drain so the connection can be reused.
                    let _ = response.into_body().collect().await;
                    break;
                }
                Err(e) => {
                    tracing::debug!(peer = %address, attempt, "send failed: {e}");
                    connection = None;
                }
            }
        }
    }
}

async fn connect(connector: &SharedConnector, address: &str) -> Option<Connection> {
    let stream = connector.connect(address.to_string()).await.ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

fn build_request(message: &Outgoing) -> http::Request<Full<Bytes>> {
    let path = format!(
        "/{}/{}",
        utf8_percent_encode(&message.to.id, PATH_SEGMENT),
        utf8_percent_encode(&message.name, PATH_SEGMENT)
    );
    let from = message.from.to_string();
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, message.to.address())
        .header(header::USER_AGENT, format!("libprocess/{from}"))
        .header("Libprocess-From", from)
        .header(header::CONNECTION, "Keep-Alive");
    if !message.body.is_empty() {
        builder = builder.header(header::CONTENT_LENGTH, message.body.len());
    }
    builder
        .body(Full::new(message.body.clone()))
        .expect("method, path and headers are valid")
}

/// Receives decoded messages. Returns whether a process with that id exists
/// (false → `404`).
pub trait MessageSink: Clone + Send + Sync + 'static {
    /// Delivers one message.
    fn deliver(&self, message: Message) -> bool;
}

/// Whether a request is a libprocess message: a POST whose `User-Agent`
/// starts with `libprocess/` or that carries `Libprocess-From`.
pub fn is_message(request: &Request) -> bool {
    request.method() == Method::POST
        && (request.headers().contains_key("libprocess-from")
            || request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ua| ua.starts_with("libprocess/")))
}

/// Axum middleware: hands libprocess messages to the sink, passes every
/// other request to the router.
pub async fn message_middleware<S: MessageSink>(
    sink: S,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_message(&request) {
        return next.run(request).await;
    }
    match parse_message(request).await {
        Ok(message) => {
            if sink.deliver(message) {
                StatusCode::ACCEPTED.into_response()
            } else {
                (StatusCode::NOT_FOUND, "404 Not Found.").into_response()
            }
        }
        Err(reason) => {
            tracing::warn!("malformed libprocess message: {reason}");
            (StatusCode::BAD_REQUEST, reason).into_response()
        }
    }
}

async fn parse_message(request: Request) -> Result<Message, String> {
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
    let from_text = request
        .headers()
        .get("libprocess-from")
        .or_else(|| request.headers().get(header::USER_AGENT))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.strip_prefix("libprocess/").unwrap_or(s).to_string())
        .ok_or("missing Libprocess-From")?;
    let from: Upid = from_text
        .parse()
        .map_err(|e| format!("bad Libprocess-From: {e}"))?;
    let path = request.uri().path().to_string();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let to = segments.next().unwrap_or_default();
    let name = segments.next().unwrap_or_default();
    let to = percent_decode_str(to)
        .decode_utf8()
        .map_err(|_| "process id is not UTF-8")?
        .into_owned();
    let name = percent_decode_str(name)
        .decode_utf8()
        .map_err(|_| "message name is not UTF-8")?
        .into_owned();
    if to.is_empty() || name.is_empty() || name.contains('/') || to.contains("..") {
        return Err(format!("malformed message path '{path}'"));
    }
    let body = Limited::new(request.into_body(), MAX_MESSAGE_SIZE)
        .collect()
        .await
        .map_err(|e| format!("cannot read message body: {e}"))?
        .to_bytes();
    Ok(Message {
        from,
        to,
        name,
        body,
        peer,
    })
}

/// Adds the libprocess message handling in front of `router`.
pub fn with_messages<S: MessageSink>(router: axum::Router, sink: S) -> axum::Router {
    router.layer(axum::middleware::from_fn(move |request: Request, next| {
        let sink = sink.clone();
        async move { message_middleware(sink, request, next).await }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::net::TcpListener;

    #[derive(Clone)]
    struct Collect(mpsc::UnboundedSender<Message>);
    impl MessageSink for Collect {
        fn deliver(&self, message: Message) -> bool {
            if message.to != "slave(1)" {
                return false;
            }
            self.0.send(message).is_ok()
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_with_sender_and_name() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = with_messages(axum::Router::new(), Collect(tx));
        tokio::spawn(crate::net::serve(listener, app));

        let transport = Transport::new(Arc::new(TcpConnector));
        let from = Upid::new("master", "127.0.0.1", 5050);
        let to = Upid::new("slave(1)", "127.0.0.1", port);
        for i in 0..100u32 {
            let ping = mesos_proto::internal::PingSlaveMessage {
                connected: i % 2 == 0,
            };
            transport.send(&from, &to, &ping);
        }
        for i in 0..100u32 {
            let m = rx.recv().await.expect("message");
            assert_eq!(m.from, from);
            assert_eq!(m.name, "mesos.internal.PingSlaveMessage");
            let ping: mesos_proto::internal::PingSlaveMessage = m.decode().expect("decodes");
            assert_eq!(ping.connected, i % 2 == 0);
        }
    }

    #[tokio::test]
    async fn unknown_process_is_404_and_bad_sender_is_400() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, _rx) = mpsc::unbounded_channel();
        let app = with_messages(axum::Router::new(), Collect(tx));
        tokio::spawn(crate::net::serve(listener, app));
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let request = |path: &str, from: &str| {
            http::Request::post(path)
                .header("Libprocess-From", from)
                .header(header::HOST, "x")
                .body(Full::new(Bytes::new()))
                .expect("request")
        };
        let r = sender
            .send_request(request(
                "/nobody/mesos.internal.PongSlaveMessage",
                "a@127.0.0.1:1",
            ))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let _ = r.into_body().collect().await;
        let r = sender
            .send_request(request(
                "/slave(1)/mesos.internal.PongSlaveMessage",
                "garbage",
            ))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let _ = r.into_body().collect().await;
        let r = sender
            .send_request(request("/slave(1)", "a@127.0.0.1:1"))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn link_resolves_when_the_peer_goes_away() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(stream);
        });
        let transport = Transport::default();
        let linked = tokio::time::timeout(
            Duration::from_secs(5),
            transport.link(&Upid::new("slave(1)", "127.0.0.1", port)),
        )
        .await;
        assert!(linked.is_ok(), "link should end when the peer closes");
        server.await.expect("server task");
    }
}
