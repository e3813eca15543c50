//! The status update manager as a pure state machine: per task a FIFO of
//! status updates of which only the head is forwarded to the master,
//! retried (10 s doubling to 10 min) until the master acknowledges it.
//! Every accepted update and every acknowledgement produces a
//! `Checkpoint` effect that the caller must make durable before it
//! performs the effects that follow it or tells anyone (the executor) that
//! the update was taken. No IO and no clock of its own: time comes in as
//! `now`, work goes out as [`Effect`]s.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesos_proto::internal::{status_update_record, StatusUpdate, StatusUpdateRecord};
use mesos_proto::v1::TaskState;

/// First retry interval (Mesos's `STATUS_UPDATE_RETRY_INTERVAL_MIN`).
pub const RETRY_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// Largest retry interval (`STATUS_UPDATE_RETRY_INTERVAL_MAX`).
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(600);

/// Identifies one task's update stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Framework id.
    pub framework_id: String,
    /// Task id.
    pub task_id: String,
}

impl StreamId {
    /// The stream a status update belongs to.
    pub fn of(update: &StatusUpdate) -> Self {
        Self {
            framework_id: update.framework_id.value.clone(),
            task_id: update.status.task_id.value.clone(),
        }
    }
}

/// Work for the caller, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append `record` durably to the log at `path` (when the stream has
    /// one) before doing anything that follows.
    Checkpoint {
        /// Log file, `None` for streams that are not checkpointed.
        path: Option<PathBuf>,
        /// Record to append.
        record: StatusUpdateRecord,
    },
    /// Send this update to the master.
    Forward(StatusUpdate),
}

/// What happened to a status update.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// New update: perform the effects, then acknowledge it to the executor.
    Accepted(Vec<Effect>),
    /// Same uuid seen before: nothing to do but acknowledge it again.
    Duplicate,
}

/// What happened to an acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// The head was acknowledged.
    Acknowledged {
        /// Effects to perform (checkpoint, then maybe the next head).
        effects: Vec<Effect>,
        /// The acknowledged update was terminal.
        terminal: bool,
        /// The stream is finished: terminal update acknowledged and nothing
        /// left to send. The caller may drop it.
        finished: bool,
    },
    /// An acknowledgement for an update acknowledged before.
    Duplicate,
}

/// Why an update or acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumError {
    /// Updates need a uuid to be acknowledged.
    #[error("status update for task '{0}' has no uuid")]
    MissingUuid(String),
    /// The stream's terminal update was already acknowledged.
    #[error("status update for task '{0}' arrived after its terminal update was acknowledged")]
    Terminated(String),
    /// No stream for the acknowledged task.
    #[error("no status update stream for task '{0}'")]
    NoStream(String),
    /// The acknowledgement is not for the update at the head.
    #[error("unexpected acknowledgement for task '{task}': expected uuid {expected}, got {got}")]
    NotHead {
        /// Task id.
        task: String,
        /// Head's uuid (hex), or `none`.
        expected: String,
        /// Acknowledged uuid (hex).
        got: String,
    },
    /// A checkpointed record is malformed.
    #[error("malformed status update record for task '{0}'")]
    BadRecord(String),
}

#[derive(Debug, Clone)]
struct Retry {
    at: Instant,
    interval: Duration,
}

#[derive(Debug, Clone)]
struct Stream {
    checkpoint: Option<PathBuf>,
    executor_id: Option<String>,
    pending: VecDeque<StatusUpdate>,
    received: HashSet<Bytes>,
    acknowledged: HashSet<Bytes>,
    terminated: bool,
    /// Set while the head is outstanding at the master.
    retry: Option<Retry>,
}

impl Stream {
    fn new(checkpoint: Option<PathBuf>, executor_id: Option<String>) -> Self {
        Self {
            checkpoint,
            executor_id,
            pending: VecDeque::new(),
            received: HashSet::new(),
            acknowledged: HashSet::new(),
            terminated: false,
            retry: None,
        }
    }

    /// The head as sent to the master: `latest_state` is the state of the
    /// newest update the agent holds for the task.
    fn head_for_master(&self) -> Option<StatusUpdate> {
        let mut head = self.pending.front()?.clone();
        if let Some(last) = self.pending.back() {
            head.latest_state = Some(last.status.state);
        }
        Some(head)
    }

    fn arm(&mut self, now: Instant) {
        self.retry = Some(Retry {
            at: now + RETRY_INTERVAL_MIN,
            interval: RETRY_INTERVAL_MIN,
        });
    }
}

/// Whether a task state is terminal.
pub fn is_terminal(state: i32) -> bool {
    matches!(
        TaskState::try_from(state),
        Ok(TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn update_record(update: &StatusUpdate) -> StatusUpdateRecord {
    StatusUpdateRecord {
        r#type: status_update_record::Type::Update as i32,
        update: Some(update.clone()),
        uuid: None,
    }
}

fn ack_record(uuid: &[u8]) -> StatusUpdateRecord {
    StatusUpdateRecord {
        r#type: status_update_record::Type::Ack as i32,
        update: None,
        uuid: Some(Bytes::copy_from_slice(uuid)),
    }
}

/// All status update streams of the agent.
#[derive(Debug, Default)]
pub struct StatusUpdateManager {
    streams: BTreeMap<StreamId, Stream>,
    /// While paused (no master), nothing is forwarded.
    paused: bool,
}

impl StatusUpdateManager {
    /// A manager that forwards nothing until [`resume`](Self::resume)d.
    pub fn new() -> Self {
        Self {
            streams: BTreeMap::new(),
            paused: true,
        }
    }

    /// Takes a new status update. `checkpoint` is the stream's log file,
    /// used when the stream is created.
    pub fn update(
        &mut self,
        update: StatusUpdate,
        checkpoint: Option<PathBuf>,
        now: Instant,
    ) -> Result<UpdateOutcome, SumError> {
        let id = StreamId::of(&update);
        let uuid = update
            .uuid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| SumError::MissingUuid(id.task_id.clone()))?;
        let executor_id = update.executor_id.as_ref().map(|e| e.value.clone());
        let paused = self.paused;
        let stream = self
            .streams
            .entry(id.clone())
            .or_insert_with(|| Stream::new(checkpoint, executor_id));
        if stream.received.contains(&uuid) {
            return Ok(UpdateOutcome::Duplicate);
        }
        if stream.terminated {
            return Err(SumError::Terminated(id.task_id));
        }
        let mut effects = vec![Effect::Checkpoint {
            path: stream.checkpoint.clone(),
            record: update_record(&update),
        }];
        stream.received.insert(uuid);
        stream.pending.push_back(update);
        if stream.pending.len() == 1 && !paused {
            if let Some(head) = stream.head_for_master() {
                effects.push(Effect::Forward(head));
            }
            stream.arm(now);
        }
        Ok(UpdateOutcome::Accepted(effects))
    }

    /// Takes the master's acknowledgement of `uuid` for a task.
    pub fn acknowledge(
        &mut self,
        id: &StreamId,
        uuid: &[u8],
        now: Instant,
    ) -> Result<AckOutcome, SumError> {
        let paused = self.paused;
        let stream = self
            .streams
            .get_mut(id)
            .ok_or_else(|| SumError::NoStream(id.task_id.clone()))?;
        if stream.acknowledged.contains(uuid) {
            return Ok(AckOutcome::Duplicate);
        }
        let head_uuid = stream.pending.front().and_then(|h| h.uuid.clone());
        if head_uuid.as_deref() != Some(uuid) {
            return Err(SumError::NotHead {
                task: id.task_id.clone(),
                expected: head_uuid.map_or_else(|| "none".to_string(), |u| hex(&u)),
                got: hex(uuid),
            });
        }
        let mut effects = vec![Effect::Checkpoint {
            path: stream.checkpoint.clone(),
            record: ack_record(uuid),
        }];
        let head = stream.pending.pop_front();
        stream.acknowledged.insert(Bytes::copy_from_slice(uuid));
        let terminal = head.is_some_and(|h| is_terminal(h.status.state));
        if terminal {
            stream.terminated = true;
        }
        stream.retry = None;
        if !paused {
            if let Some(next) = stream.head_for_master() {
                effects.push(Effect::Forward(next));
                stream.arm(now);
            }
        }
        let finished = stream.terminated && stream.pending.is_empty();
        Ok(AckOutcome::Acknowledged {
            effects,
            terminal,
            finished,
        })
    }

    /// Stops forwarding (the master is gone); retries stop too.
    pub fn pause(&mut self) {
        self.paused = true;
        for stream in self.streams.values_mut() {
            stream.retry = None;
        }
    }

    /// Starts forwarding again: every pending head is sent now.
    pub fn resume(&mut self, now: Instant) -> Vec<StatusUpdate> {
        self.paused = false;
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            if let Some(head) = stream.head_for_master() {
                out.push(head);
                stream.arm(now);
            }
        }
        out
    }

    /// Heads whose retry time has come; each one's interval doubles.
    pub fn due(&mut self, now: Instant) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        if self.paused {
            return out;
        }
        for stream in self.streams.values_mut() {
            let Some(retry) = &stream.retry else { continue };
            if retry.at > now {
                continue;
            }
            let interval = (retry.interval * 2).min(RETRY_INTERVAL_MAX);
            if let Some(head) = stream.head_for_master() {
                out.push(head);
                stream.retry = Some(Retry {
                    at: now + interval,
                    interval,
                });
            } else {
                stream.retry = None;
            }
        }
        out
    }

    /// When [`due`](Self::due) next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.streams
            .values()
            .filter_map(|s| s.retry.as_ref().map(|r| r.at))
            .min()
    }

    /// Rebuilds a stream from its checkpointed records (agent restart). An
    /// update or ack is applied exactly as it was when it was written.
    pub fn replay(
        &mut self,
        id: StreamId,
        executor_id: Option<String>,
        checkpoint: Option<PathBuf>,
        records: &[StatusUpdateRecord],
    ) -> Result<(), SumError> {
        let stream = self
            .streams
            .entry(id.clone())
            .or_insert_with(|| Stream::new(checkpoint, executor_id));
        for record in records {
            match status_update_record::Type::try_from(record.r#type) {
                Ok(status_update_record::Type::Update) => {
                    let update = record
                        .update
                        .clone()
                        .ok_or_else(|| SumError::BadRecord(id.task_id.clone()))?;
                    let uuid = update
                        .uuid
                        .clone()
                        .ok_or_else(|| SumError::BadRecord(id.task_id.clone()))?;
                    if stream.received.insert(uuid) {
                        stream.pending.push_back(update);
                    }
                }
                Ok(status_update_record::Type::Ack) => {
                    let uuid = record
                        .uuid
                        .clone()
                        .ok_or_else(|| SumError::BadRecord(id.task_id.clone()))?;
                    if stream.pending.front().and_then(|h| h.uuid.as_ref()) == Some(&uuid) {
                        if let Some(head) = stream.pending.pop_front() {
                            if is_terminal(head.status.state) {
                                stream.terminated = true;
                            }
                        }
                        stream.acknowledged.insert(uuid);
                    }
                }
                Err(_) => return Err(SumError::BadRecord(id.task_id.clone())),
            }
        }
        Ok(())
    }

    /// Updates not yet acknowledged by the master, oldest first.
    pub fn pending(&self, id: &StreamId) -> Vec<StatusUpdate> {
        self.streams
            .get(id)
            .map(|s| s.pending.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The newest update the stream holds or held (pending or not).
    pub fn latest_pending(&self, id: &StreamId) -> Option<&StatusUpdate> {
        self.streams.get(id).and_then(|s| s.pending.back())
    }

    /// Whether the stream still has updates to deliver.
    pub fn has_pending(&self, id: &StreamId) -> bool {
        self.streams.get(id).is_some_and(|s| !s.pending.is_empty())
    }

    /// Whether the task's terminal update has been acknowledged.
    pub fn is_terminated(&self, id: &StreamId) -> bool {
        self.streams.get(id).is_some_and(|s| s.terminated)
    }

    /// Whether any stream of the executor has updates to deliver.
    pub fn executor_has_pending(&self, framework_id: &str, executor_id: &str) -> bool {
        self.streams.iter().any(|(id, s)| {
            id.framework_id == framework_id
                && s.executor_id.as_deref() == Some(executor_id)
                && !s.pending.is_empty()
        })
    }

    /// Forgets a stream.
    pub fn remove(&mut self, id: &StreamId) {
        self.streams.remove(id);
    }

    /// Forgets every stream of a framework.
    pub fn remove_framework(&mut self, framework_id: &str) {
        self.streams.retain(|id, _| id.framework_id != framework_id);
    }

    /// Number of streams held.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::{FrameworkId, TaskId, TaskStatus};

    fn update(task: &str, state: TaskState, uuid: u8) -> StatusUpdate {
        StatusUpdate {
            framework_id: FrameworkId { value: "F".into() },
            executor_id: Some(mesos_proto::v1::ExecutorId { value: "E".into() }),
            slave_id: None,
            status: TaskStatus {
                task_id: TaskId { value: task.into() },
                state: state as i32,
                uuid: Some(Bytes::from(vec![uuid; 16])),
                ..Default::default()
            },
            timestamp: 1.0,
            uuid: Some(Bytes::from(vec![uuid; 16])),
            latest_state: None,
        }
    }

    fn sid(task: &str) -> StreamId {
        StreamId {
            framework_id: "F".into(),
            task_id: task.into(),
        }
    }

    fn forwards(effects: &[Effect]) -> Vec<(i32, Option<i32>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Forward(u) => Some((u.status.state, u.latest_state)),
                Effect::Checkpoint { .. } => None,
            })
            .collect()
    }

    fn accepted(outcome: UpdateOutcome) -> Vec<Effect> {
        match outcome {
            UpdateOutcome::Accepted(effects) => effects,
            UpdateOutcome::Duplicate => panic!("expected a new update"),
        }
    }

    fn acked(outcome: AckOutcome) -> (Vec<Effect>, bool, bool) {
        match outcome {
            AckOutcome::Acknowledged {
                effects,
                terminal,
                finished,
            } => (effects, terminal, finished),
            AckOutcome::Duplicate => panic!("expected an acknowledgement"),
        }
    }

    #[test]
    fn only_the_head_is_forwarded_and_acks_release_the_next() {
        let now = Instant::now();
        let mut sum = StatusUpdateManager::new();
        assert!(sum.resume(now).is_empty());
        let e = accepted(
            sum.update(update("t", TaskState::TaskStarting, 1), None, now)
                .expect("update"),
        );
        assert!(
            matches!(e[0], Effect::Checkpoint { .. }),
            "checkpoint comes first"
        );
        assert_eq!(
            forwards(&e),
            vec![(
                TaskState::TaskStarting as i32,
                Some(TaskState::TaskStarting as i32)
            )]
        );
        let e = accepted(
            sum.update(update("t", TaskState::TaskRunning, 2), None, now)
                .expect("update"),
        );
        assert!(
            forwards(&e).is_empty(),
            "second update waits behind the head"
        );
        let e = accepted(
            sum.update(update("t", TaskState::TaskFinished, 3), None, now)
                .expect("update"),
        );
        assert!(forwards(&e).is_empty());

        let (e, terminal, finished) =
            acked(sum.acknowledge(&sid("t"), &[1; 16], now).expect("ack"));
        assert!(matches!(e[0], Effect::Checkpoint { .. }));
        assert_eq!(
            forwards(&e),
            vec![(
                TaskState::TaskRunning as i32,
                Some(TaskState::TaskFinished as i32)
            )]
        );
        assert!(!terminal && !finished);
        let (e, _, _) = acked(sum.acknowledge(&sid("t"), &[2; 16], now).expect("ack"));
        assert_eq!(
            forwards(&e),
            vec![(
                TaskState::TaskFinished as i32,
                Some(TaskState::TaskFinished as i32)
            )]
        );
        let (e, terminal, finished) =
            acked(sum.acknowledge(&sid("t"), &[3; 16], now).expect("ack"));
        assert!(forwards(&e).is_empty());
        assert!(terminal && finished);
        assert!(sum.is_terminated(&sid("t")));
        assert_eq!(
            sum.update(update("t", TaskState::TaskRunning, 9), None, now),
            Err(SumError::Terminated("t".into()))
        );
    }

    #[test]
    fn retries_start_at_10s_and_double_to_10min() {
        let start = Instant::now();
        let mut sum = StatusUpdateManager::new();
        sum.resume(start);
        accepted(
            sum.update(update("t", TaskState::TaskRunning, 1), None, start)
                .expect("update"),
        );
        assert_eq!(sum.next_deadline(), Some(start + Duration::from_secs(10)));
        assert!(sum.due(start + Duration::from_secs(9)).is_empty());
        let mut now = start + Duration::from_secs(10);
        let mut intervals = Vec::new();
        for _ in 0..8 {
            assert_eq!(sum.due(now).len(), 1);
            let next = sum.next_deadline().expect("armed");
            intervals.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(intervals, vec![20, 40, 80, 160, 320, 600, 600, 600]);
        acked(sum.acknowledge(&sid("t"), &[1; 16], now).expect("ack"));
        assert_eq!(sum.next_deadline(), None);
    }

    #[test]
    fn duplicates_and_stray_acks_are_ignored() {
        let now = Instant::now();
        let mut sum = StatusUpdateManager::new();
        sum.resume(now);
        accepted(
            sum.update(update("t", TaskState::TaskRunning, 1), None, now)
                .expect("update"),
        );
        assert_eq!(
            sum.update(update("t", TaskState::TaskRunning, 1), None, now),
            Ok(UpdateOutcome::Duplicate)
        );
        accepted(
            sum.update(update("t", TaskState::TaskFinished, 2), None, now)
                .expect("update"),
        );
        // Ack of the second update while the first is the head.
        assert!(matches!(
            sum.acknowledge(&sid("t"), &[2; 16], now),
            Err(SumError::NotHead { .. })
        ));
        assert_eq!(sum.pending(&sid("t")).len(), 2);
        assert!(matches!(
            sum.acknowledge(&sid("other"), &[1; 16], now),
            Err(SumError::NoStream(_))
        ));
        acked(sum.acknowledge(&sid("t"), &[1; 16], now).expect("ack"));
        assert_eq!(
            sum.acknowledge(&sid("t"), &[1; 16], now),
            Ok(AckOutcome::Duplicate)
        );
        let mut missing = update("t", TaskState::TaskRunning, 5);
        missing.uuid = None;
        assert!(matches!(
            sum.update(missing, None, now),
            Err(SumError::MissingUuid(_))
        ));
    }

    #[test]
    fn nothing_is_forwarded_while_paused_and_resume_resends_heads() {
        let now = Instant::now();
        let mut sum = StatusUpdateManager::new();
        let e = accepted(
            sum.update(update("a", TaskState::TaskRunning, 1), None, now)
                .expect("update"),
        );
        assert!(forwards(&e).is_empty());
        accepted(
            sum.update(update("b", TaskState::TaskRunning, 2), None, now)
                .expect("update"),
        );
        assert_eq!(sum.next_deadline(), None);
        assert_eq!(sum.resume(now).len(), 2);
        sum.pause();
        assert!(sum.due(now + RETRY_INTERVAL_MAX).is_empty());
        assert_eq!(
            sum.resume(now).len(),
            2,
            "re-registration resends every pending head"
        );
    }

    #[test]
    fn replay_rebuilds_the_stream_from_a_checkpoint_with_a_torn_tail() {
        let now = Instant::now();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tasks/t/task.updates");
        let mut sum = StatusUpdateManager::new();
        sum.resume(now);
        let mut log = Vec::new();
        for (state, uuid) in [
            (TaskState::TaskStarting, 1),
            (TaskState::TaskRunning, 2),
            (TaskState::TaskFinished, 3),
        ] {
            for effect in accepted(
                sum.update(update("t", state, uuid), Some(path.clone()), now)
                    .expect("update"),
            ) {
                if let Effect::Checkpoint { path, record } = effect {
                    crate::checkpoint::append_record(
                        path.as_deref().expect("path"),
                        &prost::Message::encode_to_vec(&record),
                    )
                    .expect("append");
                    log.push(record);
                }
            }
        }
        let (effects, _, _) = acked(sum.acknowledge(&sid("t"), &[1; 16], now).expect("ack"));
        for effect in effects {
            if let Effect::Checkpoint { path, record } = effect {
                crate::checkpoint::append_record(
                    path.as_deref().expect("path"),
                    &prost::Message::encode_to_vec(&record),
                )
                .expect("append");
            }
        }
        // A torn record at the end (crash mid-append).
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open");
            f.write_all(&[50, 0, 0, 0, 8, 1]).expect("write");
        }
        let records: Vec<StatusUpdateRecord> = crate::checkpoint::read_records(&path)
            .expect("read")
            .records
            .iter()
            .map(|r| <StatusUpdateRecord as prost::Message>::decode(r.as_ref()).expect("decodes"))
            .collect();
        assert_eq!(records.len(), 4);

        let mut recovered = StatusUpdateManager::new();
        recovered
            .replay(sid("t"), Some("E".into()), Some(path.clone()), &records)
            .expect("replay");
        let pending = recovered.pending(&sid("t"));
        assert_eq!(
            pending.len(),
            2,
            "STARTING was acked; RUNNING and FINISHED remain"
        );
        assert_eq!(pending[0].status.state, TaskState::TaskRunning as i32);
        assert!(recovered.executor_has_pending("F", "E"));
        // Already received updates are duplicates after recovery.
        assert_eq!(
            recovered.update(update("t", TaskState::TaskRunning, 2), None, now),
            Ok(UpdateOutcome::Duplicate)
        );
        let heads = recovered.resume(now);
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].status.state, TaskState::TaskRunning as i32);
        assert_eq!(heads[0].latest_state, Some(TaskState::TaskFinished as i32));
        let bad = StatusUpdateRecord {
            r#type: status_update_record::Type::Update as i32,
            update: None,
            uuid: None,
        };
        assert!(recovered.replay(sid("x"), None, None, &[bad]).is_err());
    }
}
