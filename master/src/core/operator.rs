//! The operator API's views of the state (`GET_STATE` and its parts) and the
//! operator event stream (`SUBSCRIBE` on `/api/v1`): subscribers' sinks and
//! the events written into them as frameworks, agents and tasks change.
//! Each subscriber sees only what its principal may view (view_frameworks,
//! view_tasks, view_executors), in the SUBSCRIBED snapshot and in every
//! later event. Heartbeats are the HTTP edge's business.

use bytes::Bytes;
use mesos_common::http::ContentType;
use mesos_proto::v1::master::{event, response, Event};
use mesos_proto::v1::{self as v1};
use tokio::sync::mpsc;

use super::authz::Viewer;
use super::{Agent, Framework, Master, HEARTBEAT_INTERVAL_SECS};

/// Who may see an event on the operator stream.
enum Audience {
    /// Every subscriber (agents).
    All,
    /// Readers allowed view_frameworks on this framework user, of a
    /// framework registered by `owner`.
    Framework { user: String, owner: Option<String> },
    /// Readers allowed view_frameworks on the framework user and
    /// view_tasks on the task user.
    Task {
        framework_user: String,
        task_user: String,
        owner: Option<String>,
    },
    /// Readers allowed to view every framework and task (the event's
    /// framework is no longer known, e.g. tasks killed while it is
    /// removed).
    Unattributed,
}

impl Audience {
    fn admits(&self, viewer: &mut Viewer) -> bool {
        match self {
            Audience::All => true,
            Audience::Framework { user, owner } => viewer.framework_of_user(user, owner.as_deref()),
            Audience::Task {
                framework_user,
                task_user,
                owner,
            } => {
                viewer.framework_of_user(framework_user, owner.as_deref())
                    && viewer.task_of_user(task_user, owner.as_deref())
            }
            Audience::Unattributed => viewer.everything(),
        }
    }
}

/// Mesos's `--max_operator_event_stream_subscribers` default.
pub const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;

/// An open operator event stream. Dropping it ends the HTTP response.
#[derive(Debug)]
pub struct OperatorSubscriber {
    /// Encoding negotiated at SUBSCRIBE.
    pub content_type: ContentType,
    /// The principal that subscribed (`None`: unauthenticated); events are
    /// filtered by what it may view.
    pub principal: Option<String>,
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
                .flat_map(|f| f.tasks.values().map(|t| t.view()))
                .collect(),
            unreachable_tasks: self
                .frameworks
                .values()
                .flat_map(|f| f.unreachable_tasks.values().map(|t| t.view()))
                .collect(),
            completed_tasks: self
                .frameworks
                .values()
                .chain(self.completed_frameworks.iter())
                .flat_map(|f| f.completed_tasks.iter().map(|t| t.view()))
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

    /// Operator SUBSCRIBE with no principal (see
    /// [`Master::subscribe_operator_as`]).
    pub fn subscribe_operator(
        &mut self,
        content_type: ContentType,
    ) -> Result<mpsc::UnboundedReceiver<Bytes>, OperatorSubscribeError> {
        self.subscribe_operator_as(content_type, None)
    }

    /// Operator SUBSCRIBE: a stream that starts with SUBSCRIBED (the state
    /// as GET_STATE shows it to `principal`) and then carries every change
    /// `principal` may view.
    pub fn subscribe_operator_as(
        &mut self,
        content_type: ContentType,
        principal: Option<String>,
    ) -> Result<mpsc::UnboundedReceiver<Bytes>, OperatorSubscribeError> {
        self.operator_subscribers.retain(|s| !s.sink.is_closed());
        if self.operator_subscribers.len() >= MAX_OPERATOR_SUBSCRIBERS {
            return Err(OperatorSubscribeError::TooManySubscribers);
        }
        let (sink, records) = mpsc::unbounded_channel();
        let mut state = self.get_state();
        {
            let mut viewer = self.config.authz.viewer(principal.as_deref());
            self.filter_views(
                state.get_frameworks.as_mut(),
                state.get_tasks.as_mut(),
                state.get_executors.as_mut(),
                &mut viewer,
            );
        }
        let subscribed = Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                get_state: Some(state),
                heartbeat_interval_seconds: Some(HEARTBEAT_INTERVAL_SECS),
            }),
            ..Default::default()
        };
        // The receiver is in hand, so this cannot fail.
        let _ = sink.send(encode_operator_event(&subscribed, content_type));
        self.operator_subscribers.push(OperatorSubscriber {
            content_type,
            principal,
            sink,
        });
        tracing::info!(
            subscribers = self.operator_subscribers.len(),
            "operator subscribed to the event stream"
        );
        Ok(records)
    }

    /// Drops from GET_FRAMEWORKS / GET_TASKS / GET_EXECUTORS (alone or
    /// inside GET_STATE) what `viewer` may not see.
    pub fn filter_views(
        &self,
        frameworks: Option<&mut response::GetFrameworks>,
        tasks: Option<&mut response::GetTasks>,
        executors: Option<&mut response::GetExecutors>,
        viewer: &mut Viewer,
    ) {
        let framework = |id: &str| {
            self.frameworks
                .get(id)
                .or_else(|| self.completed_frameworks.iter().find(|f| f.id == id))
        };
        let filter_tasks = |tasks: &mut Vec<v1::Task>, viewer: &mut Viewer| {
            // Mesos requires view_frameworks as well as view_tasks.
            tasks.retain(|t| {
                framework(&t.framework_id.value)
                    .is_some_and(|f| viewer.framework(f) && viewer.task(f, t))
            });
        };
        if let Some(frameworks) = frameworks {
            for list in [
                &mut frameworks.frameworks,
                &mut frameworks.completed_frameworks,
            ] {
                list.retain(|f| {
                    framework(
                        &f.framework_info
                            .id
                            .as_ref()
                            .map(|i| i.value.clone())
                            .unwrap_or_default(),
                    )
                    .is_some_and(|fw| viewer.framework(fw))
                });
            }
        }
        if let Some(tasks) = tasks {
            filter_tasks(&mut tasks.tasks, viewer);
            filter_tasks(&mut tasks.unreachable_tasks, viewer);
            filter_tasks(&mut tasks.completed_tasks, viewer);
        }
        if let Some(executors) = executors {
            executors.executors.retain(|e| {
                e.executor_info
                    .framework_id
                    .as_ref()
                    .and_then(|id| framework(&id.value))
                    .is_some_and(|f| viewer.framework(f) && viewer.executor(f, &e.executor_info))
            });
        }
    }

    /// Writes `event` to every operator subscriber `audience` admits,
    /// dropping the closed ones.
    fn operator_event(&mut self, event: Event, audience: Audience) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let mut json: Option<Bytes> = None;
        let mut protobuf: Option<Bytes> = None;
        let authz = &self.config.authz;
        self.operator_subscribers.retain(|s| {
            if s.sink.is_closed() {
                return false;
            }
            if !audience.admits(&mut authz.viewer(s.principal.as_deref())) {
                return true;
            }
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

    /// Who may see events about `task_id` of `framework_id`.
    fn task_audience(&self, framework_id: &str, task_id: &str) -> Audience {
        let Some(framework) = self.frameworks.get(framework_id).or_else(|| {
            self.completed_frameworks
                .iter()
                .find(|f| f.id == framework_id)
        }) else {
            return Audience::Unattributed;
        };
        let framework_user = framework.info.user.clone();
        let task_user = framework
            .tasks
            .get(task_id)
            .and_then(|t| t.task().user)
            .unwrap_or_else(|| framework_user.clone());
        Audience::Task {
            framework_user,
            task_user,
            owner: framework.principal.clone(),
        }
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
            .map(|t| t.view())
        else {
            return;
        };
        let audience = self.task_audience(framework_id, task_id);
        self.operator_event(
            Event {
                r#type: Some(event::Type::TaskAdded as i32),
                task_added: Some(event::TaskAdded { task }),
                ..Default::default()
            },
            audience,
        );
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
        let audience = self.task_audience(framework_id, &status.task_id.value);
        self.operator_event(
            Event {
                r#type: Some(event::Type::TaskUpdated as i32),
                task_updated: Some(event::TaskUpdated {
                    framework_id: v1::FrameworkId {
                        value: framework_id.to_string(),
                    },
                    status,
                    state,
                }),
                ..Default::default()
            },
            audience,
        );
    }

    /// AGENT_ADDED.
    pub(crate) fn emit_agent_added(&mut self, agent_id: &str) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(agent) = self.agents.get(agent_id).map(agent_proto) else {
            return;
        };
        self.operator_event(
            Event {
                r#type: Some(event::Type::AgentAdded as i32),
                agent_added: Some(event::AgentAdded { agent }),
                ..Default::default()
            },
            Audience::All,
        );
    }

    /// AGENT_REMOVED.
    pub(crate) fn emit_agent_removed(&mut self, agent_id: &str) {
        self.operator_event(
            Event {
                r#type: Some(event::Type::AgentRemoved as i32),
                agent_removed: Some(event::AgentRemoved {
                    agent_id: v1::AgentId {
                        value: agent_id.to_string(),
                    },
                }),
                ..Default::default()
            },
            Audience::All,
        );
    }

    /// FRAMEWORK_ADDED (`added`) or FRAMEWORK_UPDATED.
    pub(crate) fn emit_framework(&mut self, framework_id: &str, added: bool) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some((framework, audience)) = self.frameworks.get(framework_id).map(|f| {
            (
                framework_proto(f, f.connected()),
                Audience::Framework {
                    user: f.info.user.clone(),
                    owner: f.principal.clone(),
                },
            )
        }) else {
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
        self.operator_event(event, audience);
    }

    /// FRAMEWORK_REMOVED.
    pub(crate) fn emit_framework_removed(
        &mut self,
        framework_info: v1::FrameworkInfo,
        owner: Option<String>,
    ) {
        let audience = Audience::Framework {
            user: framework_info.user.clone(),
            owner,
        };
        self.operator_event(
            Event {
                r#type: Some(event::Type::FrameworkRemoved as i32),
                framework_removed: Some(event::FrameworkRemoved { framework_info }),
                ..Default::default()
            },
            audience,
        );
    }
}
