//! Mesos's local-authorizer semantics as plain Rust: the request and decision
//! types, the `Authorizer` trait, and `DirectAuthorizer`, a direct evaluator
//! of the ordered ACL walk that the casbin authorizer is tested against.

use crate::acls::{recursive_prefix, Acl, Acls, Entity, EntityType};
use crate::action::{Action, ObjectKind};

/// The object of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object<'a> {
    /// Unknown or absent object (Mesos `ANY`), e.g. `view_flags`.
    Any,
    /// One object value: a role, a user, a principal, a path.
    Value(&'a str),
}

/// One authorization question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// What is being done.
    pub action: Action,
    /// The authenticated principal; `None` is Mesos's `ANY` subject.
    pub subject: Option<&'a str>,
    /// What it is done to.
    pub object: Object<'a>,
}

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request may proceed.
    Allowed,
    /// The request must be refused.
    Denied,
}

/// What decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Entry `index` (0-based) of `action`'s list in `--acls`.
    Acl {
        /// The action whose list held the entry.
        action: Action,
        /// The entry's index.
        index: usize,
    },
    /// No entry matched; `permissive` decided.
    NoMatch {
        /// The `permissive` value that applied.
        permissive: bool,
    },
    /// A rule of the secure default policy (see [`crate::DefaultAuthorizer`]).
    Default(&'static str),
    /// The action is not known; always denied (Mesos `UNKNOWN`).
    UnknownAction,
    /// The evaluator failed (casbin returned an error); fail closed.
    EvaluationError,
}

/// An answer and the rule that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or denied.
    pub outcome: Outcome,
    /// What decided.
    pub rule: Rule,
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    pub(crate) fn new(allowed: bool, rule: Rule) -> Self {
        Decision {
            outcome: if allowed {
                Outcome::Allowed
            } else {
                Outcome::Denied
            },
            rule,
        }
    }

    /// One sentence for an operator: which rule decided and, for a denial,
    /// the ACL entry that would allow the request.
    pub fn explain(&self, request: &Request) -> String {
        let who = match request.subject {
            Some(p) => format!("principal '{p}'"),
            None => "an unauthenticated request".to_string(),
        };
        let what = match request.object {
            Object::Any => format!("{} (any object)", request.action),
            Object::Value(v) => format!(
                "{} on {} '{v}'",
                request.action,
                request.action.object_key()
            ),
        };
        let verdict = if self.is_allowed() {
            "allowed"
        } else {
            "denied"
        };
        let rule = match self.rule {
            Rule::Acl { action, index } => format!("by entry #{index} of \"{action}\" in --acls"),
            Rule::NoMatch { permissive } => {
                format!(
                    "because no \"{}\" ACL matched and \"permissive\" is {permissive}",
                    request.action
                )
            }
            Rule::Default(name) => format!("by the default policy rule '{name}' (no --acls given)"),
            Rule::UnknownAction => "because the action is unknown".to_string(),
            Rule::EvaluationError => "because the authorizer failed to evaluate it".to_string(),
        };
        let mut out = format!("{who} {verdict} to {what} {rule}");
        if !self.is_allowed() && request.action != Action::Unknown {
            let placement = match self.rule {
                Rule::Acl { index, .. } => format!(" before entry #{index}"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "; to allow it, add {} to \"{}\"{placement}",
                suggested_acl(request),
                request.action
            ));
        }
        out
    }
}

/// The narrowest ACL entry that allows exactly this request.
fn suggested_acl(request: &Request) -> String {
    let principals = match request.subject {
        Some(p) => Entity::some([p]),
        None => Entity::any(),
    };
    let object = match request.object {
        Object::Value(v) => Entity::some([v]),
        Object::Any => Entity::any(),
    };
    // Written by hand so that "principals" comes first, as in Mesos's docs.
    format!(
        "{{\"principals\":{},\"{}\":{}}}",
        principals.to_json(),
        request.action.object_key(),
        object.to_json()
    )
}

/// Answers authorization requests.
pub trait Authorizer: Send + Sync {
    /// Decides one request.
    fn authorize(&self, request: &Request) -> Decision;

    /// Decides a request that carries no object at all, e.g. a MULTI_ROLE
    /// framework subscribing with an empty role list: Mesos answers with
    /// `permissive`.
    fn authorize_no_objects(&self, action: Action, subject: Option<&str>) -> Decision;

    /// Decides a request about something that belongs to a framework the
    /// principal `owner` registered (its tasks, executors, sandboxes, or
    /// the framework itself). Mesos's ACLs know no owners, so by default
    /// the owner is ignored; the secure default policy grants owners their
    /// own frameworks ([`crate::DefaultAuthorizer`]).
    fn authorize_owned(&self, request: &Request, owner: Option<&str>) -> Decision {
        let _ = owner;
        self.authorize(request)
    }
}

/// Checks every object (e.g. each role of a `FrameworkInfo` for
/// `register_frameworks`); returns the first denial, else the last decision.
/// No objects at all → [`Authorizer::authorize_no_objects`].
pub fn authorize_all<'a>(
    authz: &dyn Authorizer,
    action: Action,
    subject: Option<&'a str>,
    objects: impl IntoIterator<Item = Object<'a>>,
) -> Decision {
    let mut last = None;
    for object in objects {
        let decision = authz.authorize(&Request {
            action,
            subject,
            object,
        });
        if !decision.is_allowed() {
            return decision;
        }
        last = Some(decision);
    }
    last.unwrap_or_else(|| authz.authorize_no_objects(action, subject))
}

/// Mesos `matches(request, acl)` for a request entity that is `ANY` (`None`)
/// or `SOME` with one value, including the `/%` rule for role actions.
pub(crate) fn entity_matches(request: Option<&str>, acl: &Entity, hierarchical: bool) -> bool {
    match (acl.kind, request) {
        (EntityType::Any | EntityType::None, _) => true,
        (EntityType::Some, None) => false,
        (EntityType::Some, Some(v)) => acl.values.iter().any(|a| {
            a == v || (hierarchical && recursive_prefix(a).is_some_and(|p| v.starts_with(p)))
        }),
    }
}

/// Mesos `allows(request, acl)` for a request that `entity_matches` the
/// entry: everything but `NONE` allows a matching request.
pub(crate) fn entity_allows(request: Option<&str>, acl: &Entity) -> bool {
    match (acl.kind, request) {
        (EntityType::Any, _) => true,
        (EntityType::None, _) => false,
        (EntityType::Some, None) => false,
        (EntityType::Some, Some(_)) => true,
    }
}

/// The first entry of `entries` that matches, and whether it allows.
pub(crate) fn first_match(
    entries: &[Acl],
    action: Action,
    subject: Option<&str>,
    object: Object,
) -> Option<(usize, bool)> {
    let hierarchical = action.object_kind() == ObjectKind::Role;
    let object = match object {
        Object::Any => None,
        Object::Value(v) => Some(v),
    };
    entries.iter().enumerate().find_map(|(i, acl)| {
        (entity_matches(subject, &acl.principals, false)
            && entity_matches(object, &acl.object, hierarchical))
        .then(|| {
            (
                i,
                entity_allows(subject, &acl.principals) && entity_allows(object, &acl.object),
            )
        })
    })
}

/// The ordered-walk evaluator of Mesos's local authorizer, without casbin:
/// the baseline for benchmarks and the oracle for the property test.
#[derive(Debug, Clone)]
pub struct DirectAuthorizer {
    acls: Acls,
}

impl DirectAuthorizer {
    /// An evaluator of these ACLs.
    pub fn new(acls: Acls) -> Self {
        DirectAuthorizer { acls }
    }

    /// The ACLs evaluated.
    pub fn acls(&self) -> &Acls {
        &self.acls
    }
}

impl Authorizer for DirectAuthorizer {
    fn authorize(&self, request: &Request) -> Decision {
        if request.action == Action::Unknown {
            return Decision::new(false, Rule::UnknownAction);
        }
        match first_match(
            self.acls.entries(request.action),
            request.action,
            request.subject,
            request.object,
        ) {
            Some((index, allowed)) => Decision::new(
                allowed,
                Rule::Acl {
                    action: request.action,
                    index,
                },
            ),
            None => Decision::new(
                self.acls.permissive,
                Rule::NoMatch {
                    permissive: self.acls.permissive,
                },
            ),
        }
    }

    fn authorize_no_objects(&self, action: Action, _subject: Option<&str>) -> Decision {
        if action == Action::Unknown {
            return Decision::new(false, Rule::UnknownAction);
        }
        let permissive = self.acls.permissive;
        Decision::new(permissive, Rule::NoMatch { permissive })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(json: &str) -> DirectAuthorizer {
        DirectAuthorizer::new(Acls::parse(json).expect("valid ACLs").acls)
    }

    fn ask(
        a: &DirectAuthorizer,
        action: Action,
        subject: Option<&str>,
        object: Object,
    ) -> Decision {
        a.authorize(&Request {
            action,
            subject,
            object,
        })
    }

    #[test]
    fn none_principals_deny_everyone_for_the_role() {
        let a = direct(
            r#"{"register_frameworks": [{"principals": {"type": "NONE"}, "roles": {"values": ["prod"]}}]}"#,
        );
        let d = ask(
            &a,
            Action::RegisterFrameworks,
            Some("alice"),
            Object::Value("prod"),
        );
        assert_eq!(
            d,
            Decision::new(
                false,
                Rule::Acl {
                    action: Action::RegisterFrameworks,
                    index: 0
                }
            )
        );
        let d = ask(&a, Action::RegisterFrameworks, None, Object::Value("prod"));
        assert!(!d.is_allowed());
        let d = ask(
            &a,
            Action::RegisterFrameworks,
            Some("alice"),
            Object::Value("dev"),
        );
        assert_eq!(d, Decision::new(true, Rule::NoMatch { permissive: true }));
    }

    #[test]
    fn unauthenticated_request_falls_through_named_principals() {
        let a = direct(
            r#"{"permissive": false, "run_tasks": [
                {"principals": {"values": ["alice"]}, "users": {"type": "ANY"}},
                {"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}
            ]}"#,
        );
        let d = ask(&a, Action::RunTasks, None, Object::Value("nobody"));
        assert_eq!(
            d,
            Decision::new(
                true,
                Rule::Acl {
                    action: Action::RunTasks,
                    index: 1
                }
            )
        );
        let d = ask(&a, Action::RunTasks, None, Object::Value("root"));
        assert_eq!(d, Decision::new(false, Rule::NoMatch { permissive: false }));
    }

    #[test]
    fn recursive_role_matches_strictly_nested_roles_only() {
        let a = direct(
            r#"{"permissive": false, "register_frameworks": [
                {"principals": {"values": ["a"]}, "roles": {"values": ["eng/%"]}}
            ], "run_tasks": [
                {"principals": {"values": ["a"]}, "users": {"values": ["eng/%"]}}
            ]}"#,
        );
        for role in ["eng/a", "eng/a/b"] {
            assert!(ask(
                &a,
                Action::RegisterFrameworks,
                Some("a"),
                Object::Value(role)
            )
            .is_allowed());
        }
        for role in ["eng", "engx/a", "*"] {
            assert!(!ask(
                &a,
                Action::RegisterFrameworks,
                Some("a"),
                Object::Value(role)
            )
            .is_allowed());
        }
        // `/%` is literal for non-role actions.
        assert!(!ask(&a, Action::RunTasks, Some("a"), Object::Value("eng/a")).is_allowed());
        assert!(ask(&a, Action::RunTasks, Some("a"), Object::Value("eng/%")).is_allowed());
    }

    #[test]
    fn any_object_matches_only_any_or_none_entries() {
        let a = direct(
            r#"{"view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}},
                               {"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}]}"#,
        );
        assert!(ask(&a, Action::ViewFlags, Some("ops"), Object::Any).is_allowed());
        let d = ask(&a, Action::ViewFlags, Some("dev"), Object::Any);
        assert_eq!(
            d,
            Decision::new(
                false,
                Rule::Acl {
                    action: Action::ViewFlags,
                    index: 1
                }
            )
        );
    }

    #[test]
    fn unknown_action_is_denied() {
        let a = direct(r#"{}"#);
        assert_eq!(
            ask(&a, Action::Unknown, Some("a"), Object::Any),
            Decision::new(false, Rule::UnknownAction)
        );
    }

    #[test]
    fn authorize_all_returns_the_first_denial() {
        let a = direct(
            r#"{"register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["x"]}},
                                        {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}"#,
        );
        let objs = [Object::Value("x"), Object::Value("y"), Object::Value("z")];
        let d = authorize_all(&a, Action::RegisterFrameworks, Some("a"), objs);
        assert_eq!(
            d,
            Decision::new(
                false,
                Rule::Acl {
                    action: Action::RegisterFrameworks,
                    index: 1
                }
            )
        );
        let d = authorize_all(
            &a,
            Action::RegisterFrameworks,
            Some("a"),
            [Object::Value("x")],
        );
        assert!(d.is_allowed());
        let d = authorize_all(&a, Action::RegisterFrameworks, Some("a"), []);
        assert_eq!(d, Decision::new(true, Rule::NoMatch { permissive: true }));
    }

    #[test]
    fn explanation_names_the_rule_and_the_acl_to_add() {
        let a = direct(r#"{"permissive": false}"#);
        let req = Request {
            action: Action::RegisterFrameworks,
            subject: Some("alice"),
            object: Object::Value("prod"),
        };
        assert_eq!(
            a.authorize(&req).explain(&req),
            "principal 'alice' denied to register_frameworks on roles 'prod' because no \"register_frameworks\" ACL matched and \"permissive\" is false; to allow it, add {\"principals\":{\"values\":[\"alice\"]},\"roles\":{\"values\":[\"prod\"]}} to \"register_frameworks\""
        );
    }
}
