//! libprocess-style messages over HTTP/1.1: a message is
//! `POST /<to-id>/<message-name>` with `Libprocess-From: <from-upid>` and the
//! serialized protobuf as body, answered `202 Accepted` by the receiver and
//! ignored by the sender. Replies travel on connections opened by the replier.
//!
//! Outbound: one persistent connection and one ordered queue per peer
//! address, so messages to a peer arrive in the order they were sent.
//! Requests are pipelined (queued messages are written together, up to
//! `WINDOW` unanswered), so a busy peer costs a write per batch rather
//! than a round trip per message.
//! Inbound: [`MessageLayer`] recognises messages among ordinary HTTP requests
//! and hands them to a [`MessageSink`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
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
    /// Times written to a connection.
    attempts: u8,
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
            attempts: 0,
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
    /// like libprocess's `link()`/`exited()`. The connection asks for
    /// `/health` every [`LINK_KEEPALIVE`], so the peer's idle timeout
    /// (`--http_idle_timeout`) never mistakes it for an abandoned one.
    pub async fn link(&self, upid: &Upid) {
        use tokio::io::AsyncWriteExt;
        let address = upid.address();
        let Ok(mut stream) = self.inner.connector.connect(address.clone()).await else {
            return;
        };
        let probe = format!("GET /health HTTP/1.1\r\nhost: {address}\r\n\r\n");
        let mut buf = [0u8; 512];
        // The first probe goes out at once: a listener wants a request head
        // soon after accepting (`--http_header_read_timeout`).
        let mut keepalive = tokio::time::interval(LINK_KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    // Answers to the probes; only the close matters.
                    Ok(_) => continue,
                },
                _ = keepalive.tick() => {
                    if stream.write_all(probe.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// How often a link ([`Transport::link`]) sends a request on its otherwise
/// silent connection.
pub const LINK_KEEPALIVE: Duration = Duration::from_secs(15);

/// Messages written to one connection and not yet answered, at most.
/// Small enough that the peer can always write every pending answer
/// (~100 bytes each) into its socket buffer while we are still writing,
/// so writing never waits on a peer that waits on us.
const WINDOW: usize = 256;

/// Requests joined into one write, at most (bytes; a larger message goes
/// alone).
const MAX_BATCH: usize = 256 * 1024;

/// One open connection to a peer. Requests are pipelined: written back to
/// back without waiting for the previous answer, as HTTP/1.1 allows; a
/// reader task matches the answers to the messages in order.
struct PeerConnection {
    writer: tokio::io::WriteHalf<crate::net::BoxStream>,
    /// Written and not yet answered, oldest first.
    unanswered: Arc<Mutex<VecDeque<Outgoing>>>,
    /// One permit per message that may still be written.
    window: Arc<tokio::sync::Semaphore>,
    /// Becomes true when the reader stops (peer closed, error, garbage).
    dead: tokio::sync::watch::Receiver<bool>,
    /// A write failed.
    failed: bool,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl PeerConnection {
    async fn open(connector: &SharedConnector, address: &str) -> Option<Self> {
        let stream = connector.connect(address.to_string()).await.ok()?;
        let (reader, writer) = tokio::io::split(stream);
        let unanswered = Arc::new(Mutex::new(VecDeque::new()));
        let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
        let (dead_tx, dead) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(read_answers(
            reader,
            address.to_string(),
            unanswered.clone(),
            window.clone(),
            dead_tx,
        ));
        Some(Self {
            writer,
            unanswered,
            window,
            dead,
            failed: false,
            reader,
        })
    }

    fn is_dead(&self) -> bool {
        self.failed || *self.dead.borrow()
    }

    fn has_unanswered(&self) -> bool {
        !lock(&self.unanswered).is_empty()
    }
}

/// Gives back what an emptied queue grew beyond a few slots. A queue keeps
/// its capacity after a burst, and an `Outgoing` is ~180 bytes: a peer's
/// queue and its connection's that once held a window's worth (256) would
/// each keep ~45 KB for good, which across a thousand agents was most of
/// the master's memory growth while launching 20,000 tasks. The margin
/// keeps steady traffic, which empties the queues at every batch, from
/// reallocating each time.
fn shrink_if_empty(queue: &mut VecDeque<Outgoing>) {
    const KEEP: usize = 16;
    if queue.is_empty() && queue.capacity() > 4 * KEEP {
        queue.shrink_to(KEEP);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads the peer's answers, one per written message, until the
/// connection ends; then marks it dead and closes the window.
async fn read_answers(
    mut reader: tokio::io::ReadHalf<crate::net::BoxStream>,
    address: String,
    unanswered: Arc<Mutex<VecDeque<Outgoing>>>,
    window: Arc<tokio::sync::Semaphore>,
    dead: tokio::sync::watch::Sender<bool>,
) {
    let mut buf = bytes::BytesMut::with_capacity(4096);
    'read: loop {
        loop {
            match parse_answer(&buf) {
                Ok(Some((status, consumed))) => {
                    let _ = buf.split_to(consumed);
                    if (100..200).contains(&status) {
                        continue; // Informational; the real answer follows.
                    }
                    let answered = {
                        let mut unanswered = lock(&unanswered);
                        let message = unanswered.pop_front();
                        shrink_if_empty(&mut unanswered);
                        message
                    };
                    let Some(message) = answered else {
                        tracing::debug!(peer = %address, "answer to no message; closing");
                        break 'read;
                    };
                    if status != StatusCode::ACCEPTED.as_u16() {
                        tracing::debug!(peer = %address, message = %message.name, status, "message not accepted");
                    }
                    window.add_permits(1);
                }
                Ok(None) if buf.len() > MAX_ANSWER => {
                    tracing::debug!(peer = %address, "answer longer than {MAX_ANSWER} bytes; closing");
                    break 'read;
                }
                Ok(None) => break,
                Err(reason) => {
                    tracing::debug!(peer = %address, "unreadable answer: {reason}");
                    break 'read;
                }
            }
        }
        buf.reserve(4096);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    window.close();
    let _ = dead.send(true);
}

/// The largest answer (head and body) a peer may send to a message: a
/// 202 is ~100 bytes and an error a line of text, so anything near this is
/// a broken or hostile peer, and the connection is closed rather than
/// buffered without end.
pub const MAX_ANSWER: usize = 64 * 1024;

/// One complete answer to a message at the start of `buf` (what a peer
/// wrote back): its status and length, or `None` if more bytes are needed.
/// Bodies are skipped (Content-Length or chunked); an answer whose body runs
/// to the end of the connection, or that is longer than [`MAX_ANSWER`], is
/// an error, since the connection cannot carry the next one.
pub fn parse_answer(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let status = response.code.unwrap_or_default();
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((status, head)));
    }
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| "bad content-length")?;
            length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| "bad content-length")?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    if chunked {
        return Ok(skip_chunks(&buf[head..])?.map(|n| (status, head + n)));
    }
    let Some(length) = length else {
        return Err(format!("answer {status} without a length"));
    };
    if head.saturating_add(length) > MAX_ANSWER {
        return Err(format!("answer {status} of {length} bytes is too long"));
    }
    Ok((buf.len() - head >= length).then_some((status, head + length)))
}

/// Length of a complete chunked body at the start of `buf`, trailers
/// included, or `None` if more bytes are needed.
fn skip_chunks(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|_| "bad chunk size")?;
        if size > MAX_ANSWER {
            return Err(format!("a chunk of {size} bytes is too long"));
        }
        at += eol + 2;
        if size == 0 {
            // Trailers, each ending in CRLF, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

async fn peer_loop(connector: SharedConnector, address: String, mut rx: mpsc::Receiver<Outgoing>) {
    let mut connection: Option<PeerConnection> = None;
    let mut pending: VecDeque<Outgoing> = VecDeque::new();
    loop {
        // Wait for messages, or for a connection that dies with messages
        // still unanswered (they are sent again). The task ends after a
        // long idle period so unused peers cost nothing.
        let mut dead = connection
            .as_ref()
            .filter(|c| c.has_unanswered())
            .map(|c| c.dead.clone());
        let next = tokio::time::timeout(Duration::from_secs(300), async {
            match dead.as_mut() {
                Some(dead) => tokio::select! {
                    message = rx.recv() => Some(message),
                    _ = dead.wait_for(|d| *d) => None,
                },
                None => Some(rx.recv().await),
            }
        })
        .await;
        match next {
            Ok(Some(Some(message))) => pending.push_back(message),
            Ok(Some(None)) => break,
            Ok(None) => {}
            Err(_) if connection.as_ref().is_some_and(|c| c.has_unanswered()) => {}
            Err(_) => break,
        }
        while let Ok(message) = rx.try_recv() {
            pending.push_back(message);
        }
        deliver(&connector, &address, &mut connection, &mut pending).await;
        shrink_if_empty(&mut pending);
    }
}

/// Writes `pending` to the peer, pipelined, reconnecting as needed. A
/// message whose connection fails before it is answered is sent once more
/// on the next connection; when no connection can be opened, what is
/// pending is dropped (as libprocess does) and the next message retries.
async fn deliver(
    connector: &SharedConnector,
    address: &str,
    connection: &mut Option<PeerConnection>,
    pending: &mut VecDeque<Outgoing>,
) {
    loop {
        if connection.as_ref().is_some_and(PeerConnection::is_dead) {
            if let Some(dead) = connection.take() {
                let unanswered = std::mem::take(&mut *lock(&dead.unanswered));
                for message in unanswered.into_iter().rev() {
                    if message.attempts < 2 {
                        pending.push_front(message);
                    } else {
                        tracing::debug!(peer = %address, message = %message.name, "send failed twice; dropping message");
                    }
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        if connection.is_none() {
            *connection = PeerConnection::open(connector, address).await;
        }
        let Some(open) = connection.as_mut() else {
            for message in pending.drain(..) {
                tracing::debug!(peer = %address, message = %message.name, "cannot connect; dropping message");
            }
            return;
        };
        // Room for at least one more message (or the connection died).
        match open.window.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => continue,
        }
        let mut buf = Vec::new();
        let mut taken = 1;
        while let Some(mut message) = pending.pop_front() {
            encode_request(&message, &mut buf);
            message.attempts += 1;
            lock(&open.unanswered).push_back(message);
            if buf.len() >= MAX_BATCH || pending.is_empty() {
                break;
            }
            match open.window.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
            taken += 1;
        }
        use tokio::io::AsyncWriteExt;
        let written = async {
            open.writer.write_all(&buf).await?;
            open.writer.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(peer = %address, messages = taken, "send failed: {e}");
            open.failed = true;
        }
    }
}

/// Appends `message` as an HTTP/1.1 request, byte for byte what hyper's
/// client wrote for it before requests were pipelined.
fn encode_request(message: &Outgoing, out: &mut Vec<u8>) {
    use std::io::Write;
    let from = &message.from;
    let _ = write!(
        out,
        "POST /{}/{} HTTP/1.1\r\nhost: {}\r\nuser-agent: libprocess/{from}\r\nlibprocess-from: {from}\r\nconnection: Keep-Alive\r\n",
        utf8_percent_encode(&message.to.id, PATH_SEGMENT),
        utf8_percent_encode(&message.name, PATH_SEGMENT),
        message.to.address(),
    );
    if !message.body.is_empty() {
        let _ = write!(out, "content-length: {}\r\n", message.body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&message.body);
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
    sink: &S,
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
    // Every request passes here, messages or not: one shared sink, so a
    // request costs a reference count, not a clone of the sink's fields.
    let sink = Arc::new(sink);
    router.layer(axum::middleware::from_fn(move |request: Request, next| {
        let sink = sink.clone();
        async move { message_middleware(&*sink, request, next).await }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
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

    #[test]
    fn an_emptied_queue_gives_back_a_burst_but_steady_queues_keep_theirs() {
        let outgoing = || Outgoing {
            from: Upid::new("master", "127.0.0.1", 5050),
            to: Upid::new("slave(1)", "127.0.0.1", 5051),
            name: "m".into(),
            body: Bytes::new(),
            attempts: 0,
        };
        let mut burst: VecDeque<Outgoing> = (0..WINDOW).map(|_| outgoing()).collect();
        shrink_if_empty(&mut burst);
        assert!(
            burst.capacity() >= WINDOW,
            "not shrunk while holding messages"
        );
        burst.clear();
        shrink_if_empty(&mut burst);
        assert!(burst.capacity() < 64, "kept {} slots", burst.capacity());
        let mut steady: VecDeque<Outgoing> = (0..8).map(|_| outgoing()).collect();
        let capacity = steady.capacity();
        steady.clear();
        shrink_if_empty(&mut steady);
        assert_eq!(steady.capacity(), capacity);
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

    #[test]
    fn answers_are_framed_by_length_or_chunks() {
        let accepted = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(parse_answer(accepted), Ok(Some((202, accepted.len()))));
        assert_eq!(parse_answer(&accepted[..20]), Ok(None));
        let not_found =
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\n404 Not Found.HTTP/1.1";
        assert_eq!(
            parse_answer(not_found),
            Ok(Some((404, not_found.len() - 8)))
        );
        assert_eq!(parse_answer(&not_found[..50]), Ok(None));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Ok(Some((400, chunked.len()))));
        assert_eq!(parse_answer(&chunked[..chunked.len() - 1]), Ok(None));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_answer(b"garbage\r\n\r\n").is_err());
        for bad in [
            &b"HTTP/1.1 202 Accepted\r\ncontent-length: 99999999999999999999\r\n\r\n"[..],
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 70000\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn requests_are_what_hyper_wrote() {
        let message = Outgoing {
            from: Upid::new("master", "127.0.0.1", 5050),
            to: Upid::new("slave(1)", "127.0.0.1", 5051),
            name: "mesos.internal.PingSlaveMessage".into(),
            body: Bytes::from_static(b"\x08\x01"),
            attempts: 0,
        };
        let mut out = Vec::new();
        encode_request(&message, &mut out);
        assert_eq!(
            out,
            b"POST /slave(1)/mesos.internal.PingSlaveMessage HTTP/1.1\r\nhost: 127.0.0.1:5051\r\nuser-agent: libprocess/master@127.0.0.1:5050\r\nlibprocess-from: master@127.0.0.1:5050\r\nconnection: Keep-Alive\r\ncontent-length: 2\r\n\r\n\x08\x01"
        );
    }

    #[tokio::test]
    async fn messages_unanswered_when_the_peer_drops_the_connection_are_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let transport = Transport::new(Arc::new(TcpConnector));
        let from = Upid::new("master", "127.0.0.1", 5050);
        let to = Upid::new("slave(1)", "127.0.0.1", port);
        for i in 0..10u32 {
            let ping = mesos_proto::internal::PingSlaveMessage { connected: i == 0 };
            transport.send(&from, &to, &ping);
        }
        // The first connection reads and closes without answering.
        let (mut first, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 64];
        let _ = first.read(&mut buf).await;
        drop(first);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = with_messages(axum::Router::new(), Collect(tx));
        tokio::spawn(crate::net::serve(listener, app));
        for i in 0..10u32 {
            let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("message in time")
                .expect("message");
            let ping: mesos_proto::internal::PingSlaveMessage = m.decode().expect("decodes");
            assert_eq!(ping.connected, i == 0, "message {i} in order");
        }
    }

    #[tokio::test]
    async fn many_messages_pipeline_through_a_small_window() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = with_messages(axum::Router::new(), Collect(tx));
        tokio::spawn(crate::net::serve(listener, app));
        let transport = Transport::new(Arc::new(TcpConnector));
        let from = Upid::new("master", "127.0.0.1", 5050);
        let to = Upid::new("slave(1)", "127.0.0.1", port);
        let n = 5 * WINDOW as u64;
        for i in 0..n {
            let update = mesos_proto::internal::StatusUpdateAcknowledgementMessage {
                uuid: Bytes::from(i.to_be_bytes().to_vec()),
                ..Default::default()
            };
            transport.send(&from, &to, &update);
        }
        for i in 0..n {
            let m = rx.recv().await.expect("message");
            let ack: mesos_proto::internal::StatusUpdateAcknowledgementMessage =
                prost::Message::decode(m.body).expect("decodes");
            assert_eq!(ack.uuid.as_ref(), i.to_be_bytes());
        }
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
