//! SIGKILL while the registry is being written loses nothing that was
//! acknowledged: a child process admits agents as fast as it can and prints
//! each id once `admit_agent` returned (the point where the master would
//! acknowledge the registration); the parent kills it at a random moment,
//! reopens the registry and finds every printed id.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesos_master::registry::{Registry, SledRegistry};
use mesos_proto::v1::{AgentId, AgentInfo};

const CHILD_ENV: &str = "MESOS_REGISTRY_CRASH_CHILD_DIR";

/// Not a test on its own: the writer the crash test runs as a child.
#[test]
fn registry_crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut registry = SledRegistry::open(std::path::Path::new(&dir)).expect("open registry");
    for i in 0u64.. {
        let id = format!("agent-{i}");
        let info = AgentInfo {
            hostname: "h".into(),
            id: Some(AgentId { value: id.clone() }),
            ..Default::default()
        };
        registry.admit_agent(&info, i as f64).expect("admit");
        println!("acked {id}");
    }
}

#[test]
fn sigkill_during_registry_writes_loses_no_acknowledged_agent() {
    for round in 0..5u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "registry_crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("acked ") {
                    let _ = tx.send(id.to_string());
                }
            }
        });
        // Let it write for a varying while, then kill it mid-stream.
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        child.kill().expect("SIGKILL the writer");
        let _ = child.wait();
        reader.join().expect("reader thread");
        let acked: Vec<String> = rx.try_iter().collect();
        assert!(
            !acked.is_empty(),
            "round {round}: the writer acknowledged nothing before the kill"
        );

        let mut registry = SledRegistry::open(dir.path()).expect("reopen after SIGKILL");
        let recovered = registry.recover().expect("recover after SIGKILL");
        let missing: Vec<&String> = acked
            .iter()
            .filter(|id| !recovered.agents.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged agents lost, e.g. {:?}",
            missing.len(),
            acked.len(),
            missing.first()
        );
    }
}
