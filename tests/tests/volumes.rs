//! Reservations and persistent volumes end to end: real master and agent
//! processes, an unmodified pymesos framework, and the operator endpoints.

use std::process::{Command, Stdio};
use std::time::Duration;

use mesos_tests::{get_json, operator_auth, script, wait_until, Cluster};
use serde_json::{json, Value};

fn post_form(url: &str, pairs: &[(&str, &str)], authorization: Option<&str>) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let client = reqwest::blocking::Client::new();
    let mut request = client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    let response = request.send().expect("POST");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

fn agent_json(cluster: &Cluster) -> Value {
    let state = get_json(&format!("{}/master/slaves", cluster.master_url())).expect("slaves");
    state["slaves"][0].clone()
}

fn reserved(name: &str, value: f64, role: &str, principal: &str) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": value},
           "reservations": [{"type": "DYNAMIC", "role": role, "principal": principal}]})
}

fn volume(id: &str, size: f64, role: &str, principal: &str) -> Value {
    let mut v = reserved("disk", size, role, principal);
    v["disk"] = json!({"persistence": {"id": id, "principal": principal},
                       "volume": {"container_path": "data", "mode": "RW"}});
    v
}

/// A cluster of one agent for the pymesos volume tests. As root the agent
/// runs containers with the linux launcher, which bind-mounts volumes in
/// the container's own mount namespace; the flag says which.
fn volume_cluster() -> (Cluster, bool) {
    let linux = nix::unistd::geteuid().is_root();
    if !linux {
        eprintln!("NOTE: not root: the posix launcher links volumes instead of mounting them");
    }
    let mut cluster = Cluster::prepare(&[]);
    if linux {
        cluster.agent_args.push("--launcher=linux".into());
    }
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    (cluster, linux)
}

/// `pymesos_volume.py` as the framework principal, in role `storage`.
fn volume_script(python: &std::path::Path, cluster: &Cluster) -> Command {
    let mut command = Command::new(python);
    command
        .env("MESOS_PRINCIPAL", mesos_tests::FRAMEWORK_PRINCIPAL)
        .env("MESOS_SECRET", mesos_tests::FRAMEWORK_SECRET)
        .arg(script("pymesos_volume.py"))
        .args(["--master", &cluster.master_address(), "--role", "storage"]);
    command
}

/// The script's final line, after checking it exited 0 with "ok".
fn round_trip(output: &std::process::Output, cluster: &Cluster) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "no result line ({e}): {stdout}\n{stderr}\n{}",
                cluster.logs()
            )
        });
    assert!(
        output.status.success() && result["result"] == "ok",
        "the volume round trip failed: {stdout}\n{stderr}\n{}",
        cluster.logs()
    );
    result
}

#[test]
fn pymesos_reserves_creates_writes_reads_destroys_and_unreserves() {
    let Some(python) = mesos_tests::pymesos_or_skip() else {
        return;
    };
    let (cluster, linux) = volume_cluster();
    let output = volume_script(&python, &cluster)
        .args([
            "--volume-id",
            "pv-1",
            "--token",
            "t0k3n-42",
            "--timeout",
            "90",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("run pymesos");
    let result = round_trip(&output, &cluster);
    let finished = |task: &str| {
        result["updates"].as_array().is_some_and(|u| {
            u.iter()
                .any(|x| x["task_id"] == task && x["state"] == "TASK_FINISHED")
        })
    };
    assert!(finished("writer") && finished("reader"), "{result}");
    // Every operation with an id was reported finished, once it was durable.
    for id in ["reserve-1", "create-1", "destroy-1", "unreserve-1"] {
        let states: Vec<&str> = result["operations"]
            .as_array()
            .map(|ops| {
                ops.iter()
                    .filter(|o| o["id"] == id)
                    .filter_map(|o| o["state"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(states, ["OPERATION_FINISHED"], "{id}: {result}");
    }
    // Under the linux launcher the volume was bind-mounted in the task's
    // own mount namespace (never on the host); under posix, linked.
    let sandbox = std::fs::read_dir(cluster.dir.path().join("agent0/slaves"))
        .expect("slaves dir")
        .filter_map(Result::ok)
        .find_map(|agent| {
            let frameworks = agent.path().join("frameworks");
            std::fs::read_dir(frameworks)
                .ok()?
                .filter_map(Result::ok)
                .find_map(|f| {
                    let run = f.path().join("executors/writer/runs/latest");
                    run.exists().then_some(run)
                })
        })
        .expect("the writer's sandbox");
    let sandbox = std::fs::canonicalize(sandbox).expect("the run's directory");
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default();
    let data = std::fs::symlink_metadata(sandbox.join("data")).expect("data in the sandbox");
    if linux {
        assert_eq!(
            stdout.trim().lines().last(),
            Some("1"),
            "one mount at data: {stdout}"
        );
        assert!(data.is_dir(), "a mount point, not a link");
        let host = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !host.contains(&format!(" {}/data ", sandbox.display())),
            "the bind mount leaked to the host"
        );
    } else {
        assert!(
            data.file_type().is_symlink(),
            "posix: a link into the volume"
        );
    }
    // The destroyed volume's directory is gone from the agent's disk, and
    // nothing is reserved any more.
    let volume_dir = cluster.dir.path().join("agent0/volumes/roles/storage/pv-1");
    assert!(
        !volume_dir.exists(),
        "{} still exists",
        volume_dir.display()
    );
    let agent = agent_json(&cluster);
    assert_eq!(agent["reserved_resources_full"], json!({}), "{agent}");
    assert_eq!(
        agent["unreserved_resources"]["disk"],
        json!(10000.0),
        "{agent}"
    );
}

#[test]
fn operator_endpoints_reserve_create_survive_a_master_kill_then_destroy_and_unreserve() {
    let mut cluster = Cluster::start(1);
    let master = cluster.master_url();
    let auth = operator_auth();
    let op = mesos_tests::OPERATOR_PRINCIPAL;
    let agent_id = agent_json(&cluster)["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let resources = json!([
        reserved("cpus", 1.0, "ops", op),
        reserved("disk", 64.0, "ops", op)
    ]);
    let reserve =
        |pairs: &[(&str, &str)]| post_form(&format!("{master}/master/reserve"), pairs, Some(&auth));

    // Bad input is refused with Mesos's status codes and a reason.
    let text = resources.to_string();
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("resources", &text)], 400, "Missing 'slaveId'"),
        (vec![("slaveId", &agent_id)], 400, "Missing 'resources'"),
        (
            vec![("slaveId", &agent_id), ("resources", "not json")],
            400,
            "Error in parsing 'resources'",
        ),
        (
            vec![("slaveId", &agent_id), ("resources", "{}")],
            400,
            "expected a JSON array",
        ),
        (
            vec![("slaveId", "no-such-agent"), ("resources", &text)],
            400,
            "No agent found with specified ID",
        ),
    ];
    for (pairs, status, needle) in cases {
        let (got, body) = reserve(&pairs);
        assert_eq!(
            (got, body.contains(needle)),
            (status, true),
            "{pairs:?}: {got} {body}"
        );
    }
    let star = json!([{"name":"cpus","type":"SCALAR","scalar":{"value":1},
                       "reservations":[{"type":"DYNAMIC","role":"*","principal":op}]}])
    .to_string();
    let (got, body) = reserve(&[("slaveId", &agent_id), ("resources", &star)]);
    assert_eq!(got, 400, "{body}");
    let negative = json!([{"name":"cpus","type":"SCALAR","scalar":{"value":-1},
                           "reservations":[{"type":"DYNAMIC","role":"ops","principal":op}]}])
    .to_string();
    let (got, body) = reserve(&[("slaveId", &agent_id), ("resources", &negative)]);
    assert_eq!(got, 400, "{body}");
    let someone_else = json!([reserved("cpus", 1.0, "ops", "mallory")]).to_string();
    let (got, body) = reserve(&[("slaveId", &agent_id), ("resources", &someone_else)]);
    assert_eq!(got, 400, "{body}");
    assert!(
        body.contains("does not match a reserved resource in the request with principal 'mallory'"),
        "{body}"
    );
    let too_much = json!([reserved("cpus", 400.0, "ops", op)]).to_string();
    let (got, body) = reserve(&[("slaveId", &agent_id), ("resources", &too_much)]);
    assert_eq!(got, 409, "{body}");
    assert!(body.contains("does not contain"), "{body}");
    assert_eq!(
        agent_json(&cluster)["reserved_resources_full"],
        json!({}),
        "refusals changed nothing"
    );

    // Reserve, then create a volume on the reserved disk.
    let (got, body) = reserve(&[("slaveId", &agent_id), ("resources", &text)]);
    assert_eq!(got, 202, "{body}");
    let agent = agent_json(&cluster);
    assert_eq!(
        agent["reserved_resources"]["ops"]["cpus"],
        json!(1.0),
        "{agent}"
    );
    assert_eq!(agent["unreserved_resources"]["cpus"], json!(3.0), "{agent}");
    let volumes = json!([volume("pv-op", 64.0, "ops", op)]).to_string();
    let create = |v: &str| {
        post_form(
            &format!("{master}/master/create-volumes"),
            &[("slaveId", &agent_id), ("volumes", v)],
            Some(&auth),
        )
    };
    let (got, body) = create(&volumes);
    assert_eq!(got, 202, "{body}");
    let (got, body) = create(&volumes);
    assert_eq!(got, 400, "{body}");
    assert!(
        body.contains("Persistence ID 'pv-op' is not unique"),
        "{body}"
    );
    let unreserved_volume = json!([{"name":"disk","type":"SCALAR","scalar":{"value":1},
        "disk":{"persistence":{"id":"x","principal":op},"volume":{"container_path":"d","mode":"RW"}}}]).to_string();
    let (got, body) = create(&unreserved_volume);
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("unreserved"), "{body}");
    let volume_dir = cluster.dir.path().join("agent0/volumes/roles/ops/pv-op");
    wait_until(
        Duration::from_secs(10),
        "volume directory on the agent",
        || volume_dir.is_dir(),
    );
    std::fs::write(volume_dir.join("kept"), "data").expect("write into the volume");

    // A volume cannot be unreserved directly.
    let listed = agent_json(&cluster)["reserved_resources_full"]["ops"].clone();
    let listed_volume: Vec<Value> = listed
        .as_array()
        .expect("ops reservations")
        .iter()
        .filter(|r| r["disk"]["persistence"]["id"] == "pv-op")
        .cloned()
        .collect();
    assert_eq!(listed_volume.len(), 1, "{listed}");
    let (got, body) = post_form(
        &format!("{master}/master/unreserve"),
        &[
            ("slaveId", &agent_id),
            (
                "resources",
                &Value::Array(listed_volume.clone()).to_string(),
            ),
        ],
        Some(&auth),
    );
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("cannot be unreserved directly"), "{body}");

    // Another principal may not destroy or resize it, even with
    // "permissive": true; the refusal names the rule and the ACL to add.
    let framework_auth = mesos_tests::framework_auth();
    let (got, body) = post_form(
        &format!("{master}/master/destroy-volumes"),
        &[
            ("slaveId", &agent_id),
            ("volumes", &Value::Array(listed_volume.clone()).to_string()),
        ],
        Some(&framework_auth),
    );
    assert_eq!(got, 403, "{body}");
    assert!(body.contains("volumes belong to their creator"), "{body}");
    assert!(
        body.contains(r#""creator_principals":{"values":["test-operator"]}"#),
        "{body}"
    );
    let grow = json!({"type": "GROW_VOLUME", "grow_volume": {
        "agent_id": {"value": agent_id},
        "volume": listed_volume[0],
        "addition": reserved("disk", 1.0, "ops", op)}});
    let response = reqwest::blocking::Client::new()
        .post(format!("{master}/api/v1"))
        .header("Authorization", &framework_auth)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(grow.to_string())
        .send()
        .expect("GROW_VOLUME");
    assert_eq!(response.status().as_u16(), 403);
    assert!(volume_dir.join("kept").exists(), "refusals touched nothing");

    // kill -9 the master: the registry restores the reservation and volume.
    if let Some(mut m) = cluster.master.take() {
        m.kill();
    }
    cluster.start_master();
    cluster.wait_for_agents(1);
    let agent = agent_json(&cluster);
    assert_eq!(
        agent["reserved_resources"]["ops"]["cpus"],
        json!(1.0),
        "{agent}"
    );
    assert!(
        agent["reserved_resources_full"]["ops"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["disk"]["persistence"]["id"] == "pv-op")),
        "{agent}"
    );
    assert!(volume_dir.join("kept").exists(), "volume data survived");

    // Destroy an unknown volume: 400. Destroy the listed one as it is: 202.
    let destroy = |v: &str| {
        post_form(
            &format!("{master}/master/destroy-volumes"),
            &[("slaveId", &agent_id), ("volumes", v)],
            Some(&auth),
        )
    };
    let (got, body) = destroy(&json!([volume("nope", 64.0, "ops", op)]).to_string());
    assert_eq!(
        (got, body.contains("Persistent volumes not found")),
        (400, true),
        "{body}"
    );
    let (got, body) = destroy(&Value::Array(listed_volume).to_string());
    assert_eq!(got, 202, "{body}");
    wait_until(Duration::from_secs(10), "volume directory removed", || {
        !volume_dir.exists()
    });
    let (got, body) = post_form(
        &format!("{master}/master/unreserve"),
        &[("slaveId", &agent_id), ("resources", &text)],
        Some(&auth),
    );
    assert_eq!(got, 202, "{body}");
    let agent = agent_json(&cluster);
    assert_eq!(agent["reserved_resources_full"], json!({}), "{agent}");
    assert_eq!(agent["unreserved_resources"]["cpus"], json!(4.0), "{agent}");
    assert_eq!(
        agent["unreserved_resources"]["disk"],
        json!(10000.0),
        "{agent}"
    );
}

#[test]
fn agent_killed_while_a_task_writes_to_a_volume_keeps_the_volume_and_every_write() {
    let Some(python) = mesos_tests::pymesos_or_skip() else {
        return;
    };
    let (mut cluster, _) = volume_cluster();
    let child = volume_script(&python, &cluster)
        .args([
            "--volume-id",
            "pv-kill",
            "--timeout",
            "400",
            "--writer-extra",
            "for i in $(seq 1 2400); do echo $i >> data/log; sleep 0.05; done",
            "--reader-extra",
            "test $(wc -l < data/log) -eq 2400 && test $(tail -1 data/log) -eq 2400",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pymesos");
    let log = cluster
        .dir
        .path()
        .join("agent0/volumes/roles/storage/pv-kill/log");
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(60), "the writer to be writing", || {
        lines() >= 5
    });
    // The volume is in use: it cannot be destroyed.
    let master = cluster.master_url();
    let listed: Vec<Value> = agent_json(&cluster)["reserved_resources_full"]["storage"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["disk"]["persistence"]["id"] == "pv-kill")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "{}", agent_json(&cluster));
    let agent_id = agent_json(&cluster)["id"].as_str().expect("id").to_string();
    let (got, body) = post_form(
        &format!("{master}/master/destroy-volumes"),
        &[
            ("slaveId", &agent_id),
            ("volumes", &Value::Array(listed).to_string()),
        ],
        Some(&operator_auth()),
    );
    assert_eq!(
        (got, body.as_str()),
        (400, "Invalid DESTROY operation: Persistent volumes in use")
    );
    // Twenty kill -9s of the agent while the task writes.
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    for kill in 0..20 {
        let before = lines();
        if let Some(mut agent) = cluster.agents[0].take() {
            agent.kill();
        }
        cluster.start_agent(0);
        wait_until(
            Duration::from_secs(30),
            "the agent back with the task",
            || {
                get_json(&format!("{agent_url}/state"))
                    .is_some_and(|s| s["frameworks"].as_array().is_some_and(|f| !f.is_empty()))
            },
        );
        wait_until(Duration::from_secs(30), "the writer to go on", || {
            lines() > before + 2
        });
        assert!(lines() < 2400, "kill {kill}: the writer finished too early");
    }
    let output = child.wait_with_output().expect("pymesos exits");
    let result = round_trip(&output, &cluster);
    // The reader saw all 2,400 lines: nothing written before, during or after
    // the agent's death was lost, and the volume was not recreated empty.
    let reader_finished = result["updates"].as_array().is_some_and(|u| {
        u.iter()
            .any(|x| x["task_id"] == "reader" && x["state"] == "TASK_FINISHED")
    });
    assert!(reader_finished, "{result}");
}

#[test]
fn a_volume_directory_missing_after_an_agent_restart_is_reported_and_not_recreated() {
    let mut cluster = Cluster::start(1);
    let master = cluster.master_url();
    let auth = operator_auth();
    let op = mesos_tests::OPERATOR_PRINCIPAL;
    let agent_id = agent_json(&cluster)["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let reserve = json!([reserved("disk", 32.0, "ops", op)]).to_string();
    let (got, body) = post_form(
        &format!("{master}/master/reserve"),
        &[("slaveId", &agent_id), ("resources", &reserve)],
        Some(&auth),
    );
    assert_eq!(got, 202, "{body}");
    let volumes = json!([volume("pv-gone", 32.0, "ops", op)]).to_string();
    let (got, body) = post_form(
        &format!("{master}/master/create-volumes"),
        &[("slaveId", &agent_id), ("volumes", &volumes)],
        Some(&auth),
    );
    assert_eq!(got, 202, "{body}");
    let dir = cluster.dir.path().join("agent0/volumes/roles/ops/pv-gone");
    let agent_url = format!("http://127.0.0.1:{}", cluster.agent_ports[0]);
    // The agent has checkpointed the volume (it shows in its /state).
    wait_until(
        Duration::from_secs(10),
        "the agent to checkpoint the volume",
        || {
            dir.is_dir()
                && get_json(&format!("{agent_url}/state")).is_some_and(|s| {
                    s["reserved_resources_full"]["ops"]
                        .as_array()
                        .is_some_and(|a| {
                            a.iter()
                                .any(|r| r["disk"]["persistence"]["id"] == "pv-gone")
                        })
                })
        },
    );
    if let Some(mut agent) = cluster.agents[0].take() {
        agent.kill();
    }
    std::fs::remove_dir_all(&dir).expect("lose the volume's directory");
    cluster.start_agent(0);
    wait_until(
        Duration::from_secs(30),
        "the restarted agent's /state",
        || get_json(&format!("{agent_url}/state")).is_some_and(|s| s["id"].is_string()),
    );
    let state = get_json(&format!("{agent_url}/state")).expect("agent state");
    let missing: Vec<&str> = state["missing_volumes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(missing, [dir.display().to_string().as_str()], "{state}");
    // Still the agent's volume, in the master and the agent alike, and its
    // directory is not silently recreated empty.
    assert!(
        agent_json(&cluster)["reserved_resources_full"]["ops"]
            .as_array()
            .is_some_and(|a| a
                .iter()
                .any(|r| r["disk"]["persistence"]["id"] == "pv-gone")),
        "{}",
        agent_json(&cluster)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(!dir.exists(), "the missing volume was recreated");
    assert!(
        cluster
            .agent_log(0)
            .contains("persistent volume directory is missing"),
        "{}",
        cluster.agent_log(0)
    );
}

#[test]
fn volumes_of_an_agent_whose_work_dir_was_wiped_stay_listed_until_an_operator_removes_them() {
    let mut cluster = Cluster::prepare(&[]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let master = cluster.master_url();
    let auth = operator_auth();
    let op = mesos_tests::OPERATOR_PRINCIPAL;
    let old_id = agent_json(&cluster)["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let disk = json!([reserved("disk", 16.0, "ops", op)]).to_string();
    let post = |path: &str, agent: &str, key: &str, value: &str| {
        post_form(
            &format!("{master}{path}"),
            &[("slaveId", agent), (key, value)],
            Some(&auth),
        )
    };
    assert_eq!(post("/master/reserve", &old_id, "resources", &disk).0, 202);
    let volumes = json!([volume("pv-old", 16.0, "ops", op)]).to_string();
    assert_eq!(
        post("/master/create-volumes", &old_id, "volumes", &volumes).0,
        202
    );

    if let Some(mut agent) = cluster.agents[0].take() {
        agent.kill();
    }
    std::fs::remove_dir_all(cluster.dir.path().join("agent0")).expect("wipe the work dir");
    cluster.start_agent(0);
    let slaves_url = format!("{master}/master/slaves");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let listed_both = || {
        get_json(&slaves_url).is_some_and(|s| {
            let new_agent = s["slaves"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["id"] != old_id.as_str() && x["active"] == true)
            });
            let orphaned = s["orphaned_resources"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x["agent_id"] == old_id.as_str()));
            new_agent && orphaned
        })
    };
    while !listed_both() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new agent id with the old one's volumes listed: {}\n{}",
            get_json(&slaves_url).unwrap_or_default(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let slaves = get_json(&slaves_url).expect("slaves");
    let new_agent = slaves["slaves"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] != old_id.as_str()))
        .expect("the new agent")
        .clone();
    assert_eq!(
        new_agent["reserved_resources_full"],
        json!({}),
        "the new agent starts clean"
    );
    let orphan = slaves["orphaned_resources"]
        .as_array()
        .and_then(|o| o.iter().find(|x| x["agent_id"] == old_id.as_str()))
        .expect("the old agent's record")
        .clone();
    let listed: Vec<Value> = orphan["reserved_resources_full"]["ops"]
        .as_array()
        .expect("ops")
        .clone();
    let volume_listed: Vec<Value> = listed
        .iter()
        .filter(|r| r["disk"]["persistence"]["id"] == "pv-old")
        .cloned()
        .collect();
    assert_eq!(volume_listed.len(), 1, "{orphan}");
    // Only DESTROY and UNRESERVE make sense for a gone agent.
    let (got, body) = post("/master/reserve", &old_id, "resources", &disk);
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("is gone"), "{body}");
    let (got, body) = post(
        "/master/destroy-volumes",
        &old_id,
        "volumes",
        &Value::Array(volume_listed).to_string(),
    );
    assert_eq!(got, 202, "{body}");
    let (got, body) = post("/master/unreserve", &old_id, "resources", &disk);
    assert_eq!(got, 202, "{body}");
    let slaves = get_json(&slaves_url).expect("slaves");
    assert_eq!(slaves["orphaned_resources"], json!([]), "{slaves}");
}

#[test]
fn static_reservations_from_resources_and_default_role_are_reserved_and_hold_volumes() {
    let mut cluster = Cluster::prepare(&[]);
    cluster.agent_args.extend([
        "--resources=cpus:2;mem:1024;disk:500;disk(dev):100;cpus(*):1".to_string(),
        "--default_role=batch".to_string(),
    ]);
    cluster.start_master();
    cluster.add_agent();
    cluster.wait_for_agents(1);
    let agent = agent_json(&cluster);
    // `name:value` pieces go to --default_role, `(dev)` to dev, `(*)` stays
    // unreserved; static reservations carry type STATIC.
    assert_eq!(
        agent["reserved_resources"]["batch"]["cpus"],
        json!(2.0),
        "{agent}"
    );
    assert_eq!(
        agent["reserved_resources"]["batch"]["disk"],
        json!(500.0),
        "{agent}"
    );
    assert_eq!(
        agent["reserved_resources"]["dev"]["disk"],
        json!(100.0),
        "{agent}"
    );
    assert_eq!(agent["unreserved_resources"]["cpus"], json!(1.0), "{agent}");
    let dev = agent["reserved_resources_full"]["dev"][0].clone();
    assert_eq!(dev["reservations"][0]["type"], "STATIC", "{dev}");
    // A volume on statically reserved disk: the disk exactly as listed,
    // plus DiskInfo.
    let op = mesos_tests::OPERATOR_PRINCIPAL;
    let mut vol = dev.clone();
    vol["scalar"] = json!({"value": 40.0});
    vol["disk"] = json!({"persistence": {"id": "pv-static", "principal": op},
                         "volume": {"container_path": "data", "mode": "RW"}});
    let agent_id = agent["id"].as_str().expect("id").to_string();
    let (got, body) = post_form(
        &format!("{}/master/create-volumes", cluster.master_url()),
        &[
            ("slaveId", &agent_id),
            ("volumes", &json!([vol]).to_string()),
        ],
        Some(&operator_auth()),
    );
    assert_eq!(got, 202, "{body}");
    let dir = cluster
        .dir
        .path()
        .join("agent0/volumes/roles/dev/pv-static");
    wait_until(Duration::from_secs(10), "the volume on static disk", || {
        dir.is_dir()
    });
    // Reserved roles are known roles, with what is reserved to them.
    let roles = get_json(&format!("{}/master/roles", cluster.master_url())).expect("roles");
    let dev_role = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["name"] == "dev"))
        .expect("dev is listed");
    assert_eq!(dev_role["reserved"]["disk"], json!(100.0), "{roles}");
    // The owner grows the volume (v1 GROW_VOLUME) from the static disk.
    let find_volume = |cluster: &Cluster| {
        agent_json(cluster)["reserved_resources_full"]["dev"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r["disk"]["persistence"]["id"] == "pv-static")
                    .cloned()
            })
            .expect("the volume is listed")
    };
    let mut addition = dev.clone();
    addition["scalar"] = json!({"value": 10.0});
    let grow = json!({"type": "GROW_VOLUME", "grow_volume": {
        "agent_id": {"value": agent_id}, "volume": find_volume(&cluster), "addition": addition}});
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1", cluster.master_url()))
        .header("Authorization", operator_auth())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(grow.to_string())
        .send()
        .expect("GROW_VOLUME");
    let status = response.status().as_u16();
    assert_eq!(status, 202, "{}", response.text().unwrap_or_default());
    assert_eq!(find_volume(&cluster)["scalar"]["value"], json!(50.0));
    // A static reservation is not the operator's to unreserve.
    let (got, body) = post_form(
        &format!("{}/master/unreserve", cluster.master_url()),
        &[
            ("slaveId", &agent_id),
            (
                "resources",
                &json!([agent["reserved_resources_full"]["batch"][0]]).to_string(),
            ),
        ],
        Some(&operator_auth()),
    );
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("is not dynamically reserved"), "{body}");
}

#[test]
fn reserve_and_get_operations_work_in_protobuf_too() {
    use mesos_proto::v1::master::{call, response, Call, Response};
    use prost::Message;
    let cluster = Cluster::start(1);
    let agent_id = agent_json(&cluster)["id"].as_str().expect("id").to_string();
    let mut cpus = mesos_proto::v1::Resource {
        name: "cpus".into(),
        r#type: mesos_proto::v1::value::Type::Scalar as i32,
        scalar: Some(mesos_proto::v1::value::Scalar { value: 1.0 }),
        ..Default::default()
    };
    cpus.reservations
        .push(mesos_proto::v1::resource::ReservationInfo {
            r#type: Some(mesos_proto::v1::resource::reservation_info::Type::Dynamic as i32),
            role: Some("ops".into()),
            principal: Some(mesos_tests::OPERATOR_PRINCIPAL.into()),
            labels: None,
        });
    let reserve = Call {
        r#type: Some(call::Type::ReserveResources as i32),
        reserve_resources: Some(call::ReserveResources {
            agent_id: mesos_proto::v1::AgentId { value: agent_id },
            source: vec![],
            resources: vec![cpus],
        }),
        ..Default::default()
    };
    let post = |c: &Call| {
        reqwest::blocking::Client::new()
            .post(format!("{}/api/v1", cluster.master_url()))
            .header("Authorization", operator_auth())
            .header("Content-Type", "application/x-protobuf")
            .header("Accept", "application/x-protobuf")
            .body(c.encode_to_vec())
            .send()
            .expect("POST /api/v1")
    };
    let r = post(&reserve);
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        agent_json(&cluster)["reserved_resources"]["ops"]["cpus"],
        json!(1.0)
    );
    let r = post(&Call {
        r#type: Some(call::Type::GetOperations as i32),
        ..Default::default()
    });
    assert_eq!(r.status().as_u16(), 200);
    let decoded = Response::decode(r.bytes().expect("body")).expect("a protobuf Response");
    assert_eq!(decoded.r#type, Some(response::Type::GetOperations as i32));
    assert!(decoded.get_operations.is_some());
}
