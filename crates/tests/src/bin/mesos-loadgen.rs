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

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use mesos_common::resources::Resources;
use mesos_common::transport::{with_messages, Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::internal as msg;
use mesos_proto::v1::{self, TaskState};
use prost::Name;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
    master: Upid,
    transport: Transport,
    resources: Vec<v1::Resource>,
    agent_id: Mutex<Option<String>>,
    /// Tasks stay RUNNING (memory mode).
    keep_running: bool,
    /// Unacknowledged updates: uuid → (framework, task, state).
    pending: Mutex<HashMap<Bytes, (String, String, TaskState)>>,
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

impl SimAgent {
    fn send<M: prost::Message + Name>(&self, to: &Upid, message: &M) {
        self.stats.agent_msgs_out.fetch_add(1, Ordering::Relaxed);
        self.transport.send(&self.upid, to, message);
    }

    fn registered(&self) -> bool {
        self.agent_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
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

    fn handle(&self, message: Message) {
        let name = message.name.as_str();
        if name == msg::PingSlaveMessage::full_name() {
            self.send(&message.from, &msg::PongSlaveMessage {});
        } else if name == msg::SlaveRegisteredMessage::full_name() {
            if let Ok(m) = message.decode::<msg::SlaveRegisteredMessage>() {
                let mut id = self.agent_id.lock().unwrap_or_else(|p| p.into_inner());
                if id.is_none() {
                    *id = Some(m.slave_id.value);
                    self.stats.agents_registered.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if name == msg::RunTaskMessage::full_name() {
            if let Ok(m) = message.decode::<msg::RunTaskMessage>() {
                let framework_id = m
                    .framework
                    .id
                    .or(m.framework_id)
                    .map(|f| f.value)
                    .unwrap_or_default();
                self.update(&framework_id, &m.task.task_id.value, TaskState::TaskRunning);
            }
        } else if name == msg::StatusUpdateAcknowledgementMessage::full_name() {
            if let Ok(m) = message.decode::<msg::StatusUpdateAcknowledgementMessage>() {
                let acked = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&m.uuid);
                if let Some((framework_id, task_id, TaskState::TaskRunning)) = acked {
                    if !self.keep_running {
                        self.update(&framework_id, &task_id, TaskState::TaskFinished);
                    }
                }
            }
        }
        // Anything else (shutdown, kill, re-registration replies) needs no
        // answer from a simulated agent.
    }

    fn update(&self, framework_id: &str, task_id: &str, state: TaskState) {
        let Some(agent_id) = self
            .agent_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let uuid = Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let now = now_secs();
        let agent = v1::AgentId { value: agent_id };
        let executor = v1::ExecutorId {
            value: task_id.to_string(),
        };
        let status = v1::TaskStatus {
            task_id: v1::TaskId {
                value: task_id.to_string(),
            },
            state: state as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            timestamp: Some(now),
            uuid: Some(uuid.clone()),
            agent_id: Some(agent.clone()),
            executor_id: Some(executor.clone()),
            ..Default::default()
        };
        let update = msg::StatusUpdate {
            framework_id: v1::FrameworkId {
                value: framework_id.to_string(),
            },
            executor_id: Some(executor),
            slave_id: Some(agent),
            status,
            timestamp: now,
            uuid: Some(uuid.clone()),
            latest_state: None,
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid, (framework_id.to_string(), task_id.to_string(), state));
        self.send(
            &self.master,
            &msg::StatusUpdateMessage {
                update,
                pid: Some(self.upid.to_string()),
            },
        );
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
        let agent = Arc::new(SimAgent {
            upid: Upid::new("slave(1)", "127.0.0.1", port),
            master: master.clone(),
            transport: Transport::default(),
            resources: resources.clone(),
            agent_id: Mutex::new(None),
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
    url: String,
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
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    framework_id: String,
    stream_id: String,
    held: VecDeque<HeldOffer>,
    /// task id → when its ACCEPT was sent.
    sent: Arc<Mutex<HashMap<String, Instant>>>,
    next_task: u64,
    launched: u64,
    suppressed: bool,
}

const TASK_CPUS: f64 = 0.01;
const TASK_MEM: f64 = 1.0;

fn scalar(offer: &Value, name: &str) -> f64 {
    offer["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["scalar"]["value"].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}

impl Framework {
    /// Posts one call without waiting for it (bounded by the permits).
    fn post(&self, call: Value) {
        let client = self.client.clone();
        let url = self.cfg.url.clone();
        let stream_id = self.stream_id.clone();
        let permits = self.permits.clone();
        let stats = self.cfg.stats.clone();
        let stop = self.cfg.stop.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let body = call.to_string();
            let result = client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Mesos-Stream-Id", stream_id)
                .body(body)
                .send()
                .await;
            match result {
                Ok(r) if r.status().as_u16() == 202 => {
                    stats.http_calls.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) if stop.load(Ordering::Relaxed) => {}
                Ok(r) => {
                    stats.http_errors.fetch_add(1, Ordering::Relaxed);
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    eprintln!("call refused: {status} {text}");
                }
                Err(e) => {
                    stats.http_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("call failed: {e}");
                }
            }
        });
    }

    fn fid(&self) -> Value {
        json!({ "value": self.framework_id })
    }

    fn decline(&self, offer_ids: Vec<String>, refuse_seconds: f64) {
        if offer_ids.is_empty() {
            return;
        }
        let ids: Vec<Value> = offer_ids.iter().map(|i| json!({ "value": i })).collect();
        self.post(json!({
            "framework_id": self.fid(),
            "type": "DECLINE",
            "decline": { "offer_ids": ids, "filters": { "refuse_seconds": refuse_seconds } }
        }));
    }

    /// Tasks the rate and the in-flight cap allow now for an offer that
    /// fits `fit`. Unlimited: all of `fit` or nothing, so ACCEPTs stay
    /// batched instead of trickling one task at a time.
    fn tokens(&self, fit: u64) -> u64 {
        let in_flight = self.sent.lock().unwrap_or_else(|p| p.into_inner()).len();
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
                self.decline(vec![offer.id], refuse);
                if fit > 0 {
                    self.suppress();
                }
                continue;
            }
            let mut tasks = Vec::with_capacity(n as usize);
            let now = Instant::now();
            {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                for _ in 0..n {
                    let task_id = format!("lg-{}-{}", self.index, self.next_task);
                    self.next_task += 1;
                    tasks.push(json!({
                        "name": "loadgen",
                        "task_id": { "value": task_id },
                        "agent_id": { "value": offer.agent_id },
                        "resources": [
                            { "name": "cpus", "type": "SCALAR", "scalar": { "value": TASK_CPUS } },
                            { "name": "mem", "type": "SCALAR", "scalar": { "value": TASK_MEM } }
                        ],
                        "command": { "shell": true, "value": "true" }
                    }));
                    sent.insert(task_id, now);
                }
            }
            self.launched += n;
            self.cfg.stats.launched.fetch_add(n, Ordering::Relaxed);
            self.cfg.stats.accepts.fetch_add(1, Ordering::Relaxed);
            self.post(json!({
                "framework_id": self.fid(),
                "type": "ACCEPT",
                "accept": {
                    "offer_ids": [{ "value": offer.id }],
                    "operations": [{ "type": "LAUNCH", "launch": { "task_infos": tasks } }],
                    "filters": { "refuse_seconds": 0.0 }
                }
            }));
        }
    }

    fn suppress(&mut self) {
        if !self.suppressed {
            self.suppressed = true;
            self.post(json!({ "framework_id": self.fid(), "type": "SUPPRESS" }));
        }
    }

    fn event(&mut self, event: Value) {
        match event["type"].as_str() {
            Some("OFFERS") => {
                for offer in event["offers"]["offers"].as_array().into_iter().flatten() {
                    let (Some(id), Some(agent_id)) = (
                        offer["id"]["value"].as_str(),
                        offer["agent_id"]["value"].as_str(),
                    ) else {
                        continue;
                    };
                    self.held.push_back(HeldOffer {
                        id: id.to_string(),
                        agent_id: agent_id.to_string(),
                        cpus: scalar(offer, "cpus"),
                        mem: scalar(offer, "mem"),
                    });
                }
                if self.cfg.stop.load(Ordering::Relaxed) {
                    let ids = self.held.drain(..).map(|o| o.id).collect();
                    self.decline(ids, 3600.0);
                } else {
                    self.launch();
                }
            }
            Some("UPDATE") => {
                let status = &event["update"]["status"];
                let task_id = status["task_id"]["value"].as_str().unwrap_or_default();
                match status["state"].as_str() {
                    Some("TASK_RUNNING") => {
                        let at = self.cfg.start.elapsed().as_secs_f64();
                        let sent = self
                            .sent
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(task_id);
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
                                "framework {}: task {task_id} {other:?}: {}",
                                self.index, status["message"]
                            );
                        }
                    }
                }
                if let Some(uuid) = status["uuid"].as_str() {
                    self.post(json!({
                        "framework_id": self.fid(),
                        "type": "ACKNOWLEDGE",
                        "acknowledge": {
                            "agent_id": status["agent_id"],
                            "task_id": status["task_id"],
                            "uuid": uuid
                        }
                    }));
                }
            }
            Some("ERROR") => eprintln!("framework {}: ERROR {}", self.index, event["error"]),
            _ => {}
        }
    }
}

/// Subscribes and runs one framework until `stop`; returns once subscribed
/// (the event loop continues in a task).
async fn start_framework(index: usize, cfg: Arc<FwConfig>) -> Result<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.concurrency + 1)
        .tcp_nodelay(true)
        .build()?;
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
    let mut fw = Framework {
        index,
        permits: Arc::new(Semaphore::new(cfg.concurrency)),
        cfg,
        client,
        framework_id,
        stream_id,
        held: VecDeque::new(),
        sent: Arc::new(Mutex::new(HashMap::new())),
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
                    while let Ok(Some(record)) = decoder.next_record() {
                        if let Ok(event) = serde_json::from_slice::<Value>(&record) {
                            fw.event(event);
                        }
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
        let ids = fw.held.drain(..).map(|o| o.id).collect();
        fw.decline(ids, 3600.0);
        fw.post(json!({ "framework_id": fw.fid(), "type": "TEARDOWN" }));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }))
}

// ---------------------------------------------------------------------------
// Raw baselines

/// The same reqwest pattern against a trivial endpoint answering 202.
async fn http_baseline(clients: usize, concurrency: usize, duration: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/scheduler", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/api/v1/scheduler",
        axum::routing::post(|_body: Bytes| async { axum::http::StatusCode::ACCEPTED }),
    );
    let server = tokio::spawn(mesos_common::net::serve(listener, app));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let body = json!({
        "framework_id": { "value": "baseline" },
        "type": "ACKNOWLEDGE",
        "acknowledge": {
            "agent_id": { "value": "baseline-S0" },
            "task_id": { "value": "lg-0-12345" },
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="
        }
    });
    let mut workers = Vec::new();
    for _ in 0..clients {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency + 1)
            .tcp_nodelay(true)
            .build()?;
        for _ in 0..concurrency {
            let (client, url, done, stop, body) = (
                client.clone(),
                url.clone(),
                done.clone(),
                stop.clone(),
                body.clone(),
            );
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let response = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("Mesos-Stream-Id", "baseline")
                        .body(body.to_string())
                        .send()
                        .await;
                    if matches!(response, Ok(r) if r.status().as_u16() == 202) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
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
