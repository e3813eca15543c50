//! The networking seam: every listener and every outbound connection of the
//! system goes through [`serve`] and [`Connector`], so TLS and the
//! connection limits ([`crate::connections`]) plug in here without touching
//! the HTTP routers or the message transport.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::connections::{Activity, Admission, BodyGuard, Limits, Refusal, RequestGuard, Watched};
use crate::tls::{PeerCertificate, Tls};

/// A bidirectional byte stream (TCP, or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed stream returned by connectors.
pub type BoxStream = Pin<Box<dyn Stream>>;

/// Opens outbound connections to `host:port`.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `address` (`host:port`).
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// How long an outbound TCP connect may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Plain TCP with `TCP_NODELAY` (messages are small and latency-bound).
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move {
            // A peer that never answers must not pin the sender forever.
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {address} timed out"),
                    )
                })??;
            stream.set_nodelay(true)?;
            Ok(Box::pin(stream) as BoxStream)
        })
    }
}

/// A shared connector.
pub type SharedConnector = Arc<dyn Connector>;

/// The address a request arrived from, inserted into every request's
/// extensions by [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Binds a listener on `ip:port` with the longest accept queue the kernel
/// allows (`net.core.somaxconn`; tokio's default is 1024): under a flood of
/// connections a full queue makes the kernel drop or reset everyone's,
/// before [`serve_tls`] can refuse the flood and keep serving the rest.
pub fn bind_listener(ip: std::net::IpAddr, port: u16) -> io::Result<TcpListener> {
    let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(4096)
        .clamp(128, 65_535);
    let socket = match ip {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(ip, port))?;
    socket.listen(backlog)
}

/// Serves `app` on `listener` until the task is dropped: HTTP/1.1 with
/// keep-alive, each connection on its own task, under the default
/// [`Limits`]. Returns only on a fatal accept error.
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    serve_tls(listener, app, None, Limits::default()).await
}

/// As [`serve`], over TLS when `tls` is given: each connection's first
/// bytes decide (libprocess's test); a plaintext peer is served only with
/// `LIBPROCESS_SSL_SUPPORT_DOWNGRADE`, and refused (and logged with its
/// address) otherwise. A verified client certificate is put into the
/// request extensions as [`PeerCertificate`]. `limits` bound how many
/// connections are held and for how long (see [`crate::connections`]).
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    limits: Limits,
) -> io::Result<()> {
    let admission = Admission::new(limits);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let local = stream.local_addr().map_or(peer.ip(), |a| a.ip());
        let ticket = match admission.admit(peer.ip(), local) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                refuse_busy(stream, &refusal, tls.is_some());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, None, app, limits).await,
                Some(tls) => accept_tls(stream, peer, &tls, app, limits).await,
            }
            drop(ticket);
        });
    }
}

/// Closes a connection over the limits at once. A plaintext client is told
/// why (best effort, without waiting: a full socket buffer means it gets
/// only the close); a TLS client cannot read plaintext, so it gets the
/// close alone. The refusal is logged by [`Admission::admit`].
fn refuse_busy(stream: TcpStream, refusal: &Refusal, tls: bool) {
    if !tls {
        let body = format!("{refusal}\n");
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(response.as_bytes());
    }
    drop(stream);
}

/// How long a new connection may take to send its first bytes and finish
/// the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_tls(stream: TcpStream, peer: SocketAddr, tls: &Tls, app: Router, limits: Limits) {
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, sniff(&stream)).await {
        Ok(Ok(first)) => first,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "connection failed before its first bytes: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "connection sent nothing; closing");
            return;
        }
    };
    if first.is_empty() {
        return;
    }
    if !crate::tls::looks_like_tls(&first) {
        if tls.settings().support_downgrade {
            tracing::debug!(%peer, "plaintext connection accepted (LIBPROCESS_SSL_SUPPORT_DOWNGRADE)");
            serve_connection(stream, peer, None, app, limits).await;
        } else {
            tracing::warn!(%peer, "refused a plaintext (non-TLS) connection: this process requires TLS (LIBPROCESS_SSL_ENABLED=true, LIBPROCESS_SSL_SUPPORT_DOWNGRADE=false)");
            refuse_plaintext(stream, &first).await;
        }
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate::from_der(c.clone().into_owned()));
            serve_connection(stream, peer, certificate, app, limits).await;
        }
        Ok(Err(e)) => tracing::warn!(%peer, "refused a TLS connection: handshake failed: {e}"),
        Err(_) => tracing::warn!(%peer, "refused a TLS connection: handshake timed out"),
    }
}

/// Peeks at up to six first bytes (fewer if the peer sends fewer and
/// pauses); empty when the peer closed.
async fn sniff(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 6];
    let mut n = stream.peek(&mut buf).await?;
    for _ in 0..20 {
        if n == 0 || n >= buf.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        n = stream.peek(&mut buf).await?;
    }
    Ok(buf[..n].to_vec())
}

/// Tells an HTTP client why it is refused, then closes.
async fn refuse_plaintext(mut stream: TcpStream, first: &[u8]) {
    use tokio::io::AsyncWriteExt;
    if first.first().is_some_and(u8::is_ascii_uppercase) {
        let body = "This server requires TLS: use https://\n";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            stream.write_all(response.as_bytes()),
        )
        .await;
        let _ = stream.shutdown().await;
    }
}

/// Serves one connection until it ends or its watchdog finds it over the
/// header read, body read or idle timeout (a request whose body has
/// arrived is never cut).
async fn serve_connection<S: Stream>(
    stream: S,
    peer: SocketAddr,
    certificate: Option<PeerCertificate>,
    app: Router,
    limits: Limits,
) {
    use futures::FutureExt;
    let activity = Activity::new();
    let requests = activity.clone();
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            use hyper::body::Body as _;
            let guard = requests.request_started();
            request.extensions_mut().insert(PeerAddr(peer));
            if let Some(certificate) = &certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            let request = if request.body().is_end_stream() {
                request.map(axum::body::Body::new)
            } else {
                let arriving = requests.body_started();
                request.map(|body| {
                    axum::body::Body::new(Arriving {
                        body,
                        guard: arriving,
                    })
                })
            };
            app.clone().oneshot(request).map(move |response| {
                response.map(|response| {
                    response.map(|body| InProgress {
                        body,
                        _guard: guard,
                    })
                })
            })
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Answers to pipelined requests (libprocess messages from a busy
        // peer) go out in one write.
        .pipeline_flush(true)
        .serve_connection(
            TokioIo::new(Watched::new(stream, activity.clone())),
            service,
        )
        .with_upgrades();
    tokio::select! {
        ended = connection => {
            if let Err(e) = ended {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        why = activity.expired(limits) => {
            tracing::debug!(%peer, ?why, "closing connection");
        }
    }
}

/// A request body that tells the watchdog how it arrives, so one that
/// stalls is cut like a slow head.
struct Arriving {
    body: hyper::body::Incoming,
    guard: BodyGuard,
}

impl hyper::body::Body for Arriving {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(_))) => {
                self.guard.progressed();
                if self.body.is_end_stream() {
                    self.guard.finished();
                }
            }
            std::task::Poll::Ready(_) => self.guard.finished(),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its request counted as in progress until
/// hyper has sent it all (or dropped it).
struct InProgress {
    body: axum::body::Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for InProgress {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// TLS over TCP with the process's client config (reloaded configs apply
/// to new connections). With `LIBPROCESS_SSL_SUPPORT_DOWNGRADE` a failed
/// handshake is retried in plaintext, as libprocess does.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    source: ClientSource,
}

#[derive(Debug, Clone)]
enum ClientSource {
    Live(Arc<Tls>),
    Fixed(Arc<rustls::ClientConfig>),
}

impl TlsConnector {
    /// A connector using `tls` (and its reloads).
    pub fn new(tls: Arc<Tls>) -> Self {
        TlsConnector {
            source: ClientSource::Live(tls),
        }
    }

    /// A connector with a fixed rustls client config (no downgrade).
    pub fn with_client_config(config: Arc<rustls::ClientConfig>) -> Self {
        TlsConnector {
            source: ClientSource::Fixed(config),
        }
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Connector for TlsConnector {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        let (config, downgrade) = match &self.source {
            ClientSource::Live(tls) => (tls.client_config(), tls.settings().support_downgrade),
            ClientSource::Fixed(config) => (config.clone(), false),
        };
        Box::pin(async move {
            let name = rustls::pki_types::ServerName::try_from(host_of(&address).to_string())
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{address}: {e}"))
                })?;
            let stream = TcpConnector.connect(address.clone()).await?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let handshake =
                tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await;
            let handshake = handshake.unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            });
            match handshake {
                Ok(stream) => Ok(Box::pin(stream) as BoxStream),
                Err(e) if downgrade => {
                    tracing::warn!(peer = %address, "TLS handshake failed ({e}); retrying in plaintext (LIBPROCESS_SSL_SUPPORT_DOWNGRADE)");
                    TcpConnector.connect(address).await
                }
                Err(e) => {
                    tracing::warn!(peer = %address, "TLS handshake failed: {e}");
                    Err(io::Error::new(
                        e.kind(),
                        format!("TLS handshake with {address}: {e}"),
                    ))
                }
            }
        })
    }
}

/// The connector for a process: TLS when `tls` is given, else plain TCP.
pub fn connector(tls: Option<Arc<Tls>>) -> SharedConnector {
    match tls {
        Some(tls) => Arc::new(TlsConnector::new(tls)),
        None => Arc::new(TcpConnector),
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE: back off, do not die
        || e.raw_os_error() == Some(23)
}
