//! Authorization at the master's decision points: which authorizer is in
//! force, the checks the state machine makes (register_frameworks,
//! run_tasks, teardown_frameworks) with Mesos's failure texts plus the
//! rule that decided, and the per-request view filters of the read
//! endpoints. Every denial, and every allowed register_frameworks,
//! run_tasks and teardown_frameworks, goes to `--audit_log`. The rules
//! themselves live in the `mesos-acls` crate.

use std::sync::Arc;

use mesos_acls::{Action, Authorizer, Decision, Object, Request, ViewFilter};
use mesos_common::auth::audit::{AuditLog, AuthzEvent, Outcome as AuditOutcome};
use mesos_proto::v1;

use super::task::TaskRecord;
use super::Framework;

/// The authorizer in force, if any: `--acls` (casbin), our secure default
/// when authentication is on and no `--acls` is given, or none under
/// `--insecure` without `--acls` (everything allowed, as in Mesos), and
/// the audit log its decisions go to.
#[derive(Clone)]
pub struct Authz {
    authorizer: Option<Arc<dyn Authorizer>>,
    audit: AuditLog,
}

impl Default for Authz {
    fn default() -> Self {
        Authz::new(None, AuditLog::disabled())
    }
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.authorizer.is_some() {
            "Authz(on)"
        } else {
            "Authz(off)"
        })
    }
}

/// A denial and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Which rule decided and what to add to allow it.
    pub explanation: String,
}

/// Actions whose allowed decisions are audited too: they change state.
const AUDIT_ALLOWED: &[Action] = &[
    Action::RegisterFrameworks,
    Action::RunTasks,
    Action::TeardownFrameworks,
];

impl Authz {
    /// `authorizer` (none: everything allowed), auditing to `audit`.
    pub fn new(authorizer: Option<Arc<dyn Authorizer>>, audit: AuditLog) -> Self {
        Authz { authorizer, audit }
    }

    /// The authorizer in force, if any.
    pub fn authorizer(&self) -> Option<&Arc<dyn Authorizer>> {
        self.authorizer.as_ref()
    }

    /// Decides one request; `Ok` when allowed or when no authorizer is in
    /// force.
    pub fn check(
        &self,
        action: Action,
        subject: Option<&str>,
        object: Object,
    ) -> Result<(), Denied> {
        self.check_owned(action, subject, object, None)
    }

    /// [`Authz::check`] about something of a framework registered by
    /// `owner` ([`Authorizer::authorize_owned`]).
    pub fn check_owned(
        &self,
        action: Action,
        subject: Option<&str>,
        object: Object,
        owner: Option<&str>,
    ) -> Result<(), Denied> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let request = Request {
            action,
            subject,
            object,
        };
        let decision = authorizer.authorize_owned(&request, owner);
        self.decided(&request, decision)
    }

    /// Whether a read may include something (`view_flags` inside
    /// `/master/state`): like the view filters, not audited or logged, so
    /// a reader polling the state does not flood the log.
    pub fn may(&self, action: Action, subject: Option<&str>, object: Object) -> bool {
        match &self.authorizer {
            None => true,
            Some(authorizer) => authorizer
                .authorize(&Request {
                    action,
                    subject,
                    object,
                })
                .is_allowed(),
        }
    }

    /// Audits `decision` and turns it into a result.
    fn decided(&self, request: &Request, decision: Decision) -> Result<(), Denied> {
        let object = match request.object {
            Object::Any => None,
            Object::Value(v) => Some(v),
        };
        let rule = format!("{:?}", decision.rule);
        if decision.is_allowed() {
            if AUDIT_ALLOWED.contains(&request.action) {
                self.audit.record_authorization(&AuthzEvent {
                    principal: request.subject,
                    action: request.action.as_str(),
                    object,
                    outcome: AuditOutcome::Success,
                    rule: &rule,
                    reason: None,
                });
            }
            Ok(())
        } else {
            let explanation = decision.explain(request);
            self.audit.record_authorization(&AuthzEvent {
                principal: request.subject,
                action: request.action.as_str(),
                object,
                outcome: AuditOutcome::Failure,
                rule: &rule,
                reason: Some(&explanation),
            });
            Err(Denied { explanation })
        }
    }

    /// `register_frameworks`: every role of the framework must be allowed.
    pub fn register_framework(
        &self,
        principal: Option<&str>,
        roles: &[String],
    ) -> Result<(), Denied> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        for role in roles {
            self.check(Action::RegisterFrameworks, principal, Object::Value(role))?;
        }
        if roles.is_empty() {
            let decision = authorizer.authorize_no_objects(Action::RegisterFrameworks, principal);
            let request = Request {
                action: Action::RegisterFrameworks,
                subject: principal,
                object: Object::Any,
            };
            self.decided(&request, decision)?;
        }
        Ok(())
    }

    /// `destroy_volumes`, `resize_volumes` or `use_volumes` on a volume
    /// created by `creator` (`object` is what the ACL entries match: the
    /// creator, or the role for `resize_volumes`). The creator always may.
    /// Anyone else needs an ACL entry (or a rule of the secure default)
    /// that allows it: `"permissive": true` does not hand one principal's
    /// volumes to another. `audit`: false for the offer filter, which asks
    /// on every allocation.
    pub fn check_volume(
        &self,
        action: Action,
        subject: Option<&str>,
        object: Object,
        creator: Option<&str>,
        audit: bool,
    ) -> Result<(), Denied> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let request = Request {
            action,
            subject,
            object,
        };
        let mut decision = authorizer.authorize_owned(&request, creator);
        let is_creator =
            matches!((subject, creator), (Some(s), Some(c)) if !s.is_empty() && s == c);
        if is_creator {
            decision = Decision {
                outcome: mesos_acls::Outcome::Allowed,
                rule: mesos_acls::Rule::Default(mesos_acls::RULE_OWN_RESOURCES),
            };
        }
        let permissive_only = matches!(
            decision.rule,
            mesos_acls::Rule::NoMatch { permissive: true }
        );
        if decision.is_allowed() && permissive_only && creator.is_some() {
            let creator = creator.unwrap_or_default();
            let who = subject.map_or("an unauthenticated request".to_string(), |p| {
                format!("principal '{p}'")
            });
            let explanation = format!(
                r#"{who} denied to {action} on a volume created by '{creator}': volumes belong to their creator, and "permissive" does not extend to another principal's volumes; to allow it, add {{"principals":{{"values":["{}"]}},"{}":{{"values":["{}"]}}}} to "{action}""#,
                subject.unwrap_or_default(),
                action.object_key(),
                match object {
                    Object::Value(v) => v,
                    Object::Any => creator,
                },
            );
            if audit {
                self.audit.record_authorization(&AuthzEvent {
                    principal: subject,
                    action: action.as_str(),
                    object: Some(creator),
                    outcome: AuditOutcome::Failure,
                    rule: "volume-owner-only",
                    reason: Some(&explanation),
                });
            }
            return Err(Denied { explanation });
        }
        if audit {
            self.decided(&request, decision)
        } else if decision.is_allowed() {
            Ok(())
        } else {
            Err(Denied {
                explanation: decision.explain(&request),
            })
        }
    }

    /// `run_tasks` as `user` (Mesos: the task's command user, else the
    /// executor's, else the framework's).
    pub fn run_task(&self, principal: Option<&str>, user: &str) -> Result<(), Denied> {
        self.check(Action::RunTasks, principal, Object::Value(user))
    }

    /// A view filter for one request.
    pub fn viewer<'a>(&'a self, principal: Option<&'a str>) -> Viewer<'a> {
        Viewer {
            frameworks: self
                .authorizer
                .as_deref()
                .map(|a| ViewFilter::new(a, principal, Action::ViewFrameworks)),
            tasks: self
                .authorizer
                .as_deref()
                .map(|a| ViewFilter::new(a, principal, Action::ViewTasks)),
            executors: self
                .authorizer
                .as_deref()
                .map(|a| ViewFilter::new(a, principal, Action::ViewExecutors)),
        }
    }
}

/// The user a task runs as, as Mesos picks it.
pub fn task_user<'a>(task: &'a v1::TaskInfo, framework_user: &'a str) -> &'a str {
    task.command
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .or_else(|| {
            task.executor
                .as_ref()
                .and_then(|e| e.command.as_ref())
                .and_then(|c| c.user.as_deref())
        })
        .unwrap_or(framework_user)
}

/// What one reader of the read endpoints may see (view_frameworks on the
/// framework's user, view_tasks on the task's user or else the
/// framework's, view_executors likewise), with the framework's
/// authenticated principal as the owner ([`Authorizer::authorize_owned`]:
/// under the secure default a principal sees its own frameworks).
/// Decisions are memoized per distinct user and owner, so filtering many
/// tasks costs a few checks.
pub struct Viewer<'a> {
    frameworks: Option<ViewFilter<'a>>,
    tasks: Option<ViewFilter<'a>>,
    executors: Option<ViewFilter<'a>>,
}

fn allows(filter: &mut Option<ViewFilter>, user: &str, owner: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(filter) => filter.allows_owned(Object::Value(user), owner),
    }
}

impl Viewer<'_> {
    /// May the reader see this framework?
    pub fn framework(&mut self, framework: &Framework) -> bool {
        self.framework_of_user(&framework.info.user, framework.principal.as_deref())
    }

    /// May the reader see a framework whose user is `user`, registered by
    /// `owner`?
    pub fn framework_of_user(&mut self, user: &str, owner: Option<&str>) -> bool {
        allows(&mut self.frameworks, user, owner)
    }

    /// May the reader see every framework and task (what it is shown when
    /// the master can no longer say whose a task was)?
    pub fn everything(&mut self) -> bool {
        let frameworks = match &mut self.frameworks {
            None => true,
            Some(filter) => filter.allows(Object::Any),
        };
        frameworks
            && match &mut self.tasks {
                None => true,
                Some(filter) => filter.allows(Object::Any),
            }
    }

    /// May the reader see a task running as `user` of a framework
    /// registered by `owner`?
    pub fn task_of_user(&mut self, user: &str, owner: Option<&str>) -> bool {
        allows(&mut self.tasks, user, owner)
    }

    /// May the reader see this task of `framework`?
    pub fn task(&mut self, framework: &Framework, task: &v1::Task) -> bool {
        let user = task.user.as_deref().unwrap_or(&framework.info.user);
        allows(&mut self.tasks, user, framework.principal.as_deref())
    }

    /// [`Viewer::task`] for a stored task, without decoding it.
    pub fn task_record(&mut self, framework: &Framework, task: &TaskRecord) -> bool {
        let user = task.user().unwrap_or(&framework.info.user);
        allows(&mut self.tasks, user, framework.principal.as_deref())
    }

    /// May the reader see this executor of `framework`?
    pub fn executor(&mut self, framework: &Framework, executor: &v1::ExecutorInfo) -> bool {
        let user = executor
            .command
            .as_ref()
            .and_then(|c| c.user.as_deref())
            .unwrap_or(&framework.info.user);
        allows(&mut self.executors, user, framework.principal.as_deref())
    }
}
