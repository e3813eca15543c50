//! A framework as the master tracks it: its info, connection, tasks and the
//! event stream it is subscribed on.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use mesos_common::http::ContentType;
use mesos_proto::v1::scheduler::Event;
use mesos_proto::v1::FrameworkInfo;

use super::task::TaskRecord;
use tokio::sync::mpsc;

/// The open SUBSCRIBE stream of an HTTP framework. Dropping it ends the
/// HTTP response.
#[derive(Debug)]
pub struct Subscriber {
    /// The `Mesos-Stream-Id` handed out with this subscription.
    pub stream_id: String,
    /// Encoding negotiated at SUBSCRIBE.
    pub content_type: ContentType,
    /// RecordIO records to write to the response body.
    pub sink: mpsc::UnboundedSender<Bytes>,
}

impl Subscriber {
    /// Encodes and queues one event; false if the stream is gone.
    pub fn send(&self, event: &Event) -> bool {
        self.sink
            .send(encode_event(event, self.content_type))
            .is_ok()
    }
}

/// One RecordIO record holding `event` in `content_type`.
pub fn encode_event(event: &Event, content_type: ContentType) -> Bytes {
    match content_type {
        ContentType::Json => {
            mesos_proto::recordio::encode(mesos_proto::json::to_string(event).as_bytes())
        }
        ContentType::Protobuf => {
            mesos_proto::recordio::encode(&prost::Message::encode_to_vec(event))
        }
    }
}

/// A registered (or recovered) framework.
#[derive(Debug)]
pub struct Framework {
    /// Framework id.
    pub id: String,
    /// The principal its scheduler authenticated as (None when HTTP
    /// framework authentication is off): the subject of its authorization
    /// requests and its owner, unlike `info.principal`, which an
    /// unauthenticated scheduler could claim. A framework recovered from
    /// re-registering agents takes `info.principal` until it resubscribes
    /// (enough to view it, not to tear it down).
    pub principal: Option<String>,
    /// Latest FrameworkInfo (with `id` set).
    pub info: FrameworkInfo,
    /// Roles it is subscribed to.
    pub roles: Vec<String>,
    /// Roles for which it wants no offers.
    pub suppressed_roles: HashSet<String>,
    /// The current stream, when connected.
    pub subscriber: Option<Subscriber>,
    /// Known only from re-registering agents, not subscribed since the
    /// master started.
    pub recovered: bool,
    /// Wall-clock seconds of registration.
    pub registered_time: f64,
    /// Wall-clock seconds of the last resubscription.
    pub reregistered_time: Option<f64>,
    /// Wall-clock seconds of the last disconnection.
    pub unregistered_time: Option<f64>,
    /// Increases on every (re)subscription and disconnection, so a stale
    /// failover timer can tell it is stale.
    pub generation: u64,
    /// Active tasks by task id.
    pub tasks: HashMap<String, TaskRecord>,
    /// Tasks on unreachable agents.
    pub unreachable_tasks: HashMap<String, TaskRecord>,
    /// Terminal tasks, newest last, bounded.
    pub completed_tasks: VecDeque<TaskRecord>,
    /// Outstanding offer ids.
    pub offers: HashSet<String>,
    /// Executors by (agent id, executor id).
    pub executors: HashMap<(String, String), mesos_proto::v1::ExecutorInfo>,
    /// Each offer operation it sent with an `id`, with its latest status
    /// (what RECONCILE_OPERATIONS and GET_OPERATIONS report), oldest first,
    /// bounded.
    pub operations: VecDeque<mesos_proto::v1::Operation>,
}

/// Operation statuses kept per framework.
pub const MAX_OPERATIONS_PER_FRAMEWORK: usize = 1000;

impl Framework {
    /// A framework with no tasks yet.
    pub fn new(id: String, info: FrameworkInfo, now: f64) -> Self {
        let roles = roles_of(&info);
        Self {
            id,
            principal: None,
            info,
            roles,
            suppressed_roles: HashSet::new(),
            subscriber: None,
            recovered: false,
            registered_time: now,
            reregistered_time: None,
            unregistered_time: None,
            generation: 0,
            tasks: HashMap::new(),
            unreachable_tasks: HashMap::new(),
            completed_tasks: VecDeque::new(),
            offers: HashSet::new(),
            executors: HashMap::new(),
            operations: VecDeque::new(),
        }
    }

    /// Records an operation and its latest status, replacing an earlier
    /// record with the same id.
    pub fn record_operation(&mut self, operation: mesos_proto::v1::Operation) {
        let id = operation.latest_status.operation_id.clone();
        self.operations
            .retain(|o| o.latest_status.operation_id != id);
        self.operations.push_back(operation);
        while self.operations.len() > MAX_OPERATIONS_PER_FRAMEWORK {
            self.operations.pop_front();
        }
    }

    /// Whether its SUBSCRIBE stream is open.
    pub fn connected(&self) -> bool {
        self.subscriber.is_some()
    }

    /// Whether it has a capability.
    pub fn has_capability(
        &self,
        capability: mesos_proto::v1::framework_info::capability::Type,
    ) -> bool {
        has_capability(&self.info, capability)
    }

    /// Sends an event if connected; returns whether it was queued.
    pub fn send(&self, event: &Event) -> bool {
        self.subscriber.as_ref().is_some_and(|s| s.send(event))
    }

    /// Moves a task to the completed list, keeping at most `max`.
    pub fn complete_task(&mut self, task: TaskRecord, max: usize) {
        if max == 0 {
            return;
        }
        while self.completed_tasks.len() >= max {
            self.completed_tasks.pop_front();
        }
        self.completed_tasks.push_back(task);
    }
}

/// Whether `info` declares `capability`.
pub fn has_capability(
    info: &FrameworkInfo,
    capability: mesos_proto::v1::framework_info::capability::Type,
) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(capability as i32))
}

/// The roles a FrameworkInfo subscribes to: `roles` for MULTI_ROLE
/// frameworks, otherwise `role` (default `*`).
pub fn roles_of(info: &FrameworkInfo) -> Vec<String> {
    use mesos_proto::v1::framework_info::capability::Type;
    if has_capability(info, Type::MultiRole) {
        info.roles.clone()
    } else {
        vec![info.role.clone().unwrap_or_else(|| "*".to_string())]
    }
}
