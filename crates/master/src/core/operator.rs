//! The operator API's views of the state (`GET_STATE` and its parts) and the
//! operator event stream (`SUBSCRIBE` on `/api/v1`): subscribers' sinks and
//! the events written into them as frameworks, agents and tasks change.
//! Heartbeats are the HTTP edge's business.

use bytes::Bytes;
use mesos_common::http::ContentType;
use mesos_proto::v1::master::{event, response, Event};
use mesos_proto::v1::{self as v1};
use tokio::sync::mpsc;

use super::{Agent, Framework, Master, HEARTBEAT_INTERVAL_SECS};

/// Mesos's `--max_operator_event_stream_subscribers` default.
pub const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;

/// An open operator event stream. Dropping it ends the HTTP response.
#[derive(Debug)]
pub struct OperatorSubscriber {
    /// Encoding negotiated at SUBSCRIBE.
    pub content_type: ContentType,
    /// RecordIO records to write to the response body.
    pub sink: mpsc::UnboundedSender<Bytes>,
}

/// Why an operator SUBSCRIBE was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorSubscribeError {
    /// The subscriber limit is reached (503 in Mesos).
    TooManySubscribers,
}

/// One RecordIO record holding `event` in `content_type`.
pub fn encode_operator_event(event: &Event, content_type: ContentType) -> Bytes {
    match content_type {
        ContentType::Json => {
            mesos_proto::recordio::encode(mesos_proto::json::to_string(event).as_bytes())
        }
        ContentType::Protobuf => {
            mesos_proto::recordio::encode(&prost::Message::encode_to_vec(event))
        }
    }
}

/// Wall-clock seconds as a TimeInfo.
pub fn time_info(seconds: f64) -> v1::TimeInfo {
    v1::TimeInfo {
        nanoseconds: (seconds * 1e9) as i64,
    }
}

/// An agent as GET_AGENTS and AGENT_ADDED show it.
pub fn agent_proto(a: &Agent) -> response::get_agents::Agent {
    response::get_agents::Agent {
        agent_info: a.info.clone(),
        active: a.connected && a.active,
        deactivated: Some(!a.active),
        version: a.version.clone(),
        pid: Some(a.pid.to_string()),
        registered_time: Some(time_info(a.registered_time)),
        reregistered_time: a.reregistered_time.map(time_info),
        total_resources: a.total.clone().into_vec(),
        ..Default::default()
    }
}

/// A framework as GET_FRAMEWORKS and FRAMEWORK_ADDED/UPDATED show it.
pub fn framework_proto(f: &Framework, active: bool) -> response::get_frameworks::Framework {
    response::get_frameworks::Framework {
        framework_info: f.info.clone(),
        active,
        connected: f.connected(),
        recovered: f.recovered,
        registered_time: Some(time_info(f.registered_time)),
        reregistered_time: f.reregistered_time.map(time_info),
        unregistered_time: f.unregistered_time.map(time_info),
        ..Default::default()
    }
}

impl Master {
    /// GET_AGENTS.
    pub fn get_agents(&self) -> response::GetAgents {
        response::GetAgents {
            agents: self.agents.values().map(agent_proto).collect(),
            recovered_agents: self
                .recovered_agents
                .values()
                .map(|a| a.info.clone())
                .collect(),
        }
    }

    /// GET_FRAMEWORKS.
    pub fn get_frameworks(&self) -> response::GetFrameworks {
        response::GetFrameworks {
            frameworks: self
                .frameworks
                .values()
                .map(|f| framework_proto(f, f.connected()))
                .collect(),
            completed_frameworks: self
                .completed_frameworks
                .iter()
                .map(|f| framework_proto(f, false))
                .collect(),
            recovered_frameworks: vec![],
        }
    }

    /// GET_TASKS.
    pub fn get_tasks(&self) -> response::GetTasks {
        response::GetTasks {
            tasks: self
                .frameworks
                .values()
                .flat_map(|f| f.tasks.values().map(|t| super::task_view(t)))
                .collect(),
            unreachable_tasks: self
                .frameworks
                .values()
                .flat_map(|f| f.unreachable_tasks.values().map(|t| super::task_view(t)))
                .collect(),
            completed_tasks: self
                .frameworks
                .values()
                .chain(self.completed_frameworks.iter())
                .flat_map(|f| f.completed_tasks.iter().map(|t| super::task_view(t)))
                .collect(),
            ..Default::default()
        }
    }

    /// GET_EXECUTORS.
    pub fn get_executors(&self) -> response::GetExecutors {
        response::GetExecutors {
            executors: self
                .frameworks
                .values()
                .flat_map(|f| {
                    f.executors
                        .iter()
                        .map(|((agent_id, _), e)| response::get_executors::Executor {
                            executor_info: e.clone(),
                            agent_id: v1::AgentId {
                                value: agent_id.clone(),
                            },
                        })
                })
                .collect(),
            orphan_executors: vec![],
        }
    }

    /// GET_STATE.
    pub fn get_state(&self) -> response::GetState {
        response::GetState {
            get_tasks: Some(self.get_tasks()),
            get_executors: Some(self.get_executors()),
            get_frameworks: Some(self.get_frameworks()),
            get_agents: Some(self.get_agents()),
        }
    }

    /// Operator SUBSCRIBE: a stream that starts with SUBSCRIBED (the state
    /// as GET_STATE shows it) and then carries every change.
    pub fn subscribe_operator(
        &mut self,
        content_type: ContentType,
    ) -> Result<mpsc::UnboundedReceiver<Bytes>, OperatorSubscribeError> {
        self.operator_subscribers.retain(|s| !s.sink.is_closed());
        if self.operator_subscribers.len() >= MAX_OPERATOR_SUBSCRIBERS {
            return Err(OperatorSubscribeError::TooManySubscribers);
        }
        let (sink, records) = mpsc::unbounded_channel();
        let subscribed = Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                get_state: Some(self.get_state()),
                heartbeat_interval_seconds: Some(HEARTBEAT_INTERVAL_SECS),
            }),
            ..Default::default()
        };
        // The receiver is in hand, so this cannot fail.
        let _ = sink.send(encode_operator_event(&subscribed, content_type));
        self.operator_subscribers
            .push(OperatorSubscriber { content_type, sink });
        tracing::info!(
            subscribers = self.operator_subscribers.len(),
            "operator subscribed to the event stream"
        );
        Ok(records)
    }

    /// Writes `event` to every operator subscriber, dropping the closed ones.
    fn operator_event(&mut self, event: Event) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let mut json: Option<Bytes> = None;
        let mut protobuf: Option<Bytes> = None;
        self.operator_subscribers.retain(|s| {
            let record = match s.content_type {
                ContentType::Json => json
                    .get_or_insert_with(|| encode_operator_event(&event, ContentType::Json))
                    .clone(),
                ContentType::Protobuf => protobuf
                    .get_or_insert_with(|| encode_operator_event(&event, ContentType::Protobuf))
                    .clone(),
            };
            s.sink.send(record).is_ok()
        });
    }

    /// TASK_ADDED for a task the master just launched.
    pub(crate) fn emit_task_added(&mut self, framework_id: &str, task_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(task) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
            .map(|t| super::task_view(t))
        else {
            return;
        };
        self.operator_event(Event {
            r#type: Some(event::Type::TaskAdded as i32),
            task_added: Some(event::TaskAdded { task }),
            ..Default::default()
        });
    }

    /// TASK_UPDATED: `status` arrived, and the task's latest state is `state`.
    pub(crate) fn emit_task_updated(
        &mut self,
        framework_id: &str,
        status: &v1::TaskStatus,
        state: i32,
    ) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let mut status = status.clone();
        // Operators see no executor payload (Mesos strips it too).
        status.data = None;
        self.operator_event(Event {
            r#type: Some(event::Type::TaskUpdated as i32),
            task_updated: Some(event::TaskUpdated {
                framework_id: v1::FrameworkId {
                    value: framework_id.to_string(),
                },
                status,
                state,
            }),
            ..Default::default()
        });
    }

    /// AGENT_ADDED.
    pub(crate) fn emit_agent_added(&mut self, agent_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(agent) = self.agents.get(agent_id).map(agent_proto) else {
            return;
        };
        self.operator_event(Event {
            r#type: Some(event::Type::AgentAdded as i32),
            agent_added: Some(event::AgentAdded { agent }),
            ..Default::default()
        });
    }

    /// AGENT_REMOVED.
    pub(crate) fn emit_agent_removed(&mut self, agent_id: &str) {
        self.operator_event(Event {
            r#type: Some(event::Type::AgentRemoved as i32),
            agent_removed: Some(event::AgentRemoved {
                agent_id: v1::AgentId {
                    value: agent_id.to_string(),
                },
            }),
            ..Default::default()
        });
    }

    /// FRAMEWORK_ADDED (`added`) or FRAMEWORK_UPDATED.
    pub(crate) fn emit_framework(&mut self, framework_id: &str, added: bool) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(framework) = self
            .frameworks
            .get(framework_id)
            .map(|f| framework_proto(f, f.connected()))
        else {
            return;
        };
        let event = if added {
            Event {
                r#type: Some(event::Type::FrameworkAdded as i32),
                framework_added: Some(event::FrameworkAdded { framework }),
                ..Default::default()
            }
        } else {
            Event {
                r#type: Some(event::Type::FrameworkUpdated as i32),
                framework_updated: Some(event::FrameworkUpdated { framework }),
                ..Default::default()
            }
        };
        self.operator_event(event);
    }

    /// FRAMEWORK_REMOVED.
    pub(crate) fn emit_framework_removed(&mut self, framework_info: v1::FrameworkInfo) {
        self.operator_event(Event {
            r#type: Some(event::Type::FrameworkRemoved as i32),
            framework_removed: Some(event::FrameworkRemoved { framework_info }),
            ..Default::default()
        });
    }
}
