//! The registry under `kill -9`: operators reserve and unreserve
//! concurrently while the master is killed without warning, again and
//! again. After each restart every acknowledged (202) change is present
//! exactly once, and an unacknowledged one is either wholly there or
//! absent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesos_tests::{get_json, operator_auth, Cluster};
use serde_json::{json, Value};

const ROUNDS: usize = 20;
const WRITERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// 202: must be present after every later restart (until unreserved).
    Reserved,
    /// Sent, no 202 seen: present wholly or absent.
    Unknown,
    /// Unreserve acknowledged: must be absent.
    Unreserved,
}

fn disk(role: &str) -> String {
    json!([{"name": "disk", "type": "SCALAR", "scalar": {"value": 1.0},
            "reservations": [{"type": "DYNAMIC", "role": role,
                              "principal": mesos_tests::OPERATOR_PRINCIPAL}]}])
    .to_string()
}

fn post(client: &reqwest::blocking::Client, url: &str, agent_id: &str, role: &str) -> Option<u16> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("slaveId", agent_id), ("resources", &disk(role))])
        .finish();
    client
        .post(url)
        .header("Authorization", operator_auth())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

#[test]
fn every_acknowledged_reservation_survives_twenty_kill_9s_exactly_once() {
    let mut cluster = Cluster::start(1);
    let slaves = get_json(&format!("{}/master/slaves", cluster.master_url())).expect("slaves");
    let agent_id = slaves["slaves"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let fates: Arc<Mutex<BTreeMap<String, Fate>>> = Arc::default();
    let mut acknowledged = 0usize;
    for round in 0..ROUNDS {
        let master = cluster.master_url();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (fates, stop, master, agent_id) = (
                    fates.clone(),
                    stop.clone(),
                    master.clone(),
                    agent_id.clone(),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .expect("client");
                    let mut acked = 0;
                    for i in 0.. {
                        if stop.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        // Every fourth writer step unreserves an earlier,
                        // acknowledged reservation of this writer.
                        let earlier = (i % 4 == 3)
                            .then(|| {
                                fates
                                    .lock()
                                    .expect("fates")
                                    .iter()
                                    .find(|(role, f)| {
                                        **f == Fate::Reserved && role.starts_with(&format!("w{w}-"))
                                    })
                                    .map(|(role, _)| role.clone())
                            })
                            .flatten();
                        if let Some(role) = earlier {
                            let url = format!("{master}/master/unreserve");
                            if post(&client, &url, &agent_id, &role) == Some(202) {
                                fates.lock().expect("fates").insert(role, Fate::Unreserved);
                                acked += 1;
                            } else {
                                // Unknown outcome: it may or may not be unreserved.
                                fates.lock().expect("fates").insert(role, Fate::Unknown);
                            }
                            continue;
                        }
                        let role = format!("w{w}-r{round}-{i}");
                        fates
                            .lock()
                            .expect("fates")
                            .insert(role.clone(), Fate::Unknown);
                        let url = format!("{master}/master/reserve");
                        match post(&client, &url, &agent_id, &role) {
                            Some(202) => {
                                fates.lock().expect("fates").insert(role, Fate::Reserved);
                                acked += 1;
                            }
                            Some(status) if status != 503 => {
                                panic!("reserve {role} answered {status}")
                            }
                            _ => {}
                        }
                    }
                    acked
                })
            })
            .collect();
        // Let the writers get going, then kill the master mid-flight.
        std::thread::sleep(Duration::from_millis(300 + 37 * (round as u64 % 7)));
        if let Some(mut m) = cluster.master.take() {
            m.kill();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for w in writers {
            acknowledged += w.join().expect("writer");
        }
        cluster.start_master();
        cluster.wait_for_agents(1);
        let slaves = get_json(&format!("{}/master/slaves", cluster.master_url())).expect("slaves");
        let reserved = &slaves["slaves"][0]["reserved_resources"];
        let fates = fates.lock().expect("fates");
        for (role, fate) in fates.iter() {
            let amount = reserved[role.as_str()]["disk"].as_f64();
            match fate {
                Fate::Reserved => assert_eq!(
                    amount,
                    Some(1.0),
                    "round {round}: acknowledged reservation {role} is {}",
                    reserved[role.as_str()]
                ),
                Fate::Unreserved => assert_eq!(
                    amount, None,
                    "round {round}: acknowledged unreservation {role} came back"
                ),
                Fate::Unknown => assert!(
                    amount.is_none() || amount == Some(1.0),
                    "round {round}: {role} half-applied: {}",
                    reserved[role.as_str()]
                ),
            }
        }
        // Nothing that was never requested appears.
        if let Value::Object(roles) = reserved {
            for role in roles.keys() {
                assert!(fates.contains_key(role), "round {round}: unknown {role}");
            }
        }
    }
    eprintln!("{acknowledged} acknowledged mutations across {ROUNDS} kill -9s");
    assert!(
        acknowledged >= 200,
        "only {acknowledged} acknowledged mutations; the test needs 200"
    );
}
