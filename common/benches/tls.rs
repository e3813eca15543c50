//! TLS cost of our listener, each figure beside its raw baseline measured in
//! the same run:
//!
//! 1. Full handshakes/s (no resumption), server-only and mutual TLS: the
//!    listener the master and agent use (`net::serve_tls`: first-byte
//!    sniffing, rustls, hyper, axum) against a raw tokio-rustls accept loop
//!    with the same `ServerConfig`. Each client connection handshakes,
//!    sends `GET /health` with `Connection: close` and reads to the end;
//!    the raw loop answers with a canned response.
//! 2. Event-stream throughput: a RecordIO stream of scheduler-event-sized
//!    frames through `net::serve_tls`, over TLS and over plaintext.
//!
//! Not criterion: the figures are rates under concurrency and the output
//! is the ratio. Run with `cargo bench -p mesos-common --bench tls`
//! (`TLS_BENCH_SECONDS` per variant, default 10, in 10 alternating rounds).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use mesos_common::net;
use mesos_common::tls::certs::{write_file, Authority, LeafSpec};
use mesos_common::tls::{Settings, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONCURRENCY: usize = 16;
const ROUNDS: usize = 10;
const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

struct Pki {
    _dir: tempfile::TempDir,
    server: Arc<Tls>,
    mutual: Arc<Tls>,
    client: Arc<rustls::ClientConfig>,
    client_mutual: Arc<rustls::ClientConfig>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::generate("bench CA").expect("CA");
    let path = |n: &str| dir.path().join(n);
    write_file(&path("ca.pem"), &ca.cert_pem, false).expect("write");
    for role in ["server", "client"] {
        let leaf = ca
            .issue(&LeafSpec::new(role, &["localhost", "127.0.0.1"], 30))
            .expect("leaf");
        write_file(&path(&format!("{role}.pem")), &leaf.cert_pem, false).expect("write");
        write_file(&path(&format!("{role}-key.pem")), &leaf.key_pem, true).expect("write");
    }
    let settings = |role: &str| Settings {
        enabled: true,
        cert_file: Some(path(&format!("{role}.pem"))),
        key_file: Some(path(&format!("{role}-key.pem"))),
        ca_file: Some(path("ca.pem")),
        verify_server_cert: true,
        verify_ipadd: true,
        ..Settings::default()
    };
    let server = Tls::new(settings("server")).expect("server");
    let mutual = Tls::new(Settings {
        require_client_cert: true,
        ..settings("server")
    })
    .expect("mutual server");
    let client_tls = Tls::new(settings("client")).expect("client");
    let mut client_mutual = (*client_tls.client_config()).clone();
    client_mutual.resumption = rustls::client::Resumption::disabled();
    let mut roots = rustls::RootCertStore::empty();
    for c in mesos_common::tls::load_certs("CA", &path("ca.pem")).expect("CA") {
        roots.add(c).expect("root");
    }
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    Pki {
        _dir: dir,
        server,
        mutual,
        client: Arc::new(client),
        client_mutual: Arc::new(client_mutual),
    }
}

async fn raw_accept_loop(listener: TcpListener, config: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tls.read(&mut buf).await;
            let _ = tls.write_all(RESPONSE).await;
            let _ = tls.shutdown().await;
        });
    }
}

async fn one_request(port: u16, config: Arc<rustls::ClientConfig>) -> bool {
    let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    else {
        return false;
    };
    if tls.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    response.starts_with(b"HTTP/1.1 200")
}

/// Completed request/handshakes per second against `port`.
async fn handshake_rate(port: u16, config: Arc<rustls::ClientConfig>, seconds: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (done, failed, stop, config) =
            (done.clone(), failed.clone(), stop.clone(), config.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if one_request(port, config.clone()).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (start_count, start) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no handshake may fail");
    count as f64 / elapsed
}

fn health_app() -> Router {
    Router::new().route("/health", get(|| async { "" }))
}

/// One scheduler-event-sized RecordIO frame (an UPDATE is ~400 bytes of JSON).
fn frame() -> bytes::Bytes {
    let event = format!(
        "{{\"type\":\"UPDATE\",\"update\":{{\"status\":{{\"task_id\":{{\"value\":\"task-0000001\"}},\"state\":\"TASK_RUNNING\",\"agent_id\":{{\"value\":\"5e0e6c0e-6a5c-4a4e-9d1f-0d7e7f3c2b1a-S0\"}},\"source\":\"SOURCE_EXECUTOR\",\"uuid\":\"{}\",\"timestamp\":1700000000.123}}}}}}{}",
        "A".repeat(24),
        " ".repeat(120)
    );
    bytes::Bytes::from(format!("{}\n{}", event.len(), event))
}

const FRAMES: usize = 200_000;

fn stream_app() -> Router {
    Router::new().route(
        "/stream",
        get(|| async {
            let f = frame();
            let chunks = futures::stream::iter(
                (0..FRAMES).map(move |_| Ok::<_, std::convert::Infallible>(f.clone())),
            );
            axum::body::Body::from_stream(chunks)
        }),
    )
}

/// Reads the whole stream: (events/s, MB/s).
async fn stream_rate(port: u16, tls: Option<Arc<rustls::ClientConfig>>) -> (f64, f64) {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = tcp.set_nodelay(true);
    let request = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let start = Instant::now();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    match tls {
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let mut s = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .expect("handshake");
            s.write_all(request).await.expect("write");
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        }
        None => {
            let mut s = tcp;
            s.write_all(request).await.expect("write");
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(
        total > FRAMES * 100,
        "the whole stream arrived ({total} bytes)"
    );
    (FRAMES as f64 / secs, total as f64 / secs / 1e6)
}

async fn bind() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less args; skip
    // the long measurement there.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let seconds: f64 = std::env::var("TLS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let pki = pki();
        for (label, server, client) in [
            ("server-only TLS", &pki.server, &pki.client),
            ("mutual TLS", &pki.mutual, &pki.client_mutual),
        ] {
            let (raw_listener, raw_port) = bind().await;
            tokio::spawn(raw_accept_loop(raw_listener, server.server_config()));
            let (ours_listener, ours_port) = bind().await;
            tokio::spawn(net::serve_tls(ours_listener, health_app(), Some(server.clone()), net_limits()));
            // Many short alternating rounds: a load burst on a shared
            // machine then spoils one round's ratio, not the median.
            let (mut raw, mut ours, mut ratios) = (0.0, 0.0, Vec::new());
            for _ in 0..ROUNDS {
                let r = handshake_rate(raw_port, client.clone(), seconds / ROUNDS as f64).await;
                let o = handshake_rate(ours_port, client.clone(), seconds / ROUNDS as f64).await;
                raw += r / ROUNDS as f64;
                ours += o / ROUNDS as f64;
                ratios.push(o / r);
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "{label:16} handshakes/s: raw rustls accept loop {raw:8.0}, net::serve_tls {ours:8.0}; ratio of means {:.1}%, median round ratio {:.1}%",
                100.0 * ours / raw,
                100.0 * ratios[ratios.len() / 2]
            );
        }
        let (tls_listener, tls_port) = bind().await;
        tokio::spawn(net::serve_tls(tls_listener, stream_app(), Some(pki.server.clone()), net_limits()));
        let (plain_listener, plain_port) = bind().await;
        tokio::spawn(net::serve(plain_listener, stream_app()));
        let (mut plain, mut tls) = ((0.0, 0.0), (0.0, 0.0));
        for _ in 0..2 {
            let p = stream_rate(plain_port, None).await;
            let t = stream_rate(tls_port, Some(pki.client.clone())).await;
            plain = (plain.0 + p.0 / 2.0, plain.1 + p.1 / 2.0);
            tls = (tls.0 + t.0 / 2.0, tls.1 + t.1 / 2.0);
        }
        println!(
            "event stream ({} B frames): plaintext {:.0} events/s ({:.0} MB/s), TLS {:.0} events/s ({:.0} MB/s), ratio {:.1}%",
            frame().len(),
            plain.0,
            plain.1,
            tls.0,
            tls.1,
            100.0 * tls.0 / plain.0
        );
    });
}

/// The servers' connection limits: the defaults, which every served
/// connection passes through as in the binaries.
fn net_limits() -> mesos_common::connections::Limits {
    mesos_common::connections::Limits::default()
}
