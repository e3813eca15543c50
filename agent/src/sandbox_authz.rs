//! `access_sandboxes` for `/files/*`: which authorizer is in force on the
//! agent (`--acls`, else our secure default when the read-only realm is
//! authenticated, else none) and which user owns a sandbox path. It decides
//! nothing itself (the rules live in `mesos-acls`) and reads only the
//! checkpointed `executor.info` / `framework.info` of the executor whose
//! sandbox is asked for.
//!
//! Object of the check: the executor's command user, else its framework's
//! user (Mesos's `access_sandboxes` object). A path above any executor's
//! sandbox, or one whose executor's checkpoints are gone, is checked with
//! object ANY, so only an entry granting every user's sandboxes allows it.
//!
//! Without `--acls` the secure default denies every sandbox read with an
//! explanation naming the ACL to add; Mesos (no authorizer) allows it.

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

    /// Whether an authorizer is in force (otherwise every read is allowed
    /// and the sandbox's user need not be looked up).
    pub fn is_on(&self) -> bool {
        self.authorizer.is_some()
    }

    /// May `principal` read a sandbox of `user` (`None`: unknown, checked
    /// as ANY)? 403 with the explanation if not.
    pub fn check(&self, principal: Option<&str>, user: Option<&str>) -> Result<(), HttpError> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let request = Request {
            action: Action::AccessSandboxes,
            subject: principal,
            object: match user {
                Some(user) => Object::Value(user),
                None => Object::Any,
            },
        };
        let decision = authorizer.authorize(&request);
        if decision.is_allowed() {
            return Ok(());
        }
        let explanation = decision.explain(&request);
        let rule = format!("{:?}", decision.rule);
        let event = AuthzEvent {
            principal,
            action: Action::AccessSandboxes.as_str(),
            object: user,
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

/// The user owning the executor sandbox `canonical` lies in, from the
/// checkpoints (live executors only; the agent's memory also knows
/// completed ones, see [`crate::agent::AgentHandle::sandbox_user`]): the
/// executor's command user, else its framework's user, from the
/// checkpoints under `<root>/../meta`. `None` above an executor's sandbox
/// or when the checkpoints cannot be read.
pub fn sandbox_user(root: &Path, canonical: &Path) -> Option<String> {
    let (agent_id, framework_id, executor_id) = sandbox_ids(root, canonical)?;
    let layout = Layout::new(root.parent()?);
    let executor: Option<v1::ExecutorInfo> =
        checkpoint::read_message(&layout.executor_info(agent_id, framework_id, executor_id))
            .ok()
            .flatten();
    if let Some(user) = executor
        .as_ref()
        .and_then(|e| e.command.as_ref())
        .and_then(|c| c.user.clone())
    {
        return Some(user);
    }
    let framework: v1::FrameworkInfo =
        checkpoint::read_message(&layout.framework_info(agent_id, framework_id))
            .ok()
            .flatten()?;
    // An executor whose own checkpoint is gone is not attributed.
    executor.map(|_| framework.user)
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
    fn sandbox_user_is_the_executor_user_else_the_framework_user() {
        let (_dir, root) = setup(Some("bob"));
        let stdout = root.join("S/frameworks/F/executors/E/runs/C/stdout");
        assert_eq!(sandbox_user(&root, &stdout).as_deref(), Some("bob"));
        let (_dir, root) = setup(None);
        let stdout = root.join("S/frameworks/F/executors/E/runs/C/stdout");
        assert_eq!(sandbox_user(&root, &stdout).as_deref(), Some("alice"));
        // Above an executor, or an unknown executor: no user.
        assert_eq!(sandbox_user(&root, &root.join("S/frameworks/F")), None);
        assert_eq!(
            sandbox_user(&root, &root.join("S/frameworks/F/executors/X/runs")),
            None
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
        let user = sandbox_user(&root, &stdout);
        assert!(authz.check(Some("ops"), user.as_deref()).is_ok());
        let denied = authz
            .check(Some("eve"), user.as_deref())
            .expect_err("eve may not");
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert!(
            denied.message.contains("access_sandboxes"),
            "{}",
            denied.message
        );
        // Object ANY above the sandboxes: only an ANY-users entry allows it.
        assert!(authz
            .check(Some("ops"), sandbox_user(&root, &root.join("S")).as_deref())
            .is_err());
        // The secure default denies and says what to add.
        let default = SandboxAuthz::with_authorizer(Arc::new(mesos_acls::DefaultAuthorizer));
        let denied = default
            .check(Some("ops"), user.as_deref())
            .expect_err("default denies");
        assert!(
            denied.message.contains("to allow it, add"),
            "{}",
            denied.message
        );
    }
}
