//! `mesos-loadgen`: end-to-end load against one `mesos-master`.
//!
//! Runs N simulated agents (each its own loopback port and `slave(1)` UPID,
//! speaking the real libprocess protocol: register, pong, status updates
//! with acknowledgements, no real processes) and K HTTP frameworks (JSON
//! over `/api/v1/scheduler`, as real clients do) that launch tiny tasks as
//! fast as offers allow (or at `--rate`). Reports launches/s, the ACCEPT →
//! TASK_RUNNING latency distribution, a raw transport baseline measured in
//! the same run (a trivial 202 HTTP endpoint, libprocess ping-pong) and the
//! master's resident memory per agent and per task (`--memory-tasks`).
//!
//! Bounded in count and time, loopback only; ends by itself. The last line
//! of output is one JSON object with every figure.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mesos_common::resources::Resources;
use mesos_common::transport::{with_messages, Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::internal as msg;
use mesos_proto::v1::{self, TaskState};
use prost::Name;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// End-to-end load generator for mesos-master: simulated agents and HTTP
/// frameworks in one process.
#[derive(Debug, Clone, Parser)]
#[command(name = "mesos-loadgen")]
struct Args {
    /// Address (`host:port`) of a running master. Without it, the loadgen
    /// starts its own master (see --start-master).
    #[arg(long)]
    master: Option<String>,

    /// The mesos-master binary to start (default: `mesos-master` next to
    /// this binary). Started with `--registry=in_memory
    /// --allocation_interval=<--allocation-interval>` on a free loopback port
    /// and killed at the end.
    #[arg(long)]
    start_master: Option<PathBuf>,

    /// pid of an external master, for memory figures with --master.
    #[arg(long)]
    master_pid: Option<u32>,

    /// `--allocation_interval` for a started master.
    #[arg(long, default_value = "10ms")]
    allocation_interval: String,

    /// `RUST_LOG` for a started master (unset: the master's default, info).
    #[arg(long)]
    master_log: Option<String>,

    /// Simulated agents.
    #[arg(long, default_value_t = 50)]
    agents: usize,

    /// HTTP frameworks.
    #[arg(long, default_value_t = 4)]
    frameworks: usize,

    /// Measured window (`20s`, `500ms`, `1m`).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,

    /// Unmeasured ramp-up before the window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// Target launches/s over all frameworks; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,

    /// Most tasks launched from one offer.
    #[arg(long, default_value_t = 100)]
    tasks_per_offer: usize,

    /// Tasks per framework launched but not yet RUNNING; offers wait while
    /// this many are in flight (closed loop, so queues do not grow without
    /// bound and the latency measures the master, not a backlog).
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,

    /// Concurrent HTTP calls (ACCEPT/ACKNOWLEDGE) per framework.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,

    /// Resources each simulated agent registers with.
    #[arg(
        long,
        default_value = "cpus:64;mem:262144;disk:1000000;ports:[31000-32000]"
    )]
    agent_resources: String,

    /// Memory mode: launch this many long-running tasks (agents keep them
    /// RUNNING) and report the master's RSS per agent and per task instead
    /// of throughput.
    #[arg(long, default_value_t = 0)]
    memory_tasks: u64,

    /// Length of each raw baseline measurement.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    baseline_duration: Duration,

    /// Process pairs in the libprocess ping-pong baseline.
    #[arg(long, default_value_t = 4)]
    baseline_pairs: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 20s, 500ms or 1m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{text}' is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

// ---------------------------------------------------------------------------
// Shared counters

#[derive(Default)]
struct Stats {
    agents_registered: AtomicU64,
    agent_msgs_in: AtomicU64,
    agent_msgs_out: AtomicU64,
    accepts: AtomicU64,
    launched: AtomicU64,
    running: AtomicU64,
    finished: AtomicU64,
    other_updates: AtomicU64,
    http_calls: AtomicU64,
    http_errors: AtomicU64,
    /// (seconds since the run's start, ACCEPT → TASK_RUNNING seconds).
    latencies: Mutex<Vec<(f64, f64)>>,
}

#[derive(Clone, Copy, Default)]
struct Snapshot {
    at: f64,
    running: u64,
    finished: u64,
    launched: u64,
    accepts: u64,
    http_calls: u64,
    agent_msgs: u64,
}

impl Stats {
    fn snapshot(&self, start: Instant) -> Snapshot {
        Snapshot {
            at: start.elapsed().as_secs_f64(),
            running: self.running.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            launched: self.launched.load(Ordering::Relaxed),
            accepts: self.accepts.load(Ordering::Relaxed),
            http_calls: self.http_calls.load(Ordering::Relaxed),
            agent_msgs: self.agent_msgs_in.load(Ordering::Relaxed)
                + self.agent_msgs_out.load(Ordering::Relaxed),
        }
    }
}

// ---------------------------------------------------------------------------
// Simulated agents

struct SimAgent {
    upid: Upid,
    /// `upid` as text, for the updates' `pid`.
    pid: String,
    master: Upid,
    transport: Transport,
    resources: Vec<v1::Resource>,
    /// Set once by the first `SlaveRegisteredMessage`.
    agent_id: OnceLock<String>,
    /// Tasks stay RUNNING (memory mode).
    keep_running: bool,
    /// Unacknowledged updates by uuid, kept whole: the FINISHED update that
    /// follows a RUNNING one's acknowledgement is the same message with a
    /// new state, uuid and timestamp, so it costs no new strings.
    pending: Mutex<HashMap<u128, msg::StatusUpdateMessage>>,
    stats: Arc<Stats>,
}

#[derive(Clone)]
struct AgentSink(Arc<SimAgent>);

impl MessageSink for AgentSink {
    fn deliver(&self, message: Message) -> bool {
        if message.to != "slave(1)" {
            return false;
        }
        self.0.stats.agent_msgs_in.fetch_add(1, Ordering::Relaxed);
        self.0.handle(message);
        true
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whether `name` is `M`'s fully qualified name, without building that name
/// (`Name::full_name` allocates, and every message is compared several
/// times).
fn is_message<M: Name>(name: &str) -> bool {
    name.strip_prefix(M::PACKAGE)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == M::NAME)
}

/// A fresh status update uuid: a random per-process half and a counter,
/// with the v4 version bits set. Unique within the run like a random v4
/// uuid, without a `getrandom` call per update.
fn next_uuid() -> u128 {
    static SEED: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The version bits land in the seed half and the variant bits in the
    // counter's top two bits, which a run never reaches.
    let bytes = (u128::from(*SEED) << 64 | u128::from(count)).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .as_u128()
}

/// The key of `pending` for a uuid as it travels on the wire.
fn uuid_key(uuid: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(uuid.try_into().ok()?))
}

/// The only fields of `RunTaskMessage` a simulated agent reads (tags as in
/// messages.proto / mesos.proto). Decoding the whole message would build
/// every string of the `FrameworkInfo` and `TaskInfo` only to drop them;
/// prost skips the fields not declared here.
#[derive(Clone, PartialEq, prost::Message)]
struct RunTaskIds {
    #[prost(message, optional, tag = "1")]
    framework_id: Option<v1::FrameworkId>,
    #[prost(message, optional, tag = "2")]
    framework: Option<FrameworkInfoId>,
    #[prost(message, optional, tag = "4")]
    task: Option<TaskInfoId>,
}

/// `FrameworkInfo.id`.
#[derive(Clone, PartialEq, prost::Message)]
struct FrameworkInfoId {
    #[prost(message, optional, tag = "3")]
    id: Option<v1::FrameworkId>,
}

/// `TaskInfo.task_id`.
#[derive(Clone, PartialEq, prost::Message)]
struct TaskInfoId {
    #[prost(message, optional, tag = "2")]
    task_id: Option<v1::TaskId>,
}

impl SimAgent {
    fn send<M: prost::Message + Name>(&self, to: &Upid, message: &M) {
        self.stats.agent_msgs_out.fetch_add(1, Ordering::Relaxed);
        self.transport.send(&self.upid, to, message);
    }

    fn registered(&self) -> bool {
        self.agent_id.get().is_some()
    }

    fn register(&self) {
        let message = msg::RegisterSlaveMessage {
            slave: v1::AgentInfo {
                hostname: self.upid.host.clone(),
                port: Some(i32::from(self.upid.port)),
                resources: self.resources.clone(),
                ..Default::default()
            },
            checkpointed_resources: Vec::new(),
            version: Some(mesos_common::MESOS_VERSION.to_string()),
            agent_capabilities: Vec::new(),
            resource_version_uuid: None,
        };
        self.send(&self.master, &message);
    }

    // Bodies are decoded with plain prost, not `Message::decode`: that one
    // also walks the descriptor for `required` fields, and the master here
    // is trusted.
    fn handle(&self, message: Message) {
        let name = message.name.as_str();
        if is_message::<msg::PingSlaveMessage>(name) {
            self.send(&message.from, &msg::PongSlaveMessage {});
        } else if is_message::<msg::SlaveRegisteredMessage>(name) {
            if let Ok(m) = <msg::SlaveRegisteredMessage as prost::Message>::decode(message.body) {
                if self.agent_id.set(m.slave_id.value).is_ok() {
                    self.stats.agents_registered.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if is_message::<msg::RunTaskMessage>(name) {
            if let Ok(m) = <RunTaskIds as prost::Message>::decode(message.body) {
                let framework_id = m
                    .framework
                    .and_then(|f| f.id)
                    .or(m.framework_id)
                    .map(|f| f.value)
                    .unwrap_or_default();
                let task_id = m.task.and_then(|t| t.task_id).unwrap_or_default().value;
                self.run(framework_id, task_id);
            }
        } else if is_message::<msg::StatusUpdateAcknowledgementMessage>(name) {
            if let Ok(m) =
                <msg::StatusUpdateAcknowledgementMessage as prost::Message>::decode(message.body)
            {
                let acked = uuid_key(&m.uuid).and_then(|key| {
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&key)
                });
                if let Some(update) = acked {
                    if update.update.status.state == TaskState::TaskRunning as i32
                        && !self.keep_running
                    {
                        self.finish(update);
                    }
                }
            }
        }
        // Anything else (shutdown, kill, re-registration replies) needs no
        // answer from a simulated agent.
    }

    /// Reports a launched task RUNNING.
    fn run(&self, framework_id: String, task_id: String) {
        let Some(agent_id) = self.agent_id.get() else {
            return;
        };
        let uuid = next_uuid();
        let uuid_bytes = Bytes::copy_from_slice(&uuid.to_be_bytes());
        let now = now_secs();
        let agent = v1::AgentId {
            value: agent_id.clone(),
        };
        let executor = v1::ExecutorId {
            value: task_id.clone(),
        };
        let status = v1::TaskStatus {
            task_id: v1::TaskId { value: task_id },
            state: TaskState::TaskRunning as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            timestamp: Some(now),
            uuid: Some(uuid_bytes.clone()),
            agent_id: Some(agent.clone()),
            executor_id: Some(executor.clone()),
            ..Default::default()
        };
        let update = msg::StatusUpdateMessage {
            update: msg::StatusUpdate {
                framework_id: v1::FrameworkId {
                    value: framework_id,
                },
                executor_id: Some(executor),
                slave_id: Some(agent),
                status,
                timestamp: now,
                uuid: Some(uuid_bytes),
                latest_state: None,
            },
            pid: Some(self.pid.clone()),
        };
        self.send_update(uuid, update);
    }

    /// Turns an acknowledged RUNNING update into the task's FINISHED one.
    fn finish(&self, mut message: msg::StatusUpdateMessage) {
        let uuid = next_uuid();
        let uuid_bytes = Bytes::copy_from_slice(&uuid.to_be_bytes());
        let now = now_secs();
        let update = &mut message.update;
        update.status.state = TaskState::TaskFinished as i32;
        update.status.timestamp = Some(now);
        update.status.uuid = Some(uuid_bytes.clone());
        update.timestamp = now;
        update.uuid = Some(uuid_bytes);
        self.send_update(uuid, message);
    }

    fn send_update(&self, uuid: u128, message: msg::StatusUpdateMessage) {
        // Sent under the lock, so the acknowledgement (handled on another
        // connection's task) always finds the entry.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.send(&self.master, &message);
        pending.insert(uuid, message);
    }
}

async fn start_agents(
    n: usize,
    master: &Upid,
    resources: &str,
    keep_running: bool,
    stats: &Arc<Stats>,
) -> Result<Vec<Arc<SimAgent>>> {
    let resources = Resources::parse(resources)
        .map_err(|e| anyhow!("--agent-resources: {e}"))?
        .into_vec();
    let mut agents = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a simulated agent's port")?;
        let port = listener.local_addr()?.port();
        let upid = Upid::new("slave(1)", "127.0.0.1", port);
        let agent = Arc::new(SimAgent {
            pid: upid.to_string(),
            upid,
            master: master.clone(),
            transport: Transport::default(),
            resources: resources.clone(),
            agent_id: OnceLock::new(),
            keep_running,
            pending: Mutex::new(HashMap::new()),
            stats: stats.clone(),
        });
        let app = with_messages(axum::Router::new(), AgentSink(agent.clone()));
        tokio::spawn(mesos_common::net::serve(listener, app));
        agents.push(agent);
    }
    // Register, retrying like a real agent until the master answers.
    for agent in &agents {
        let agent = agent.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                if agent.registered() {
                    return;
                }
                agent.register();
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if agent.registered() {
                        return;
                    }
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60 + n as u64 / 20);
    while stats.agents_registered.load(Ordering::Relaxed) < n as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} simulated agents registered in time",
                stats.agents_registered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(agents)
}

// ---------------------------------------------------------------------------
// HTTP frameworks

struct FwConfig {
    /// The scheduler endpoint's URL, for SUBSCRIBE.
    url: String,
    /// The master's `host:port`, for the call connections.
    address: String,
    start: Instant,
    /// Per-framework launches/s; 0 = unlimited.
    rate: f64,
    tasks_per_offer: usize,
    in_flight: usize,
    concurrency: usize,
    /// Tasks still to launch over all frameworks (memory mode), or i64::MAX.
    budget: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

struct HeldOffer {
    id: String,
    agent_id: String,
    cpus: f64,
    mem: f64,
}

struct Framework {
    index: usize,
    cfg: Arc<FwConfig>,
    /// Bodies of calls to post, taken in order by the framework's callers.
    calls: mpsc::UnboundedSender<Bytes>,
    framework_id: String,
    held: VecDeque<HeldOffer>,
    /// Task number (the `n` of `lg-<index>-<n>`) → when its ACCEPT was sent.
    sent: HashMap<u64, Instant>,
    /// `lg-<index>-`, the start of this framework's task ids.
    task_prefix: String,
    next_task: u64,
    launched: u64,
    suppressed: bool,
}

const TASK_CPUS: f64 = 0.01;
const TASK_MEM: f64 = 1.0;

// Call bodies are written as text rather than built as `serde_json::Value`
// trees: one ACKNOWLEDGE per status update plus an ACCEPT per offer is most
// of what the loadgen does, and building, serializing and dropping the trees
// cost it more CPU than the master spent handling the calls. The tests check
// each writer against the `json!` value it replaced.

/// Appends `text` as a JSON string literal, quotes included, escaped as
/// serde_json escapes.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    // Ids and uuids from the master practically never need escaping: copy
    // those in one go.
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if c < ' ' => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// `text` as a JSON value: a string literal, or `null` when absent.
fn json_text(text: Option<&str>) -> String {
    let mut out = String::new();
    match text {
        Some(text) => push_json_str(&mut out, text),
        None => out.push_str("null"),
    }
    out
}

/// Appends `{"value":<value>}`, the shape of every Mesos id, or `null`.
fn push_id(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => {
            out.push_str(r#"{"value":"#);
            push_json_str(out, value);
            out.push('}');
        }
        None => out.push_str("null"),
    }
}

/// Starts a call: `{"framework_id":{"value":…},"type":"<kind>"`, left open
/// for the call's own fields.
fn call_start(out: &mut String, framework_id: &str, kind: &str) {
    out.push_str(r#"{"framework_id":"#);
    push_id(out, Some(framework_id));
    out.push_str(r#","type":""#);
    out.push_str(kind);
    out.push('"');
}

/// A call without fields of its own (SUPPRESS, TEARDOWN).
fn plain_call(framework_id: &str, kind: &str) -> Bytes {
    let mut out = String::with_capacity(48 + framework_id.len());
    call_start(&mut out, framework_id, kind);
    out.push('}');
    Bytes::from(out)
}

/// An ACKNOWLEDGE carrying the update's agent and task ids and uuid as they
/// came (an absent id is sent as `null`, as forwarding the JSON did).
fn ack_call(
    framework_id: &str,
    agent_id: Option<&str>,
    task_id: Option<&str>,
    uuid: &str,
) -> Bytes {
    let ids = agent_id.map_or(0, str::len) + task_id.map_or(0, str::len);
    let mut out = String::with_capacity(128 + framework_id.len() + ids + uuid.len());
    call_start(&mut out, framework_id, "ACKNOWLEDGE");
    out.push_str(r#","acknowledge":{"agent_id":"#);
    push_id(&mut out, agent_id);
    out.push_str(r#","task_id":"#);
    push_id(&mut out, task_id);
    out.push_str(r#","uuid":"#);
    push_json_str(&mut out, uuid);
    out.push_str("}}");
    Bytes::from(out)
}

fn decline_call(framework_id: &str, offer_ids: &[String], refuse_seconds: f64) -> Bytes {
    let ids: usize = offer_ids.iter().map(|id| id.len() + 16).sum();
    let mut out = String::with_capacity(96 + framework_id.len() + ids);
    call_start(&mut out, framework_id, "DECLINE");
    out.push_str(r#","decline":{"offer_ids":["#);
    for (i, id) in offer_ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_id(&mut out, Some(id));
    }
    // `{:?}` prints a finite f64 as serde_json does (`3600.0`, not `3600`).
    let _ = write!(
        out,
        r#"],"filters":{{"refuse_seconds":{refuse_seconds:?}}}}}}}"#
    );
    Bytes::from(out)
}

/// Every launched task's JSON after its ids: the same for all tasks, so
/// written once.
static TASK_REST: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#""resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":{TASK_CPUS:?}}}}},{{"name":"mem","type":"SCALAR","scalar":{{"value":{TASK_MEM:?}}}}}],"command":{{"shell":true,"value":"true"}}}}"#
    )
});

/// An ACCEPT of one offer launching tasks `lg-<index>-<n>` for each `n` in
/// `tasks` on `agent_id`.
fn accept_call(
    framework_id: &str,
    offer_id: &str,
    agent_id: &str,
    index: usize,
    tasks: Range<u64>,
) -> Bytes {
    let mut agent = String::with_capacity(agent_id.len() + 12);
    push_id(&mut agent, Some(agent_id));
    let per_task = 80 + agent.len() + TASK_REST.len();
    let count = usize::try_from(tasks.end.saturating_sub(tasks.start)).unwrap_or(0);
    let mut out =
        String::with_capacity(192 + framework_id.len() + offer_id.len() + per_task * count);
    call_start(&mut out, framework_id, "ACCEPT");
    out.push_str(r#","accept":{"offer_ids":["#);
    push_id(&mut out, Some(offer_id));
    out.push_str(r#"],"operations":[{"type":"LAUNCH","launch":{"task_infos":["#);
    for n in tasks.clone() {
        if n != tasks.start {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"name":"loadgen","task_id":{{"value":"lg-{index}-{n}"}},"agent_id":{agent},"#
        );
        out.push_str(&TASK_REST);
    }
    out.push_str(r#"]}}],"filters":{"refuse_seconds":0.0}}}"#);
    Bytes::from(out)
}

// Events are parsed into these instead of `serde_json::Value`: only the
// fields read are declared (serde skips the rest without building them) and
// strings borrow from the record unless they hold escapes.

/// One event of the SUBSCRIBE stream.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    offers: Option<OffersEvent<'a>>,
    #[serde(borrow)]
    update: Option<UpdateEvent<'a>>,
}

#[derive(Deserialize)]
struct OffersEvent<'a> {
    #[serde(default, borrow)]
    offers: Vec<EventOffer<'a>>,
}

#[derive(Deserialize)]
struct EventOffer<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    agent_id: Option<Id<'a>>,
    #[serde(default, borrow)]
    resources: Vec<EventResource<'a>>,
}

#[derive(Deserialize)]
struct EventResource<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    scalar: Option<EventScalar>,
}

#[derive(Deserialize)]
struct EventScalar {
    value: f64,
}

#[derive(Deserialize)]
struct UpdateEvent<'a> {
    #[serde(default, borrow)]
    status: EventStatus<'a>,
}

#[derive(Default, Deserialize)]
struct EventStatus<'a> {
    #[serde(borrow)]
    task_id: Option<Id<'a>>,
    #[serde(borrow)]
    state: Option<Text<'a>>,
    /// Base64, as the master sends it; acknowledged verbatim.
    #[serde(borrow)]
    uuid: Option<Text<'a>>,
    #[serde(borrow)]
    agent_id: Option<Id<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

/// Any Mesos id: `{"value": …}`.
#[derive(Deserialize)]
struct Id<'a> {
    #[serde(borrow)]
    value: Cow<'a, str>,
}

/// A string that borrows even inside an `Option` (serde borrows a `Cow`
/// only when it is the field's own type, not an `Option`'s).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// One record of the SUBSCRIBE stream as an event; `None` (the record is
/// skipped) if it is not JSON of that shape.
fn parse_event(record: &[u8]) -> Option<Event<'_>> {
    serde_json::from_slice(record).ok()
}

fn scalar(resources: &[EventResource<'_>], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum()
}

// ---------------------------------------------------------------------------
// Scheduler calls over HTTP

/// The header naming the SUBSCRIBE stream a call belongs to.
const MESOS_STREAM_ID: HeaderName = HeaderName::from_static("mesos-stream-id");

/// One persistent HTTP/1.1 connection posting calls to the master's
/// scheduler endpoint; made on first use and remade after an error.
/// Replaces a pooled `reqwest::Client`, whose per-call URL parsing, spawned
/// task and header building cost the loadgen more than the calls cost the
/// master.
struct CallConn {
    address: String,
    host: HeaderValue,
    stream_id: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl CallConn {
    fn new(address: &str, stream_id: &str) -> Result<Self> {
        Ok(Self {
            address: address.to_string(),
            host: HeaderValue::from_str(address).context("master address as Host")?,
            stream_id: HeaderValue::from_str(stream_id).context("Mesos-Stream-Id")?,
            sender: None,
        })
    }

    /// POSTs `body` as JSON; the response's status and body.
    async fn post(&mut self, body: Bytes) -> Result<(StatusCode, Bytes)> {
        let mut sender = match self.sender.take() {
            // A connection the master closed while it was idle fails here,
            // before the body is sent on it, and is replaced.
            Some(mut sender) => match sender.ready().await {
                Ok(()) => sender,
                Err(_) => connect(&self.address).await?,
            },
            None => connect(&self.address).await?,
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/api/v1/scheduler");
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(MESOS_STREAM_ID, self.stream_id.clone());
        let response = sender.send_request(request).await?;
        let status = response.status();
        // Read to the end, so the connection can carry the next call.
        let body = response.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok((status, body))
    }
}

async fn connect(address: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection reads and writes in its own task, which ends when the
    // sender is dropped or the master closes the connection.
    tokio::spawn(connection);
    sender.ready().await?;
    Ok(sender)
}

/// Starts `cfg.concurrency` callers for one framework, each posting calls
/// on its own connection, and returns the queue they take bodies from; they
/// end once it is dropped and drained.
fn start_callers(cfg: &FwConfig, stream_id: &str) -> Result<mpsc::UnboundedSender<Bytes>> {
    let (calls, queue) = mpsc::unbounded_channel::<Bytes>();
    // One queue for all callers, so a call waits only for the first free
    // connection (as a task per call behind a semaphore did).
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    for _ in 0..cfg.concurrency {
        let mut conn = CallConn::new(&cfg.address, stream_id)?;
        let (queue, stats, stop) = (queue.clone(), cfg.stats.clone(), cfg.stop.clone());
        tokio::spawn(async move {
            loop {
                // The lock is held only while waiting for the next body
                // (the guard is dropped at the end of this statement).
                let next = queue.lock().await.recv().await;
                let Some(body) = next else { break };
                match conn.post(body).await {
                    Ok((status, _)) if status == StatusCode::ACCEPTED => {
                        stats.http_calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) if stop.load(Ordering::Relaxed) => {}
                    Ok((status, text)) => {
                        stats.http_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("call refused: {status} {}", String::from_utf8_lossy(&text));
                    }
                    // Calls still queued when the run ends fail against
                    // the stopped master; that is not an error of the run.
                    Err(_) if stop.load(Ordering::Relaxed) => {}
                    Err(e) => {
                        stats.http_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("call failed: {e:#}");
                    }
                }
            }
        });
    }
    Ok(calls)
}

impl Framework {
    /// Queues one call for the callers (at most `concurrency` in flight).
    fn post(&self, body: Bytes) {
        // Fails only once the callers are gone, at the very end.
        let _ = self.calls.send(body);
    }

    fn decline(&self, offer_ids: &[String], refuse_seconds: f64) {
        if offer_ids.is_empty() {
            return;
        }
        self.post(decline_call(&self.framework_id, offer_ids, refuse_seconds));
    }

    /// Tasks the rate and the in-flight cap allow now for an offer that
    /// fits `fit`. Unlimited: all of `fit` or nothing, so ACCEPTs stay
    /// batched instead of trickling one task at a time.
    fn tokens(&self, fit: u64) -> u64 {
        let in_flight = self.sent.len();
        let room = self.cfg.in_flight.saturating_sub(in_flight) as u64;
        if self.cfg.rate <= 0.0 {
            return if room >= fit.min(self.cfg.in_flight as u64) {
                fit
            } else {
                0
            };
        }
        let allowed = (self.cfg.start.elapsed().as_secs_f64() * self.cfg.rate) as u64;
        allowed.saturating_sub(self.launched).min(room)
    }

    fn take_budget(&self, want: u64) -> u64 {
        let mut got = 0;
        let _ = self
            .cfg
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                got = want.min(left.max(0) as u64);
                Some(left - got as i64)
            });
        got
    }

    /// Launches from held offers as far as rate and budget allow.
    fn launch(&mut self) {
        if self.cfg.stop.load(Ordering::Relaxed) {
            return;
        }
        while let Some(offer) = self.held.front() {
            let fit = ((offer.cpus / TASK_CPUS + 1e-6).floor() as u64)
                .min((offer.mem / TASK_MEM + 1e-6).floor() as u64)
                .min(self.cfg.tasks_per_offer as u64);
            let tokens = self.tokens(fit);
            if fit > 0 && tokens == 0 {
                return; // Wait for the rate to allow more.
            }
            let Some(offer) = self.held.pop_front() else {
                return;
            };
            let n = self.take_budget(fit.min(tokens));
            if n == 0 {
                let refuse = if fit == 0 { 1.0 } else { 3600.0 };
                self.decline(std::slice::from_ref(&offer.id), refuse);
                if fit > 0 {
                    self.suppress();
                }
                continue;
            }
            let tasks = self.next_task..self.next_task + n;
            self.next_task = tasks.end;
            let now = Instant::now();
            self.sent.extend(tasks.clone().map(|task| (task, now)));
            self.launched += n;
            self.cfg.stats.launched.fetch_add(n, Ordering::Relaxed);
            self.cfg.stats.accepts.fetch_add(1, Ordering::Relaxed);
            self.post(accept_call(
                &self.framework_id,
                &offer.id,
                &offer.agent_id,
                self.index,
                tasks,
            ));
        }
    }

    fn suppress(&mut self) {
        if !self.suppressed {
            self.suppressed = true;
            self.post(plain_call(&self.framework_id, "SUPPRESS"));
        }
    }

    /// The number of one of this framework's task ids.
    fn task_number(&self, task_id: &str) -> Option<u64> {
        task_id
            .strip_prefix(self.task_prefix.as_str())?
            .parse()
            .ok()
    }

    /// Handles one record of the SUBSCRIBE stream.
    fn event(&mut self, record: &[u8]) {
        let Some(event) = parse_event(record) else {
            return;
        };
        match &*event.kind {
            "OFFERS" => {
                for offer in event.offers.map(|o| o.offers).unwrap_or_default() {
                    let (Some(id), Some(agent_id)) = (offer.id, offer.agent_id) else {
                        continue;
                    };
                    self.held.push_back(HeldOffer {
                        id: id.value.into_owned(),
                        agent_id: agent_id.value.into_owned(),
                        cpus: scalar(&offer.resources, "cpus"),
                        mem: scalar(&offer.resources, "mem"),
                    });
                }
                if self.cfg.stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> = self.held.drain(..).map(|o| o.id).collect();
                    self.decline(&ids, 3600.0);
                } else {
                    self.launch();
                }
            }
            "UPDATE" => {
                let status = event.update.map(|u| u.status).unwrap_or_default();
                let task_id = status.task_id.as_ref().map(|t| &*t.value);
                match status.state.as_ref().map(|s| &*s.0) {
                    Some("TASK_RUNNING") => {
                        let at = self.cfg.start.elapsed().as_secs_f64();
                        let sent = task_id
                            .and_then(|t| self.task_number(t))
                            .and_then(|n| self.sent.remove(&n));
                        if let Some(sent) = sent {
                            let latency = sent.elapsed().as_secs_f64();
                            self.cfg
                                .stats
                                .latencies
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((at, latency));
                        }
                        self.cfg.stats.running.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("TASK_FINISHED") => {
                        self.cfg.stats.finished.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        self.cfg.stats.other_updates.fetch_add(1, Ordering::Relaxed);
                        if self.cfg.stats.other_updates.load(Ordering::Relaxed) <= 5 {
                            eprintln!(
                                "framework {}: task {} {other:?}: {}",
                                self.index,
                                task_id.unwrap_or_default(),
                                json_text(status.message.as_ref().map(|m| &*m.0))
                            );
                        }
                    }
                }
                if let Some(uuid) = &status.uuid {
                    let agent_id = status.agent_id.as_ref().map(|a| &*a.value);
                    self.post(ack_call(&self.framework_id, agent_id, task_id, &uuid.0));
                }
            }
            "ERROR" => {
                // Rare: the whole `error` object, as it came.
                let error = serde_json::from_slice::<Value>(record)
                    .map(|e| e["error"].clone())
                    .unwrap_or_default();
                eprintln!("framework {}: ERROR {error}", self.index);
            }
            _ => {}
        }
    }
}

/// Subscribes and runs one framework until `stop`; returns once subscribed
/// (the event loop continues in a task).
async fn start_framework(index: usize, cfg: Arc<FwConfig>) -> Result<tokio::task::JoinHandle<()>> {
    // Only for SUBSCRIBE's long-lived response; calls go through `CallConn`.
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let subscribe = json!({
        "type": "SUBSCRIBE",
        "subscribe": { "framework_info": {
            "user": "loadgen",
            "name": format!("mesos-loadgen-{index}"),
            "roles": ["*"],
            "capabilities": [{ "type": "MULTI_ROLE" }]
        } }
    });
    let response = client
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(subscribe.to_string())
        .send()
        .await
        .context("SUBSCRIBE")?;
    if response.status().as_u16() != 200 {
        bail!(
            "SUBSCRIBE answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let stream_id = response
        .headers()
        .get("mesos-stream-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("SUBSCRIBE response without Mesos-Stream-Id"))?
        .to_string();
    let mut body = response.bytes_stream();
    let mut decoder = mesos_proto::recordio::Decoder::new(64 << 20);
    // Wait for SUBSCRIBED.
    let framework_id = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .context("waiting for SUBSCRIBED")?
            .ok_or_else(|| anyhow!("stream ended before SUBSCRIBED"))??;
        decoder.feed(&chunk);
        if let Some(record) = decoder.next_record()? {
            let event: Value = serde_json::from_slice(&record)?;
            if event["type"] == "SUBSCRIBED" {
                break event["subscribed"]["framework_id"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
            bail!("expected SUBSCRIBED, got {event}");
        }
    };
    let calls = start_callers(&cfg, &stream_id)?;
    let mut fw = Framework {
        index,
        cfg,
        calls,
        framework_id,
        held: VecDeque::new(),
        sent: HashMap::new(),
        task_prefix: format!("lg-{index}-"),
        next_task: 0,
        launched: 0,
        suppressed: false,
    };
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                chunk = body.next() => {
                    let Some(Ok(chunk)) = chunk else { break };
                    decoder.feed(&chunk);
                    let mut framing_error = None;
                    loop {
                        match decoder.next_record() {
                            Ok(Some(record)) => fw.event(&record),
                            Ok(None) => break,
                            Err(e) => {
                                framing_error = Some(e);
                                break;
                            }
                        }
                    }
                    // The stream cannot be resynchronised after bad framing:
                    // say so and stop this framework rather than go quiet.
                    if let Some(e) = framing_error {
                        eprintln!("framework {}: SUBSCRIBE stream unreadable, stopping: {e}", fw.index);
                        fw.cfg.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                _ = tick.tick() => {
                    if fw.cfg.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    fw.launch();
                }
            }
        }
        let ids: Vec<String> = fw.held.drain(..).map(|o| o.id).collect();
        fw.decline(&ids, 3600.0);
        fw.post(plain_call(&fw.framework_id, "TEARDOWN"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }))
}

// ---------------------------------------------------------------------------
// Raw baselines

/// The frameworks' call client against a trivial endpoint answering 202:
/// one `CallConn` per in-flight call, each call an ACKNOWLEDGE body written
/// as the frameworks write theirs.
async fn http_baseline(clients: usize, concurrency: usize, duration: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let app = axum::Router::new().route(
        "/api/v1/scheduler",
        axum::routing::post(|_body: Bytes| async { axum::http::StatusCode::ACCEPTED }),
    );
    let server = tokio::spawn(mesos_common::net::serve(listener, app));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..clients * concurrency {
        let mut conn = CallConn::new(&address, "baseline")?;
        let (done, stop) = (done.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = ack_call(
                    "baseline",
                    Some("baseline-S0"),
                    Some("lg-0-12345"),
                    "AAAAAAAAAAAAAAAAAAAAAA==",
                );
                if matches!(conn.post(body).await, Ok((status, _)) if status == StatusCode::ACCEPTED)
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (t0, n0) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(duration).await;
    let rate = (done.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    server.abort();
    Ok(rate)
}

#[derive(Clone)]
struct PingPongSink {
    me: Upid,
    transport: Transport,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MessageSink for PingPongSink {
    fn deliver(&self, message: Message) -> bool {
        self.received.fetch_add(1, Ordering::Relaxed);
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        if message.name == msg::PingSlaveMessage::full_name() {
            self.transport
                .send(&self.me, &message.from, &msg::PongSlaveMessage {});
        } else {
            self.transport.send(
                &self.me,
                &message.from,
                &msg::PingSlaveMessage { connected: true },
            );
        }
        true
    }
}

/// libprocess messages/s between pairs of processes over `Transport`, each
/// pair keeping `window` pings in flight.
async fn libprocess_baseline(pairs: usize, window: usize, duration: Duration) -> Result<f64> {
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    let mut starts = Vec::new();
    for _ in 0..pairs {
        let mut ends = Vec::new();
        for id in ["scheduler(1)", "slave(1)"] {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let me = Upid::new(id, "127.0.0.1", listener.local_addr()?.port());
            let sink = PingPongSink {
                me: me.clone(),
                transport: Transport::default(),
                received: received.clone(),
                stop: stop.clone(),
            };
            servers.push(tokio::spawn(mesos_common::net::serve(
                listener,
                with_messages(axum::Router::new(), sink.clone()),
            )));
            ends.push(sink);
        }
        starts.push((ends[0].clone(), ends[1].me.clone()));
    }
    for (a, b) in &starts {
        for _ in 0..window {
            a.transport
                .send(&a.me, b, &msg::PingSlaveMessage { connected: true });
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (t0, n0) = (Instant::now(), received.load(Ordering::Relaxed));
    tokio::time::sleep(duration).await;
    let rate = (received.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for s in servers {
        s.abort();
    }
    Ok(rate)
}

// ---------------------------------------------------------------------------
// The master process

struct MasterProc {
    child: Child,
    log: PathBuf,
}

impl Drop for MasterProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn spawn_master(args: &Args) -> Result<(MasterProc, String)> {
    let binary = match &args.start_master {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("loadgen binary has no directory"))?
            .join("mesos-master"),
    };
    if !binary.exists() {
        bail!(
            "{} does not exist: build it (cargo build --release -p mesos-master) or pass --start-master / --master",
            binary.display()
        );
    }
    // The documented value is `in_memory`; builds whose flag parser only
    // knows clap's default spelling get `in-memory`.
    let mut last_error = String::new();
    for registry in ["in_memory", "in-memory"] {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("mesos-loadgen-master-{port}.log"));
        let out = std::fs::File::create(&log).context("creating the master's log file")?;
        let mut command = Command::new(&binary);
        command
            .args([
                "--ip=127.0.0.1".to_string(),
                format!("--port={port}"),
                format!("--registry={registry}"),
                format!("--allocation_interval={}", args.allocation_interval),
                // The simulated agents and frameworks do not authenticate:
                // this measures the spine; authentication's own cost is in
                // `cargo bench -p mesos-common` (sasl, basic_auth).
                "--insecure".to_string(),
                // Every simulated agent and framework connects from
                // 127.0.0.1: one address, many peers, as behind a NAT.
                "--max_connections_per_peer=0".to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if let Some(level) = &args.master_log {
            command.env("RUST_LOG", level);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut master = MasterProc { child, log };
        let address = format!("127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("http://{address}/health")).send().await {
                if r.status().is_success() {
                    return Ok((master, address));
                }
            }
            if let Ok(Some(status)) = master.child.try_wait() {
                last_error = format!(
                    "master exited ({status}): {}",
                    std::fs::read_to_string(&master.log)
                        .unwrap_or_default()
                        .trim()
                );
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "master did not become healthy; log: {}",
                    master.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    bail!("{last_error}")
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e3
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => {}
        Err(e) => {
            eprintln!("mesos-loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if args.agents == 0 || args.frameworks == 0 {
        bail!("--agents and --frameworks must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a non-negative number");
    }
    let (master_proc, address) = match &args.master {
        Some(address) => (None, address.clone()),
        None => {
            let (proc, address) = spawn_master(&args).await?;
            (Some(proc), address)
        }
    };
    let master_pid = master_proc
        .as_ref()
        .map(|m| m.child.id())
        .or(args.master_pid);
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--master must be host:port"))?;
    let master_upid = Upid::new("master", host, port.parse().context("--master port")?);
    let url = format!("http://{address}/api/v1/scheduler");
    let memory_mode = args.memory_tasks > 0;

    println!(
        "mesos-loadgen: master {address} (pid {}), {} agents, {} frameworks, {}",
        master_pid.map_or("?".into(), |p| p.to_string()),
        args.agents,
        args.frameworks,
        if memory_mode {
            format!("memory mode: {} long-running tasks", args.memory_tasks)
        } else {
            format!(
                "{:?} window after {:?} warm-up, rate {}",
                args.duration,
                args.warmup,
                if args.rate > 0.0 {
                    format!("{} launches/s", args.rate)
                } else {
                    "unlimited".into()
                }
            )
        }
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(master_pid);
    let stats = Arc::new(Stats::default());
    let t_reg = Instant::now();
    let agents = start_agents(
        args.agents,
        &master_upid,
        &args.agent_resources,
        memory_mode,
        &stats,
    )
    .await?;
    let registration_secs = t_reg.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_agents = rss_kib(master_pid);
    println!(
        "{} agents registered in {:.2}s; master RSS idle {} KiB, with agents {} KiB",
        agents.len(),
        registration_secs,
        rss_idle.map_or("?".into(), |v| v.to_string()),
        rss_agents.map_or("?".into(), |v| v.to_string())
    );

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicI64::new(if memory_mode {
        args.memory_tasks as i64
    } else {
        i64::MAX
    }));
    let cfg = Arc::new(FwConfig {
        url,
        address: address.clone(),
        start,
        rate: args.rate / args.frameworks as f64,
        tasks_per_offer: args.tasks_per_offer.max(1),
        in_flight: args.in_flight.max(1),
        concurrency: args.concurrency.max(1),
        budget,
        stop: stop.clone(),
        stats: stats.clone(),
    });
    let mut loops = Vec::new();
    for i in 0..args.frameworks {
        loops.push(start_framework(i, cfg.clone()).await?);
    }

    let mut summary = serde_json::Map::new();
    summary.insert("agents".into(), json!(args.agents));
    summary.insert("frameworks".into(), json!(args.frameworks));
    summary.insert(
        "agent_registration_s".into(),
        json!(round2(registration_secs)),
    );
    summary.insert("master_rss_idle_kib".into(), json!(rss_idle));
    summary.insert("master_rss_agents_kib".into(), json!(rss_agents));
    if let (Some(a), Some(b)) = (rss_idle, rss_agents) {
        let per_agent = (b as f64 - a as f64) / args.agents as f64;
        summary.insert("kib_per_agent".into(), json!(round2(per_agent)));
        println!("master memory per agent: {per_agent:.2} KiB");
    }

    if memory_mode {
        let deadline = Instant::now() + Duration::from_secs(120 + args.memory_tasks / 200);
        while stats.running.load(Ordering::Relaxed) < args.memory_tasks {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} tasks RUNNING in time",
                    stats.running.load(Ordering::Relaxed),
                    args.memory_tasks
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let launch_secs = start.elapsed().as_secs_f64();
        // Let acknowledgements and declines settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_tasks = rss_kib(master_pid);
        println!(
            "{} tasks RUNNING after {:.2}s; master RSS {} KiB",
            args.memory_tasks,
            launch_secs,
            rss_tasks.map_or("?".into(), |v| v.to_string())
        );
        summary.insert("memory_tasks".into(), json!(args.memory_tasks));
        summary.insert("memory_tasks_launch_s".into(), json!(round2(launch_secs)));
        summary.insert("master_rss_tasks_kib".into(), json!(rss_tasks));
        if let (Some(a), Some(b)) = (rss_agents, rss_tasks) {
            let per_task = (b as f64 - a as f64) / args.memory_tasks as f64;
            summary.insert("kib_per_task".into(), json!(round2(per_task)));
            println!("master memory per task: {per_task:.3} KiB (target <= 2 KiB)");
        }
        stop.store(true, Ordering::Relaxed);
    } else {
        tokio::time::sleep(args.warmup).await;
        let s0 = stats.snapshot(start);
        tokio::time::sleep(args.duration).await;
        let s1 = stats.snapshot(start);
        stop.store(true, Ordering::Relaxed);
        let window = s1.at - s0.at;
        let mut latencies: Vec<f64> = stats
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(at, _)| *at >= s0.at && *at <= s1.at)
            .map(|(_, l)| *l)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let launches = (s1.running - s0.running) as f64 / window;
        let http_rate = (s1.http_calls - s0.http_calls) as f64 / window;
        let msg_rate = (s1.agent_msgs - s0.agent_msgs) as f64 / window;
        let (p50, p90, p99, max) = (
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "launches: {launches:.0} TASK_RUNNING/s over {window:.1}s ({} running, {} finished, {} ACCEPTs, {} tasks launched in window; {} other updates, {} HTTP errors)",
            s1.running - s0.running,
            s1.finished - s0.finished,
            s1.accepts - s0.accepts,
            s1.launched - s0.launched,
            stats.other_updates.load(Ordering::Relaxed),
            stats.http_errors.load(Ordering::Relaxed),
        );
        println!(
            "ACCEPT -> TASK_RUNNING: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            p50 * 1e3,
            p90 * 1e3,
            p99 * 1e3,
            max * 1e3,
            latencies.len()
        );
        println!(
            "through the master: {http_rate:.0} scheduler calls/s, {msg_rate:.0} agent messages/s"
        );
        let rss_end = rss_kib(master_pid);
        summary.insert("rate_target".into(), json!(args.rate));
        summary.insert("window_s".into(), json!(round2(window)));
        summary.insert("launches_per_s".into(), json!(launches.round()));
        summary.insert("latency_samples".into(), json!(latencies.len()));
        summary.insert("p50_ms".into(), json!(ms(p50)));
        summary.insert("p90_ms".into(), json!(ms(p90)));
        summary.insert("p99_ms".into(), json!(ms(p99)));
        summary.insert("max_ms".into(), json!(ms(max)));
        summary.insert("master_calls_per_s".into(), json!(http_rate.round()));
        summary.insert("master_agent_msgs_per_s".into(), json!(msg_rate.round()));
        summary.insert(
            "other_updates".into(),
            json!(stats.other_updates.load(Ordering::Relaxed)),
        );
        summary.insert(
            "http_errors".into(),
            json!(stats.http_errors.load(Ordering::Relaxed)),
        );
        summary.insert("master_rss_end_kib".into(), json!(rss_end));

        // Stop the load and the master before measuring the baselines so
        // they get the same two cores.
        for l in loops.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
        }
        drop(master_proc);
        drop(agents);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let http_base = http_baseline(
            args.frameworks,
            args.concurrency.max(1),
            args.baseline_duration,
        )
        .await?;
        let msg_base =
            libprocess_baseline(args.baseline_pairs.max(1), 64, args.baseline_duration).await?;
        println!(
            "baseline: trivial 202 endpoint {http_base:.0} calls/s ({} clients x {} in flight); libprocess ping-pong {msg_base:.0} msgs/s ({} pairs)",
            args.frameworks, args.concurrency, args.baseline_pairs
        );
        println!(
            "master / baseline: scheduler calls {:.2}, agent messages {:.2}",
            http_rate / http_base,
            msg_rate / msg_base
        );
        summary.insert("baseline_http_calls_per_s".into(), json!(http_base.round()));
        summary.insert(
            "baseline_libprocess_msgs_per_s".into(),
            json!(msg_base.round()),
        );
        summary.insert(
            "ratio_calls_master_vs_baseline".into(),
            json!(round2(http_rate / http_base)),
        );
        summary.insert(
            "ratio_msgs_master_vs_baseline".into(),
            json!(round2(msg_rate / msg_base)),
        );
        println!("{}", Value::Object(summary));
        return Ok(());
    }
    for l in loops {
        let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
    }
    drop(master_proc);
    println!("{}", Value::Object(summary));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &Bytes) -> Value {
        serde_json::from_slice(body).expect("a call body is JSON")
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_does() {
        for text in [
            "",
            "plain-S0",
            "quote\"back\\slash",
            "ctl\n\r\t\u{8}\u{c}\u{1}\u{1f}",
            "ünïcødé ✓ /slash",
            "\u{7f}del",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).expect("serializes"));
        }
        assert_eq!(json_text(None), "null");
        assert_eq!(json_text(Some("a\"b")), r#""a\"b""#);
    }

    #[test]
    fn ack_matches_the_json_it_replaced() {
        let status = json!({
            "task_id": { "value": "lg-1-7" },
            "agent_id": { "value": "odd\"agent\\S1" },
            "uuid": "q83vEjRWeJA=",
        });
        let old = json!({
            "framework_id": { "value": "fw-1" },
            "type": "ACKNOWLEDGE",
            "acknowledge": {
                "agent_id": status["agent_id"],
                "task_id": status["task_id"],
                "uuid": "q83vEjRWeJA="
            }
        });
        let new = ack_call(
            "fw-1",
            Some("odd\"agent\\S1"),
            Some("lg-1-7"),
            "q83vEjRWeJA=",
        );
        assert_eq!(parse(&new), old);
        // An update without ids forwarded JSON nulls.
        let new = ack_call("fw-1", None, None, "u");
        let value = parse(&new);
        assert!(value["acknowledge"]["agent_id"].is_null());
        assert!(value["acknowledge"]["task_id"].is_null());
    }

    #[test]
    fn decline_suppress_and_teardown_match_the_json_they_replaced() {
        for refuse_seconds in [1.0, 3600.0, 0.5] {
            let ids = vec!["o-1".to_string(), "o\"2".to_string()];
            let values: Vec<Value> = ids.iter().map(|i| json!({ "value": i })).collect();
            let old = json!({
                "framework_id": { "value": "fw" },
                "type": "DECLINE",
                "decline": { "offer_ids": values, "filters": { "refuse_seconds": refuse_seconds } }
            });
            let new = decline_call("fw", &ids, refuse_seconds);
            assert_eq!(parse(&new), old);
            // Same float text as serde_json, not only the same value.
            let text = format!(
                r#""refuse_seconds":{}"#,
                serde_json::to_string(&refuse_seconds).expect("serializes")
            );
            assert!(std::str::from_utf8(&new).is_ok_and(|b| b.contains(&text)));
        }
        for kind in ["SUPPRESS", "TEARDOWN"] {
            let old = json!({ "framework_id": { "value": "fw" }, "type": kind });
            assert_eq!(parse(&plain_call("fw", kind)), old);
        }
    }

    #[test]
    fn accept_matches_the_json_it_replaced() {
        let (index, agent_id, offer_id) = (3, "agent\\S\"9", "offer-42");
        let mut tasks = Vec::new();
        for n in 10..13u64 {
            tasks.push(json!({
                "name": "loadgen",
                "task_id": { "value": format!("lg-{index}-{n}") },
                "agent_id": { "value": agent_id },
                "resources": [
                    { "name": "cpus", "type": "SCALAR", "scalar": { "value": TASK_CPUS } },
                    { "name": "mem", "type": "SCALAR", "scalar": { "value": TASK_MEM } }
                ],
                "command": { "shell": true, "value": "true" }
            }));
        }
        let old = json!({
            "framework_id": { "value": "fw-3" },
            "type": "ACCEPT",
            "accept": {
                "offer_ids": [{ "value": offer_id }],
                "operations": [{ "type": "LAUNCH", "launch": { "task_infos": tasks } }],
                "filters": { "refuse_seconds": 0.0 }
            }
        });
        let new = accept_call("fw-3", offer_id, agent_id, index, 10..13);
        assert_eq!(parse(&new), old);
        let one = accept_call("fw-3", offer_id, agent_id, index, 5..6);
        assert_eq!(
            parse(&one)["accept"]["operations"][0]["launch"]["task_infos"][0]["task_id"]["value"],
            "lg-3-5"
        );
    }

    const OFFERS: &str = r#"{"type":"OFFERS","offers":{"offers":[
        {"id":{"value":"o-1"},"framework_id":{"value":"fw"},"agent_id":{"value":"S0"},
         "hostname":"h","url":{"scheme":"http","address":{"ip":"127.0.0.1","port":1}},
         "resources":[
           {"name":"cpus","type":"SCALAR","scalar":{"value":63.5},"role":"*","allocation_info":{"role":"*"}},
           {"name":"mem","type":"SCALAR","scalar":{"value":1024}},
           {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}},
           {"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}]},
        {"framework_id":{"value":"fw"},"agent_id":{"value":"S1"},"resources":[]},
        {"id":{"value":"o-\"3"},"agent_id":{"value":"S2"}}]}}"#;

    #[test]
    fn offers_events_parse_to_what_is_used() {
        let event = parse_event(OFFERS.as_bytes()).expect("parses");
        assert_eq!(event.kind, "OFFERS");
        let offers = event.offers.expect("offers").offers;
        assert_eq!(offers.len(), 3);
        let first = &offers[0];
        assert_eq!(first.id.as_ref().map(|i| &*i.value), Some("o-1"));
        assert_eq!(first.agent_id.as_ref().map(|i| &*i.value), Some("S0"));
        assert_eq!(scalar(&first.resources, "cpus"), 64.0);
        assert_eq!(scalar(&first.resources, "mem"), 1024.0);
        assert_eq!(scalar(&first.resources, "disk"), 0.0);
        // No id: skipped by the framework.
        assert!(offers[1].id.is_none());
        // An escaped id is unescaped (and owned).
        assert_eq!(offers[2].id.as_ref().map(|i| &*i.value), Some("o-\"3"));
        assert_eq!(scalar(&offers[2].resources, "cpus"), 0.0);
    }

    #[test]
    fn update_events_keep_what_the_acknowledgement_forwards() {
        let record = br#"{"type":"UPDATE","update":{"status":{
            "task_id":{"value":"lg-0-17"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
            "agent_id":{"value":"a\\b-S3"},"executor_id":{"value":"lg-0-17"},
            "timestamp":1.5,"uuid":"AAECAwQFBgcICQoLDA0ODw==","message":"hi"}}}"#;
        let event = parse_event(record).expect("parses");
        assert_eq!(event.kind, "UPDATE");
        let status = event.update.expect("update").status;
        let task_id = status.task_id.as_ref().map(|t| &*t.value);
        assert_eq!(task_id, Some("lg-0-17"));
        assert_eq!(status.state.as_ref().map(|s| &*s.0), Some("TASK_RUNNING"));
        let uuid = status.uuid.as_ref().expect("uuid");
        // Unescaped strings are borrowed from the record, not copied.
        assert!(matches!(uuid.0, Cow::Borrowed(_)));
        assert!(matches!(
            status.task_id.as_ref().map(|t| &t.value),
            Some(Cow::Borrowed(_))
        ));
        let agent_id = status.agent_id.as_ref().map(|a| &*a.value);
        assert_eq!(agent_id, Some("a\\b-S3"));
        // The acknowledgement carries the same ids and uuid, re-escaped.
        let ack = parse(&ack_call("fw", agent_id, task_id, &uuid.0));
        let original: Value = serde_json::from_slice(record).expect("JSON");
        let original = &original["update"]["status"];
        assert_eq!(ack["acknowledge"]["agent_id"], original["agent_id"]);
        assert_eq!(ack["acknowledge"]["task_id"], original["task_id"]);
        assert_eq!(ack["acknowledge"]["uuid"], original["uuid"]);
        assert_eq!(json_text(status.message.as_ref().map(|m| &*m.0)), r#""hi""#);

        // An UPDATE without a status still parses (counted as "other").
        let bare = parse_event(br#"{"type":"UPDATE","update":{}}"#).expect("parses");
        let status = bare.update.expect("update").status;
        assert!(status.state.is_none() && status.uuid.is_none());
    }

    #[test]
    fn malformed_events_are_skipped() {
        for record in [
            &br#"{"type":"UPDATE","update":{"status":{"task_id":{"val"#[..],
            b"",
            b"[1,2]",
            b"not json",
            br#"{"offers":{"offers":[]}}"#,
            br#"{"type":"OFFERS","offers":{"offers":[{"id":{"value":7}}]}}"#,
        ] {
            assert!(parse_event(record).is_none(), "{record:?}");
        }
        let heartbeat = parse_event(br#"{"type":"HEARTBEAT"}"#).expect("parses");
        assert!(heartbeat.offers.is_none() && heartbeat.update.is_none());
    }

    /// The SUBSCRIBE stream as the event loop reads it: RecordIO frames,
    /// split anywhere by the transport.
    #[test]
    fn framed_events_survive_any_split_and_bad_framing_stops() {
        let records = [OFFERS, r#"{"type":"HEARTBEAT"}"#];
        let mut stream = Vec::new();
        for r in records {
            stream.extend_from_slice(&mesos_proto::recordio::encode(r.as_bytes()));
        }
        for split in 0..stream.len() {
            let mut decoder = mesos_proto::recordio::Decoder::new(1 << 20);
            let mut kinds = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                decoder.feed(chunk);
                while let Ok(Some(record)) = decoder.next_record() {
                    kinds.push(parse_event(&record).expect("parses").kind.into_owned());
                }
            }
            assert_eq!(kinds, ["OFFERS", "HEARTBEAT"], "split at {split}");
        }
        // A truncated record waits for the rest.
        let mut decoder = mesos_proto::recordio::Decoder::new(1 << 20);
        decoder.feed(b"20\n{\"type\":\"HEA");
        assert!(matches!(decoder.next_record(), Ok(None)));
        decoder.feed(b"RTBEAT\"}");
        let record = decoder.next_record().expect("framed").expect("complete");
        assert_eq!(parse_event(&record).expect("parses").kind, "HEARTBEAT");
        // A bad length line is an error, which ends the loop's draining.
        let mut decoder = mesos_proto::recordio::Decoder::new(1 << 20);
        decoder.feed(b"2x\n{}");
        assert!(decoder.next_record().is_err());
    }

    #[test]
    fn message_names_match_without_allocating() {
        let full = msg::RunTaskMessage::full_name();
        assert!(is_message::<msg::RunTaskMessage>(&full));
        assert!(!is_message::<msg::PingSlaveMessage>(&full));
        assert!(!is_message::<msg::RunTaskMessage>(
            "mesos.internal.RunTaskMessageX"
        ));
        assert!(!is_message::<msg::RunTaskMessage>(
            "mesos.internalXRunTaskMessage"
        ));
        assert!(!is_message::<msg::RunTaskMessage>("RunTaskMessage"));
    }

    #[test]
    fn update_uuids_are_unique_v4_and_round_trip() {
        let uuids: Vec<u128> = (0..1000).map(|_| next_uuid()).collect();
        let distinct: std::collections::HashSet<_> = uuids.iter().collect();
        assert_eq!(distinct.len(), uuids.len());
        for &u in &uuids {
            let parsed = uuid::Uuid::from_u128(u);
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(uuid_key(&u.to_be_bytes()), Some(u));
        }
        assert_eq!(uuid_key(b"short"), None);
    }

    #[test]
    fn run_task_ids_decode_as_the_full_message_does() {
        let full = msg::RunTaskMessage {
            framework_id: Some(v1::FrameworkId {
                value: "old-fw".into(),
            }),
            framework: v1::FrameworkInfo {
                user: "u".into(),
                name: "n".into(),
                id: Some(v1::FrameworkId { value: "fw".into() }),
                roles: vec!["*".into()],
                ..Default::default()
            },
            task: v1::TaskInfo {
                name: "loadgen".into(),
                task_id: v1::TaskId {
                    value: "lg-0-1".into(),
                },
                agent_id: v1::AgentId { value: "S0".into() },
                ..Default::default()
            },
            pid: Some("scheduler(1)@127.0.0.1:1".into()),
            launch_executor: Some(true),
            ..Default::default()
        };
        let body = Bytes::from(prost::Message::encode_to_vec(&full));
        let ids = <RunTaskIds as prost::Message>::decode(body).expect("decodes");
        assert_eq!(ids.framework.and_then(|f| f.id), full.framework.id);
        assert_eq!(ids.framework_id, full.framework_id);
        assert_eq!(ids.task.and_then(|t| t.task_id), Some(full.task.task_id));
    }

    /// A scheduler endpoint that checks the headers, answers 202, and
    /// closes the connection after every `close_every`-th call.
    async fn endpoint(close_every: u64) -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let calls = Arc::new(AtomicU64::new(0));
        let (seen, host) = (calls.clone(), address.clone());
        let app = axum::Router::new().route(
            "/api/v1/scheduler",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                let ok = headers.get("host").is_some_and(|h| h == host.as_str())
                    && headers
                        .get("content-type")
                        .is_some_and(|h| h == "application/json")
                    && headers.get("mesos-stream-id").is_some_and(|h| h == "s-1")
                    && &body[..] == b"{}";
                async move {
                    let status = if ok {
                        axum::http::StatusCode::ACCEPTED
                    } else {
                        axum::http::StatusCode::BAD_REQUEST
                    };
                    let close = if n % close_every == 0 {
                        "close"
                    } else {
                        "keep-alive"
                    };
                    (
                        status,
                        [("connection", close)],
                        if ok { "" } else { "bad call" },
                    )
                }
            }),
        );
        tokio::spawn(mesos_common::net::serve(listener, app));
        (address, calls)
    }

    #[tokio::test]
    async fn calls_reuse_their_connection_and_reconnect_after_a_close() {
        let (address, calls) = endpoint(3).await;
        let mut conn = CallConn::new(&address, "s-1").expect("conn");
        for _ in 0..7 {
            let (status, body) = conn.post(Bytes::from_static(b"{}")).await.expect("call");
            assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
        }
        assert_eq!(calls.load(Ordering::Relaxed), 7);
        // A refused call comes back with its status and body.
        let (status, body) = conn.post(Bytes::from_static(b"[]")).await.expect("call");
        assert_eq!(
            (status, &body[..]),
            (StatusCode::BAD_REQUEST, &b"bad call"[..])
        );
    }

    #[tokio::test]
    async fn calls_to_a_closed_port_fail_without_hanging() {
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").to_string()
        };
        let mut conn = CallConn::new(&address, "s-1").expect("conn");
        assert!(conn.post(Bytes::from_static(b"{}")).await.is_err());
        assert!(conn.post(Bytes::from_static(b"{}")).await.is_err());
    }
}
