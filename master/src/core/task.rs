//! A task as the master keeps it between updates.
//!
//! A `v1::Task` held as a struct is some twenty heap blocks (each string,
//! each resource and its allocation info, each history status), about
//! 1.7 KB per task. The master reads most of it only when an endpoint
//! shows the task, so a record keeps decoded only what every status update
//! and acknowledgement reads or writes (state, the latest update's state
//! and uuid, the newest history state) and what the endpoints filter and
//! sort many tasks by (the task's user, the newest history timestamp); the
//! rest is the task's protobuf encoding, one block. History statuses are
//! appended to that encoding as further `statuses` (field 8) entries:
//! protobuf concatenation appends to repeated fields, so decoding the
//! whole yields the full history in order.

use bytes::Bytes;
use mesos_proto::v1::{self, Resource, TaskStatus};
use prost::Message;

/// `Task.statuses`' field number (mesos.proto).
const STATUSES_FIELD: u32 = 8;

/// One task: see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    state: i32,
    status_update_state: Option<i32>,
    status_update_uuid: Option<Box<[u8]>>,
    /// State of the newest `statuses` entry, if any.
    last_history_state: Option<i32>,
    /// Timestamp of the newest `statuses` entry (0 without one), what
    /// `/master/tasks` sorts by.
    last_history_timestamp: f64,
    /// `Task.user`, what the view_tasks filter reads.
    user: Option<Box<str>>,
    /// The task without state, user and the update fields above, then its
    /// history statuses.
    encoded: Box<[u8]>,
}

impl TaskRecord {
    /// Keeps `task`. Its history statuses are kept as they are (callers
    /// trim them with [`super::history_status`] first where that matters).
    pub fn new(mut task: v1::Task) -> Self {
        let state = task.state;
        let status_update_state = task.status_update_state.take();
        // Owned bytes: a uuid decoded from a message is a slice of the
        // buffer the message arrived in, which it would keep alive.
        let status_update_uuid = task.status_update_uuid.take().map(|u| Box::from(&u[..]));
        let last_history_state = task.statuses.last().map(|s| s.state);
        let last_history_timestamp = task
            .statuses
            .last()
            .and_then(|s| s.timestamp)
            .unwrap_or(0.0);
        let user = task.user.take().map(String::into_boxed_str);
        task.state = 0;
        Self {
            state,
            status_update_state,
            status_update_uuid,
            last_history_state,
            last_history_timestamp,
            user,
            encoded: task.encode_to_vec().into_boxed_slice(),
        }
    }

    /// The task as stored: its history statuses hold what
    /// [`super::history_status`] keeps.
    pub fn task(&self) -> v1::Task {
        // These are bytes this type encoded from a valid `Task`; a failure
        // here would be a prost bug, and an empty task is the safe answer.
        let mut task = v1::Task::decode(&self.encoded[..]).unwrap_or_else(|e| {
            debug_assert!(false, "re-decoding a stored task failed: {e}");
            v1::Task::default()
        });
        task.state = self.state;
        task.user = self.user.as_deref().map(str::to_string);
        task.status_update_state = self.status_update_state;
        task.status_update_uuid = self
            .status_update_uuid
            .as_deref()
            .map(Bytes::copy_from_slice);
        task
    }

    /// The task as the operator API shows it: its history statuses get
    /// back the ids [`super::history_status`] left out.
    pub fn view(&self) -> v1::Task {
        let mut task = self.task();
        for status in &mut task.statuses {
            status.task_id = task.task_id.clone();
            status.agent_id = Some(task.agent_id.clone());
            status.executor_id = task.executor_id.clone();
        }
        task
    }

    /// Latest state (`Task.state`).
    pub fn state(&self) -> i32 {
        self.state
    }

    /// Sets the latest state.
    pub fn set_state(&mut self, state: i32) {
        self.state = state;
    }

    /// State of the latest status update forwarded to the framework.
    pub fn status_update_state(&self) -> Option<i32> {
        self.status_update_state
    }

    /// Uuid of the latest status update forwarded to the framework.
    pub fn status_update_uuid(&self) -> Option<&[u8]> {
        self.status_update_uuid.as_deref()
    }

    /// Records the latest status update forwarded to the framework.
    pub fn set_status_update(&mut self, state: i32, uuid: Option<&[u8]>) {
        self.status_update_state = Some(state);
        self.status_update_uuid = uuid.map(Box::from);
    }

    /// State of the newest history status.
    pub fn last_history_state(&self) -> Option<i32> {
        self.last_history_state
    }

    /// Timestamp of the newest history status (0 without one).
    pub fn last_history_timestamp(&self) -> f64 {
        self.last_history_timestamp
    }

    /// The user the task runs as, if it names one (`Task.user`).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Appends `status` (trimmed by [`super::history_status`]) to the
    /// task's history.
    pub fn push_history(&mut self, status: &TaskStatus) {
        let entry = super::history_status(status);
        let mut encoded = Vec::with_capacity(self.encoded.len() + entry.encoded_len() + 6);
        encoded.extend_from_slice(&self.encoded);
        prost::encoding::message::encode(STATUSES_FIELD, &entry, &mut encoded);
        self.encoded = encoded.into_boxed_slice();
        self.last_history_state = Some(status.state);
        self.last_history_timestamp = entry.timestamp.unwrap_or(0.0);
    }

    /// The task's resources (only that field is decoded: endpoints sum
    /// them over every task).
    pub fn resources(&self) -> Vec<Resource> {
        TaskResources::decode(&self.encoded[..])
            .map(|t| t.resources)
            .unwrap_or_default()
    }

    /// The agent it runs on (only that field is decoded).
    pub fn agent_id(&self) -> String {
        TaskAgent::decode(&self.encoded[..])
            .ok()
            .and_then(|t| t.agent_id)
            .map(|a| a.value)
            .unwrap_or_default()
    }

    /// Heap bytes it holds.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.encoded.len()
            + self.status_update_uuid.as_ref().map_or(0, |u| u.len())
            + self.user.as_ref().map_or(0, |u| u.len())
    }
}

/// `Task.resources` alone: prost skips the other fields without building
/// them.
#[derive(Clone, PartialEq, prost::Message)]
struct TaskResources {
    #[prost(message, repeated, tag = "7")]
    resources: Vec<Resource>,
}

/// `Task.agent_id` alone.
#[derive(Clone, PartialEq, prost::Message)]
struct TaskAgent {
    #[prost(message, optional, tag = "5")]
    agent_id: Option<v1::AgentId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::TaskState;

    fn task() -> v1::Task {
        v1::Task {
            name: "web".into(),
            task_id: v1::TaskId { value: "t1".into() },
            framework_id: v1::FrameworkId { value: "f1".into() },
            agent_id: v1::AgentId { value: "a1".into() },
            executor_id: Some(v1::ExecutorId { value: "e1".into() }),
            state: TaskState::TaskStaging as i32,
            resources: vec![Resource {
                name: "cpus".into(),
                r#type: v1::value::Type::Scalar as i32,
                scalar: Some(v1::value::Scalar { value: 0.5 }),
                ..Default::default()
            }],
            user: Some("nobody".into()),
            ..Default::default()
        }
    }

    fn status(state: TaskState, at: f64) -> TaskStatus {
        TaskStatus {
            task_id: v1::TaskId { value: "t1".into() },
            state: state as i32,
            timestamp: Some(at),
            uuid: Some(Bytes::from_static(b"0123456789abcdef")),
            message: Some("not kept in the history".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_record_gives_back_the_task_it_was_made_from() {
        let mut original = task();
        original.status_update_state = Some(TaskState::TaskRunning as i32);
        original.status_update_uuid = Some(Bytes::from_static(b"uuid"));
        original.statuses = vec![super::super::history_status(&status(
            TaskState::TaskStarting,
            1.0,
        ))];
        let record = TaskRecord::new(original.clone());
        assert_eq!(record.task(), original);
        assert_eq!(record.state(), TaskState::TaskStaging as i32);
        assert_eq!(record.status_update_uuid(), Some(&b"uuid"[..]));
        assert_eq!(
            record.last_history_state(),
            Some(TaskState::TaskStarting as i32)
        );
        assert_eq!(record.agent_id(), "a1");
        assert_eq!(record.user(), Some("nobody"));
        assert_eq!(record.resources(), original.resources);
    }

    #[test]
    fn history_appends_in_order_and_state_changes_stay_out_of_the_bytes() {
        let mut record = TaskRecord::new(task());
        let size = record.heap_bytes();
        record.push_history(&status(TaskState::TaskStarting, 1.0));
        record.push_history(&status(TaskState::TaskRunning, 2.0));
        record.set_state(TaskState::TaskRunning as i32);
        record.set_status_update(TaskState::TaskRunning as i32, Some(b"0123456789abcdef"));
        let task = record.task();
        let states: Vec<i32> = task.statuses.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                TaskState::TaskStarting as i32,
                TaskState::TaskRunning as i32
            ]
        );
        assert_eq!(task.statuses[1].timestamp, Some(2.0));
        assert_eq!(record.last_history_timestamp(), 2.0);
        assert_eq!(task.statuses[1].message, None, "history is trimmed");
        assert_eq!(task.state, TaskState::TaskRunning as i32);
        assert_eq!(
            task.status_update_state,
            Some(TaskState::TaskRunning as i32)
        );
        assert_eq!(
            task.status_update_uuid.as_deref(),
            Some(&b"0123456789abcdef"[..])
        );
        assert_eq!(task.name, "web");
        assert_eq!(task.user.as_deref(), Some("nobody"));
        // Each history entry costs its few encoded bytes, not a struct.
        assert!(
            record.heap_bytes() < size + 2 * 24 + 16,
            "{}",
            record.heap_bytes()
        );
    }

    #[test]
    fn the_view_puts_the_ids_back_into_history_statuses() {
        let mut record = TaskRecord::new(task());
        record.push_history(&status(TaskState::TaskRunning, 2.0));
        let view = record.view();
        assert_eq!(view.statuses[0].task_id.value, "t1");
        assert_eq!(
            view.statuses[0].agent_id.as_ref().map(|a| a.value.as_str()),
            Some("a1")
        );
        assert_eq!(
            view.statuses[0]
                .executor_id
                .as_ref()
                .map(|e| e.value.as_str()),
            Some("e1")
        );
        assert!(record.task().statuses[0].task_id.value.is_empty());
    }
}
