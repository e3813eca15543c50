//! The one task that owns the master's state. Handlers send it commands and
//! await replies; it runs allocation and ping ticks and performs the
//! effects the state machine queues.

use std::time::Instant;

use mesos_common::http::{ContentType, HttpError};
use mesos_common::transport::{Message, Transport};
use mesos_common::Upid;
use mesos_proto::v1::scheduler::Call;
use tokio::sync::{mpsc, oneshot};

use crate::core::scheduler::{CallReply, Subscription};
use crate::core::{Effect, Master, Timer};

/// A read of the master's state, run inside the owning task.
pub type ReadFn = Box<dyn FnOnce(&Master) + Send>;
/// A change of the master's state, run inside the owning task.
pub type WriteFn = Box<dyn FnOnce(&mut Master, Instant) + Send>;

/// Inputs of the master task.
pub enum Command {
    /// A SUBSCRIBE call.
    Subscribe {
        /// The call.
        call: Call,
        /// Negotiated stream encoding.
        content_type: ContentType,
        /// The principal the request authenticated as.
        principal: Option<String>,
        /// Where the subscription goes.
        reply: oneshot::Sender<Subscription>,
    },
    /// Any other scheduler call.
    Call {
        /// The call.
        call: Call,
        /// `Mesos-Stream-Id` header, if present.
        stream_id: Option<String>,
        /// The principal the request authenticated as.
        principal: Option<String>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<CallReply, HttpError>>,
    },
    /// A SUBSCRIBE stream ended.
    StreamClosed {
        /// Framework id.
        framework_id: String,
        /// Its stream id.
        stream_id: String,
    },
    /// A libprocess message.
    Message(Message),
    /// The outcome of a SASL authentication of `pid`: its principal, or
    /// `None` when an attempt starts or fails.
    Authenticated {
        /// The pid the peer claimed.
        pid: String,
        /// Who it proved to be.
        principal: Option<String>,
    },
    /// An agent's link closed.
    AgentExited {
        /// Agent id.
        agent_id: String,
        /// Link generation.
        generation: u64,
    },
    /// A timer fired.
    Timer(Timer),
    /// Read state.
    Read(ReadFn),
    /// Change state.
    Write(WriteFn),
}

/// Handle to the master task. Cheap to clone.
#[derive(Clone)]
pub struct MasterHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl MasterHandle {
    /// Sends a command; false once the master task is gone.
    pub fn send(&self, command: Command) -> bool {
        self.tx.send(command).is_ok()
    }

    /// Runs `f` on the state and returns its result.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Master) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Read(Box::new(move |m| {
            let _ = tx.send(f(m));
        })));
        rx.await.ok()
    }

    /// Runs `f` on the mutable state and returns its result.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Master, Instant) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Write(Box::new(move |m, now| {
            let _ = tx.send(f(m, now));
        })));
        rx.await.ok()
    }
}

/// Starts the master task.
pub fn spawn(
    mut master: Master,
    transport: Transport,
    allocation_interval: std::time::Duration,
) -> MasterHandle {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = MasterHandle { tx };
    let loop_handle = handle.clone();
    let self_upid = master.config.upid.clone();
    let ping_interval = master.config.agent_ping_timeout;
    tokio::spawn(async move {
        let mut allocation = tokio::time::interval(allocation_interval);
        allocation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pings = tokio::time::interval(ping_interval);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings.tick().await;
        perform(&mut master, &transport, &self_upid, &loop_handle);
        loop {
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else { break };
                    handle_command(&mut master, command);
                    // Drain what is already queued before paying for effects.
                    while let Ok(command) = rx.try_recv() {
                        handle_command(&mut master, command);
                    }
                }
                _ = allocation.tick() => master.allocate(Instant::now()),
                _ = pings.tick() => master.ping_agents(Instant::now()),
            }
            perform(&mut master, &transport, &self_upid, &loop_handle);
        }
    });
    handle
}

fn handle_command(master: &mut Master, command: Command) {
    let now = Instant::now();
    match command {
        Command::Subscribe {
            call,
            content_type,
            principal,
            reply,
        } => {
            let subscription = master.subscribe_as(call, content_type, principal, now);
            let _ = reply.send(subscription);
        }
        Command::Call {
            call,
            stream_id,
            principal,
            reply,
        } => {
            let _ = reply.send(master.scheduler_call_as(
                call,
                stream_id.as_deref(),
                principal.as_deref(),
                now,
            ));
        }
        Command::StreamClosed {
            framework_id,
            stream_id,
        } => master.stream_closed(&framework_id, &stream_id, now),
        Command::Message(message) => {
            master.message(message, now);
        }
        Command::Authenticated { pid, principal } => master.set_authenticated(&pid, principal),
        Command::AgentExited {
            agent_id,
            generation,
        } => master.agent_exited(&agent_id, generation, now),
        Command::Timer(timer) => master.timer(timer, now),
        Command::Read(f) => f(master),
        Command::Write(f) => f(master, now),
    }
}

fn perform(master: &mut Master, transport: &Transport, self_upid: &Upid, handle: &MasterHandle) {
    // Changes staged by this batch reach the disk before anything about
    // them leaves the master.
    master.commit();
    for effect in master.take_effects() {
        match effect {
            Effect::Send {
                from,
                to,
                name,
                body,
            } => {
                let from = Upid::new(from, self_upid.host.clone(), self_upid.port);
                transport.send_raw(&from, &to, name, body);
            }
            Effect::Link {
                agent_id,
                pid,
                generation,
            } => {
                let transport = transport.clone();
                let handle = handle.clone();
                tokio::spawn(async move {
                    transport.link(&pid).await;
                    handle.send(Command::AgentExited {
                        agent_id,
                        generation,
                    });
                });
            }
            Effect::Timer { after, timer } => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    handle.send(Command::Timer(timer));
                });
            }
        }
    }
}
