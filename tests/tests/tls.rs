//! TLS on every channel with real processes: the workshop's TLS step
//! (a TLS-only master refuses a plaintext agent and framework; with TLS
//! everywhere an unmodified mesoshttp scheduler runs a task; pymesos uses
//! the plaintext side with downgrade), mutual TLS with CRL reload,
//! rotation under load, and startup errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesos_common::net::TlsConnector;
use mesos_common::tls::certs::{write_file, Authority, ClusterCerts, LeafSpec};
use mesos_common::tls::{Settings, Tls};
use mesos_tests::{binary, get_json, https_get_via, python, script, wait_until, Cluster};
use serde_json::Value;

const NAMES: &[&str] = &["localhost", "127.0.0.1"];

fn certs_for(cluster: &Cluster) -> ClusterCerts {
    ClusterCerts::ensure(
        &cluster.dir.path().join("ssl"),
        &["master", "agent", "framework"],
        NAMES,
        30,
    )
    .expect("certificates")
}

fn authority(certs: &ClusterCerts) -> Authority {
    let read = |p: PathBuf| std::fs::read_to_string(p).expect("read CA");
    Authority::load(&read(certs.ca()), &read(certs.dir.join("ca-key.pem"))).expect("CA")
}

/// `LIBPROCESS_SSL_*` for `role`, verifying peers against the CA by IP.
fn tls_env(certs: &ClusterCerts, role: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("LIBPROCESS_SSL_ENABLED".to_string(), "true".to_string()),
        (
            "LIBPROCESS_SSL_CERT_FILE".to_string(),
            certs.cert(role).display().to_string(),
        ),
        (
            "LIBPROCESS_SSL_KEY_FILE".to_string(),
            certs.key(role).display().to_string(),
        ),
        (
            "LIBPROCESS_SSL_CA_FILE".to_string(),
            certs.ca().display().to_string(),
        ),
        (
            "LIBPROCESS_SSL_VERIFY_IPADD".to_string(),
            "true".to_string(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// A cluster whose master is TLS (with `master_extra`), not yet started.
fn tls_cluster(master_extra: &[(&str, &str)]) -> (Cluster, ClusterCerts) {
    let mut cluster = Cluster::prepare(&[]);
    let certs = certs_for(&cluster);
    cluster.master_env = tls_env(&certs, "master", master_extra);
    cluster.https = true;
    mesos_tests::trust_ca(&certs.ca());
    mesos_tests::use_client_cert(&certs.cert("framework"), &certs.key("framework"));
    (cluster, certs)
}

fn active_agents(cluster: &Cluster) -> Option<usize> {
    get_json(&format!("{}/master/slaves", cluster.master_url())).and_then(|v| {
        v["slaves"]
            .as_array()
            .map(|a| a.iter().filter(|s| s["active"] == true).count())
    })
}

fn python_with(module: &str) -> Option<PathBuf> {
    let python = python()?;
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: no Python with {module} (run scripts/setup-python.sh)");
        return None;
    }
    Some(python)
}

/// Runs `mesoshttp_echo.py` → (exit code, stdout, stderr).
fn mesoshttp(python: &Path, url: &str, ca: Option<&Path>, timeout: u32) -> (i32, String, String) {
    let mut command = Command::new(python);
    command
        .env("MESOS_PRINCIPAL", mesos_tests::FRAMEWORK_PRINCIPAL)
        .env("MESOS_SECRET", mesos_tests::FRAMEWORK_SECRET)
        .arg(script("mesoshttp_echo.py"))
        .arg(url)
        .args(["--timeout", &timeout.to_string()]);
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let started = Instant::now();
    let output = command.output().expect("run mesoshttp_echo.py");
    eprintln!("mesoshttp_echo.py {url}: {:?}", started.elapsed());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn plaintext_agent_cannot_register_with_a_tls_only_master_and_registers_with_tls() {
    let (mut cluster, certs) = tls_cluster(&[]);
    cluster.start_master();
    cluster.add_agent();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(active_agents(&cluster), Some(0), "{}", cluster.logs());
    assert!(
        cluster
            .master_log()
            .contains("refused a plaintext (non-TLS) connection"),
        "the master says why:\n{}",
        cluster.master_log()
    );
    // Workshop step 2: the same variables for the agent, and it registers.
    cluster.agent_env = tls_env(&certs, "agent", &[]);
    if let Some(agent) = cluster.agents[0].as_mut() {
        agent.kill();
    }
    cluster.start_agent(0);
    cluster.wait_for_agents(1);
}

#[test]
fn mesoshttp_over_https_runs_a_task_and_a_plaintext_framework_cannot_subscribe() {
    let Some(python) = python_with("mesoshttp") else {
        return;
    };
    let (mut cluster, certs) = tls_cluster(&[]);
    cluster.agent_env = tls_env(&certs, "agent", &[]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);

    let plain = format!("http://{}", cluster.master_address());
    let (code, stdout, _) = mesoshttp(&python, &plain, None, 5);
    assert_ne!(
        code, 0,
        "a plaintext framework must not subscribe: {stdout}"
    );
    assert!(!stdout.contains("subscribed"), "{stdout}");

    // The executor reaches the TLS-only agent only because the agent passed
    // its LIBPROCESS_SSL_* environment on.
    let (code, stdout, stderr) = mesoshttp(&python, &cluster.master_url(), Some(&certs.ca()), 60);
    assert_eq!(
        code,
        0,
        "mesoshttp over https: {stdout}\n{stderr}\n{}",
        cluster.logs()
    );
    assert!(stdout.contains("\"subscribed\""), "{stdout}");
    assert!(stdout.contains("\"result\": \"TASK_FINISHED\""), "{stdout}");
}

#[test]
fn pymesos_uses_the_plaintext_side_with_downgrade_while_agent_and_executor_use_tls() {
    let Some(python) = python_with("pymesos") else {
        return;
    };
    let (mut cluster, certs) = tls_cluster(&[("LIBPROCESS_SSL_SUPPORT_DOWNGRADE", "true")]);
    cluster.agent_env = tls_env(&certs, "agent", &[]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let output = Command::new(&python)
        .env("MESOS_PRINCIPAL", mesos_tests::FRAMEWORK_PRINCIPAL)
        .env("MESOS_SECRET", mesos_tests::FRAMEWORK_SECRET)
        .arg(script("pymesos_echo.py"))
        .args([
            "--master",
            &cluster.master_address(),
            "--tasks",
            "1",
            "--timeout",
            "60",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("run pymesos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pymesos failed: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    let result: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("result JSON");
    let states: Vec<&str> = result["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .filter_map(|u| u["state"].as_str())
        .collect();
    assert!(states.contains(&"TASK_FINISHED"), "{states:?}");
    assert!(
        !cluster.agent_log(0).contains("plaintext"),
        "the agent stayed on TLS"
    );
}

/// A connector presenting `cert`/`key` and trusting the cluster's CA.
fn client_with(certs: &ClusterCerts, cert: &Path, key: &Path) -> TlsConnector {
    let tls = Tls::new(Settings {
        enabled: true,
        cert_file: Some(cert.to_path_buf()),
        key_file: Some(key.to_path_buf()),
        ca_file: Some(certs.ca()),
        verify_server_cert: true,
        verify_ipadd: true,
        ..Settings::default()
    })
    .expect("client TLS");
    TlsConnector::new(tls)
}

fn issue(
    certs: &ClusterCerts,
    ca: &Authority,
    name: &str,
    spec: &LeafSpec,
) -> (PathBuf, PathBuf, Vec<u8>) {
    let leaf = ca.issue(spec).expect("leaf");
    let (c, k) = (
        certs.dir.join(format!("{name}.pem")),
        certs.dir.join(format!("{name}-key.pem")),
    );
    write_file(&c, &leaf.cert_pem, false).expect("write cert");
    write_file(&k, &leaf.key_pem, true).expect("write key");
    (c, k, leaf.serial)
}

#[test]
fn require_cert_refuses_missing_expired_foreign_and_revoked_client_certificates() {
    let (mut cluster, certs) = tls_cluster(&[]);
    let ca = authority(&certs);
    let crl = certs.dir.join("crl.pem");
    write_file(&crl, &ca.crl(&[]).expect("CRL"), false).expect("write CRL");
    let crl_text = crl.display().to_string();
    cluster.master_env.extend(
        [
            ("LIBPROCESS_SSL_REQUIRE_CERT", "true"),
            ("LIBPROCESS_SSL_CRL_FILE", crl_text.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    cluster.agent_env = tls_env(&certs, "agent", &[]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let health = format!("{}/health", cluster.master_url());
    let get = |connector: &TlsConnector| https_get_via(connector, &health, None).map(|(s, _)| s);

    let (gc, gk, good_serial) = issue(&certs, &ca, "client", &LeafSpec::new("client", NAMES, 30));
    let good = client_with(&certs, &gc, &gk);
    assert_eq!(
        get(&good),
        Some(200),
        "a valid client certificate is accepted"
    );

    // No client certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    for c in mesos_common::tls::load_certs("CA", &certs.ca()).expect("CA") {
        roots.add(c).expect("root");
    }
    let anonymous = TlsConnector::with_client_config(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ));
    assert_eq!(get(&anonymous), None, "no client certificate");

    let now = time::OffsetDateTime::now_utc();
    let expired = LeafSpec {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
        ..LeafSpec::new("expired", NAMES, 1)
    };
    let (ec, ek, _) = issue(&certs, &ca, "expired", &expired);
    assert_eq!(
        get(&client_with(&certs, &ec, &ek)),
        None,
        "expired certificate"
    );

    let other = Authority::generate("another CA").expect("CA");
    let (fc, fk, _) = issue(
        &certs,
        &other,
        "foreign",
        &LeafSpec::new("foreign", NAMES, 30),
    );
    assert_eq!(
        get(&client_with(&certs, &fc, &fk)),
        None,
        "certificate of another CA"
    );

    // Revocation takes effect on reload (SIGHUP here; the file watcher
    // would also pick it up).
    write_file(&crl, &ca.crl(&[good_serial]).expect("CRL"), false).expect("write CRL");
    let pid = cluster.master.as_ref().expect("master").child.id();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    );
    wait_until(
        Duration::from_secs(10),
        "the revoked certificate to be refused",
        || get(&good).is_none(),
    );
    assert!(
        cluster.master_log().contains("refused a TLS connection"),
        "refusals are logged:\n{}",
        cluster.master_log()
    );
    // The agent's established connections and fresh ones (its own,
    // unrevoked certificate) keep working.
    cluster.wait_for_agents(1);
}

/// The leaf certificate the server at `address` presents to a new
/// connection.
fn presented_certificate(address: &str) -> Vec<u8> {
    let config = mesos_tests::tls_client_config().expect("a trusted CA");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("handshake");
        stream
            .get_ref()
            .1
            .peer_certificates()
            .expect("certificates")[0]
            .to_vec()
    })
}

#[test]
fn certificate_rotation_under_load_keeps_clients_working_and_new_connections_see_the_new_certificate(
) {
    let (mut cluster, certs) = tls_cluster(&[]);
    cluster.agent_env = tls_env(&certs, "agent", &[]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let before = presented_certificate(&cluster.master_address());

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url = format!("{}/health", cluster.master_url());
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // A new connection (full handshake) every time.
                match mesos_tests::http_status(&url) {
                    Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let ca = authority(&certs);
    let leaf = ca.issue(&LeafSpec::new("master", NAMES, 30)).expect("leaf");
    // Write both, then signal: the watcher may see a half-rotated pair
    // first, which it refuses (keeping the old pair) until both match.
    write_file(&certs.key("master"), &leaf.key_pem, true).expect("key");
    write_file(&certs.cert("master"), &leaf.cert_pem, false).expect("cert");
    let pid = cluster.master.as_ref().expect("master").child.id();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rotated = false;
    while Instant::now() < deadline {
        if presented_certificate(&cluster.master_address()) != before {
            rotated = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    assert!(
        rotated,
        "new connections see the new certificate:\n{}",
        cluster.master_log()
    );
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 10, "the client loop ran ({ok} requests)");
    assert_eq!(
        failed, 0,
        "no request failed across the reload ({ok} succeeded)"
    );
    assert!(cluster
        .master_log()
        .contains("reloaded the TLS certificate"));
    cluster.wait_for_agents(1);
}

/// Runs `program` with `env` and no chance to serve: its exit code and
/// stderr.
fn startup(program: &str, args: &[String], env: &[(String, String)]) -> (i32, String) {
    let mut child = Command::new(binary(program))
        .args(args)
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_files_and_old_protocols_are_one_clear_startup_error() {
    let cluster = Cluster::prepare(&[]);
    let certs = certs_for(&cluster);
    let dir = cluster.dir.path();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").expect("write");
    let unreadable = dir.join("missing-key.pem");
    let master_args = vec![
        "--ip=127.0.0.1".to_string(),
        format!("--port={}", mesos_tests::free_port()),
        "--registry=in_memory".to_string(),
        format!("--credentials={}", cluster.credentials_path().display()),
    ];
    let with = |var: &str, value: &Path| {
        let mut env = tls_env(&certs, "master", &[]);
        env.retain(|(k, _)| k != var);
        env.push((var.to_string(), value.display().to_string()));
        env
    };
    let cases = [
        (
            with("LIBPROCESS_SSL_CERT_FILE", &dir.join("nope.pem")),
            dir.join("nope.pem").display().to_string(),
        ),
        (
            with("LIBPROCESS_SSL_KEY_FILE", &unreadable),
            unreadable.display().to_string(),
        ),
        (
            with("LIBPROCESS_SSL_CERT_FILE", &garbage),
            garbage.display().to_string(),
        ),
        (
            with("LIBPROCESS_SSL_KEY_FILE", &garbage),
            garbage.display().to_string(),
        ),
        (
            with("LIBPROCESS_SSL_KEY_FILE", &certs.key("agent")),
            "does not match the certificate".to_string(),
        ),
        (
            tls_env(
                &certs,
                "master",
                &[("LIBPROCESS_SSL_ENABLE_TLS_V1_0", "true")],
            ),
            "LIBPROCESS_SSL_ENABLE_TLS_V1_0".to_string(),
        ),
    ];
    for (env, expected) in cases {
        let (code, stderr) = startup("mesos-master", &master_args, &env);
        assert_eq!(code, 1, "must exit 1 ({expected}): {stderr}");
        assert!(
            stderr.contains(&expected),
            "stderr should name {expected}:\n{stderr}"
        );
        assert!(!stderr.contains("Master listening"), "{stderr}");
    }
    let agent_args = vec![
        "--master=127.0.0.1:1".to_string(),
        "--ip=127.0.0.1".to_string(),
        format!("--port={}", mesos_tests::free_port()),
        format!("--work_dir={}", dir.join("agent").display()),
        format!(
            "--http_credentials={}",
            cluster.credentials_path().display()
        ),
    ];
    let (code, stderr) = startup(
        "mesos-agent",
        &agent_args,
        &with("LIBPROCESS_SSL_KEY_FILE", &unreadable),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&unreadable.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn mesos_local_runs_a_tls_cluster_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work_dir = dir.path().join("local");
    let (master_port, agent_port) = (mesos_tests::free_port(), mesos_tests::free_port());
    let mut local = mesos_tests::spawn_with_env(
        "mesos-local",
        &binary("mesos-local"),
        &[
            format!("--master_port={master_port}"),
            format!("--agent_port={agent_port}"),
            format!("--work_dir={}", work_dir.display()),
            "--resources=cpus:1;mem:256;disk:100".to_string(),
        ],
        &[],
        &dir.path().join("local.log"),
    );
    let ca = work_dir.join("ssl").join("ca.pem");
    wait_until(Duration::from_secs(20), "mesos-local's CA", || ca.exists());
    mesos_tests::trust_ca(&ca);
    let credentials: Value = serde_json::from_str(
        &std::fs::read_to_string(work_dir.join("credentials.json")).expect("credentials"),
    )
    .expect("credentials JSON");
    let operator = credentials["credentials"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["principal"] == "operator"))
        .and_then(|c| c["secret"].as_str())
        .expect("operator secret")
        .to_string();
    let auth = mesos_tests::basic_auth("operator", &operator);
    let slaves = format!("https://127.0.0.1:{master_port}/master/slaves");
    wait_until(Duration::from_secs(30), "the local agent over TLS", || {
        mesos_tests::https_get(&slaves, Some(&auth))
            .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok())
            .and_then(|v| v["slaves"].as_array().map(|a| a.len()))
            == Some(1)
    });
    let plain =
        mesos_tests::http_status_anonymous(&format!("http://127.0.0.1:{master_port}/health"));
    assert_eq!(
        plain,
        Some(400),
        "plaintext is refused:\n{}",
        local.log_text()
    );
    // SIGINT lets mesos-local stop its agent too.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(local.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = local.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without Python: a Rust scheduler on the master's plaintext side
/// (downgrade), a TLS-only agent, and the executor reaching it over TLS
/// with nothing but the environment the agent passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_inherits_tls_from_the_agent_and_its_task_finishes() {
    let cluster = tokio::task::spawn_blocking(|| {
        let (mut cluster, certs) = tls_cluster(&[("LIBPROCESS_SSL_SUPPORT_DOWNGRADE", "true")]);
        cluster.agent_env = tls_env(&certs, "agent", &[]);
        cluster.start_master();
        cluster.add_agent();
        cluster.wait_for_agents(1);
        cluster
    })
    .await
    .expect("cluster");
    let plain = format!("http://{}", cluster.master_address());
    let states = mesos_tests::scheduler::run_one_task(
        &plain,
        mesos_tests::scheduler::OneTask {
            framework: "tls-executor",
            task_id: "tls-task",
            // The executor's TLS settings (the agent's key path) do not
            // reach the task.
            command: "test -z \"$LIBPROCESS_SSL_KEY_FILE\" && echo hello",
            until: mesos_proto::v1::TaskState::TaskFinished,
        },
    )
    .await;
    assert_eq!(
        states.last(),
        Some(&mesos_proto::v1::TaskState::TaskFinished)
    );
    let agent_log = cluster.agent_log(0);
    assert!(
        !agent_log.contains("refused a plaintext"),
        "the executor spoke TLS to the agent:\n{agent_log}"
    );
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("cleanup");
}
