//! The state machine driven with plain values: libprocess messages in,
//! effects and framework events out, time passed explicitly. Each test pins
//! one piece of Mesos's behaviour.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mesos_common::http::ContentType;
use mesos_common::transport::Message;
use mesos_common::Upid;
use mesos_proto::internal as msg;
use mesos_proto::v1::scheduler::{call, Call};
use mesos_proto::v1::{self as v1, offer::operation};
use prost::Name;
use serde_json::Value;
use tokio::sync::mpsc::error::TryRecvError;

use super::scheduler::{CallReply, Subscription};
use super::{Config, Effect, Master, Timer};
use crate::registry::{InMemoryRegistry, Registry, SledRegistry};

fn config() -> Config {
    Config {
        upid: Upid::new("master", "127.0.0.1", 5050),
        hostname: "localhost".into(),
        agent_ping_timeout: Duration::from_secs(15),
        max_agent_ping_timeouts: 3,
        agent_reregister_timeout: Duration::from_secs(600),
        role_whitelist: None,
        root_submissions: true,
        max_completed_frameworks: 50,
        max_completed_tasks_per_framework: 1000,
        weights: vec![],
        authenticate_agents: false,
        authz: Default::default(),
    }
}

/// A master with the test config and an in-memory registry (also used by
/// the HTTP layer's tests).
pub(crate) fn master() -> Master {
    Master::new(config(), Box::new(InMemoryRegistry::default())).expect("in-memory registry")
}

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        ..Default::default()
    }
}

fn agent_pid(n: u16) -> Upid {
    Upid::new("slave(1)", "127.0.0.1", 5050 + n)
}

fn agent_info(n: u16) -> v1::AgentInfo {
    v1::AgentInfo {
        hostname: format!("agent{n}"),
        resources: vec![scalar("cpus", 4.0), scalar("mem", 1024.0)],
        ..Default::default()
    }
}

fn deliver<M: prost::Message + Name>(master: &mut Master, from: &Upid, message: &M, now: Instant) {
    master.message(
        Message {
            from: from.clone(),
            to: "master".into(),
            name: M::full_name(),
            body: Bytes::from(message.encode_to_vec()),
            peer: None,
        },
        now,
    );
}

/// The messages of type `M` queued for `to`, decoded.
fn sent<M: prost::Message + Name + Default>(effects: &[Effect], to: &Upid) -> Vec<M> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to: target,
                name,
                body,
                ..
            } if target == to && *name == M::full_name() => {
                Some(M::decode(body.clone()).expect("effect body decodes"))
            }
            _ => None,
        })
        .collect()
}

/// Registers agent `n` and returns its id.
fn register_agent(master: &mut Master, n: u16, now: Instant) -> String {
    let pid = agent_pid(n);
    deliver(
        master,
        &pid,
        &msg::RegisterSlaveMessage {
            slave: agent_info(n),
            version: Some("1.12.0".into()),
            ..Default::default()
        },
        now,
    );
    let effects = master.take_effects();
    let registered = sent::<msg::SlaveRegisteredMessage>(&effects, &pid);
    assert_eq!(
        registered.len(),
        1,
        "one SlaveRegisteredMessage: {effects:?}"
    );
    registered[0].slave_id.value.clone()
}

fn framework_info(name: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        user: "nobody".into(),
        name: name.into(),
        ..Default::default()
    }
}

fn partition_aware(mut info: v1::FrameworkInfo) -> v1::FrameworkInfo {
    info.capabilities.push(v1::framework_info::Capability {
        r#type: Some(v1::framework_info::capability::Type::PartitionAware as i32),
    });
    info
}

fn subscribe_call(info: v1::FrameworkInfo) -> Call {
    Call {
        framework_id: info.id.clone(),
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: info,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A subscribed framework and its stream.
struct Fw {
    id: String,
    sub: Subscription,
}

impl Fw {
    /// Everything queued on the stream so far, as JSON events.
    fn events(&mut self) -> Vec<Value> {
        drain(&mut self.sub).0
    }

    fn call(&self, master: &mut Master, kind: call::Type, now: Instant, f: impl FnOnce(&mut Call)) {
        let mut c = Call {
            framework_id: Some(v1::FrameworkId {
                value: self.id.clone(),
            }),
            r#type: Some(kind as i32),
            ..Default::default()
        };
        f(&mut c);
        let reply = master
            .scheduler_call(c, Some(&self.sub.stream_id), now)
            .expect("call accepted");
        assert_eq!(reply, CallReply::Accepted);
    }
}

/// Queued events and whether the stream has ended.
fn drain(sub: &mut Subscription) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    loop {
        match sub.records.try_recv() {
            Ok(record) => {
                for r in mesos_proto::recordio::decode_all(&record, 1 << 20).expect("RecordIO") {
                    events.push(serde_json::from_slice(&r).expect("JSON event"));
                }
            }
            Err(TryRecvError::Empty) => return (events, false),
            Err(TryRecvError::Disconnected) => return (events, true),
        }
    }
}

fn subscribe(master: &mut Master, info: v1::FrameworkInfo, now: Instant) -> Fw {
    let sub = master.subscribe(subscribe_call(info), ContentType::Json, now);
    let id = sub.framework_id.clone().expect("subscription accepted");
    Fw { id, sub }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect()
}

fn offers_in(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "OFFERS")
        .flat_map(|e| {
            e["offers"]["offers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn updates_in(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "UPDATE")
        .map(|e| e["update"]["status"].clone())
        .collect()
}

fn offer_id(offer: &Value) -> v1::OfferId {
    v1::OfferId {
        value: offer["id"]["value"].as_str().expect("offer id").to_string(),
    }
}

fn task(id: &str, agent_id: &str, cpus: f64, mem: f64) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.into(),
        task_id: v1::TaskId { value: id.into() },
        agent_id: v1::AgentId {
            value: agent_id.into(),
        },
        resources: vec![scalar("cpus", cpus), scalar("mem", mem)],
        command: Some(v1::CommandInfo {
            value: Some("sleep 100".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn launch(tasks: Vec<v1::TaskInfo>) -> v1::offer::Operation {
    v1::offer::Operation {
        r#type: Some(operation::Type::Launch as i32),
        launch: Some(operation::Launch { task_infos: tasks }),
        ..Default::default()
    }
}

fn accept(
    offers: Vec<v1::OfferId>,
    operations: Vec<v1::offer::Operation>,
) -> impl FnOnce(&mut Call) {
    move |c| {
        c.accept = Some(call::Accept {
            offer_ids: offers,
            operations,
            filters: None,
        })
    }
}

/// One framework with one offer for the whole of one agent.
struct Offered {
    master: Master,
    agent_id: String,
    fw: Fw,
    offer: Value,
    now: Instant,
}

fn offered(info: v1::FrameworkInfo) -> Offered {
    let now = Instant::now();
    let mut master = master();
    let agent_id = register_agent(&mut master, 1, now);
    let mut fw = subscribe(&mut master, info, now);
    fw.events();
    master.allocate(now);
    let offers = offers_in(&fw.events());
    assert_eq!(offers.len(), 1, "one offer for the one agent");
    Offered {
        master,
        agent_id,
        fw,
        offer: offers[0].clone(),
        now,
    }
}

/// `offered` plus one running task `t1` (0.5 cpus, 64 MB).
fn with_running_task(info: v1::FrameworkInfo) -> Offered {
    let mut o = offered(info);
    let op = launch(vec![task("t1", &o.agent_id, 0.5, 64.0)]);
    o.fw.call(
        &mut o.master,
        call::Type::Accept,
        o.now,
        accept(vec![offer_id(&o.offer)], vec![op]),
    );
    o.master.take_effects();
    status_update(
        &mut o.master,
        &o.fw.id,
        &o.agent_id,
        "t1",
        v1::TaskState::TaskRunning,
        [1; 16],
        o.now,
    );
    o.fw.events();
    o
}

fn status_update(
    master: &mut Master,
    framework_id: &str,
    agent_id: &str,
    task_id: &str,
    state: v1::TaskState,
    uuid: [u8; 16],
    now: Instant,
) {
    let update = msg::StatusUpdate {
        framework_id: v1::FrameworkId {
            value: framework_id.into(),
        },
        slave_id: Some(v1::AgentId {
            value: agent_id.into(),
        }),
        status: v1::TaskStatus {
            task_id: v1::TaskId {
                value: task_id.into(),
            },
            state: state as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            uuid: Some(Bytes::copy_from_slice(&uuid)),
            ..Default::default()
        },
        timestamp: 1.0,
        ..Default::default()
    };
    deliver(
        master,
        &agent_pid(1),
        &msg::StatusUpdateMessage { update, pid: None },
        now,
    );
}

// -- subscription ------------------------------------------------------------

#[test]
fn subscribe_sends_subscribed_then_heartbeat_and_ids_follow_mesos_formats() {
    let now = Instant::now();
    let mut master = master();
    let agent_id = register_agent(&mut master, 1, now);
    let master_id = master.info.id.clone();
    assert_eq!(agent_id, format!("{master_id}-S0"));

    let mut fw = subscribe(&mut master, framework_info("a"), now);
    assert_eq!(fw.id, format!("{master_id}-0000"));
    let events = fw.events();
    assert_eq!(types(&events), ["SUBSCRIBED", "HEARTBEAT"]);
    assert_eq!(
        events[0]["subscribed"]["framework_id"]["value"],
        fw.id.as_str()
    );
    assert_eq!(events[0]["subscribed"]["heartbeat_interval_seconds"], 15.0);
    assert_eq!(
        events[0]["subscribed"]["master_info"]["id"],
        master_id.as_str()
    );

    let second = subscribe(&mut master, framework_info("b"), now);
    assert_eq!(second.id, format!("{master_id}-0001"));

    master.allocate(now);
    let offers = offers_in(&fw.events());
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0]["id"]["value"], format!("{master_id}-O0").as_str());
    assert_eq!(offers[0]["agent_id"]["value"], agent_id.as_str());
}

#[test]
fn resubscribing_fails_over_the_old_stream_and_rejects_its_stream_id() {
    let now = Instant::now();
    let mut master = master();
    let mut old = subscribe(&mut master, framework_info("a"), now);
    old.events();
    let mut info = framework_info("a");
    info.id = Some(v1::FrameworkId {
        value: old.id.clone(),
    });
    let mut new = subscribe(&mut master, info, now);
    assert_eq!(new.id, old.id);
    assert_ne!(new.sub.stream_id, old.sub.stream_id);
    assert_eq!(types(&new.events()), ["SUBSCRIBED", "HEARTBEAT"]);

    let (events, ended) = drain(&mut old.sub);
    assert_eq!(types(&events), ["ERROR"]);
    assert_eq!(events[0]["error"]["message"], "Framework failed over");
    assert!(ended, "the old stream ends");

    let revive = Call {
        framework_id: Some(v1::FrameworkId {
            value: old.id.clone(),
        }),
        r#type: Some(call::Type::Revive as i32),
        ..Default::default()
    };
    let err = master
        .scheduler_call(revive.clone(), Some(&old.sub.stream_id), now)
        .expect_err("old stream id is refused");
    assert_eq!(err.status.as_u16(), 400);
    let reply = master
        .scheduler_call(revive, Some(&new.sub.stream_id), now)
        .expect("current stream id is accepted");
    assert_eq!(reply, CallReply::Accepted);
}

#[test]
fn subscribing_with_the_id_of_a_torn_down_framework_is_an_error() {
    let now = Instant::now();
    let mut master = master();
    let fw = subscribe(&mut master, framework_info("a"), now);
    fw.call(&mut master, call::Type::Teardown, now, |_| {});
    assert!(master.frameworks.is_empty());
    let mut info = framework_info("a");
    info.id = Some(v1::FrameworkId {
        value: fw.id.clone(),
    });
    let mut sub = master.subscribe(subscribe_call(info), ContentType::Json, now);
    assert_eq!(sub.framework_id, None);
    let (events, ended) = drain(&mut sub);
    assert_eq!(types(&events), ["ERROR"]);
    assert_eq!(events[0]["error"]["message"], "Framework has been removed");
    assert!(ended);
}

#[test]
fn principal_change_on_resubscribe_is_only_an_error() {
    let now = Instant::now();
    let mut master = master();
    let mut info = framework_info("a");
    info.principal = Some("alice".into());
    let fw = subscribe(&mut master, info.clone(), now);
    info.id = Some(v1::FrameworkId {
        value: fw.id.clone(),
    });
    info.principal = Some("mallory".into());
    let mut sub = master.subscribe(subscribe_call(info), ContentType::Json, now);
    let (events, ended) = drain(&mut sub);
    assert_eq!(types(&events), ["ERROR"]);
    assert_eq!(
        events[0]["error"]["message"],
        "Changing framework's principal is not allowed."
    );
    assert!(ended);
    assert!(
        master.frameworks[&fw.id].connected(),
        "the old stream stays"
    );
}

// -- accept ------------------------------------------------------------------

#[test]
fn accept_of_an_unknown_offer_loses_the_task_with_invalid_offers() {
    for aware in [false, true] {
        let mut o = offered(if aware {
            partition_aware(framework_info("a"))
        } else {
            framework_info("a")
        });
        let unknown = v1::OfferId {
            value: "no-such-offer".into(),
        };
        let op = launch(vec![task("t1", &o.agent_id, 0.1, 16.0)]);
        o.fw.call(
            &mut o.master,
            call::Type::Accept,
            o.now,
            accept(vec![unknown], vec![op]),
        );
        let updates = updates_in(&o.fw.events());
        assert_eq!(updates.len(), 1);
        let expected = if aware { "TASK_DROPPED" } else { "TASK_LOST" };
        assert_eq!(updates[0]["state"], expected);
        assert_eq!(updates[0]["reason"], "REASON_INVALID_OFFERS");
        assert_eq!(updates[0]["source"], "SOURCE_MASTER");
        assert!(
            updates[0].get("uuid").is_none(),
            "master updates carry no uuid"
        );
        assert!(sent::<msg::RunTaskMessage>(&o.master.take_effects(), &agent_pid(1)).is_empty());
    }
}

#[test]
fn accept_with_a_duplicate_task_id_errors_the_duplicate() {
    let mut o = offered(framework_info("a"));
    let op = launch(vec![
        task("t1", &o.agent_id, 0.1, 16.0),
        task("t1", &o.agent_id, 0.1, 16.0),
    ]);
    o.fw.call(
        &mut o.master,
        call::Type::Accept,
        o.now,
        accept(vec![offer_id(&o.offer)], vec![op]),
    );
    let updates = updates_in(&o.fw.events());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["state"], "TASK_ERROR");
    assert_eq!(updates[0]["reason"], "REASON_TASK_INVALID");
    assert_eq!(
        sent::<msg::RunTaskMessage>(&o.master.take_effects(), &agent_pid(1)).len(),
        1
    );
}

#[test]
fn accept_of_a_task_larger_than_the_offer_is_a_task_error() {
    let mut o = offered(framework_info("a"));
    let op = launch(vec![task("big", &o.agent_id, 64.0, 16.0)]);
    o.fw.call(
        &mut o.master,
        call::Type::Accept,
        o.now,
        accept(vec![offer_id(&o.offer)], vec![op]),
    );
    let updates = updates_in(&o.fw.events());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["state"], "TASK_ERROR");
    assert_eq!(updates[0]["reason"], "REASON_TASK_INVALID");
    assert!(sent::<msg::RunTaskMessage>(&o.master.take_effects(), &agent_pid(1)).is_empty());
    assert!(o.master.frameworks[&o.fw.id].tasks.is_empty());
}

#[test]
fn accepted_task_is_run_on_the_agent_and_the_remainder_is_offered_after_the_filter() {
    let mut o = offered(framework_info("a"));
    let op = launch(vec![task("t1", &o.agent_id, 1.0, 128.0)]);
    o.fw.call(
        &mut o.master,
        call::Type::Accept,
        o.now,
        accept(vec![offer_id(&o.offer)], vec![op]),
    );
    let runs = sent::<msg::RunTaskMessage>(&o.master.take_effects(), &agent_pid(1));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].task.task_id.value, "t1");
    assert_eq!(
        runs[0].framework.id.as_ref().map(|i| i.value.as_str()),
        Some(o.fw.id.as_str())
    );
    assert!(
        o.fw.events().is_empty(),
        "no update from the master for a valid task"
    );
    assert_eq!(
        o.master.frameworks[&o.fw.id].tasks["t1"].state(),
        v1::TaskState::TaskStaging as i32
    );
    assert!(o.master.offers.is_empty());

    // The default refuse_seconds (5) filters the remainder for a while.
    o.master.allocate(o.now + Duration::from_secs(1));
    assert!(offers_in(&o.fw.events()).is_empty());
    o.master.allocate(o.now + Duration::from_secs(6));
    let offers = offers_in(&o.fw.events());
    assert_eq!(offers.len(), 1);
    let cpus: f64 = offers[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["name"] == "cpus")
        .map(|r| r["scalar"]["value"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        (cpus - 3.0).abs() < 1e-9,
        "the unused 3 cpus come back, got {cpus}"
    );
}

#[test]
fn decline_with_refuse_seconds_filters_the_agent_until_it_expires() {
    let mut o = offered(framework_info("a"));
    let id = offer_id(&o.offer);
    o.fw.call(&mut o.master, call::Type::Decline, o.now, |c| {
        c.decline = Some(call::Decline {
            offer_ids: vec![id],
            filters: Some(v1::Filters {
                refuse_seconds: Some(30.0),
            }),
        })
    });
    assert!(o.master.offers.is_empty());
    o.master.allocate(o.now + Duration::from_secs(29));
    assert!(offers_in(&o.fw.events()).is_empty());
    o.master.allocate(o.now + Duration::from_secs(31));
    assert_eq!(offers_in(&o.fw.events()).len(), 1);
}

// -- status updates ----------------------------------------------------------

#[test]
fn status_update_is_forwarded_acknowledged_and_a_terminal_task_completes() {
    let mut o = with_running_task(framework_info("a"));
    assert_eq!(
        o.master.frameworks[&o.fw.id].tasks["t1"].state(),
        v1::TaskState::TaskRunning as i32
    );
    status_update(
        &mut o.master,
        &o.fw.id,
        &o.agent_id,
        "t1",
        v1::TaskState::TaskFinished,
        [2; 16],
        o.now,
    );
    let updates = updates_in(&o.fw.events());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["state"], "TASK_FINISHED");
    let uuid = updates[0]["uuid"]
        .as_str()
        .expect("agent updates carry the uuid");
    use base64::Engine as _;
    let uuid = base64::engine::general_purpose::STANDARD
        .decode(uuid)
        .expect("base64 uuid");
    assert_eq!(uuid, [2; 16]);
    // Not completed before the acknowledgement.
    assert!(o.master.frameworks[&o.fw.id].tasks.contains_key("t1"));

    let agent_id = o.agent_id.clone();
    o.fw.call(&mut o.master, call::Type::Acknowledge, o.now, |c| {
        c.acknowledge = Some(call::Acknowledge {
            agent_id: v1::AgentId { value: agent_id },
            task_id: v1::TaskId { value: "t1".into() },
            uuid: Bytes::from(uuid),
        })
    });
    let acks =
        sent::<msg::StatusUpdateAcknowledgementMessage>(&o.master.take_effects(), &agent_pid(1));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].task_id.value, "t1");
    assert_eq!(acks[0].framework_id.value, o.fw.id);
    assert_eq!(&acks[0].uuid[..], &[2; 16]);
    let framework = &o.master.frameworks[&o.fw.id];
    assert!(framework.tasks.is_empty());
    assert_eq!(framework.completed_tasks.len(), 1);
    assert_eq!(
        framework.completed_tasks[0].state(),
        v1::TaskState::TaskFinished as i32
    );
    assert!(o.master.agents[&o.agent_id].tasks.is_empty());
}

// -- reconciliation ----------------------------------------------------------

fn reconcile_call(tasks: Vec<(&str, Option<&str>)>) -> impl FnOnce(&mut Call) {
    let tasks = tasks
        .into_iter()
        .map(|(t, a)| call::reconcile::Task {
            task_id: v1::TaskId { value: t.into() },
            agent_id: a.map(|a| v1::AgentId { value: a.into() }),
        })
        .collect();
    move |c| c.reconcile = Some(call::Reconcile { tasks })
}

#[test]
fn explicit_reconciliation_of_an_unknown_task_on_a_registered_agent() {
    for aware in [false, true] {
        let mut o = with_running_task(if aware {
            partition_aware(framework_info("a"))
        } else {
            framework_info("a")
        });
        let agent_id = o.agent_id.clone();
        o.fw.call(
            &mut o.master,
            call::Type::Reconcile,
            o.now,
            reconcile_call(vec![("ghost", Some(&agent_id))]),
        );
        let updates = updates_in(&o.fw.events());
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0]["task_id"]["value"], "ghost");
        assert_eq!(
            updates[0]["state"],
            if aware { "TASK_GONE" } else { "TASK_LOST" }
        );
        assert_eq!(updates[0]["reason"], "REASON_RECONCILIATION");
        assert!(updates[0].get("uuid").is_none());
    }
}

#[test]
fn implicit_reconciliation_sends_the_latest_state_of_every_task() {
    let mut o = with_running_task(framework_info("a"));
    o.fw.call(
        &mut o.master,
        call::Type::Reconcile,
        o.now,
        reconcile_call(vec![]),
    );
    let updates = updates_in(&o.fw.events());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["task_id"]["value"], "t1");
    assert_eq!(updates[0]["state"], "TASK_RUNNING");
    assert_eq!(updates[0]["reason"], "REASON_RECONCILIATION");
    assert_eq!(updates[0]["source"], "SOURCE_MASTER");
    assert!(updates[0].get("uuid").is_none());
}

// -- kill --------------------------------------------------------------------

#[test]
fn kill_of_an_unknown_task_is_task_lost_and_of_a_known_task_goes_to_the_agent() {
    let mut o = with_running_task(framework_info("a"));
    o.fw.call(&mut o.master, call::Type::Kill, o.now, |c| {
        c.kill = Some(call::Kill {
            task_id: v1::TaskId {
                value: "ghost".into(),
            },
            ..Default::default()
        })
    });
    let updates = updates_in(&o.fw.events());
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["state"], "TASK_LOST");
    assert!(sent::<msg::KillTaskMessage>(&o.master.take_effects(), &agent_pid(1)).is_empty());

    o.fw.call(&mut o.master, call::Type::Kill, o.now, |c| {
        c.kill = Some(call::Kill {
            task_id: v1::TaskId { value: "t1".into() },
            ..Default::default()
        })
    });
    let kills = sent::<msg::KillTaskMessage>(&o.master.take_effects(), &agent_pid(1));
    assert_eq!(kills.len(), 1);
    assert_eq!(kills[0].task_id.value, "t1");
    assert_eq!(kills[0].framework_id.value, o.fw.id);
    assert!(o.fw.events().is_empty());
}

// -- disconnection and failover ----------------------------------------------

fn failover_timer(effects: &[Effect]) -> (Duration, Timer) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Timer {
                after,
                timer: timer @ Timer::FrameworkFailover { .. },
            } => Some((*after, timer.clone())),
            _ => None,
        })
        .expect("a failover timer")
}

#[test]
fn closed_stream_with_zero_failover_timeout_removes_the_framework() {
    let mut o = with_running_task(framework_info("a"));
    o.master.stream_closed(&o.fw.id, &o.fw.sub.stream_id, o.now);
    let (after, timer) = failover_timer(&o.master.take_effects());
    assert_eq!(after, Duration::ZERO);
    assert!(o.master.frameworks.contains_key(&o.fw.id));
    o.master.timer(timer, o.now);
    assert!(!o.master.frameworks.contains_key(&o.fw.id));
    assert!(o.master.is_completed_framework(&o.fw.id));
    let shutdowns = sent::<msg::ShutdownFrameworkMessage>(&o.master.take_effects(), &agent_pid(1));
    assert_eq!(shutdowns.len(), 1);
    assert!(o.master.agents[&o.agent_id].tasks.is_empty());
}

#[test]
fn closed_stream_with_failover_timeout_keeps_tasks_if_resubscribed_in_time() {
    let mut info = framework_info("a");
    info.failover_timeout = Some(60.0);
    let mut o = with_running_task(info.clone());
    o.master.stream_closed(&o.fw.id, &o.fw.sub.stream_id, o.now);
    let (after, timer) = failover_timer(&o.master.take_effects());
    assert_eq!(after, Duration::from_secs(60));
    assert!(!o.master.frameworks[&o.fw.id].connected());
    // Inactive: no offers while disconnected.
    o.master.allocate(o.now + Duration::from_secs(10));
    assert!(o.master.offers.is_empty());

    info.id = Some(v1::FrameworkId {
        value: o.fw.id.clone(),
    });
    let mut again = subscribe(&mut o.master, info, o.now);
    assert_eq!(types(&again.events()), ["SUBSCRIBED", "HEARTBEAT"]);
    o.master.timer(timer, o.now + Duration::from_secs(60));
    let framework = &o.master.frameworks[&o.fw.id];
    assert!(framework.connected());
    assert!(framework.tasks.contains_key("t1"));
    o.master.allocate(o.now + Duration::from_secs(61));
    assert_eq!(offers_in(&again.events()).len(), 1, "active again");
}

#[test]
fn closed_stream_with_failover_timeout_removes_the_framework_when_it_expires() {
    let mut info = framework_info("a");
    info.failover_timeout = Some(60.0);
    let mut o = with_running_task(info);
    o.master.stream_closed(&o.fw.id, &o.fw.sub.stream_id, o.now);
    let (_, timer) = failover_timer(&o.master.take_effects());
    o.master.timer(timer, o.now + Duration::from_secs(60));
    assert!(!o.master.frameworks.contains_key(&o.fw.id));
    assert!(o.master.is_completed_framework(&o.fw.id));
}

// -- agent loss --------------------------------------------------------------

#[test]
fn agent_missing_pongs_loses_its_tasks_and_rescinds_its_offers() {
    for aware in [false, true] {
        let info = if aware {
            partition_aware(framework_info("a"))
        } else {
            framework_info("a")
        };
        let mut o = with_running_task(info);
        // The remainder of the agent is offered again.
        o.master.allocate(o.now + Duration::from_secs(6));
        assert_eq!(offers_in(&o.fw.events()).len(), 1);
        for _ in 0..=o.master.config.max_agent_ping_timeouts {
            o.master.ping_agents(o.now);
        }
        assert!(o.master.agents.is_empty(), "agent removed");
        assert!(o.master.unreachable_agents.contains_key(&o.agent_id));
        let events = o.fw.events();
        assert!(types(&events).contains(&"RESCIND"), "{events:?}");
        let updates = updates_in(&events);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0]["task_id"]["value"], "t1");
        assert_eq!(
            updates[0]["state"],
            if aware {
                "TASK_UNREACHABLE"
            } else {
                "TASK_LOST"
            }
        );
        assert!(o.master.offers.is_empty());
    }
}

#[test]
fn answered_pings_keep_the_agent() {
    let now = Instant::now();
    let mut master = master();
    let agent_id = register_agent(&mut master, 1, now);
    for _ in 0..10 {
        master.ping_agents(now);
        let effects = master.take_effects();
        let (from, _) = effects
            .iter()
            .find_map(|e| match e {
                Effect::Send { from, name, .. } if *name == msg::PingSlaveMessage::full_name() => {
                    Some((from.clone(), ()))
                }
                _ => None,
            })
            .expect("a ping");
        master.message(
            Message {
                from: agent_pid(1),
                to: from,
                name: msg::PongSlaveMessage::full_name(),
                body: Bytes::new(),
                peer: None,
            },
            now,
        );
    }
    assert!(master.agents.contains_key(&agent_id));
}

// -- master restart ------------------------------------------------------------

fn restart_adopts_recovered_framework(mut registry: Box<dyn Registry>) {
    let now = Instant::now();
    let agent_id = "old-master-S3";
    let mut info = agent_info(1);
    info.id = Some(v1::AgentId {
        value: agent_id.into(),
    });
    registry.admit_agent(&info, 1.0).expect("admit");
    let mut master = Master::new(config(), registry).expect("recover");
    assert!(master.recovered_agents.contains_key(agent_id));
    assert!(master.take_effects().iter().any(|e| matches!(
        e,
        Effect::Timer {
            timer: Timer::AgentReregisterTimeout,
            ..
        }
    )));

    let framework_id = "old-master-0007";
    let mut framework = framework_info("survivor");
    framework.id = Some(v1::FrameworkId {
        value: framework_id.into(),
    });
    framework.checkpoint = Some(true);
    let task = v1::Task {
        name: "t1".into(),
        task_id: v1::TaskId { value: "t1".into() },
        framework_id: v1::FrameworkId {
            value: framework_id.into(),
        },
        agent_id: v1::AgentId {
            value: agent_id.into(),
        },
        state: v1::TaskState::TaskRunning as i32,
        resources: vec![scalar("cpus", 1.0), scalar("mem", 128.0)],
        ..Default::default()
    };
    deliver(
        &mut master,
        &agent_pid(1),
        &msg::ReregisterSlaveMessage {
            slave: info,
            tasks: vec![task],
            frameworks: vec![framework.clone()],
            version: Some("1.12.0".into()),
            ..Default::default()
        },
        now,
    );
    let effects = master.take_effects();
    let reregistered = sent::<msg::SlaveReregisteredMessage>(&effects, &agent_pid(1));
    assert_eq!(reregistered.len(), 1);
    assert_eq!(reregistered[0].slave_id.value, agent_id);
    assert!(master.recovered_agents.is_empty());
    assert!(master.agents.contains_key(agent_id));
    let recovered = &master.frameworks[framework_id];
    assert!(recovered.recovered);
    assert!(!recovered.connected());
    assert!(recovered.tasks.contains_key("t1"));

    let mut fw = subscribe(&mut master, framework, now);
    assert_eq!(fw.id, framework_id);
    assert_eq!(types(&fw.events()), ["SUBSCRIBED", "HEARTBEAT"]);
    let adopted = &master.frameworks[framework_id];
    assert!(!adopted.recovered);
    assert!(adopted.connected());
    assert_eq!(
        adopted.tasks["t1"].state(),
        v1::TaskState::TaskRunning as i32
    );
    assert!(master.agents[agent_id]
        .tasks
        .iter()
        .any(|k| k == (framework_id, "t1")));

    // The framework is offered what its task does not use.
    master.allocate(now);
    let offers = offers_in(&fw.events());
    assert_eq!(offers.len(), 1);
}

#[test]
fn restarted_master_adopts_a_framework_recovered_from_a_reregistering_agent() {
    restart_adopts_recovered_framework(Box::new(InMemoryRegistry::default()));
}

#[test]
fn restarted_master_with_sled_registry_adopts_a_recovered_framework() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = SledRegistry::open(dir.path()).expect("open sled registry");
    restart_adopts_recovered_framework(Box::new(registry));
}

// -- operator event stream -----------------------------------------------------

fn drain_operator(records: &mut tokio::sync::mpsc::UnboundedReceiver<Bytes>) -> Vec<Value> {
    let mut events = Vec::new();
    while let Ok(record) = records.try_recv() {
        for r in mesos_proto::recordio::decode_all(&record, 1 << 20).expect("RecordIO") {
            events.push(serde_json::from_slice(&r).expect("JSON event"));
        }
    }
    events
}

#[test]
fn operator_stream_events_are_filtered_per_subscriber_principal() {
    let now = Instant::now();
    let acls = mesos_acls::Acls::from_flag(
        r#"{"permissive": true,
            "view_frameworks": [
                {"principals": {"values": ["alice"]}, "users": {"type": "ANY"}},
                {"principals": {"values": ["bob"]}, "users": {"values": ["root"]}},
                {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
            "view_tasks": [
                {"principals": {"values": ["alice"]}, "users": {"type": "ANY"}},
                {"principals": {"values": ["bob"]}, "users": {"values": ["root"]}},
                {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}"#,
    )
    .expect("ACLs");
    let authorizer = mesos_acls::CasbinAuthorizer::new_blocking(&acls.acls).expect("authorizer");
    let mut config = config();
    config.authz = super::authz::Authz::new(
        Some(std::sync::Arc::new(authorizer)),
        mesos_common::auth::audit::AuditLog::disabled(),
    );
    let mut master =
        Master::new(config, Box::new(InMemoryRegistry::default())).expect("in-memory registry");
    let agent_id = register_agent(&mut master, 1, now);
    let mut alice = master
        .subscribe_operator_as(ContentType::Json, Some("alice".into()))
        .expect("under the cap");
    let mut bob = master
        .subscribe_operator_as(ContentType::Json, Some("bob".into()))
        .expect("under the cap");

    // Framework user `nobody`: alice sees it all, bob none of it.
    let mut fw = subscribe(&mut master, framework_info("watched"), now);
    fw.events();
    master.allocate(now);
    let offer = offers_in(&fw.events()).remove(0);
    let op = launch(vec![task("t1", &agent_id, 1.0, 64.0)]);
    fw.call(
        &mut master,
        call::Type::Accept,
        now,
        accept(vec![offer_id(&offer)], vec![op]),
    );
    status_update(
        &mut master,
        &fw.id,
        &agent_id,
        "t1",
        v1::TaskState::TaskRunning,
        [1; 16],
        now,
    );
    master.stream_closed(&fw.id, &fw.sub.stream_id, now);
    let (_, timer) = failover_timer(&master.take_effects());
    master.timer(timer, now);
    assert_eq!(
        types(&drain_operator(&mut alice)),
        [
            "SUBSCRIBED",
            "FRAMEWORK_ADDED",
            "TASK_ADDED",
            "TASK_UPDATED",
            "FRAMEWORK_UPDATED",
            "TASK_UPDATED",
            "FRAMEWORK_REMOVED"
        ]
    );
    assert_eq!(types(&drain_operator(&mut bob)), ["SUBSCRIBED"]);

    // Agents are everyone's.
    register_agent(&mut master, 2, now);
    assert_eq!(types(&drain_operator(&mut bob)), ["AGENT_ADDED"]);
    // A late subscriber's snapshot is filtered too.
    let mut late = master
        .subscribe_operator_as(ContentType::Json, Some("bob".into()))
        .expect("under the cap");
    let events = drain_operator(&mut late);
    let state = &events[0]["subscribed"]["get_state"];
    assert!(
        state["get_frameworks"]["completed_frameworks"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{state}"
    );
    assert!(
        state["get_tasks"]["completed_tasks"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{state}"
    );
    let mut late_alice = master
        .subscribe_operator_as(ContentType::Json, Some("alice".into()))
        .expect("under the cap");
    let events = drain_operator(&mut late_alice);
    let state = &events[0]["subscribed"]["get_state"];
    assert_eq!(
        state["get_frameworks"]["completed_frameworks"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{state}"
    );
}

#[test]
fn operator_stream_starts_with_the_state_and_follows_frameworks_tasks_and_agents() {
    let now = Instant::now();
    let mut master = master();
    let agent_id = register_agent(&mut master, 1, now);
    let mut ops = master
        .subscribe_operator(ContentType::Json)
        .expect("under the cap");
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["SUBSCRIBED"]);
    let subscribed = &events[0]["subscribed"];
    assert_eq!(subscribed["heartbeat_interval_seconds"], 15.0);
    assert_eq!(
        subscribed["get_state"]["get_agents"]["agents"][0]["agent_info"]["id"]["value"],
        agent_id.as_str()
    );

    let mut fw = subscribe(&mut master, framework_info("watched"), now);
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["FRAMEWORK_ADDED"]);
    let added = &events[0]["framework_added"]["framework"];
    assert_eq!(added["framework_info"]["id"]["value"], fw.id.as_str());
    assert_eq!(added["active"], true);

    fw.events();
    master.allocate(now);
    let offer = offers_in(&fw.events()).remove(0);
    let op = launch(vec![task("t1", &agent_id, 1.0, 64.0)]);
    fw.call(
        &mut master,
        call::Type::Accept,
        now,
        accept(vec![offer_id(&offer)], vec![op]),
    );
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["TASK_ADDED"]);
    assert_eq!(events[0]["task_added"]["task"]["task_id"]["value"], "t1");
    assert_eq!(events[0]["task_added"]["task"]["state"], "TASK_STAGING");

    status_update(
        &mut master,
        &fw.id,
        &agent_id,
        "t1",
        v1::TaskState::TaskRunning,
        [1; 16],
        now,
    );
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["TASK_UPDATED"]);
    let updated = &events[0]["task_updated"];
    assert_eq!(updated["framework_id"]["value"], fw.id.as_str());
    assert_eq!(updated["state"], "TASK_RUNNING");
    assert_eq!(updated["status"]["task_id"]["value"], "t1");
    assert_eq!(updated["status"]["state"], "TASK_RUNNING");

    master.stream_closed(&fw.id, &fw.sub.stream_id, now);
    let (_, timer) = failover_timer(&master.take_effects());
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["FRAMEWORK_UPDATED"]);
    assert_eq!(events[0]["framework_updated"]["framework"]["active"], false);
    master.timer(timer, now);
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["TASK_UPDATED", "FRAMEWORK_REMOVED"]);
    assert_eq!(events[0]["task_updated"]["state"], "TASK_KILLED");
    assert_eq!(
        events[1]["framework_removed"]["framework_info"]["id"]["value"],
        fw.id.as_str()
    );

    let second = register_agent(&mut master, 2, now);
    let events = drain_operator(&mut ops);
    assert_eq!(types(&events), ["AGENT_ADDED"]);
    assert_eq!(
        events[0]["agent_added"]["agent"]["agent_info"]["id"]["value"],
        second.as_str()
    );
    for _ in 0..=master.config.max_agent_ping_timeouts {
        master.ping_agents(now);
    }
    let events = drain_operator(&mut ops);
    let mut removed: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "AGENT_REMOVED")
        .filter_map(|e| e["agent_removed"]["agent_id"]["value"].as_str())
        .collect();
    removed.sort_unstable();
    let mut expected = vec![agent_id.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(removed, expected);
}

#[test]
fn operator_stream_in_protobuf_decodes_as_master_events() {
    use mesos_proto::v1::master::{event, Event};
    use prost::Message as _;
    let now = Instant::now();
    let mut master = master();
    let mut ops = master
        .subscribe_operator(ContentType::Protobuf)
        .expect("under the cap");
    register_agent(&mut master, 1, now);
    let mut events = Vec::new();
    while let Ok(record) = ops.try_recv() {
        for r in mesos_proto::recordio::decode_all(&record, 1 << 20).expect("RecordIO") {
            events.push(Event::decode(r).expect("protobuf master event").r#type());
        }
    }
    assert_eq!(events, [event::Type::Subscribed, event::Type::AgentAdded]);
}

#[test]
fn operator_subscribers_are_capped_and_closed_ones_pruned() {
    let mut master = master();
    let mut streams: Vec<_> = (0..super::MAX_OPERATOR_SUBSCRIBERS)
        .map(|_| {
            master
                .subscribe_operator(ContentType::Json)
                .expect("under the cap")
        })
        .collect();
    assert_eq!(
        master.subscribe_operator(ContentType::Json).err(),
        Some(super::OperatorSubscribeError::TooManySubscribers)
    );
    // A client going away frees its slot.
    streams.pop();
    let mut last = master
        .subscribe_operator(ContentType::Json)
        .expect("a slot was freed");
    assert_eq!(types(&drain_operator(&mut last)), ["SUBSCRIBED"]);
    // Events prune closed streams too.
    streams.truncate(10);
    register_agent(&mut master, 1, Instant::now());
    assert_eq!(master.operator_subscribers.len(), 11);
}

#[test]
fn unauthenticated_agent_is_told_to_shut_down_under_authenticate_agents() {
    let mut config = config();
    config.authenticate_agents = true;
    let mut master =
        Master::new(config, Box::new(InMemoryRegistry::default())).expect("in-memory registry");
    let now = Instant::now();
    let pid = agent_pid(1);
    let register = msg::RegisterSlaveMessage {
        slave: agent_info(1),
        version: Some("1.12.0".into()),
        ..Default::default()
    };
    deliver(&mut master, &pid, &register, now);
    let effects = master.take_effects();
    let shutdown = sent::<msg::ShutdownMessage>(&effects, &pid);
    assert_eq!(shutdown.len(), 1, "{effects:?}");
    assert_eq!(
        shutdown[0].message.as_deref(),
        Some("Agent is not authenticated")
    );
    assert!(sent::<msg::SlaveRegisteredMessage>(&effects, &pid).is_empty());
    assert!(master.agents.is_empty());

    // Re-registration is refused the same way.
    deliver(
        &mut master,
        &pid,
        &msg::ReregisterSlaveMessage {
            slave: v1::AgentInfo {
                id: Some(v1::AgentId {
                    value: "x-S0".into(),
                }),
                ..agent_info(1)
            },
            ..Default::default()
        },
        now,
    );
    let effects = master.take_effects();
    assert_eq!(sent::<msg::ShutdownMessage>(&effects, &pid).len(), 1);

    // Once authenticated (as its pid), it registers.
    master.set_authenticated(&pid.to_string(), Some("agent".into()));
    assert_eq!(
        master.authenticated_principal(&pid.to_string()),
        Some("agent")
    );
    deliver(&mut master, &pid, &register, now);
    let effects = master.take_effects();
    assert_eq!(sent::<msg::SlaveRegisteredMessage>(&effects, &pid).len(), 1);

    // A new attempt forgets the old success.
    master.set_authenticated(&pid.to_string(), None);
    assert_eq!(master.authenticated_principal(&pid.to_string()), None);
}

#[test]
fn calls_from_another_principal_than_the_framework_registered_with_are_400() {
    let mut master = master();
    let now = Instant::now();
    let mut info = framework_info("fw");
    info.principal = Some("alice".into());
    let fw = subscribe(&mut master, info, now);
    let (framework_id, stream_id) = (fw.id.clone(), fw.sub.stream_id.clone());
    let call = Call {
        framework_id: Some(v1::FrameworkId {
            value: framework_id.clone(),
        }),
        r#type: Some(call::Type::Revive as i32),
        ..Default::default()
    };
    let error = master
        .scheduler_call_as(call.clone(), Some(&stream_id), Some("mallory"), now)
        .expect_err("principal mismatch");
    assert_eq!(error.status.as_u16(), 400);
    assert_eq!(
        error.message,
        "Authenticated principal 'mallory' does not match principal 'alice' set in `FrameworkInfo`"
    );
    master
        .scheduler_call_as(call, Some(&stream_id), Some("alice"), now)
        .expect("the registered principal may call");
}

/// A master whose ACLs are `{"permissive": true}`, one agent, and a volume
/// `pv` in role `dev` created by `alice` through the operator path.
fn master_with_alices_volume(now: Instant) -> (Master, String) {
    let acls = mesos_acls::Acls::parse(r#"{"permissive": true}"#)
        .expect("ACLs")
        .acls;
    let mut config = config();
    config.authz = super::authz::Authz::new(
        Some(std::sync::Arc::new(mesos_acls::DirectAuthorizer::new(acls))),
        mesos_common::auth::audit::AuditLog::disabled(),
    );
    let mut master = Master::new(config, Box::new(InMemoryRegistry::default())).expect("master");
    let mut info = agent_info(1);
    info.resources.push(scalar("disk", 1000.0));
    deliver(
        &mut master,
        &agent_pid(1),
        &msg::RegisterSlaveMessage {
            slave: info,
            version: Some("1.12.0".into()),
            ..Default::default()
        },
        now,
    );
    let registered = sent::<msg::SlaveRegisteredMessage>(&master.take_effects(), &agent_pid(1));
    let agent_id = registered[0].slave_id.value.clone();
    let mut disk = scalar("disk", 100.0);
    disk.reservations.push(v1::resource::ReservationInfo {
        r#type: Some(v1::resource::reservation_info::Type::Dynamic as i32),
        role: Some("dev".into()),
        principal: Some("alice".into()),
        labels: None,
    });
    let mut volume = disk.clone();
    volume.disk = Some(Box::new(v1::resource::DiskInfo {
        persistence: Some(v1::resource::disk_info::Persistence {
            id: "pv".into(),
            principal: Some("alice".into()),
        }),
        volume: Some(v1::Volume {
            container_path: "data".into(),
            mode: v1::volume::Mode::Rw as i32,
            ..Default::default()
        }),
        source: None,
    }));
    let reserve = v1::offer::Operation {
        r#type: Some(operation::Type::Reserve as i32),
        reserve: Some(operation::Reserve {
            resources: vec![disk],
            source: vec![],
        }),
        ..Default::default()
    };
    let create = v1::offer::Operation {
        r#type: Some(operation::Type::Create as i32),
        create: Some(operation::Create {
            volumes: vec![volume],
        }),
        ..Default::default()
    };
    for op in [reserve, create] {
        let durable = master
            .operator_operation(&agent_id, op, Some("alice"), now)
            .unwrap_or_else(|e| panic!("operation refused: {e:?}"));
        master.commit();
        assert!(
            durable.blocking_recv().is_ok(),
            "acknowledged after the flush"
        );
    }
    let sent = sent::<msg::CheckpointResourcesMessage>(&master.take_effects(), &agent_pid(1));
    assert_eq!(sent.len(), 2, "the agent hears of each change");
    assert_eq!(
        sent[1].resources.len(),
        1,
        "one volume, nothing else dynamic"
    );
    (master, agent_id)
}

fn dev_framework(master: &mut Master, principal: &str, now: Instant) -> Fw {
    let mut info = framework_info(principal);
    info.role = Some("dev".into());
    info.principal = Some(principal.into());
    let sub = master.subscribe_as(
        subscribe_call(info),
        ContentType::Json,
        Some(principal.into()),
        now,
    );
    let id = sub.framework_id.clone().expect("subscribed");
    let mut fw = Fw { id, sub };
    fw.events();
    fw
}

fn has_volume(offer: &Value) -> bool {
    offer["resources"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["disk"]["persistence"]["id"] == "pv"))
}

#[test]
fn a_volume_is_offered_only_to_frameworks_whose_principal_may_use_it() {
    let now = Instant::now();
    let (mut master, _) = master_with_alices_volume(now);
    let mut bob = dev_framework(&mut master, "bob", now);
    master.allocate(now);
    let offers = offers_in(&bob.events());
    assert_eq!(offers.len(), 1, "bob gets the agent");
    assert!(
        !has_volume(&offers[0]),
        "but not alice's volume: {}",
        offers[0]
    );
    let mut alice = dev_framework(&mut master, "alice", now);
    master.allocate(now + Duration::from_secs(1));
    let offers = offers_in(&alice.events());
    assert_eq!(
        offers.len(),
        1,
        "alice is offered what bob was not: {offers:?}"
    );
    assert!(has_volume(&offers[0]), "{}", offers[0]);
}

#[test]
fn launching_with_another_principals_volume_is_task_unauthorized_with_the_rule() {
    let now = Instant::now();
    let (mut master, agent_id) = master_with_alices_volume(now);
    let mut bob = dev_framework(&mut master, "bob", now);
    master.allocate(now);
    let offer = offers_in(&bob.events()).remove(0);
    let mut t = task("t1", &agent_id, 0.1, 16.0);
    let volume = master
        .checkpointed_resources(&agent_id)
        .into_vec()
        .remove(0);
    t.resources.push(volume);
    bob.call(
        &mut master,
        call::Type::Accept,
        now,
        accept(vec![offer_id(&offer)], vec![launch(vec![t])]),
    );
    let updates = updates_in(&bob.events());
    assert_eq!(updates.len(), 1, "{updates:?}");
    let status = &updates[0];
    assert_eq!(status["state"], "TASK_ERROR", "{status}");
    assert_eq!(status["reason"], "REASON_TASK_UNAUTHORIZED", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("persistent volume 'pv'"), "{message}");
    assert!(message.contains("to \"use_volumes\""), "{message}");
}

#[test]
fn a_framework_reservation_with_an_id_is_reported_after_the_commit_and_reconciled() {
    let now = Instant::now();
    let (mut master, agent_id) = master_with_alices_volume(now);
    let mut alice = dev_framework(&mut master, "alice", now);
    master.allocate(now);
    let offer = offers_in(&alice.events()).remove(0);
    let mut cpus = scalar("cpus", 1.0);
    cpus.reservations.push(v1::resource::ReservationInfo {
        r#type: Some(v1::resource::reservation_info::Type::Dynamic as i32),
        role: Some("dev".into()),
        principal: Some("alice".into()),
        labels: None,
    });
    let reserve = v1::offer::Operation {
        r#type: Some(operation::Type::Reserve as i32),
        id: Some(v1::OperationId {
            value: "op-1".into(),
        }),
        reserve: Some(operation::Reserve {
            resources: vec![cpus],
            source: vec![],
        }),
        ..Default::default()
    };
    alice.call(
        &mut master,
        call::Type::Accept,
        now,
        accept(vec![offer_id(&offer)], vec![reserve]),
    );
    let before: Vec<Value> = alice
        .events()
        .into_iter()
        .filter(|e| e["type"] == "UPDATE_OPERATION_STATUS")
        .collect();
    assert!(
        before.is_empty(),
        "nothing before the registry commit: {before:?}"
    );
    master.commit();
    let after: Vec<Value> = alice
        .events()
        .into_iter()
        .filter(|e| e["type"] == "UPDATE_OPERATION_STATUS")
        .collect();
    assert_eq!(after.len(), 1, "{after:?}");
    let status = &after[0]["update_operation_status"]["status"];
    assert_eq!(status["state"], "OPERATION_FINISHED", "{status}");
    assert_eq!(status["agent_id"]["value"], agent_id.as_str());
    assert_eq!(
        master.checkpointed_resources(&agent_id).cpus(),
        1.0,
        "the reservation is in the agent's checkpointed set"
    );
    alice.call(&mut master, call::Type::ReconcileOperations, now, |c| {
        c.reconcile_operations = Some(call::ReconcileOperations {
            operations: vec![
                call::reconcile_operations::Operation {
                    operation_id: v1::OperationId {
                        value: "op-1".into(),
                    },
                    agent_id: None,
                    resource_provider_id: None,
                },
                call::reconcile_operations::Operation {
                    operation_id: v1::OperationId {
                        value: "op-2".into(),
                    },
                    agent_id: None,
                    resource_provider_id: None,
                },
            ],
        })
    });
    let states: Vec<String> = alice
        .events()
        .iter()
        .filter(|e| e["type"] == "UPDATE_OPERATION_STATUS")
        .map(|e| e["update_operation_status"]["status"]["state"].to_string())
        .collect();
    assert_eq!(
        states,
        ["\"OPERATION_FINISHED\"", "\"OPERATION_UNKNOWN\""],
        "{states:?}"
    );
}

#[test]
fn reserve_cannot_take_another_principals_volume_as_source_or_target() {
    let now = Instant::now();
    let (mut master, agent_id) = master_with_alices_volume(now);
    let volume = master
        .checkpointed_resources(&agent_id)
        .into_vec()
        .remove(0);
    let mut bobs = volume.clone();
    bobs.disk = None;
    bobs.reservations = vec![v1::resource::ReservationInfo {
        r#type: Some(v1::resource::reservation_info::Type::Dynamic as i32),
        role: Some("bob".into()),
        principal: Some("bob".into()),
        labels: None,
    }];
    for (resources, source) in [
        (vec![bobs.clone()], vec![volume.clone()]),
        (vec![volume.clone()], vec![]),
    ] {
        let op = v1::offer::Operation {
            r#type: Some(operation::Type::Reserve as i32),
            reserve: Some(operation::Reserve { resources, source }),
            ..Default::default()
        };
        match master.operator_operation(&agent_id, op, Some("bob"), now) {
            Err(super::operations::OperationError::BadRequest(m)) => {
                assert!(m.contains("is a persistent volume"), "{m}")
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }
    assert_eq!(
        master.checkpointed_resources(&agent_id).into_vec(),
        vec![volume],
        "alice's volume is untouched"
    );
}

#[test]
fn an_overlong_multibyte_persistence_id_is_refused_without_a_panic() {
    let id = format!("{}é{}", "a".repeat(31), "b".repeat(300));
    let err = super::validation::validate_id("Persistence ID", &id).expect_err("too long");
    assert!(err.contains("longer than 255"), "{err}");
}
