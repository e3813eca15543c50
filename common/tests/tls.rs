//! The TLS listener and connector (`net::serve_tls`, `net::TlsConnector`)
//! with real sockets and certificates made by `tls::certs`: verification,
//! mutual TLS, downgrade, reload and the startup errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesos_common::net::{self, Connector, TcpConnector, TlsConnector};
use mesos_common::tls::certs::{write_file, Authority, LeafSpec};
use mesos_common::tls::{PeerCertificate, Settings, Tls};
use tokio::net::TcpListener;

struct Pki {
    dir: tempfile::TempDir,
    ca: Authority,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            ca: Authority::generate("test CA").expect("CA"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_ca(&self) -> PathBuf {
        let p = self.path("ca.pem");
        write_file(&p, &self.ca.cert_pem, false).expect("write CA");
        p
    }

    /// Issues `role` by `ca` with `spec` and writes `<role>.pem`, `<role>-key.pem`.
    fn leaf_by(&self, ca: &Authority, role: &str, spec: &LeafSpec) -> (PathBuf, PathBuf, Vec<u8>) {
        let leaf = ca.issue(spec).expect("leaf");
        let (c, k) = (
            self.path(&format!("{role}.pem")),
            self.path(&format!("{role}-key.pem")),
        );
        write_file(&c, &leaf.cert_pem, false).expect("write cert");
        write_file(&k, &leaf.key_pem, true).expect("write key");
        (c, k, leaf.serial)
    }

    fn leaf(&self, role: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        self.leaf_by(
            &self.ca,
            role,
            &LeafSpec::new(role, &["localhost", "127.0.0.1"], 30),
        )
    }

    fn settings(&self, cert: &Path, key: &Path) -> Settings {
        Settings {
            enabled: true,
            cert_file: Some(cert.to_path_buf()),
            key_file: Some(key.to_path_buf()),
            ca_file: Some(self.write_ca()),
            verify_server_cert: true,
            verify_ipadd: true,
            ..Settings::default()
        }
    }
}

async fn start(tls: Arc<Tls>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new().route(
        "/whoami",
        get(|request: axum::extract::Request| async move {
            match request.extensions().get::<PeerCertificate>() {
                Some(c) => format!("cert:{}", c.dns_names.join(",")),
                None => "anonymous".to_string(),
            }
        }),
    );
    tokio::spawn(net::serve_tls(
        listener,
        app,
        Some(tls),
        mesos_common::connections::Limits::default(),
    ));
    port
}

async fn whoami(connector: &dyn Connector, port: u16) -> Result<String, String> {
    let stream = connector
        .connect(format!("127.0.0.1:{port}"))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::get("/whoami")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// The leaf certificate a server presents to a fresh connection.
async fn server_certificate(port: u16) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnything))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    stream.get_ref().1.peer_certificates().expect("certs")[0].to_vec()
}

#[derive(Debug)]
struct AcceptAnything;
impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client that verifies the server but presents no certificate.
fn anonymous_client(pki: &Pki) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in mesos_common::tls::load_certs("CA", &pki.write_ca()).expect("CA") {
        roots.add(cert).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::with_client_config(Arc::new(config))
}

#[tokio::test]
async fn verified_tls_round_trip_and_plaintext_is_refused() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let tls = Tls::new(pki.settings(&c, &k)).expect("server TLS");
    let port = start(tls.clone()).await;
    let client = TlsConnector::new(tls);
    assert_eq!(whoami(&client, port).await.expect("TLS works"), "anonymous");
    let plain = whoami(&TcpConnector, port).await;
    assert!(
        plain.as_ref().map_or(true, |b| b.contains("requires TLS")),
        "plaintext must be refused: {plain:?}"
    );
}

#[tokio::test]
async fn downgrade_serves_plaintext_and_tls_on_one_port() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let tls = Tls::new(Settings {
        support_downgrade: true,
        ..pki.settings(&c, &k)
    })
    .expect("server TLS");
    let port = start(tls.clone()).await;
    assert_eq!(
        whoami(&TcpConnector, port).await.expect("plaintext"),
        "anonymous"
    );
    assert_eq!(
        whoami(&TlsConnector::new(tls), port).await.expect("TLS"),
        "anonymous"
    );
}

#[tokio::test]
async fn downgrade_client_falls_back_to_plaintext_servers() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("agent");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new().route("/whoami", get(|| async { "plaintext" }));
    tokio::spawn(net::serve(listener, app));
    let strict = Tls::new(pki.settings(&c, &k)).expect("client TLS");
    assert!(whoami(&TlsConnector::new(strict), port).await.is_err());
    let downgrading = Tls::new(Settings {
        support_downgrade: true,
        ..pki.settings(&c, &k)
    })
    .expect("client TLS");
    assert_eq!(
        whoami(&TlsConnector::new(downgrading), port)
            .await
            .expect("falls back"),
        "plaintext"
    );
}

#[tokio::test]
async fn client_refuses_a_server_from_another_ca_and_ip_without_verify_ipadd() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let server = Tls::new(pki.settings(&c, &k)).expect("server TLS");
    let port = start(server).await;
    let other = Pki::new();
    let (oc, ok, _) = other.leaf("agent");
    let client = Tls::new(other.settings(&oc, &ok)).expect("client TLS");
    let e = whoami(&TlsConnector::new(client), port)
        .await
        .expect_err("wrong CA");
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );
    let (ac, ak, _) = pki.leaf("agent");
    let no_ipadd = Tls::new(Settings {
        verify_ipadd: false,
        ..pki.settings(&ac, &ak)
    })
    .expect("client TLS");
    let e = whoami(&TlsConnector::new(no_ipadd), port)
        .await
        .expect_err("IP name");
    assert!(e.contains("VERIFY_IPADD"), "{e}");
}

#[tokio::test]
async fn mutual_tls_refuses_missing_expired_foreign_and_revoked_client_certificates() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let crl = pki.path("crl.pem");
    write_file(&crl, &pki.ca.crl(&[]).expect("empty CRL"), false).expect("write CRL");
    let server = Tls::new(Settings {
        require_client_cert: true,
        crl_file: Some(crl.clone()),
        ..pki.settings(&c, &k)
    })
    .expect("server TLS");
    let port = start(server.clone()).await;

    // A good client certificate: accepted, its identity reaches the handler.
    let (gc, gk, good_serial) = pki.leaf("framework");
    let good = Tls::new(pki.settings(&gc, &gk)).expect("client TLS");
    let good = TlsConnector::new(good);
    assert_eq!(
        whoami(&good, port).await.expect("mutual TLS"),
        "cert:localhost"
    );

    // No certificate.
    assert!(whoami(&anonymous_client(&pki), port).await.is_err());

    // Expired.
    let now = time::OffsetDateTime::now_utc();
    let expired = LeafSpec {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
        ..LeafSpec::new("old", &["localhost", "127.0.0.1"], 1)
    };
    let (ec, ek, _) = pki.leaf_by(&pki.ca, "expired", &expired);
    let expired = Tls::new(pki.settings(&ec, &ek)).expect("client TLS");
    assert!(whoami(&TlsConnector::new(expired), port).await.is_err());

    // Another CA (the client itself trusts ours).
    let other = Authority::generate("other CA").expect("CA");
    let (fc, fk, _) = pki.leaf_by(&other, "foreign", &LeafSpec::new("x", &["localhost"], 30));
    let foreign = Tls::new(pki.settings(&fc, &fk)).expect("client TLS");
    assert!(whoami(&TlsConnector::new(foreign), port).await.is_err());

    // Revoked: accepted until the new CRL is loaded.
    write_file(&crl, &pki.ca.crl(&[good_serial]).expect("CRL"), false).expect("write CRL");
    assert!(whoami(&good, port).await.is_ok(), "old CRL still in force");
    server.reload().expect("reload");
    assert!(whoami(&good, port).await.is_err(), "revoked after reload");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_a_bad_file_keeps_the_old() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let server = Tls::new(pki.settings(&c, &k)).expect("server TLS");
    let port = start(server.clone()).await;
    let client = TlsConnector::new(server.clone());
    // An established connection survives the reload.
    let stream = client
        .connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let before = server_certificate(port).await;

    pki.leaf("master"); // new key and certificate, same files
    server.reload().expect("reload");
    let after = server_certificate(port).await;
    assert_ne!(before, after, "new connections see the new certificate");
    let request = http::Request::get("/whoami")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .expect("old connection still works");
    assert!(response.status().is_success());

    write_file(&k, "garbage", true).expect("write");
    let e = server.reload().expect_err("garbage key");
    assert!(e.to_string().contains(&k.display().to_string()), "{e}");
    assert_eq!(server_certificate(port).await, after, "old config kept");
    assert_eq!(
        whoami(&client, port).await.expect("still serving"),
        "anonymous"
    );
}

#[tokio::test]
async fn file_change_is_picked_up_without_a_signal() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let server = Tls::new(pki.settings(&c, &k)).expect("server TLS");
    server.watch(Duration::from_millis(50));
    let port = start(server.clone()).await;
    let before = server_certificate(port).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    pki.leaf("master");
    let mut changed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server_certificate(port).await != before {
            changed = true;
            break;
        }
    }
    assert!(changed, "the watcher reloads a changed certificate");
}

#[test]
fn startup_errors_name_the_file() {
    let pki = Pki::new();
    let (c, k, _) = pki.leaf("master");
    let (_, other_key, _) = pki.leaf("other");
    let garbage = pki.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let missing = pki.path("missing.pem");
    let cases: Vec<(Settings, &Path)> = vec![
        (pki.settings(&missing, &k), &missing),
        (pki.settings(&c, &missing), &missing),
        (pki.settings(&garbage, &k), &garbage),
        (pki.settings(&c, &garbage), &garbage),
        (pki.settings(&c, &other_key), &other_key),
    ];
    for (settings, culprit) in cases {
        let e = Tls::new(settings).expect_err("must not start");
        assert!(
            e.to_string().contains(&culprit.display().to_string()),
            "{e} should name {}",
            culprit.display()
        );
    }
    let e = Tls::new(pki.settings(&c, &other_key)).expect_err("mismatch");
    assert!(e.to_string().contains("does not match"), "{e}");
}
