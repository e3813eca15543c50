//! The secure default policy, used when `--acls` is not given (Mesos would
//! allow everything then; we do not). It is a fixed function, not ACLs:
//! "a role in your own name space" cannot be written as a Mesos ACL.
//!
//! Rules, each named in [`Rule::Default`]:
//! * `register-frameworks-default-role`: anyone, authenticated or not, may
//!   register a framework with role `*`.
//! * `register-frameworks-own-namespace`: principal `p` may register with role
//!   `p` or any role nested under it (`p/...`).
//! * `register-frameworks-other-role`: any other role (another principal's,
//!   or any role for an unauthenticated request) is denied.
//! * `run-tasks-non-root`: tasks may run as any named user except `root`;
//!   an empty or unknown user (the agent would fall back to its own user,
//!   usually root) is denied by `run-tasks-as-root`.
//! * `own-frameworks`: a principal may view (`view_frameworks`,
//!   `view_tasks`, `view_executors`), tear down (`teardown_frameworks`) and
//!   read the sandboxes (`access_sandboxes`) of the frameworks it
//!   registered itself, whatever user they run as; asked through
//!   [`Authorizer::authorize_owned`] with the framework's authenticated
//!   principal as the owner.
//! * `not-own-framework`: those actions on anything else (another
//!   principal's framework, or one whose owner is unknown) are denied.
//! * `deny-by-default`: every other request is denied; the explanation names
//!   the ACL to add (with `--acls`).
//!
//! The master runs unauthenticated only under `--insecure`, where it may skip
//! authorization entirely; if it does ask, an unauthenticated request gets
//! only `*`.

use crate::action::Action;
use crate::eval::{Authorizer, Decision, Object, Request, Rule};

/// Name of the rule allowing role `*` for everyone.
pub const RULE_DEFAULT_ROLE: &str = "register-frameworks-default-role";
/// Name of the rule allowing a principal its own role name space.
pub const RULE_OWN_NAMESPACE: &str = "register-frameworks-own-namespace";
/// Name of the rule denying every other role.
pub const RULE_OTHER_ROLE: &str = "register-frameworks-other-role";
/// Name of the rule allowing tasks as non-root users.
pub const RULE_NON_ROOT: &str = "run-tasks-non-root";
/// Name of the rule denying tasks as root or an unknown user.
pub const RULE_ROOT: &str = "run-tasks-as-root";
/// Name of the rule allowing a principal its own frameworks.
pub const RULE_OWN_FRAMEWORKS: &str = "own-frameworks";
/// Name of the rule denying those actions on other principals' frameworks.
pub const RULE_NOT_OWN_FRAMEWORK: &str = "not-own-framework";
/// Name of the rule denying everything else.
pub const RULE_DENY: &str = "deny-by-default";
/// `reserve_resources` and `create_volumes` in the principal's own role
/// namespace (its name and the roles below it).
pub const RULE_RESERVE_OWN_NAMESPACE: &str = "reserve-in-own-namespace";
/// `reserve_resources` and `create_volumes` in any other role.
pub const RULE_RESERVE_OTHER_ROLE: &str = "reserve-other-role";
/// Unreserving, destroying, resizing and using the principal's own
/// reservations and volumes.
pub const RULE_OWN_RESOURCES: &str = "own-reservations-and-volumes";
/// The same actions on another principal's reservations and volumes.
pub const RULE_NOT_OWN_RESOURCES: &str = "not-own-reservation-or-volume";

/// Actions on a reservation or volume that its creator may always take.
pub const RESOURCE_OWNER_ACTIONS: &[Action] = &[
    Action::UnreserveResources,
    Action::DestroyVolumes,
    Action::ResizeVolumes,
    Action::UseVolumes,
];

/// The actions a framework's own principal is granted on it.
pub const OWNER_ACTIONS: &[Action] = &[
    Action::ViewFrameworks,
    Action::ViewTasks,
    Action::ViewExecutors,
    Action::TeardownFrameworks,
    Action::AccessSandboxes,
];

/// The secure default policy (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultAuthorizer;

impl Authorizer for DefaultAuthorizer {
    fn authorize(&self, request: &Request) -> Decision {
        match (request.action, request.object) {
            (Action::Unknown, _) => Decision::new(false, Rule::UnknownAction),
            (Action::RegisterFrameworks, Object::Value("*")) => {
                Decision::new(true, Rule::Default(RULE_DEFAULT_ROLE))
            }
            (Action::RegisterFrameworks, Object::Value(role)) => match request.subject {
                Some(p) if in_namespace(p, role) => {
                    Decision::new(true, Rule::Default(RULE_OWN_NAMESPACE))
                }
                _ => Decision::new(false, Rule::Default(RULE_OTHER_ROLE)),
            },
            (Action::RegisterFrameworks, Object::Any) => {
                Decision::new(false, Rule::Default(RULE_OTHER_ROLE))
            }
            (Action::RunTasks, Object::Value(user)) if !user.is_empty() && user != "root" => {
                Decision::new(true, Rule::Default(RULE_NON_ROOT))
            }
            (Action::RunTasks, _) => Decision::new(false, Rule::Default(RULE_ROOT)),
            (Action::ReserveResources | Action::CreateVolumes, Object::Value(role)) => {
                match request.subject {
                    Some(p) if in_namespace(p, role) => {
                        Decision::new(true, Rule::Default(RULE_RESERVE_OWN_NAMESPACE))
                    }
                    _ => Decision::new(false, Rule::Default(RULE_RESERVE_OTHER_ROLE)),
                }
            }
            (Action::ReserveResources | Action::CreateVolumes, Object::Any) => {
                Decision::new(false, Rule::Default(RULE_RESERVE_OTHER_ROLE))
            }
            (action, _) if RESOURCE_OWNER_ACTIONS.contains(&action) => {
                Decision::new(false, Rule::Default(RULE_NOT_OWN_RESOURCES))
            }
            (action, _) if OWNER_ACTIONS.contains(&action) => {
                Decision::new(false, Rule::Default(RULE_NOT_OWN_FRAMEWORK))
            }
            _ => Decision::new(false, Rule::Default(RULE_DENY)),
        }
    }

    fn authorize_owned(&self, request: &Request, owner: Option<&str>) -> Decision {
        match (request.subject, owner) {
            (Some(subject), Some(owner))
                if !subject.is_empty()
                    && subject == owner
                    && OWNER_ACTIONS.contains(&request.action) =>
            {
                Decision::new(true, Rule::Default(RULE_OWN_FRAMEWORKS))
            }
            (Some(subject), Some(owner))
                if !subject.is_empty()
                    && subject == owner
                    && RESOURCE_OWNER_ACTIONS.contains(&request.action) =>
            {
                Decision::new(true, Rule::Default(RULE_OWN_RESOURCES))
            }
            _ => self.authorize(request),
        }
    }

    /// A framework subscribing with no roles asks for nothing; allowed under
    /// the name-space rule. Any other action with no object is denied.
    fn authorize_no_objects(&self, action: Action, _subject: Option<&str>) -> Decision {
        match action {
            Action::RegisterFrameworks => Decision::new(true, Rule::Default(RULE_OWN_NAMESPACE)),
            Action::Unknown => Decision::new(false, Rule::UnknownAction),
            _ => Decision::new(false, Rule::Default(RULE_DENY)),
        }
    }
}

fn in_namespace(principal: &str, role: &str) -> bool {
    !principal.is_empty()
        && role
            .strip_prefix(principal)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Outcome;

    fn ask(action: Action, subject: Option<&str>, object: Object) -> Decision {
        DefaultAuthorizer.authorize(&Request {
            action,
            subject,
            object,
        })
    }

    #[test]
    fn principal_registers_with_star_and_its_own_namespace_only() {
        let rf = Action::RegisterFrameworks;
        assert_eq!(
            ask(rf, Some("alice"), Object::Value("*")).rule,
            Rule::Default(RULE_DEFAULT_ROLE)
        );
        for role in ["alice", "alice/web", "alice/web/x"] {
            let d = ask(rf, Some("alice"), Object::Value(role));
            assert_eq!(
                d,
                Decision::new(true, Rule::Default(RULE_OWN_NAMESPACE)),
                "{role}"
            );
        }
        for role in ["bob", "alicex", "bob/alice", "ali"] {
            let d = ask(rf, Some("alice"), Object::Value(role));
            assert_eq!(
                d,
                Decision::new(false, Rule::Default(RULE_OTHER_ROLE)),
                "{role}"
            );
        }
    }

    #[test]
    fn unauthenticated_request_gets_only_the_star_role() {
        let rf = Action::RegisterFrameworks;
        assert!(ask(rf, None, Object::Value("*")).is_allowed());
        assert!(!ask(rf, None, Object::Value("alice")).is_allowed());
        assert!(!ask(rf, Some(""), Object::Value("/x")).is_allowed());
    }

    #[test]
    fn a_principal_reserves_in_its_namespace_and_manages_only_its_own_volumes() {
        for role in ["alice", "alice/db"] {
            for action in [Action::ReserveResources, Action::CreateVolumes] {
                assert!(ask(action, Some("alice"), Object::Value(role)).is_allowed());
            }
        }
        assert_eq!(
            ask(
                Action::ReserveResources,
                Some("alice"),
                Object::Value("bob")
            )
            .rule,
            Rule::Default(RULE_RESERVE_OTHER_ROLE)
        );
        for action in RESOURCE_OWNER_ACTIONS {
            let own = DefaultAuthorizer.authorize_owned(
                &Request {
                    action: *action,
                    subject: Some("alice"),
                    object: Object::Value("alice"),
                },
                Some("alice"),
            );
            assert_eq!(own, Decision::new(true, Rule::Default(RULE_OWN_RESOURCES)));
            let other = DefaultAuthorizer.authorize_owned(
                &Request {
                    action: *action,
                    subject: Some("bob"),
                    object: Object::Value("alice"),
                },
                Some("alice"),
            );
            assert_eq!(
                other,
                Decision::new(false, Rule::Default(RULE_NOT_OWN_RESOURCES))
            );
        }
    }

    #[test]
    fn tasks_run_only_as_a_named_non_root_user() {
        assert!(ask(Action::RunTasks, Some("a"), Object::Value("nobody")).is_allowed());
        for obj in [Object::Value("root"), Object::Value(""), Object::Any] {
            assert_eq!(
                ask(Action::RunTasks, Some("a"), obj).rule,
                Rule::Default(RULE_ROOT)
            );
        }
    }

    fn ask_owned(action: Action, subject: Option<&str>, owner: Option<&str>) -> Decision {
        DefaultAuthorizer.authorize_owned(
            &Request {
                action,
                subject,
                object: Object::Value("nobody"),
            },
            owner,
        )
    }

    #[test]
    fn a_principal_may_view_tear_down_and_read_its_own_frameworks() {
        for action in OWNER_ACTIONS {
            assert_eq!(
                ask_owned(*action, Some("fw"), Some("fw")),
                Decision::new(true, Rule::Default(RULE_OWN_FRAMEWORKS)),
                "{action}"
            );
        }
    }

    #[test]
    fn another_principals_framework_is_denied_naming_the_rule_and_the_acl() {
        for action in OWNER_ACTIONS {
            for (subject, owner) in [
                (Some("other"), Some("fw")),
                (Some("fw"), None),
                (None, None),
                (Some(""), Some("")),
            ] {
                assert_eq!(
                    ask_owned(*action, subject, owner),
                    Decision::new(false, Rule::Default(RULE_NOT_OWN_FRAMEWORK)),
                    "{action} by {subject:?} on {owner:?}'s"
                );
            }
        }
        let request = Request {
            action: Action::ViewFrameworks,
            subject: Some("other"),
            object: Object::Value("nobody"),
        };
        let decision = DefaultAuthorizer.authorize_owned(&request, Some("fw"));
        assert_eq!(
            decision.explain(&request),
            "principal 'other' denied to view_frameworks on users 'nobody' by the default policy rule 'not-own-framework' (no --acls given); to allow it, add {\"principals\":{\"values\":[\"other\"]},\"users\":{\"values\":[\"nobody\"]}} to \"view_frameworks\""
        );
    }

    #[test]
    fn ownership_grants_nothing_beyond_the_owner_actions() {
        for action in [Action::ViewFlags, Action::GetEndpoints, Action::ViewRoles] {
            assert_eq!(
                ask_owned(action, Some("fw"), Some("fw")).outcome,
                Outcome::Denied,
                "{action}"
            );
        }
        // Tasks as root stay denied for a framework's own principal.
        let request = Request {
            action: Action::RunTasks,
            subject: Some("fw"),
            object: Object::Value("root"),
        };
        assert!(!DefaultAuthorizer
            .authorize_owned(&request, Some("fw"))
            .is_allowed());
    }

    #[test]
    fn everything_else_is_denied_with_the_acl_to_add() {
        let req = Request {
            action: Action::ViewFlags,
            subject: Some("ops"),
            object: Object::Any,
        };
        let d = DefaultAuthorizer.authorize(&req);
        assert_eq!(d.outcome, Outcome::Denied);
        assert_eq!(
            d.explain(&req),
            "principal 'ops' denied to view_flags (any object) by the default policy rule 'deny-by-default' (no --acls given); to allow it, add {\"principals\":{\"values\":[\"ops\"]},\"flags\":{\"type\":\"ANY\"}} to \"view_flags\""
        );
    }
}
