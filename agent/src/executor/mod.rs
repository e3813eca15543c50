//! The built-in executor (`mesos-executor`): a v1 HTTP executor that runs
//! `command` tasks (LAUNCH) and task groups (LAUNCH_GROUP, Mesos's default
//! executor semantics: one failed task kills the rest of its group). Each
//! task runs as its own process group; its output goes to the sandbox's
//! `stdout`/`stderr` (inherited). Updates are kept until ACKNOWLEDGED and
//! resent on re-subscription; when the stream breaks the executor retries
//! SUBSCRIBE until `MESOS_RECOVERY_TIMEOUT`, then kills its tasks and exits.

pub mod client;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesos_common::flags::parse_duration;
use mesos_proto::recordio::Decoder;
use mesos_proto::v1;
use mesos_proto::v1::executor as exec;
use mesos_proto::v1::task_status::{Reason, Source};
use mesos_proto::v1::TaskState;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// What the agent told the executor through its environment.
#[derive(Debug, Clone)]
pub struct ExecutorEnv {
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: String,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: String,
    /// `MESOS_AGENT_ENDPOINT` (`host:port`).
    pub endpoint: String,
    /// `MESOS_CHECKPOINT`: keep trying when the agent goes away.
    pub checkpoint: bool,
    /// `MESOS_RECOVERY_TIMEOUT`.
    pub recovery_timeout: Duration,
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
    pub backoff_max: Duration,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`.
    pub shutdown_grace: Duration,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`: sent as a bearer token on
    /// every call, and never passed on to tasks.
    pub token: Option<client::Token>,
}

impl ExecutorEnv {
    /// Reads the environment through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(format!("{name} is not set"))
        };
        let duration = |name: &str, default: Duration| -> Result<Duration, String> {
            match get(name) {
                Some(v) => parse_duration(&v).map_err(|e| format!("{name}: {e}")),
                None => Ok(default),
            }
        };
        Ok(Self {
            framework_id: required("MESOS_FRAMEWORK_ID")?,
            executor_id: required("MESOS_EXECUTOR_ID")?,
            endpoint: required("MESOS_AGENT_ENDPOINT")?,
            checkpoint: get("MESOS_CHECKPOINT").is_some_and(|v| v == "1" || v == "true"),
            recovery_timeout: duration("MESOS_RECOVERY_TIMEOUT", Duration::from_secs(900))?,
            backoff_max: duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", Duration::from_secs(2))?,
            shutdown_grace: duration(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                Duration::from_secs(5),
            )?,
            token: get(crate::auth::EXECUTOR_TOKEN_ENV)
                .filter(|t| !t.is_empty())
                .map(client::Token::new),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// How a task process ended, as the executor reports it.
pub fn exit_update(status: std::process::ExitStatus, killed: bool) -> (TaskState, String) {
    use std::os::unix::process::ExitStatusExt;
    let message = match (status.code(), status.signal()) {
        (Some(code), _) => format!("Command exited with status {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map_or_else(|_| signal.to_string(), |s| signal_name(s).to_string());
            format!("Command terminated with signal {name}")
        }
        (None, None) => "Command terminated".to_string(),
    };
    let state = if killed {
        TaskState::TaskKilled
    } else if status.success() {
        TaskState::TaskFinished
    } else {
        TaskState::TaskFailed
    };
    (state, message)
}

fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::SIGTERM => "Terminated",
        Signal::SIGKILL => "Killed",
        Signal::SIGINT => "Interrupt",
        Signal::SIGHUP => "Hangup",
        Signal::SIGSEGV => "Segmentation fault",
        Signal::SIGABRT => "Aborted",
        Signal::SIGPIPE => "Broken pipe",
        other => other.as_str(),
    }
}

#[derive(Debug)]
enum Internal {
    Exited {
        task_id: String,
        status: std::io::Result<std::process::ExitStatus>,
    },
    Escalate {
        task_id: String,
    },
}

#[derive(Debug)]
struct TaskRun {
    info: v1::TaskInfo,
    pgid: Option<i32>,
    state: TaskState,
    killed: bool,
    group: Option<u64>,
}

/// How long an update may stay unacknowledged before it is sent again.
const UPDATE_RESEND_INTERVAL: Duration = Duration::from_secs(10);

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn is_terminal(state: TaskState) -> bool {
    crate::status_update_manager::is_terminal(state as i32)
}

/// The executor's state; see [`run`].
pub struct Driver {
    env: ExecutorEnv,
    calls: mpsc::UnboundedSender<exec::Call>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    tasks: BTreeMap<String, TaskRun>,
    /// Updates not yet acknowledged, with when they were last sent.
    unacked_updates: Vec<(Instant, exec::call::Update)>,
    unacked_tasks: BTreeMap<String, v1::TaskInfo>,
    framework_info: Option<v1::FrameworkInfo>,
    shutting_down: bool,
    next_group: u64,
}

impl Driver {
    fn call(&self, kind: exec::call::Type) -> exec::Call {
        exec::Call {
            executor_id: v1::ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: v1::FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    fn subscribe_call(&self) -> exec::Call {
        exec::Call {
            subscribe: Some(exec::call::Subscribe {
                unacknowledged_tasks: self.unacked_tasks.values().cloned().collect(),
                unacknowledged_updates: self
                    .unacked_updates
                    .iter()
                    .map(|(_, u)| u.clone())
                    .collect(),
            }),
            ..self.call(exec::call::Type::Subscribe)
        }
    }

    fn send_update(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
    ) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.state = state;
        }
        tracing::info!(
            task_id,
            state = state.as_str_name(),
            message = message.as_deref().unwrap_or(""),
            "sending status update"
        );
        let update = exec::call::Update {
            status: v1::TaskStatus {
                task_id: v1::TaskId {
                    value: task_id.to_string(),
                },
                state: state as i32,
                message,
                source: Some(Source::Executor as i32),
                reason: reason.map(|r| r as i32),
                executor_id: Some(v1::ExecutorId {
                    value: self.env.executor_id.clone(),
                }),
                timestamp: Some(now_secs()),
                uuid: Some(Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes())),
                ..Default::default()
            },
        };
        self.unacked_updates.push((Instant::now(), update.clone()));
        let call = exec::Call {
            update: Some(update),
            ..self.call(exec::call::Type::Update)
        };
        let _ = self.calls.send(call);
    }

    fn handle_event(&mut self, event: exec::Event) {
        match event.r#type() {
            exec::event::Type::Subscribed => {
                if let Some(subscribed) = event.subscribed {
                    tracing::info!(agent = ?subscribed.agent_info.id.map(|i| i.value), "subscribed");
                    self.framework_info = Some(subscribed.framework_info);
                }
            }
            exec::event::Type::Launch => {
                if let Some(launch) = event.launch {
                    self.launch(launch.task, None);
                }
            }
            exec::event::Type::LaunchGroup => {
                if let Some(group) = event.launch_group {
                    self.next_group += 1;
                    let id = self.next_group;
                    for task in group.task_group.tasks {
                        self.launch(task, Some(id));
                    }
                }
            }
            exec::event::Type::Kill => {
                if let Some(kill) = event.kill {
                    let grace = kill
                        .kill_policy
                        .as_ref()
                        .or_else(|| {
                            self.tasks
                                .get(&kill.task_id.value)
                                .and_then(|t| t.info.kill_policy.as_ref())
                        })
                        .and_then(|p| p.grace_period.as_ref())
                        .and_then(|d| u64::try_from(d.nanoseconds).ok())
                        .map(Duration::from_nanos)
                        .unwrap_or(self.env.shutdown_grace);
                    self.kill(&kill.task_id.value, grace);
                }
            }
            exec::event::Type::Acknowledged => {
                if let Some(ack) = event.acknowledged {
                    self.unacked_updates
                        .retain(|(_, u)| u.status.uuid.as_ref() != Some(&ack.uuid));
                    self.unacked_tasks.remove(&ack.task_id.value);
                }
            }
            exec::event::Type::Message => {
                tracing::info!("received a framework message (ignored by the command executor)")
            }
            exec::event::Type::Error => {
                tracing::error!(
                    message = event.error.map(|e| e.message).unwrap_or_default(),
                    "error from the agent"
                );
            }
            exec::event::Type::Shutdown => {
                tracing::info!("shutting down");
                self.shutting_down = true;
                // Leave time for TASK_KILLED to reach the agent before it
                // destroys the container.
                let grace = self
                    .env
                    .shutdown_grace
                    .saturating_sub(Duration::from_secs(1))
                    .max(Duration::from_millis(100));
                let ids: Vec<String> = self.tasks.keys().cloned().collect();
                for id in ids {
                    self.kill(&id, grace);
                }
            }
            exec::event::Type::Heartbeat | exec::event::Type::Unknown => {}
        }
    }

    fn launch(&mut self, task: v1::TaskInfo, group: Option<u64>) {
        let task_id = task.task_id.value.clone();
        if self.tasks.contains_key(&task_id) {
            tracing::warn!(%task_id, "ignoring a second launch of the same task");
            return;
        }
        tracing::info!(%task_id, "launching task");
        self.unacked_tasks.insert(task_id.clone(), task.clone());
        self.tasks.insert(
            task_id.clone(),
            TaskRun {
                info: task.clone(),
                pgid: None,
                state: TaskState::TaskStaging,
                killed: false,
                group,
            },
        );
        if self.shutting_down {
            self.send_update(
                &task_id,
                TaskState::TaskKilled,
                Some("Executor is shutting down".into()),
                None,
            );
            return;
        }
        self.send_update(&task_id, TaskState::TaskStarting, None, None);
        let Some(command) = task.command.clone() else {
            self.send_update(
                &task_id,
                TaskState::TaskFailed,
                Some("Task has no command".into()),
                Some(Reason::CommandExecutorFailed),
            );
            return;
        };
        let Some(value) = command.value.clone() else {
            self.send_update(
                &task_id,
                TaskState::TaskFailed,
                Some("Task command has no value".into()),
                Some(Reason::CommandExecutorFailed),
            );
            return;
        };
        let mut process = if command.shell() {
            let mut p = tokio::process::Command::new("/bin/sh");
            p.arg("-c").arg(&value);
            p
        } else {
            let mut p = tokio::process::Command::new(&value);
            if let Some(arg0) = command.arguments.first() {
                p.arg0(arg0);
            }
            p.args(command.arguments.iter().skip(1));
            p
        };
        let mut env: Vec<(String, String)> = Vec::new();
        crate::agent::apply_task_environment(&mut env, command.environment.as_ref());
        // The executor's TLS settings (certificate and key paths) are the
        // agent's, passed to reach the agent; a task has no use for them
        // (unless it set them itself).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("LIBPROCESS_SSL_")
                && !env.iter().any(|(set, _)| set.as_str() == name)
            {
                process.env_remove(name.as_ref());
            }
        }
        process
            .envs(env)
            // The token proves the executor's identity; a task must not
            // be able to act as its executor.
            .env_remove(crate::auth::EXECUTOR_TOKEN_ENV)
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        match process.spawn() {
            Ok(mut child) => {
                let pgid = child.id().and_then(|p| i32::try_from(p).ok());
                if let Some(run) = self.tasks.get_mut(&task_id) {
                    run.pgid = pgid;
                }
                self.send_update(&task_id, TaskState::TaskRunning, None, None);
                let tx = self.internal_tx.clone();
                let id = task_id.clone();
                tokio::spawn(async move {
                    let status = child.wait().await;
                    let _ = tx.send(Internal::Exited {
                        task_id: id,
                        status,
                    });
                });
            }
            Err(e) => {
                self.send_update(
                    &task_id,
                    TaskState::TaskFailed,
                    Some(format!("Failed to launch command '{value}': {e}")),
                    Some(Reason::CommandExecutorFailed),
                );
            }
        }
    }

    fn kill(&mut self, task_id: &str, grace: Duration) {
        let killing_capable = self.framework_info.as_ref().is_some_and(|f| {
            f.capabilities.iter().any(|c| {
                c.r#type == Some(v1::framework_info::capability::Type::TaskKillingState as i32)
            })
        });
        let Some(run) = self.tasks.get_mut(task_id) else {
            tracing::warn!(task_id, "kill for an unknown task");
            return;
        };
        if is_terminal(run.state) || run.killed {
            return;
        }
        run.killed = true;
        let pgid = run.pgid;
        tracing::info!(task_id, grace_secs = grace.as_secs_f64(), "killing task");
        if killing_capable {
            self.send_update(task_id, TaskState::TaskKilling, None, None);
        }
        match pgid {
            Some(pgid) => {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
                let tx = self.internal_tx.clone();
                let id = task_id.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let _ = tx.send(Internal::Escalate { task_id: id });
                });
            }
            None => {
                // Never started: nothing to signal.
                self.send_update(
                    task_id,
                    TaskState::TaskKilled,
                    Some("Task killed before it started".into()),
                    None,
                );
            }
        }
    }

    fn handle_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Exited { task_id, status } => {
                let Some(run) = self.tasks.get_mut(&task_id) else {
                    return;
                };
                let killed = run.killed;
                let group = run.group;
                if let Some(pgid) = run.pgid.take() {
                    // Reap what the task left behind in its process group.
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                let (state, message) = match status {
                    Ok(status) => exit_update(status, killed),
                    Err(e) => (
                        TaskState::TaskFailed,
                        format!("Failed to wait for the command: {e}"),
                    ),
                };
                self.send_update(&task_id, state, Some(message), None);
                if state == TaskState::TaskFailed {
                    if let Some(group) = group {
                        let others: Vec<String> = self
                            .tasks
                            .iter()
                            .filter(|(id, t)| {
                                t.group == Some(group) && **id != task_id && !is_terminal(t.state)
                            })
                            .map(|(id, _)| id.clone())
                            .collect();
                        for other in others {
                            tracing::info!(task_id = %other, failed = %task_id, "killing task because another task of its group failed");
                            let grace = self.env.shutdown_grace;
                            self.kill(&other, grace);
                        }
                    }
                }
            }
            Internal::Escalate { task_id } => {
                if let Some(pgid) = self.tasks.get(&task_id).and_then(|t| t.pgid) {
                    tracing::warn!(%task_id, "task did not exit within its grace period; sending SIGKILL");
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
            }
        }
    }

    /// Sends again the updates that stayed unacknowledged for a while (a
    /// call can be lost while the event stream stays up); the agent
    /// acknowledges duplicates without forwarding them twice.
    fn resend_stale_updates(&mut self, now: Instant) {
        for (sent, update) in &mut self.unacked_updates {
            if now.duration_since(*sent) >= UPDATE_RESEND_INTERVAL {
                *sent = now;
                let call = exec::Call {
                    update: Some(update.clone()),
                    executor_id: v1::ExecutorId {
                        value: self.env.executor_id.clone(),
                    },
                    framework_id: v1::FrameworkId {
                        value: self.env.framework_id.clone(),
                    },
                    r#type: Some(exec::call::Type::Update as i32),
                    ..Default::default()
                };
                let _ = self.calls.send(call);
            }
        }
    }

    fn finished(&self) -> bool {
        let all_terminal = self.tasks.values().all(|t| is_terminal(t.state));
        self.unacked_updates.is_empty()
            && all_terminal
            && (!self.tasks.is_empty() || self.shutting_down)
    }

    fn kill_everything(&mut self) {
        for run in self.tasks.values() {
            if let Some(pgid) = run.pgid {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        }
    }
}

async fn next_frame(body: &mut Option<Incoming>) -> Option<Result<Bytes, String>> {
    match body {
        Some(b) => match b.frame().await {
            Some(Ok(frame)) => Some(Ok(frame.into_data().unwrap_or_default())),
            Some(Err(e)) => Some(Err(e.to_string())),
            None => None,
        },
        None => std::future::pending().await,
    }
}

/// Runs the executor until its work is done; returns the exit code.
pub async fn run(env: ExecutorEnv) -> i32 {
    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        calls: client::spawn_call_sender(env.endpoint.clone(), env.token.clone()),
        env,
        internal_tx,
        tasks: BTreeMap::new(),
        unacked_updates: Vec::new(),
        unacked_tasks: BTreeMap::new(),
        framework_info: None,
        shutting_down: false,
        next_group: 0,
    };
    let mut body: Option<Incoming> = None;
    let mut decoder = Decoder::default();
    let mut resend = tokio::time::interval(UPDATE_RESEND_INTERVAL / 2);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut disconnected_since = Some(Instant::now());
    let mut reconnect_at = Instant::now();
    // Retries stay well inside the agent's re-registration window
    // (MESOS_SUBSCRIPTION_BACKOFF_MAX is that window).
    let backoff_cap =
        (driver.env.backoff_max / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut backoff = Duration::from_millis(100).min(backoff_cap);
    loop {
        if driver.finished() {
            tracing::info!("all tasks are terminal and acknowledged; exiting");
            // Let the agent see the stream close after the last ACK.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return 0;
        }
        tokio::select! {
            frame = next_frame(&mut body), if body.is_some() => match frame {
                Some(Ok(data)) => {
                    decoder.feed(&data);
                    loop {
                        match decoder.next_record() {
                            Ok(Some(record)) => match mesos_proto::json::from_slice::<exec::Event>(&record) {
                                Ok(event) => driver.handle_event(event),
                                Err(e) => tracing::warn!("ignoring undecodable event: {e}"),
                            },
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!("broken event stream: {e}");
                                body = None;
                                break;
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("event stream failed: {e}");
                    body = None;
                }
                None => {
                    tracing::warn!("the agent closed the event stream");
                    body = None;
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(reconnect_at)), if body.is_none() => {
                match client::subscribe(&driver.env.endpoint, driver.env.token.as_ref(), &driver.subscribe_call()).await {
                    Ok(stream) => {
                        body = Some(stream);
                        decoder = Decoder::default();
                        disconnected_since = None;
                        backoff = Duration::from_millis(100).min(backoff_cap);
                    }
                    Err(e) => {
                        if let client::ClientError::Status { status, .. } = &e {
                            if status.is_client_error() {
                                tracing::error!("the agent refused the subscription: {e}; exiting");
                                driver.kill_everything();
                                return 1;
                            }
                        }
                        tracing::warn!("cannot subscribe: {e}");
                        backoff = (backoff * 2).min(backoff_cap);
                        let delay = backoff.mul_f64(crate::agent::random_fraction()).max(Duration::from_millis(10));
                        reconnect_at = Instant::now() + delay;
                    }
                }
            },
            Some(internal) = internal_rx.recv() => driver.handle_internal(internal),
            _ = resend.tick() => {
                if body.is_some() {
                    driver.resend_stale_updates(Instant::now());
                }
            }
        }
        if body.is_none() {
            let since = *disconnected_since.get_or_insert_with(Instant::now);
            if !driver.env.checkpoint && driver.framework_info.is_some() {
                tracing::error!(
                    "disconnected from the agent and not checkpointing; killing tasks and exiting"
                );
                driver.kill_everything();
                return 1;
            }
            if since.elapsed() > driver.env.recovery_timeout {
                tracing::error!("could not reach the agent within the recovery timeout; killing tasks and exiting");
                driver.kill_everything();
                return 1;
            }
            if reconnect_at < Instant::now() && driver.framework_info.is_some() {
                let delay = backoff
                    .mul_f64(crate::agent::random_fraction())
                    .max(Duration::from_millis(10));
                reconnect_at = Instant::now() + delay;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_become_mesos_updates() {
        assert_eq!(
            exit_update(std::process::ExitStatus::from_raw(0), false),
            (
                TaskState::TaskFinished,
                "Command exited with status 0".into()
            )
        );
        assert_eq!(
            exit_update(std::process::ExitStatus::from_raw(3 << 8), false),
            (TaskState::TaskFailed, "Command exited with status 3".into())
        );
        assert_eq!(
            exit_update(std::process::ExitStatus::from_raw(15), true),
            (
                TaskState::TaskKilled,
                "Command terminated with signal Terminated".into()
            )
        );
    }

    #[test]
    fn environment_is_read() {
        let vars = [
            ("MESOS_FRAMEWORK_ID", "f"),
            ("MESOS_EXECUTOR_ID", "e"),
            ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "15mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"),
        ];
        let lookup = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let env = ExecutorEnv::from_lookup(lookup).expect("valid");
        assert!(env.checkpoint);
        assert_eq!(env.recovery_timeout, Duration::from_secs(900));
        assert_eq!(env.shutdown_grace, Duration::from_secs(5));
        assert!(ExecutorEnv::from_lookup(|_| None).is_err());
    }
}
