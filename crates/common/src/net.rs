//! The networking seam: every listener and every outbound connection of the
//! system goes through [`serve`] and [`Connector`], so TLS plugs in here
//! without touching the HTTP routers or the message transport.

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

/// A bidirectional byte stream (TCP today, TLS over TCP later).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed stream returned by connectors.
pub type BoxStream = Pin<Box<dyn Stream>>;

/// Opens outbound connections to `host:port`.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `address` (`host:port`).
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// Plain TCP with `TCP_NODELAY` (messages are small and latency-bound).
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(address).await?;
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

/// Serves `app` on `listener` until the task is dropped: HTTP/1.1 with
/// keep-alive, each connection on its own task. Returns only on a fatal
/// accept error.
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
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
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    app.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
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
