//! `access_sandboxes` for `/files/*` (and `get_endpoints` for
//! `/metrics/snapshot`): which authorizer is in force on the
//! agent (`--acls`, else our secure default when the read-only realm is
//! authenticated, else none) and which user owns a sandbox path. It decides
//! nothing itself (the rules live in `mesos-acls`) and reads only the
//! checkpointed `executor.info` / `framework.info` of the executor whose
//! sandbox is asked for.
//!
//! Object of the check: the executor's command user, else its framework's
//! user (Mesos's `access_sandboxes` object); the framework's principal is
//! its owner ([`Authorizer::authorize_owned`]), so under the secure default
//! a principal reads the sandboxes of its own frameworks. A path above any executor's
//! sandbox, or one whose executor's checkpoints are gone, is checked with
//! object ANY, so only an entry granting every user's sandboxes allows it.
//!
//! Without `--acls` the secure default denies every other sandbox read with
//! an explanation naming the ACL to add; Mesos (no authorizer) allows it.

use std::path::{Component, Path};
use std::sync::Arc;

use http::StatusCode;
use mesos_acls::{Action, Authorizer, Object, Request};
use mesos_common::auth::audit::{AuditLog, AuthzEvent, Outcome};
use mesos_common::http::HttpError;
use mesos_proto::v1;

use crate::checkpoint;
use crate::paths::Layout;

/// The authorizer in force for sandboxes and where its denials are audited.
#[derive(Clone, Default)]
pub struct SandboxAuthz {
    authorizer: Option<Arc<dyn Authorizer>>,
    audit: Option<AuditLog>,
    /// `--acls` and its authorizer, for reloading on SIGHUP.
    reloadable: Option<(String, Arc<mesos_acls::CasbinAuthorizer>)>,
}

impl std::fmt::Debug for SandboxAuthz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.authorizer.is_some() {
            "SandboxAuthz(on)"
        } else {
            "SandboxAuthz(off)"
        })
    }
}

impl SandboxAuthz {
    /// `--acls` (JSON or a path) if given; else the secure default when
    /// `authenticated`; else no authorizer. `Err` is one line for the
    /// operator.
    pub fn from_flags(
        acls: Option<&str>,
        authenticated: bool,
        audit: AuditLog,
    ) -> Result<Self, String> {
        let mut reloadable = None;
        let authorizer: Option<Arc<dyn Authorizer>> = match acls {
            Some(value) => {
                let parsed =
                    mesos_acls::Acls::from_flag(value).map_err(|e| format!("--acls: {e}"))?;
                for warning in &parsed.warnings {
                    tracing::warn!("--acls: {warning}");
                }
                let authorizer = mesos_acls::CasbinAuthorizer::new_blocking(&parsed.acls)
                    .map_err(|e| format!("--acls: {e}"))?;
                tracing::info!(
                    entries = parsed.acls.len(),
                    "authorizing sandbox access with --acls"
                );
                let authorizer = Arc::new(authorizer);
                reloadable = Some((value.to_string(), authorizer.clone()));
                Some(authorizer)
            }
            None if authenticated => {
                tracing::info!("no --acls: sandboxes (/files) are readable by nobody (secure default; grant access_sandboxes with --acls)");
                Some(Arc::new(mesos_acls::DefaultAuthorizer))
            }
            None => {
                tracing::warn!(
                    "SECURITY: no --acls and no HTTP authentication: every sandbox is readable"
                );
                None
            }
        };
        Ok(SandboxAuthz {
            authorizer,
            audit: Some(audit),
            reloadable,
        })
    }

    /// Re-reads `--acls` on every SIGHUP (inside a tokio runtime); a bad
    /// file keeps the ACLs in force. Nothing to do without `--acls`.
    pub fn reload_on_sighup(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let Some((value, authorizer)) = self.reloadable.clone() else {
            return;
        };
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: --acls will not reload");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let parsed = match mesos_acls::Acls::from_flag(&value) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        tracing::warn!("SIGHUP: keeping the current ACLs: {e}");
                        continue;
                    }
                };
                for warning in &parsed.warnings {
                    tracing::warn!("--acls: {warning}");
                }
                match authorizer.reload(&parsed.acls).await {
                    Ok(()) => {
                        tracing::info!(entries = parsed.acls.len(), "SIGHUP: reloaded --acls")
                    }
                    Err(e) => tracing::warn!("SIGHUP: keeping the current ACLs: {e}"),
                }
            }
        });
    }

    /// A fixed authorizer (tests).
    pub fn with_authorizer(authorizer: Arc<dyn Authorizer>) -> Self {
        SandboxAuthz {
            authorizer: Some(authorizer),
            audit: None,
            reloadable: None,
        }
    }

    /// The authorizer in force, if any (for filtering `/state`).
    pub fn authorizer(&self) -> Option<Arc<dyn Authorizer>> {
        self.authorizer.clone()
    }

    /// Whether an authorizer is in force (otherwise every read is allowed
    /// and the sandbox's user need not be looked up).
    pub fn is_on(&self) -> bool {
        self.authorizer.is_some()
    }

    /// May `principal` read a sandbox owned by `owner` (`None`: unknown,
    /// checked as ANY with no owner)? 403 with the explanation if not.
    pub fn check(
        &self,
        principal: Option<&str>,
        owner: Option<&SandboxOwner>,
    ) -> Result<(), HttpError> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let user = owner.map(|o| o.user.as_str());
        let request = Request {
            action: Action::AccessSandboxes,
            subject: principal,
            object: match user {
                Some(user) => Object::Value(user),
                None => Object::Any,
            },
        };
        let decision =
            authorizer.authorize_owned(&request, owner.and_then(|o| o.principal.as_deref()));
        self.decided(&request, decision)
    }

    /// `get_endpoints` on `path` (`/metrics/snapshot`), as the master
    /// checks it. 403 with the explanation if denied.
    pub fn check_endpoint(&self, principal: Option<&str>, path: &str) -> Result<(), HttpError> {
        self.check_action(Action::GetEndpoints, principal, Object::Value(path))
    }

    /// `view_flags` (`/flags`), as Mesos's agent checks it.
    pub fn check_view_flags(&self, principal: Option<&str>) -> Result<(), HttpError> {
        self.check_action(Action::ViewFlags, principal, Object::Any)
    }

    fn check_action(
        &self,
        action: Action,
        principal: Option<&str>,
        object: Object,
    ) -> Result<(), HttpError> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let request = Request {
            action,
            subject: principal,
            object,
        };
        let decision = authorizer.authorize(&request);
        self.decided(&request, decision)
    }

    /// Audits a denial and turns the decision into a result.
    fn decided(&self, request: &Request, decision: mesos_acls::Decision) -> Result<(), HttpError> {
        if decision.is_allowed() {
            return Ok(());
        }
        let principal = request.subject;
        let explanation = decision.explain(request);
        let rule = format!("{:?}", decision.rule);
        let event = AuthzEvent {
            principal,
            action: request.action.as_str(),
            object: match request.object {
                Object::Value(v) => Some(v),
                Object::Any => None,
            },
            outcome: Outcome::Failure,
            rule: &rule,
            reason: Some(&explanation),
        };
        match &self.audit {
            Some(audit) => audit.record_authorization(&event),
            None => tracing::warn!(principal, "denied: {explanation}"),
        }
        Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("403 Forbidden. {explanation}"),
        ))
    }
}

/// Whose an executor's sandbox is: the user it runs as and the principal
/// that registered its framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOwner {
    /// The executor's command user, else its framework's user.
    pub user: String,
    /// `FrameworkInfo.principal` (set by the master to the principal the
    /// scheduler authenticated as).
    pub principal: Option<String>,
}

/// `(agent_id, framework_id, executor_id)` of the executor sandbox
/// `canonical` (under `root`) lies in; `None` above any executor.
pub fn sandbox_ids<'a>(root: &Path, canonical: &'a Path) -> Option<(&'a str, &'a str, &'a str)> {
    let rest = canonical.strip_prefix(root).ok()?;
    let mut parts = rest.components().map(|c| match c {
        Component::Normal(s) => s.to_str(),
        _ => None,
    });
    let agent_id = parts.next()??;
    (parts.next()?? == "frameworks").then_some(())?;
    let framework_id = parts.next()??;
    (parts.next()?? == "executors").then_some(())?;
    let executor_id = parts.next()??;
    Some((agent_id, framework_id, executor_id))
}

/// The owner of the executor sandbox `canonical` lies in, from the
/// checkpoints (live executors only; the agent's memory also knows
/// completed ones, see [`crate::agent::AgentHandle::sandbox_owner`]): the
/// executor's command user, else its framework's user, and the framework's
/// principal, from the checkpoints under `<root>/../meta`. `None` above an
/// executor's sandbox or when the checkpoints cannot be read.
pub fn sandbox_owner(root: &Path, canonical: &Path) -> Option<SandboxOwner> {
    let (agent_id, framework_id, executor_id) = sandbox_ids(root, canonical)?;
    let layout = Layout::new(root.parent()?);
    let executor: Option<v1::ExecutorInfo> =
        checkpoint::read_message(&layout.executor_info(agent_id, framework_id, executor_id))
            .ok()
            .flatten();
    // An executor whose own checkpoint is gone is not attributed.
    let executor = executor?;
    let framework: Option<v1::FrameworkInfo> =
        checkpoint::read_message(&layout.framework_info(agent_id, framework_id))
            .ok()
            .flatten();
    let executor_user = executor.command.and_then(|c| c.user);
    match (executor_user, framework) {
        (Some(user), framework) => Some(SandboxOwner {
            user,
            principal: framework.and_then(|f| f.principal),
        }),
        (None, Some(framework)) => Some(SandboxOwner {
            user: framework.user,
            principal: framework.principal,
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(executor_user: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let sandbox = layout.sandbox("S", "F", "E", "C");
        std::fs::create_dir_all(&sandbox).expect("mkdir");
        std::fs::write(sandbox.join("stdout"), "hi").expect("write");
        let framework = v1::FrameworkInfo {
            user: "alice".into(),
            principal: Some("fw".into()),
            ..Default::default()
        };
        let path = layout.framework_info("S", "F");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        checkpoint::write_message(&path, &framework).expect("framework.info");
        let executor = v1::ExecutorInfo {
            command: Some(v1::CommandInfo {
                user: executor_user.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = layout.executor_info("S", "F", "E");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        checkpoint::write_message(&path, &executor).expect("executor.info");
        let root = layout.sandboxes_root().canonicalize().expect("root");
        (dir, root)
    }

    #[test]
    fn sandbox_owner_is_the_executor_user_else_the_framework_user_and_its_principal() {
        let (_dir, root) = setup(Some("bob"));
        let stdout = root.join("S/frameworks/F/executors/E/runs/C/stdout");
        assert_eq!(
            sandbox_owner(&root, &stdout).map(|o| o.user).as_deref(),
            Some("bob")
        );
        let (_dir, root) = setup(None);
        let stdout = root.join("S/frameworks/F/executors/E/runs/C/stdout");
        assert_eq!(
            sandbox_owner(&root, &stdout).map(|o| o.user).as_deref(),
            Some("alice")
        );
        // Above an executor, or an unknown executor: no user.
        assert_eq!(sandbox_owner(&root, &root.join("S/frameworks/F")), None);
        assert_eq!(
            sandbox_owner(&root, &root.join("S/frameworks/F/executors/X/runs")),
            None
        );
        assert_eq!(
            sandbox_owner(&root, &stdout).and_then(|o| o.principal),
            Some("fw".into())
        );
    }

    #[test]
    fn access_sandboxes_decides_on_the_sandbox_user() {
        let (_dir, root) = setup(None);
        let stdout = root.join("S/frameworks/F/executors/E/runs/C/stdout");
        let acls = mesos_acls::Acls::from_flag(
            r#"{"permissive":false,"access_sandboxes":[{"principals":{"values":["ops"]},"users":{"values":["alice"]}}]}"#,
        )
        .expect("acls");
        let authz = SandboxAuthz::with_authorizer(Arc::new(
            mesos_acls::CasbinAuthorizer::new_blocking(&acls.acls).expect("authorizer"),
        ));
        let owner = sandbox_owner(&root, &stdout);
        assert!(authz.check(Some("ops"), owner.as_ref()).is_ok());
        let denied = authz
            .check(Some("eve"), owner.as_ref())
            .expect_err("eve may not");
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert!(
            denied.message.contains("access_sandboxes"),
            "{}",
            denied.message
        );
        // Object ANY above the sandboxes: only an ANY-users entry allows it.
        assert!(authz
            .check(Some("ops"), sandbox_owner(&root, &root.join("S")).as_ref())
            .is_err());
        // The secure default denies and says what to add.
        let default = SandboxAuthz::with_authorizer(Arc::new(mesos_acls::DefaultAuthorizer));
        let denied = default
            .check(Some("ops"), owner.as_ref())
            .expect_err("default denies");
        assert!(
            denied.message.contains("'not-own-framework'")
                && denied.message.contains("to allow it, add"),
            "{}",
            denied.message
        );
        // ... but the framework's own principal reads its sandboxes.
        assert!(default.check(Some("fw"), owner.as_ref()).is_ok());
        // With --acls, owning the framework grants nothing by itself.
        assert!(authz.check(Some("fw"), owner.as_ref()).is_err());
    }
}
