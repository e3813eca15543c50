//! Scheduler calls (`/api/v1/scheduler`): SUBSCRIBE and everything a
//! subscribed framework may send.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use mesos_common::http::{ContentType, HttpError};
use mesos_common::resources::Resources;
use mesos_proto::internal as msg;
use mesos_proto::v1::scheduler::{call, event, Call, Event};
use mesos_proto::v1::{self as v1, offer::operation, task_status::Reason, TaskState};
use tokio::sync::mpsc;

use super::framework::{has_capability, roles_of, Framework, Subscriber};
use super::task::TaskRecord;
use super::validation::{validate_framework_info, validate_task_shape};
use super::{is_terminal, master_status, now_secs, update_event, Master, HEARTBEAT_INTERVAL_SECS};

/// Mesos's default `Filters.refuse_seconds`.
const DEFAULT_REFUSE_SECONDS: f64 = 5.0;
/// Mesos caps refuse_seconds at a year.
const MAX_REFUSE_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// An accepted SUBSCRIBE: the stream to serve.
#[derive(Debug)]
pub struct Subscription {
    /// `Mesos-Stream-Id` header value.
    pub stream_id: String,
    /// Framework id, when subscription succeeded.
    pub framework_id: Option<String>,
    /// RecordIO records to write, in order; closed when the stream ends.
    pub records: mpsc::UnboundedReceiver<Bytes>,
}

/// Success of a non-SUBSCRIBE call.
#[derive(Debug, PartialEq, Eq)]
pub enum CallReply {
    /// 202 Accepted.
    Accepted,
    /// 200 OK (UPDATE_FRAMEWORK).
    Ok,
}

/// Checks what can be checked without the master's state (Mesos's
/// `validation::scheduler::call::validate`).
pub fn validate_call(call: &Call) -> Result<(), String> {
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err("Expecting 'type' to be present".into());
    };
    let require = |present: bool, field: &str| {
        if present {
            Ok(())
        } else {
            Err(format!("Expecting '{field}' to be present"))
        }
    };
    if kind == call::Type::Subscribe {
        let subscribe = call
            .subscribe
            .as_ref()
            .ok_or("Expecting 'subscribe' to be present")?;
        if let (Some(a), Some(b)) = (&call.framework_id, &subscribe.framework_info.id) {
            if a.value != b.value {
                return Err("'framework_id' differs from 'subscribe.framework_info.id'".into());
            }
        }
        return Ok(());
    }
    require(call.framework_id.is_some(), "framework_id")?;
    match kind {
        call::Type::Accept => require(call.accept.is_some(), "accept"),
        call::Type::Decline => require(call.decline.is_some(), "decline"),
        call::Type::AcceptInverseOffers => require(
            call.accept_inverse_offers.is_some(),
            "accept_inverse_offers",
        ),
        call::Type::DeclineInverseOffers => require(
            call.decline_inverse_offers.is_some(),
            "decline_inverse_offers",
        ),
        call::Type::Kill => require(call.kill.is_some(), "kill"),
        call::Type::Shutdown => require(call.shutdown.is_some(), "shutdown"),
        call::Type::Acknowledge => {
            let ack = call
                .acknowledge
                .as_ref()
                .ok_or("Expecting 'acknowledge' to be present")?;
            if ack.uuid.len() != 16 {
                return Err(format!(
                    "Failed to parse UUID: expected 16 bytes, got {}",
                    ack.uuid.len()
                ));
            }
            Ok(())
        }
        call::Type::AcknowledgeOperationStatus => {
            let ack = call
                .acknowledge_operation_status
                .as_ref()
                .ok_or("Expecting 'acknowledge_operation_status' to be present")?;
            require(
                ack.agent_id.is_some(),
                "acknowledge_operation_status.agent_id",
            )
        }
        call::Type::Reconcile => require(call.reconcile.is_some(), "reconcile"),
        call::Type::ReconcileOperations => {
            require(call.reconcile_operations.is_some(), "reconcile_operations")
        }
        call::Type::Message => require(call.message.is_some(), "message"),
        call::Type::Request => require(call.request.is_some(), "request"),
        call::Type::UpdateFramework => {
            let update = call
                .update_framework
                .as_ref()
                .ok_or("Expecting 'update_framework' to be present")?;
            match (&update.framework_info.id, &call.framework_id) {
                (Some(a), Some(b)) if a.value == b.value => Ok(()),
                _ => Err("'framework_id' differs from 'update_framework.framework_info.id'".into()),
            }
        }
        _ => Ok(()),
    }
}

fn call_name(kind: call::Type) -> &'static str {
    match kind {
        call::Type::Subscribe => "subscribe",
        call::Type::Teardown => "teardown",
        call::Type::Accept => "accept",
        call::Type::Decline => "decline",
        call::Type::AcceptInverseOffers => "accept_inverse_offers",
        call::Type::DeclineInverseOffers => "decline_inverse_offers",
        call::Type::Revive => "revive",
        call::Type::Kill => "kill",
        call::Type::Shutdown => "shutdown",
        call::Type::Acknowledge => "acknowledge",
        call::Type::AcknowledgeOperationStatus => "acknowledge_operation_status",
        call::Type::Reconcile => "reconcile",
        call::Type::ReconcileOperations => "reconcile_operations",
        call::Type::Message => "message",
        call::Type::Request => "request",
        call::Type::Suppress => "suppress",
        call::Type::UpdateFramework => "update_framework",
        _ => "unknown",
    }
}

fn error_event(message: impl Into<String>) -> Event {
    Event {
        r#type: Some(event::Type::Error as i32),
        error: Some(event::Error {
            message: message.into(),
        }),
        ..Default::default()
    }
}

fn heartbeat() -> Event {
    Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    }
}

fn refuse_duration(filters: Option<&v1::Filters>) -> Duration {
    let seconds = filters
        .and_then(|f| f.refuse_seconds)
        .unwrap_or(DEFAULT_REFUSE_SECONDS);
    let seconds = if seconds.is_finite() && seconds >= 0.0 {
        seconds.min(MAX_REFUSE_SECONDS)
    } else {
        DEFAULT_REFUSE_SECONDS
    };
    Duration::from_secs_f64(seconds)
}

impl Master {
    /// SUBSCRIBE: always a stream; failures are one ERROR event and the
    /// stream closes.
    pub fn subscribe(
        &mut self,
        call: Call,
        content_type: ContentType,
        now: Instant,
    ) -> Subscription {
        self.subscribe_as(call, content_type, None, now)
    }

    /// SUBSCRIBE from a scheduler that authenticated as `principal` (if
    /// any): the principal is the subject of the framework's
    /// authorization requests from then on.
    pub fn subscribe_as(
        &mut self,
        call: Call,
        content_type: ContentType,
        principal: Option<String>,
        now: Instant,
    ) -> Subscription {
        *self
            .counters
            .scheduler_calls
            .entry("subscribe")
            .or_default() += 1;
        let (tx, records) = mpsc::unbounded_channel();
        let stream_id = uuid::Uuid::new_v4().to_string();
        let subscriber = Subscriber {
            stream_id: stream_id.clone(),
            content_type,
            sink: tx,
        };
        let Some(subscribe) = call.subscribe else {
            subscriber.send(&error_event("Expecting 'subscribe' to be present"));
            return Subscription {
                stream_id,
                framework_id: None,
                records,
            };
        };
        let mut info = subscribe.framework_info;
        if let Err(message) = validate_framework_info(
            &info,
            self.config.role_whitelist.as_deref(),
            self.config.root_submissions,
        ) {
            tracing::warn!(framework = %info.name, "refusing subscription: {message}");
            subscriber.send(&error_event(message));
            return Subscription {
                stream_id,
                framework_id: None,
                records,
            };
        }
        let suppressed: HashSet<String> = subscribe.suppressed_roles.into_iter().collect();
        let roles = roles_of(&info);
        if let Some(bad) = suppressed.iter().find(|r| !roles.contains(r)) {
            subscriber.send(&error_event(format!(
                "Suppressed roles {{ {bad} }} are not contained in the set of roles"
            )));
            return Subscription {
                stream_id,
                framework_id: None,
                records,
            };
        }
        let requested_id = call
            .framework_id
            .map(|f| f.value)
            .or_else(|| info.id.as_ref().map(|f| f.value.clone()));
        if let Err(denied) = self
            .config
            .authz
            .register_framework(principal.as_deref(), &roles)
        {
            let mut sorted = roles.clone();
            sorted.sort();
            subscriber.send(&error_event(format!(
                "Not authorized to register framework {} with roles {{ {} }}: {}",
                requested_id.as_deref().unwrap_or(&info.name),
                sorted.join(", "),
                denied.explanation
            )));
            return Subscription {
                stream_id,
                framework_id: None,
                records,
            };
        }
        let framework_id = match requested_id {
            Some(id) if self.is_completed_framework(&id) => {
                subscriber.send(&error_event("Framework has been removed"));
                return Subscription {
                    stream_id,
                    framework_id: None,
                    records,
                };
            }
            Some(id) => id,
            None => self.new_framework_id(),
        };
        info.id = Some(v1::FrameworkId {
            value: framework_id.clone(),
        });

        let subscribed = Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_id: v1::FrameworkId {
                    value: framework_id.clone(),
                },
                heartbeat_interval_seconds: Some(HEARTBEAT_INTERVAL_SECS),
                master_info: Some(self.info.clone()),
            }),
            ..Default::default()
        };
        // A refused resubscription gets only the ERROR, as in Mesos. A
        // framework registered without a principal cannot be taken over by
        // one that has (or proved) a principal either.
        if let Some(framework) = self.frameworks.get(&framework_id) {
            if info
                .principal
                .as_ref()
                .is_some_and(|p| Some(p) != framework.info.principal.as_ref())
            {
                let error = error_event("Changing framework's principal is not allowed.");
                subscriber.send(&error);
                return Subscription {
                    stream_id,
                    framework_id: None,
                    records,
                };
            }
        }
        subscriber.send(&subscribed);
        subscriber.send(&heartbeat());

        if let Some(framework) = self.frameworks.get_mut(&framework_id) {
            // Failover: the old stream learns why it ends.
            if let Some(old) = framework.subscriber.take() {
                old.send(&error_event("Framework failed over"));
            }
            // `user` and `checkpoint` cannot change on resubscription.
            info.user = framework.info.user.clone();
            info.checkpoint = framework.info.checkpoint;
            if info.principal.is_none() {
                info.principal = framework.info.principal.clone();
            }
            framework.info = info;
            framework.roles = roles.clone();
            framework.suppressed_roles = suppressed.clone();
            framework.subscriber = Some(subscriber);
            framework.principal = principal;
            framework.recovered = false;
            framework.reregistered_time = Some(now_secs());
            framework.unregistered_time = None;
            framework.generation += 1;
            tracing::info!(%framework_id, "framework resubscribed");
            let suppressed: Vec<String> = suppressed.into_iter().collect();
            self.allocator
                .update_framework(&framework_id, &roles, &suppressed);
            self.allocator.activate_framework(&framework_id);
            self.broadcast_framework_update(&framework_id);
            self.emit_framework(&framework_id, false);
        } else {
            let mut framework = Framework::new(framework_id.clone(), info, now_secs());
            framework.principal = principal;
            framework.suppressed_roles = suppressed.clone();
            framework.subscriber = Some(subscriber);
            tracing::info!(%framework_id, name = %framework.info.name, roles = ?roles, "framework subscribed");
            let suppressed: Vec<String> = suppressed.into_iter().collect();
            self.allocator
                .add_framework(&framework_id, &roles, &suppressed, true);
            self.frameworks.insert(framework_id.clone(), framework);
            self.emit_framework(&framework_id, true);
        }
        let _ = now;
        Subscription {
            stream_id,
            framework_id: Some(framework_id),
            records,
        }
    }

    fn broadcast_framework_update(&mut self, framework_id: &str) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let message = msg::UpdateFrameworkMessage {
            framework_id: v1::FrameworkId {
                value: framework_id.to_string(),
            },
            pid: Some(String::new()),
            framework_info: Some(framework.info.clone()),
        };
        let pids: Vec<_> = self
            .agents
            .values()
            .filter(|a| a.connected)
            .map(|a| a.pid.clone())
            .collect();
        for pid in pids {
            self.send(&pid, &message);
        }
    }

    /// The subscription stream `stream_id` of `framework_id` ended.
    pub fn stream_closed(&mut self, framework_id: &str, stream_id: &str, now: Instant) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if framework.subscriber.as_ref().map(|s| s.stream_id.as_str()) != Some(stream_id) {
            return; // an older stream, already replaced
        }
        framework.subscriber = None;
        framework.unregistered_time = Some(now_secs());
        framework.generation += 1;
        let generation = framework.generation;
        let timeout = framework.info.failover_timeout.unwrap_or(0.0);
        let offers: Vec<String> = framework.offers.iter().cloned().collect();
        tracing::info!(%framework_id, failover_timeout = timeout, "framework disconnected");
        self.allocator.deactivate_framework(framework_id);
        for offer_id in offers {
            self.remove_offer(&offer_id, false, None, now);
        }
        self.emit_framework(framework_id, false);
        self.effects.push(super::Effect::Timer {
            after: Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO),
            timer: super::Timer::FrameworkFailover {
                framework_id: framework_id.to_string(),
                generation,
            },
        });
    }

    /// Any call but SUBSCRIBE, already validated by [`validate_call`].
    /// A non-SUBSCRIBE call from a scheduler that authenticated as
    /// `principal` (if any): the principal must be the one its framework
    /// registered with (Mesos's check and text), then [`Self::scheduler_call`].
    pub fn scheduler_call_as(
        &mut self,
        call: Call,
        stream_id: Option<&str>,
        principal: Option<&str>,
        now: Instant,
    ) -> Result<CallReply, HttpError> {
        if let Some(principal) = principal {
            let registered = call
                .framework_id
                .as_ref()
                .and_then(|id| self.frameworks.get(&id.value))
                .map(|f| f.info.principal.as_deref().unwrap_or_default());
            if let Some(registered) = registered {
                if registered != principal {
                    return Err(HttpError::bad_request(format!(
                        "Authenticated principal '{principal}' does not match principal '{registered}' set in `FrameworkInfo`"
                    )));
                }
            }
        }
        self.scheduler_call(call, stream_id, now)
    }

    /// A non-SUBSCRIBE call, validated by [`validate_call`].
    pub fn scheduler_call(
        &mut self,
        call: Call,
        stream_id: Option<&str>,
        now: Instant,
    ) -> Result<CallReply, HttpError> {
        let kind = call
            .r#type
            .and_then(|t| call::Type::try_from(t).ok())
            .unwrap_or(call::Type::Unknown);
        let framework_id = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return Err(HttpError::bad_request("Framework cannot be found"));
        };
        let Some(subscriber) = &framework.subscriber else {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "Framework is not subscribed",
            ));
        };
        match stream_id {
            None => {
                return Err(HttpError::bad_request(
                    "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
                ));
            }
            Some(id) if id != subscriber.stream_id => {
                return Err(HttpError::bad_request(format!(
                    "The stream ID '{id}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
                )));
            }
            Some(_) => {}
        }
        *self
            .counters
            .scheduler_calls
            .entry(call_name(kind))
            .or_default() += 1;
        match kind {
            call::Type::Teardown => {
                tracing::info!(%framework_id, "framework teardown");
                self.remove_framework(&framework_id, now);
            }
            call::Type::Accept => {
                if let Some(accept) = call.accept {
                    self.accept(&framework_id, accept, now);
                }
            }
            call::Type::Decline => {
                if let Some(decline) = call.decline {
                    let refuse = refuse_duration(decline.filters.as_ref());
                    for offer_id in decline.offer_ids {
                        if self
                            .offers
                            .get(&offer_id.value)
                            .is_some_and(|o| o.offer.framework_id.value == framework_id)
                        {
                            self.counters.offers_declined += 1;
                            self.remove_offer(&offer_id.value, false, Some(refuse), now);
                        }
                    }
                }
            }
            call::Type::Revive => {
                let roles = call.revive.map(|r| r.roles).unwrap_or_default();
                self.set_suppressed(&framework_id, &roles, false);
                self.allocator.revive(&framework_id, &roles);
            }
            call::Type::Suppress => {
                let roles = call.suppress.map(|s| s.roles).unwrap_or_default();
                self.set_suppressed(&framework_id, &roles, true);
                self.allocator.suppress(&framework_id, &roles);
            }
            call::Type::Kill => {
                if let Some(kill) = call.kill {
                    self.kill_task(&framework_id, kill);
                }
            }
            call::Type::Shutdown => {
                if let Some(shutdown) = call.shutdown {
                    if let Some(pid) = self
                        .agents
                        .get(&shutdown.agent_id.value)
                        .map(|a| a.pid.clone())
                    {
                        self.send(
                            &pid,
                            &msg::ShutdownExecutorMessage {
                                executor_id: Some(shutdown.executor_id),
                                framework_id: Some(v1::FrameworkId {
                                    value: framework_id.clone(),
                                }),
                            },
                        );
                    }
                }
            }
            call::Type::Acknowledge => {
                if let Some(ack) = call.acknowledge {
                    self.acknowledge(&framework_id, ack);
                }
            }
            call::Type::Reconcile => {
                if let Some(reconcile) = call.reconcile {
                    self.reconcile(&framework_id, reconcile);
                }
            }
            call::Type::Message => {
                if let Some(message) = call.message {
                    if let Some(pid) = self
                        .agents
                        .get(&message.agent_id.value)
                        .map(|a| a.pid.clone())
                    {
                        self.send(
                            &pid,
                            &msg::FrameworkToExecutorMessage {
                                slave_id: message.agent_id,
                                framework_id: v1::FrameworkId {
                                    value: framework_id.clone(),
                                },
                                executor_id: message.executor_id,
                                data: message.data,
                            },
                        );
                    }
                }
            }
            call::Type::UpdateFramework => {
                if let Some(update) = call.update_framework {
                    self.update_framework(&framework_id, update)?;
                    return Ok(CallReply::Ok);
                }
            }
            call::Type::AcknowledgeOperationStatus => {
                if let Some(ack) = call.acknowledge_operation_status {
                    self.acknowledge_operation(&framework_id, &ack);
                }
            }
            call::Type::ReconcileOperations => {
                if let Some(reconcile) = call.reconcile_operations {
                    self.reconcile_operations(&framework_id, &reconcile);
                }
            }
            // No maintenance or custom allocation requests in this master:
            // accepted and, as in Mesos's built-in allocator, without
            // effect.
            call::Type::Request
            | call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers => {}
            call::Type::Subscribe | call::Type::Unknown => {
                return Err(HttpError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "Received an unexpected call type",
                ));
            }
        }
        Ok(CallReply::Accepted)
    }

    fn set_suppressed(&mut self, framework_id: &str, roles: &[String], suppressed: bool) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            let roles: Vec<String> = if roles.is_empty() {
                framework.roles.clone()
            } else {
                roles.to_vec()
            };
            for role in roles {
                if suppressed {
                    framework.suppressed_roles.insert(role);
                } else {
                    framework.suppressed_roles.remove(&role);
                }
            }
        }
    }

    fn update_framework(
        &mut self,
        framework_id: &str,
        update: mesos_proto::v1::scheduler::call::UpdateFramework,
    ) -> Result<(), HttpError> {
        let info = update.framework_info;
        validate_framework_info(
            &info,
            self.config.role_whitelist.as_deref(),
            self.config.root_submissions,
        )
        .map_err(HttpError::bad_request)?;
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return Err(HttpError::bad_request("Framework cannot be found"));
        };
        if info.user != framework.info.user {
            return Err(HttpError::bad_request(
                "Updating 'FrameworkInfo.user' is unsupported",
            ));
        }
        if info.checkpoint.unwrap_or(false) != framework.info.checkpoint.unwrap_or(false) {
            return Err(HttpError::bad_request(
                "Updating 'FrameworkInfo.checkpoint' is unsupported",
            ));
        }
        if info.principal != framework.info.principal {
            return Err(HttpError::bad_request(
                "Changing framework's principal is not allowed.",
            ));
        }
        let roles = roles_of(&info);
        if let Some(bad) = update.suppressed_roles.iter().find(|r| !roles.contains(r)) {
            return Err(HttpError::bad_request(format!(
                "Suppressed roles {{ {bad} }} are not contained in the set of roles"
            )));
        }
        // New roles are registrations too: a framework allowed only `*`
        // must not switch itself into `prod` (Mesos: 403).
        if let Err(denied) = self
            .config
            .authz
            .register_framework(framework.principal.as_deref(), &roles)
        {
            let mut sorted = roles.clone();
            sorted.sort();
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Not authorized to update framework {framework_id} with roles {{ {} }}: {}",
                    sorted.join(", "),
                    denied.explanation
                ),
            ));
        }
        framework.info = info;
        framework.roles = roles.clone();
        framework.suppressed_roles = update.suppressed_roles.iter().cloned().collect();
        self.allocator
            .update_framework(framework_id, &roles, &update.suppressed_roles);
        self.broadcast_framework_update(framework_id);
        self.emit_framework(framework_id, false);
        Ok(())
    }

    fn accept(&mut self, framework_id: &str, accept: call::Accept, now: Instant) {
        let refuse = refuse_duration(accept.filters.as_ref());
        let partition_aware = self.frameworks.get(framework_id).is_some_and(|f| {
            has_capability(
                &f.info,
                v1::framework_info::capability::Type::PartitionAware,
            )
        });

        // Offers must exist, belong to this framework, be on one agent and
        // be allocated to one role.
        let mut error: Option<String> = None;
        let mut agent_id: Option<String> = None;
        let mut role: Option<String> = None;
        let mut seen = HashSet::new();
        for offer_id in &accept.offer_ids {
            if !seen.insert(offer_id.value.clone()) {
                error = Some(format!("Duplicate offer {} in ACCEPT", offer_id.value));
                break;
            }
            match self.offers.get(&offer_id.value) {
                None => {
                    error = Some(format!("Offer {} is no longer valid", offer_id.value));
                    break;
                }
                Some(offer) if offer.offer.framework_id.value != framework_id => {
                    error = Some(format!("Offer {} has invalid framework", offer_id.value));
                    break;
                }
                Some(offer) => {
                    if agent_id.get_or_insert_with(|| offer.offer.agent_id.value.clone())
                        != &offer.offer.agent_id.value
                    {
                        error = Some("Aggregated offers must belong to one single agent".into());
                        break;
                    }
                    if role.get_or_insert_with(|| offer.role.clone()) != &offer.role {
                        error = Some("Aggregated offers must be allocated to the same role".into());
                        break;
                    }
                }
            }
        }
        if accept.offer_ids.is_empty() {
            error = Some("No offers specified".into());
        }
        if let Some(error) = error {
            // Return whatever was valid, and tell the framework about every
            // task it tried to launch.
            for offer_id in &accept.offer_ids {
                if self
                    .offers
                    .get(&offer_id.value)
                    .is_some_and(|o| o.offer.framework_id.value == framework_id)
                {
                    self.remove_offer(&offer_id.value, false, None, now);
                }
            }
            let (state, counter) = if partition_aware {
                (TaskState::TaskDropped, &mut self.counters.tasks_dropped)
            } else {
                (TaskState::TaskLost, &mut self.counters.tasks_lost)
            };
            let mut statuses = Vec::new();
            for operation in &accept.operations {
                for task in launched_tasks(operation) {
                    *counter += 1;
                    statuses.push(master_status(
                        &task.task_id.value,
                        Some(&task.agent_id.value),
                        state,
                        Reason::InvalidOffers,
                        format!("Task launched with invalid offers: {error}"),
                    ));
                }
            }
            tracing::warn!(%framework_id, "ACCEPT with invalid offers: {error}");
            if let Some(framework) = self.frameworks.get(framework_id) {
                for status in statuses {
                    framework.send(&update_event(status));
                }
            }
            return;
        }
        let (Some(agent_id), Some(role)) = (agent_id, role) else {
            return;
        };
        let mut remaining = Resources::default();
        for offer_id in &accept.offer_ids {
            if let Some(offer) = self.offers.remove(&offer_id.value) {
                if let Some(agent) = self.agents.get_mut(&agent_id) {
                    agent.offers.remove(&offer_id.value);
                }
                if let Some(framework) = self.frameworks.get_mut(framework_id) {
                    framework.offers.remove(&offer_id.value);
                }
                if let Ok(resources) = Resources::try_from(offer.offer.resources) {
                    remaining += resources;
                }
            }
        }
        for operation in accept.operations {
            let kind = operation
                .r#type
                .and_then(|t| operation::Type::try_from(t).ok());
            match kind {
                Some(operation::Type::Launch) => {
                    let tasks = operation.launch.map(|l| l.task_infos).unwrap_or_default();
                    for task in tasks {
                        self.launch_task(
                            framework_id,
                            &agent_id,
                            &role,
                            task,
                            None,
                            &mut remaining,
                        );
                    }
                }
                Some(operation::Type::LaunchGroup) => {
                    if let Some(group) = operation.launch_group {
                        self.launch_group(framework_id, &agent_id, &role, group, &mut remaining);
                    }
                }
                Some(
                    operation::Type::Reserve
                    | operation::Type::Unreserve
                    | operation::Type::Create
                    | operation::Type::Destroy
                    | operation::Type::GrowVolume
                    | operation::Type::ShrinkVolume,
                ) => {
                    self.offer_operation(framework_id, &agent_id, &role, operation, &mut remaining);
                }
                other => {
                    tracing::warn!(%framework_id, operation = ?other, "dropping unsupported offer operation");
                    if let (Some(id), Some(framework)) =
                        (operation.id, self.frameworks.get(framework_id))
                    {
                        framework.send(&Event {
                            r#type: Some(event::Type::UpdateOperationStatus as i32),
                            update_operation_status: Some(event::UpdateOperationStatus {
                                status: v1::OperationStatus {
                                    operation_id: Some(id),
                                    state: v1::OperationState::OperationError as i32,
                                    message: Some(format!(
                                        "Operation {other:?} is not supported by this master"
                                    )),
                                    agent_id: Some(v1::AgentId {
                                        value: agent_id.clone(),
                                    }),
                                    ..Default::default()
                                },
                            }),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        if !remaining.is_empty() {
            self.allocator.recover_resources(
                framework_id,
                &agent_id,
                &remaining,
                Some(refuse),
                now,
            );
        }
    }

    /// Resources of a task with allocation info injected for frameworks
    /// that do not set it (Mesos does this for non-MULTI_ROLE frameworks).
    fn task_resources(resources: &[v1::Resource], role: &str) -> Result<Resources, String> {
        let mut resources = resources.to_vec();
        for resource in &mut resources {
            match &resource.allocation_info {
                None => {
                    resource.allocation_info = Some(v1::resource::AllocationInfo {
                        role: Some(role.to_string()),
                    })
                }
                Some(info) if info.role.as_deref() != Some(role) => {
                    return Err(format!(
                        "Resource {} is allocated to role {:?}, not to the offer's role '{role}'",
                        resource.name, info.role
                    ));
                }
                Some(_) => {}
            }
        }
        Resources::try_from(resources).map_err(|e| format!("Task uses invalid resources: {e}"))
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_task(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        mut task: v1::TaskInfo,
        group_error: Option<String>,
        remaining: &mut Resources,
    ) {
        let task_id = task.task_id.value.clone();
        if let Some(framework) = self.frameworks.get(framework_id) {
            let user = super::authz::task_user(&task, &framework.info.user).to_string();
            let principal = framework.principal.clone();
            // Mesos's text, typo included, then the rule that decided; then
            // the volumes the task would use.
            let denial = match self.config.authz.run_task(principal.as_deref(), &user) {
                Err(denied) => Some(format!(
                    "Principal '{}' no authorized to launch task {task_id} of framework {framework_id} under user '{user}': {}",
                    principal.as_deref().unwrap_or(""),
                    denied.explanation
                )),
                Ok(()) => self.volume_denial(
                    principal.as_deref(),
                    &task_id,
                    task.resources
                        .iter()
                        .chain(task.executor.iter().flat_map(|e| e.resources.iter())),
                ),
            };
            if let Some(message) = denial {
                self.counters.tasks_error += 1;
                framework.send(&update_event(master_status(
                    &task_id,
                    Some(agent_id),
                    TaskState::TaskError,
                    Reason::TaskUnauthorized,
                    message,
                )));
                return;
            }
        }
        // Validation converts the task's resources once (allocation info
        // injected); the launched task carries that conversion.
        let result = (|| -> Result<(Resources, Resources), String> {
            if let Some(e) = group_error {
                return Err(e);
            }
            validate_task_shape(&task, agent_id)?;
            let framework = self
                .frameworks
                .get(framework_id)
                .ok_or("Framework is gone")?;
            if framework.tasks.contains_key(&task_id)
                || framework.unreachable_tasks.contains_key(&task_id)
            {
                return Err(format!("Task has duplicate ID: {task_id}"));
            }
            let own = Self::task_resources(&task.resources, role)?;
            if own.is_empty() {
                return Err("Task uses no resources".into());
            }
            let mut needed = own.clone();
            if let Some(executor) = &task.executor {
                let key = (agent_id.to_string(), executor.executor_id.value.clone());
                if !framework.executors.contains_key(&key) {
                    needed += Self::task_resources(&executor.resources, role)?;
                }
            }
            if !remaining.contains(&needed) {
                return Err(format!(
                    "Task uses more resources {needed} than available {remaining}"
                ));
            }
            Ok((own, needed))
        })();
        let (own, needed) = match result {
            Ok(resources) => resources,
            Err(message) => {
                tracing::warn!(%framework_id, %task_id, "refusing task: {message}");
                self.counters.tasks_error += 1;
                if let Some(framework) = self.frameworks.get(framework_id) {
                    framework.send(&update_event(master_status(
                        &task_id,
                        Some(agent_id),
                        TaskState::TaskError,
                        Reason::TaskInvalid,
                        message,
                    )));
                }
                return;
            }
        };
        *remaining -= needed;
        // Task resources carry their allocation from here on.
        task.resources = own.into_vec();
        if let Some(executor) = &mut task.executor {
            executor.framework_id = Some(v1::FrameworkId {
                value: framework_id.to_string(),
            });
            if let Ok(resources) = Self::task_resources(&executor.resources, role) {
                executor.resources = resources.into_vec();
            }
        }
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let executor_id = task.executor.as_ref().map(|e| e.executor_id.clone());
        if let Some(executor) = &task.executor {
            framework.executors.insert(
                (agent_id.to_string(), executor.executor_id.value.clone()),
                executor.clone(),
            );
        }
        let record = v1::Task {
            name: task.name.clone(),
            task_id: task.task_id.clone(),
            framework_id: v1::FrameworkId {
                value: framework_id.to_string(),
            },
            executor_id: executor_id.clone(),
            agent_id: v1::AgentId {
                value: agent_id.to_string(),
            },
            state: TaskState::TaskStaging as i32,
            resources: task.resources.clone(),
            labels: task.labels.clone(),
            discovery: task.discovery.clone().map(Box::new),
            container: task.container.clone().map(Box::new),
            health_check: task.health_check.clone().map(Box::new),
            kill_policy: task.kill_policy.map(Box::new),
            user: task.command.as_ref().and_then(|c| c.user.clone()),
            ..Default::default()
        };
        framework
            .tasks
            .insert(task_id.clone(), TaskRecord::new(record));
        let framework_info = framework.info.clone();
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        agent.tasks.insert(framework_id, task_id.clone());
        if let Some(executor) = &task.executor {
            agent.executors.insert(
                (framework_id.to_string(), executor.executor_id.value.clone()),
                executor.clone(),
            );
        }
        let pid = agent.pid.clone();
        tracing::debug!(%framework_id, %task_id, %agent_id, "launching task");
        self.send(
            &pid,
            &msg::RunTaskMessage {
                framework_id: Some(v1::FrameworkId {
                    value: framework_id.to_string(),
                }),
                framework: framework_info,
                pid: Some("@0.0.0.0:0".to_string()),
                task,
                resource_version_uuids: vec![],
                launch_executor: None,
            },
        );
        self.emit_task_added(framework_id, &task_id);
    }

    fn launch_group(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        group: v1::offer::operation::LaunchGroup,
        remaining: &mut Resources,
    ) {
        let mut executor = group.executor;
        let tasks = group.task_group.tasks;
        // Every task must be authorized, or none runs.
        if let Some(framework) = self.frameworks.get(framework_id) {
            let principal = framework.principal.clone();
            // The default executor runs every task of the group as its own
            // user (the executor's, else the framework's), so that user is
            // authorized, as well as any user a task names.
            let executor_user = executor
                .command
                .as_ref()
                .and_then(|c| c.user.as_deref())
                .unwrap_or(&framework.info.user)
                .to_string();
            let denial = tasks.iter().find_map(|task| {
                let named = task.command.as_ref().and_then(|c| c.user.clone());
                std::iter::once(executor_user.clone())
                    .chain(named)
                    .find_map(|user| {
                        self.config
                            .authz
                            .run_task(principal.as_deref(), &user)
                            .err()
                            .map(|denied| (task.task_id.value.clone(), user, denied))
                    })
            });
            let volume_denial = || {
                tasks.iter().find_map(|task| {
                    self.volume_denial(
                        principal.as_deref(),
                        &task.task_id.value,
                        task.resources.iter().chain(executor.resources.iter()),
                    )
                })
            };
            let message = match denial {
                Some((task_id, user, denied)) => Some(format!(
                    "Principal '{}' no authorized to launch task {task_id} of framework {framework_id} under user '{user}': {}",
                    principal.as_deref().unwrap_or(""),
                    denied.explanation
                )),
                None => volume_denial(),
            };
            if let Some(message) = message {
                for task in &tasks {
                    framework.send(&update_event(master_status(
                        &task.task_id.value,
                        Some(agent_id),
                        TaskState::TaskError,
                        Reason::TaskGroupUnauthorized,
                        message.clone(),
                    )));
                }
                self.counters.tasks_error += tasks.len() as u64;
                return;
            }
        }
        // All-or-nothing: validate the group as a whole first.
        let group_error = (|| -> Result<Resources, String> {
            if tasks.is_empty() {
                return Err("Task group is empty".into());
            }
            if executor.r#type != Some(v1::executor_info::Type::Default as i32) {
                return Err("'ExecutorInfo.type' must be 'DEFAULT' for a task group".into());
            }
            super::validation::validate_id("Executor ID", &executor.executor_id.value)?;
            let mut ids = HashSet::new();
            let framework = self
                .frameworks
                .get(framework_id)
                .ok_or("Framework is gone")?;
            let mut needed = Resources::default();
            let key = (agent_id.to_string(), executor.executor_id.value.clone());
            if !framework.executors.contains_key(&key) {
                needed += Self::task_resources(&executor.resources, role)?;
            }
            for task in &tasks {
                if !ids.insert(task.task_id.value.clone()) {
                    return Err(format!(
                        "Task group has duplicate task ID: {}",
                        task.task_id.value
                    ));
                }
                if task.executor.is_some() {
                    return Err(format!(
                        "Task '{}' in a task group must not set 'executor'",
                        task.task_id.value
                    ));
                }
                if task.command.is_none() {
                    return Err(format!(
                        "Task '{}' in a task group must set 'command'",
                        task.task_id.value
                    ));
                }
                super::validation::validate_task_shape(task, agent_id)?;
                if framework.tasks.contains_key(&task.task_id.value) {
                    return Err(format!("Task has duplicate ID: {}", task.task_id.value));
                }
                needed += Self::task_resources(&task.resources, role)?;
            }
            if !remaining.contains(&needed) {
                return Err(format!(
                    "Task group uses more resources {needed} than available {remaining}"
                ));
            }
            Ok(needed)
        })();
        let needed = match group_error {
            Ok(needed) => needed,
            Err(message) => {
                tracing::warn!(%framework_id, "refusing task group: {message}");
                if let Some(framework) = self.frameworks.get(framework_id) {
                    for task in &tasks {
                        framework.send(&update_event(master_status(
                            &task.task_id.value,
                            Some(agent_id),
                            TaskState::TaskError,
                            Reason::TaskGroupInvalid,
                            message.clone(),
                        )));
                    }
                }
                self.counters.tasks_error += tasks.len() as u64;
                return;
            }
        };
        *remaining -= needed;
        executor.framework_id = Some(v1::FrameworkId {
            value: framework_id.to_string(),
        });
        if let Ok(resources) = Self::task_resources(&executor.resources, role) {
            executor.resources = resources.into_vec();
        }
        let mut group_tasks = Vec::with_capacity(tasks.len());
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        framework.executors.insert(
            (agent_id.to_string(), executor.executor_id.value.clone()),
            executor.clone(),
        );
        for mut task in tasks {
            if let Ok(resources) = Self::task_resources(&task.resources, role) {
                task.resources = resources.into_vec();
            }
            framework.tasks.insert(
                task.task_id.value.clone(),
                TaskRecord::new(v1::Task {
                    name: task.name.clone(),
                    task_id: task.task_id.clone(),
                    framework_id: v1::FrameworkId {
                        value: framework_id.to_string(),
                    },
                    executor_id: Some(executor.executor_id.clone()),
                    agent_id: v1::AgentId {
                        value: agent_id.to_string(),
                    },
                    state: TaskState::TaskStaging as i32,
                    resources: task.resources.clone(),
                    labels: task.labels.clone(),
                    user: task.command.as_ref().and_then(|c| c.user.clone()),
                    ..Default::default()
                }),
            );
            group_tasks.push(task);
        }
        let framework_info = framework.info.clone();
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        for task in &group_tasks {
            agent.tasks.insert(framework_id, task.task_id.value.clone());
        }
        agent.executors.insert(
            (framework_id.to_string(), executor.executor_id.value.clone()),
            executor.clone(),
        );
        let pid = agent.pid.clone();
        let task_ids: Vec<String> = group_tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        self.send(
            &pid,
            &msg::RunTaskGroupMessage {
                framework: framework_info,
                executor,
                task_group: v1::TaskGroupInfo { tasks: group_tasks },
                resource_version_uuids: vec![],
                launch_executor: None,
            },
        );
        for task_id in task_ids {
            self.emit_task_added(framework_id, &task_id);
        }
    }

    fn kill_task(&mut self, framework_id: &str, kill: call::Kill) {
        let task_id = kill.task_id.value.clone();
        let found = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(&task_id))
            .map(|t| t.agent_id());
        match found.and_then(|agent_id| {
            self.agents
                .get(&agent_id)
                .map(|a| (agent_id, a.pid.clone()))
        }) {
            Some((agent_id, pid)) => {
                tracing::info!(%framework_id, %task_id, %agent_id, "killing task");
                self.send(
                    &pid,
                    &msg::KillTaskMessage {
                        framework_id: v1::FrameworkId {
                            value: framework_id.to_string(),
                        },
                        task_id: kill.task_id,
                        kill_policy: kill.kill_policy,
                    },
                );
            }
            None => {
                let agent_id = kill.agent_id.as_ref().map(|a| a.value.clone());
                let status = master_status(
                    &task_id,
                    agent_id.as_deref(),
                    TaskState::TaskLost,
                    Reason::Reconciliation,
                    "Attempted to kill an unknown task",
                );
                if let Some(framework) = self.frameworks.get(framework_id) {
                    framework.send(&update_event(status));
                }
            }
        }
    }

    fn acknowledge(&mut self, framework_id: &str, ack: call::Acknowledge) {
        let task_id = ack.task_id.value.clone();
        let Some(agent) = self.agents.get(&ack.agent_id.value) else {
            tracing::warn!(%framework_id, %task_id, agent_id = %ack.agent_id.value, "acknowledgement for an unknown agent dropped");
            return;
        };
        let pid = agent.pid.clone();
        self.send(
            &pid,
            &msg::StatusUpdateAcknowledgementMessage {
                slave_id: ack.agent_id.clone(),
                framework_id: v1::FrameworkId {
                    value: framework_id.to_string(),
                },
                task_id: ack.task_id.clone(),
                uuid: ack.uuid.clone(),
            },
        );
        // A task leaves the active set once its terminal update is acked.
        let max = self.config.max_completed_tasks_per_framework;
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            let done = framework.tasks.get(&task_id).is_some_and(|t| {
                t.status_update_uuid() == Some(&ack.uuid[..])
                    && t.status_update_state().is_some_and(is_terminal)
            });
            if done {
                if let Some(task) = framework.tasks.remove(&task_id) {
                    if let Some(agent) = self.agents.get_mut(&ack.agent_id.value) {
                        agent.tasks.remove(framework_id, &task_id);
                    }
                    framework.complete_task(task, max);
                }
            }
        }
    }

    fn reconcile(&mut self, framework_id: &str, reconcile: call::Reconcile) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let partition_aware = has_capability(
            &framework.info,
            v1::framework_info::capability::Type::PartitionAware,
        );
        let latest = |record: &TaskRecord| {
            let task = record.task();
            let mut status = task
                .statuses
                .last()
                .cloned()
                .unwrap_or_else(|| v1::TaskStatus {
                    task_id: task.task_id.clone(),
                    state: task.state,
                    agent_id: Some(task.agent_id.clone()),
                    executor_id: task.executor_id.clone(),
                    ..Default::default()
                });
            status.task_id = task.task_id.clone();
            status.agent_id = Some(task.agent_id.clone());
            status.executor_id = task.executor_id.clone();
            status.state = task.state;
            status.uuid = None;
            status.source = Some(v1::task_status::Source::Master as i32);
            status.reason = Some(Reason::Reconciliation as i32);
            status.message = Some("Reconciliation: Latest task state".into());
            status.timestamp = Some(now_secs());
            status
        };
        let mut statuses = Vec::new();
        if reconcile.tasks.is_empty() {
            statuses.extend(framework.tasks.values().map(&latest));
            statuses.extend(framework.unreachable_tasks.values().map(&latest));
        } else {
            for wanted in &reconcile.tasks {
                let id = &wanted.task_id.value;
                if let Some(task) = framework
                    .tasks
                    .get(id)
                    .or_else(|| framework.unreachable_tasks.get(id))
                {
                    statuses.push(latest(task));
                    continue;
                }
                let agent_id = wanted.agent_id.as_ref().map(|a| a.value.as_str());
                let (state, message) = match agent_id {
                    Some(a) if self.unreachable_agents.contains_key(a) => (
                        TaskState::TaskUnreachable,
                        "Reconciliation: Task is unreachable",
                    ),
                    Some(a) if self.recovered_agents.contains_key(a) => continue, // agent may still re-register
                    Some(a) if self.agents.contains_key(a) => (
                        if partition_aware {
                            TaskState::TaskGone
                        } else {
                            TaskState::TaskLost
                        },
                        "Reconciliation: Task is unknown to the agent",
                    ),
                    _ => (
                        if partition_aware {
                            TaskState::TaskUnknown
                        } else {
                            TaskState::TaskLost
                        },
                        "Reconciliation: Task is unknown",
                    ),
                };
                statuses.push(master_status(
                    id,
                    agent_id,
                    state,
                    Reason::Reconciliation,
                    message,
                ));
            }
        }
        for status in statuses {
            framework.send(&update_event(status));
        }
    }
}

fn launched_tasks(operation: &v1::offer::Operation) -> Vec<&v1::TaskInfo> {
    let mut tasks: Vec<&v1::TaskInfo> = Vec::new();
    if let Some(launch) = &operation.launch {
        tasks.extend(launch.task_infos.iter());
    }
    if let Some(group) = &operation.launch_group {
        tasks.extend(group.task_group.tasks.iter());
    }
    tasks
}
