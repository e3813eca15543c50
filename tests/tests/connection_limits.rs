//! Connections that never finish a request cannot exhaust the master: a
//! cap per peer address, a header read timeout, and a process-wide cap
//! below the file limit, while agents and other clients keep working.
//! Real processes; the flood comes from 127.0.0.2, the clients from
//! 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mesos_tests::{operator_auth, wait_until, Cluster};
use serde_json::Value;

/// Connections that each sent half a request line, held by helper
/// processes (`mesos-half-open`) from 127.0.0.2: one process alone may not
/// hold more than its file limit. Dropping it releases them all.
struct Flood {
    helpers: Vec<std::process::Child>,
}

impl Flood {
    /// Starts `count` connections to `port`, `per_process` per helper.
    fn start(port: u16, count: usize, per_process: usize) -> Flood {
        let mut helpers = Vec::new();
        let mut left = count;
        while left > 0 {
            let n = left.min(per_process);
            left -= n;
            let child = std::process::Command::new(mesos_tests::binary("mesos-half-open"))
                .args([
                    format!("--target=127.0.0.1:{port}"),
                    "--source=127.0.0.2".to_string(),
                    format!("--count={n}"),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn mesos-half-open");
            helpers.push(child);
        }
        Flood { helpers }
    }

    /// Waits for every helper to report; the connections made.
    fn wait(&mut self) -> usize {
        use std::io::BufRead;
        let mut held = 0;
        for child in &mut self.helpers {
            let stdout = child.stdout.take().expect("piped stdout");
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read mesos-half-open");
            held += line
                .trim()
                .strip_prefix("held ")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("mesos-half-open said {line:?}"));
        }
        held
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        for child in &mut self.helpers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Connections one helper process can hold: its file limit, less some.
fn per_helper() -> usize {
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    usize::try_from(hard.saturating_sub(64))
        .unwrap_or(10_000)
        .clamp(256, 10_000)
}

/// One request on a new connection from 127.0.0.1: the status and body,
/// or the error.
fn get_fresh(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )
    .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    request(&mut stream, path, true)
}

/// Sends one GET as the operator on `stream` and reads its answer
/// (`close`: ask the server to close afterwards and read to the end).
fn request(stream: &mut TcpStream, path: &str, close: bool) -> Result<(u16, String), String> {
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: {connection}\r\n\r\n",
        operator_auth()
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if !close && complete_response(&raw) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Whether `raw` holds a whole response with a `content-length` body.
fn complete_response(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|n| body.len() >= n)
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn slaves(value: &Value) -> Vec<Value> {
    value["slaves"].as_array().cloned().unwrap_or_default()
}

#[test]
fn half_open_connections_from_one_address_cannot_starve_other_clients() {
    const FLOOD: usize = 20_000;
    let cluster = Cluster::start_with(1, &["--http_header_read_timeout=5secs"]);
    let port = cluster.master_port;
    let pid = cluster.master.as_ref().expect("master").child.id();
    let baseline = open_fds(pid);
    let mut flood = Flood::start(port, FLOOD, per_helper());

    let mut latencies = Vec::new();
    let mut peak_fds = 0;
    let probe = |latencies: &mut Vec<Duration>| {
        let started = Instant::now();
        let answer = get_fresh(port, "/master/slaves");
        let took = started.elapsed();
        let (status, body) = answer.expect("the operator's request is answered during the flood");
        assert_eq!(status, 200, "{body}");
        let slaves = slaves(&serde_json::from_str(&body).expect("/master/slaves JSON"));
        assert_eq!(slaves.len(), 1, "{body}");
        assert_eq!(slaves[0]["active"], true, "agent stays registered: {body}");
        latencies.push(took);
    };
    // Probe while the helpers connect; they report when all are made.
    let waiter = std::thread::spawn(move || {
        let held = flood.wait();
        (flood, held)
    });
    while !waiter.is_finished() {
        probe(&mut latencies);
        peak_fds = peak_fds.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (flood, held) = waiter.join().expect("flood helpers");
    assert!(
        held >= FLOOD * 9 / 10,
        "only {held} of {FLOOD} flood connections were made"
    );
    for _ in 0..20 {
        probe(&mut latencies);
        peak_fds = peak_fds.max(open_fds(pid));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let slowest = latencies[latencies.len() - 1];
    eprintln!(
        "{} probes during and after {} half-open connections: median {median:?}, slowest {slowest:?}; master fds {baseline} → peak {peak_fds}",
        latencies.len(),
        held
    );
    assert!(
        median < Duration::from_millis(100),
        "median answer took {median:?} (slowest {slowest:?})"
    );
    // The per-peer cap (1024 by default) bounds what the flood holds.
    assert!(
        peak_fds <= baseline + 1024 + 64,
        "the master held {peak_fds} descriptors (baseline {baseline})"
    );
    assert!(
        cluster
            .master_log()
            .contains("too many connections from 127.0.0.2"),
        "the refusal is logged with its reason"
    );

    // The header read timeout closes what the cap let in.
    wait_until(
        Duration::from_secs(20),
        "the master to close the half-open connections",
        || open_fds(pid) < baseline + 64,
    );
    drop(flood);
    probe(&mut latencies);
}

#[test]
fn at_the_file_limit_new_connections_are_refused_while_established_ones_keep_working() {
    let mut cluster = Cluster::prepare(&[
        "--max_connections_per_peer=0",
        "--http_header_read_timeout=1mins",
    ]);
    cluster.master_nofile = Some(512);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let port = cluster.master_port;

    // An operator connection established before the limit is reached.
    let mut established = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    established
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (status, _) = request(&mut established, "/master/slaves", false).expect("first answer");
    assert_eq!(status, 200);

    // 512 descriptors leave room for 384 connections; the flood takes them.
    let mut flood = Flood::start(port, 600, 600);
    assert!(flood.wait() >= 384, "the flood could not fill the master");
    wait_until(
        Duration::from_secs(10),
        "the master to log that it is full",
        || {
            cluster
                .master_log()
                .contains("refusing new connections: too many connections: 384 are open")
        },
    );

    // A new connection is refused, with the reason when it can be read.
    match get_fresh(port, "/master/slaves") {
        Ok((status, body)) => {
            assert_eq!(status, 503, "{body}");
            assert!(body.contains("RLIMIT_NOFILE"), "{body}");
        }
        Err(e) => eprintln!("refused without an answer: {e}"),
    }

    // The established connection and the agent keep working.
    let (status, body) = request(&mut established, "/master/slaves", false)
        .expect("the established connection still answers");
    assert_eq!(status, 200, "{body}");
    let slaves = slaves(&serde_json::from_str(&body).expect("JSON"));
    assert_eq!(slaves.len(), 1, "{body}");
    assert_eq!(slaves[0]["active"], true, "{body}");

    // Once the flood goes, new connections are served again.
    drop(flood);
    wait_until(
        Duration::from_secs(10),
        "new connections to be served",
        || get_fresh(port, "/master/slaves").is_ok_and(|(status, _)| status == 200),
    );
}

#[test]
fn a_connection_that_stops_mid_request_is_closed_after_the_header_read_timeout() {
    let cluster = Cluster::start_with(0, &["--http_header_read_timeout=1secs"]);
    let mut slow = TcpStream::connect(("127.0.0.1", cluster.master_port)).expect("connect");
    slow.write_all(b"GET /master/state HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = slow.read(&mut buf);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "expected the master to close the connection, read {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the master kept the connection for {:?}",
        started.elapsed()
    );

    // A connection that sends nothing at all is closed as soon.
    let mut silent = TcpStream::connect(("127.0.0.1", cluster.master_port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let read = silent.read(&mut buf);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "a silent connection was kept: {read:?}"
    );

    // A body that stops arriving is cut too, before anything reads it
    // (a libprocess message is read before it is authenticated).
    let mut stalled = TcpStream::connect(("127.0.0.1", cluster.master_port)).expect("connect");
    stalled
        .write_all(
            b"POST /master/mesos.internal.PongSlaveMessage HTTP/1.1\r\nHost: x\r\nLibprocess-From: slave(1)@127.0.0.1:1\r\nContent-Length: 4000000\r\n\r\nsome bytes",
        )
        .expect("a head and a little of the body");
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let read = stalled.read(&mut buf);
    assert!(
        (matches!(read, Ok(0)) || read.is_err()) && started.elapsed() < Duration::from_secs(10),
        "a stalled body kept its connection: {read:?} after {:?}",
        started.elapsed()
    );

    // A client that finishes its request in time is answered, and keeps
    // its connection between requests.
    let mut client = TcpStream::connect(("127.0.0.1", cluster.master_port)).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for _ in 0..3 {
        let (status, _) = request(&mut client, "/health", false).expect("answered");
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(600));
    }
}

#[test]
fn connection_flags_are_validated_and_shown() {
    let output = std::process::Command::new(mesos_tests::binary("mesos-master"))
        .args([
            "--insecure",
            "--registry=in_memory",
            "--http_idle_timeout=5secs",
        ])
        .output()
        .expect("run mesos-master");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--http_idle_timeout must be at least 30secs"),
        "{stderr}"
    );
    let cluster = Cluster::start_with(0, &["--max_connections_per_peer=77"]);
    let flags = mesos_tests::get_json(&format!("{}/master/flags", cluster.master_url()))
        .expect("/master/flags");
    assert_eq!(flags["flags"]["max_connections_per_peer"], "77");
    assert_eq!(flags["flags"]["http_header_read_timeout"], "10secs");
    assert_eq!(
        flags["flags"]["http_idle_timeout"], "0ns",
        "no idle limit by default"
    );
}

#[test]
fn tasks_get_the_file_limit_the_agent_started_with() {
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_soft_nofile = Some(1000);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    // The agent raised its own soft limit to the hard one.
    let pid = cluster.agents[0].as_ref().expect("agent").child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3], fields[4],
        "the agent's soft limit is its hard one: {line}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let states = runtime.block_on(mesos_tests::scheduler::run_one_task(
        &cluster.master_url(),
        mesos_tests::scheduler::OneTask {
            framework: "nofile",
            task_id: "nofile-task",
            command: "ulimit -Sn",
            until: mesos_proto::v1::TaskState::TaskFinished,
        },
    ));
    assert_eq!(
        states.last(),
        Some(&mesos_proto::v1::TaskState::TaskFinished),
        "{}",
        cluster.logs()
    );
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    let state = mesos_tests::get_json(&format!("{agent_url}/state")).expect("agent /state");
    let sandbox = mesos_tests::sandbox_in_state(&state, "nofile-task").expect("sandbox");
    let stdout = std::fs::read_to_string(format!("{sandbox}/stdout")).expect("stdout");
    assert_eq!(stdout.trim(), "1000", "the task's soft RLIMIT_NOFILE");
}
