//! Mesos ACLs as a casbin model and policy, and `CasbinAuthorizer`: casbin's
//! `priority` effect walks one policy line per ACL entry in order, custom
//! matcher functions implement Mesos's entity `matches` (with `/%`), a bounded
//! decision cache sits in front, and `reload` swaps policy and cache together.

use std::sync::Arc;

use arc_swap::ArcSwap;
use casbin::function_map::OperatorFunction;
use casbin::prelude::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use casbin::rhai::{Dynamic, ImmutableString};

use crate::acls::{Acls, Entity, EntityType};
use crate::action::{Action, ObjectKind};
use crate::cache::DecisionCache;
use crate::error::AclsError;
use crate::eval::{entity_matches, Authorizer, Decision, Object, Request, Rule};

/// The casbin model. One policy line per ACL entry:
/// `p, <action>, <index>, <principals type>, <principals values as JSON>,
/// <object type>, <object values as JSON>, <allow|deny>`, added in index
/// order. casbin-rs's `priority(p.eft) || deny` effect takes the first line
/// whose matcher holds (it evaluates lines in stored order; it does not sort
/// by a priority column, so the order of insertion is what makes `index` the
/// priority). `mesosSubject`/`mesosObject` are Mesos's `matches`; a matched
/// entry's effect is Mesos's `allows`, which for a request entity that is
/// `ANY` or one `SOME` value reduces to "neither entity is NONE" and is
/// therefore precomputed into `eft`.
pub const MODEL: &str = r#"[request_definition]
r = act, st, s, ot, o

[policy_definition]
p = act, priority, pst, psv, pot, pov, eft

[policy_effect]
e = priority(p.eft) || deny

[matchers]
m = r.act == p.act && mesosSubject(r.st, r.s, p.pst, p.psv) && mesosObject(r.act, r.ot, r.o, p.pot, p.pov)
"#;

/// Default bound of the decision cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

struct Inner {
    enforcer: Enforcer,
    permissive: bool,
    cache: DecisionCache,
}

/// The casbin-backed local authorizer.
pub struct CasbinAuthorizer {
    inner: ArcSwap<Inner>,
    cache_capacity: usize,
}

impl CasbinAuthorizer {
    /// Builds the enforcer for these ACLs (expected to be validated, as
    /// [`Acls::parse`] does) with the default cache bound.
    pub async fn new(acls: &Acls) -> Result<Self, AclsError> {
        CasbinAuthorizer::with_cache_capacity(acls, DEFAULT_CACHE_CAPACITY).await
    }

    /// Like [`CasbinAuthorizer::new`] with a cache of at most `capacity`
    /// decisions.
    pub async fn with_cache_capacity(acls: &Acls, capacity: usize) -> Result<Self, AclsError> {
        let inner = build(acls, capacity).await?;
        Ok(CasbinAuthorizer {
            inner: ArcSwap::from_pointee(inner),
            cache_capacity: capacity,
        })
    }

    /// [`CasbinAuthorizer::new`] without an async context. Building does no
    /// IO (the policy comes from memory), so this only runs the futures.
    pub fn new_blocking(acls: &Acls) -> Result<Self, AclsError> {
        futures::executor::block_on(CasbinAuthorizer::new(acls))
    }

    /// Replaces the policy (e.g. on SIGHUP). The new enforcer is built first;
    /// then enforcer, `permissive` and an empty cache are swapped in as one
    /// pointer, so no request sees a decision cached under the old policy.
    /// On error the old policy stays.
    pub async fn reload(&self, acls: &Acls) -> Result<(), AclsError> {
        let inner = build(acls, self.cache_capacity).await?;
        self.inner.store(Arc::new(inner));
        Ok(())
    }

    /// [`CasbinAuthorizer::reload`] without an async context.
    pub fn reload_blocking(&self, acls: &Acls) -> Result<(), AclsError> {
        futures::executor::block_on(self.reload(acls))
    }

    /// Asks casbin, bypassing the cache (the cold path; for benchmarks and
    /// tests).
    pub fn authorize_uncached(&self, request: &Request) -> Decision {
        enforce(&self.inner.load(), request)
    }
}

impl Authorizer for CasbinAuthorizer {
    fn authorize(&self, request: &Request) -> Decision {
        if request.action == Action::Unknown {
            return Decision::new(false, Rule::UnknownAction);
        }
        let inner = self.inner.load();
        if let Some(decision) = inner.cache.get(request) {
            return decision;
        }
        let decision = enforce(&inner, request);
        if decision.rule != Rule::EvaluationError {
            inner.cache.insert(request, decision);
        }
        decision
    }

    fn authorize_no_objects(&self, action: Action, _subject: Option<&str>) -> Decision {
        if action == Action::Unknown {
            return Decision::new(false, Rule::UnknownAction);
        }
        let permissive = self.inner.load().permissive;
        Decision::new(permissive, Rule::NoMatch { permissive })
    }
}

fn enforce(inner: &Inner, request: &Request) -> Decision {
    if request.action == Action::Unknown {
        return Decision::new(false, Rule::UnknownAction);
    }
    let (st, s) = match request.subject {
        Some(p) => ("SOME", p),
        None => ("ANY", ""),
    };
    let (ot, o) = match request.object {
        Object::Value(v) => ("SOME", v),
        Object::Any => ("ANY", ""),
    };
    let args = vec![request.action.as_str(), st, s, ot, o];
    match inner.enforcer.enforce_ex(args) {
        Ok((allowed, rules)) => match rules.first() {
            Some(rule) => match rule.get(1).and_then(|i| i.parse().ok()) {
                Some(index) => Decision::new(
                    allowed,
                    Rule::Acl {
                        action: request.action,
                        index,
                    },
                ),
                None => Decision::new(false, Rule::EvaluationError),
            },
            None => Decision::new(
                inner.permissive,
                Rule::NoMatch {
                    permissive: inner.permissive,
                },
            ),
        },
        Err(_) => Decision::new(false, Rule::EvaluationError),
    }
}

async fn build(acls: &Acls, capacity: usize) -> Result<Inner, AclsError> {
    let casbin_err = |e: casbin::Error| AclsError::Casbin(e.to_string());
    let model = DefaultModel::from_str(MODEL).await.map_err(casbin_err)?;
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(casbin_err)?;
    enforcer.add_function("mesosSubject", OperatorFunction::Arg4(mesos_subject));
    enforcer.add_function("mesosObject", OperatorFunction::Arg5(mesos_object));
    let lines = policy_lines(acls);
    if !lines.is_empty() {
        enforcer.add_policies(lines).await.map_err(casbin_err)?;
    }
    Ok(Inner {
        enforcer,
        permissive: acls.permissive,
        cache: DecisionCache::new(capacity),
    })
}

/// The casbin policy lines for these ACLs, in evaluation order.
pub fn policy_lines(acls: &Acls) -> Vec<Vec<String>> {
    let mut lines = Vec::with_capacity(acls.len());
    for (action, entries) in acls.iter() {
        for (index, acl) in entries.iter().enumerate() {
            let allow =
                acl.principals.kind != EntityType::None && acl.object.kind != EntityType::None;
            lines.push(vec![
                action.as_str().to_string(),
                index.to_string(),
                acl.principals.kind.as_str().to_string(),
                values_json(&acl.principals),
                acl.object.kind.as_str().to_string(),
                values_json(&acl.object),
                if allow { "allow" } else { "deny" }.to_string(),
            ]);
        }
    }
    lines
}

fn values_json(entity: &Entity) -> String {
    serde_json::Value::from(entity.values.clone()).to_string()
}

fn text(d: Dynamic) -> ImmutableString {
    d.into_immutable_string().unwrap_or_default()
}

/// Mesos `matches` for a request entity (`ANY` or one `SOME` value) against a
/// policy entity, parsing the policy's JSON values only when they matter.
fn matches(
    request_type: &str,
    request: &str,
    acl_type: &str,
    acl_values: &str,
    hierarchical: bool,
) -> bool {
    let kind = match acl_type {
        "ANY" | "NONE" => return true,
        "SOME" => EntityType::Some,
        _ => return false,
    };
    if request_type != "SOME" {
        return false;
    }
    let Ok(values) = serde_json::from_str::<Vec<String>>(acl_values) else {
        return false;
    };
    entity_matches(Some(request), &Entity { kind, values }, hierarchical)
}

/// casbin function `mesosSubject(r.st, r.s, p.pst, p.psv)`.
fn mesos_subject(rt: Dynamic, rv: Dynamic, pt: Dynamic, pv: Dynamic) -> Dynamic {
    Dynamic::from(matches(&text(rt), &text(rv), &text(pt), &text(pv), false))
}

/// casbin function `mesosObject(r.act, r.ot, r.o, p.pot, p.pov)`; the `/%`
/// rule applies to role-valued actions only, so it needs the action.
fn mesos_object(act: Dynamic, rt: Dynamic, rv: Dynamic, pt: Dynamic, pv: Dynamic) -> Dynamic {
    let hierarchical = text(act)
        .parse::<Action>()
        .is_ok_and(|a| a.object_kind() == ObjectKind::Role);
    Dynamic::from(matches(
        &text(rt),
        &text(rv),
        &text(pt),
        &text(pv),
        hierarchical,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(action: Action, subject: Option<&'a str>, object: Object<'a>) -> Request<'a> {
        Request {
            action,
            subject,
            object,
        }
    }

    #[test]
    fn casbin_walks_entries_in_order_and_names_the_entry() {
        let acls = Acls::parse(
            r#"{"permissive": false, "register_frameworks": [
                {"principals": {"values": ["a"]}, "roles": {"values": ["eng/%"]}},
                {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
            ]}"#,
        )
        .expect("valid")
        .acls;
        let authz = CasbinAuthorizer::new_blocking(&acls).expect("enforcer");
        let d = authz.authorize(&req(
            Action::RegisterFrameworks,
            Some("a"),
            Object::Value("eng/x"),
        ));
        assert_eq!(
            d,
            Decision::new(
                true,
                Rule::Acl {
                    action: Action::RegisterFrameworks,
                    index: 0
                }
            )
        );
        let d = authz.authorize(&req(
            Action::RegisterFrameworks,
            Some("a"),
            Object::Value("eng"),
        ));
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
        let d = authz.authorize(&req(Action::RunTasks, Some("a"), Object::Value("u")));
        assert_eq!(d, Decision::new(false, Rule::NoMatch { permissive: false }));
        let d = authz.authorize(&req(Action::Unknown, Some("a"), Object::Any));
        assert_eq!(d, Decision::new(false, Rule::UnknownAction));
    }

    #[test]
    fn reload_swaps_policy_and_drops_cached_decisions() {
        let allow = Acls::parse(r#"{"permissive": true}"#).expect("valid").acls;
        let deny = Acls::parse(
            r#"{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["root"]}},
                              {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}"#,
        )
        .expect("valid")
        .acls;
        let authz = CasbinAuthorizer::new_blocking(&allow).expect("enforcer");
        let r = req(Action::RunTasks, Some("a"), Object::Value("nobody"));
        assert!(authz.authorize(&r).is_allowed());
        assert!(
            authz.authorize(&r).is_allowed(),
            "second answer comes from the cache"
        );
        authz.reload_blocking(&deny).expect("reload");
        assert_eq!(
            authz.authorize(&r),
            Decision::new(
                false,
                Rule::Acl {
                    action: Action::RunTasks,
                    index: 1
                }
            )
        );
    }

    #[tokio::test]
    async fn async_constructor_works_inside_a_tokio_runtime() {
        let acls = Acls::parse(r#"{"permissive": false}"#).expect("valid").acls;
        let authz = CasbinAuthorizer::new(&acls).await.expect("enforcer");
        assert!(!authz
            .authorize(&req(Action::ViewFlags, None, Object::Any))
            .is_allowed());
        authz.reload(&Acls::default()).await.expect("reload");
        assert!(authz
            .authorize(&req(Action::ViewFlags, None, Object::Any))
            .is_allowed());
    }

    #[test]
    fn concurrent_checks_see_one_policy_or_the_other_during_reloads() {
        let allow = Acls::default();
        let deny = Acls::new(false);
        let authz = CasbinAuthorizer::new_blocking(&allow).expect("enforcer");
        let allowed = Decision::new(true, Rule::NoMatch { permissive: true });
        let denied = Decision::new(false, Rule::NoMatch { permissive: false });
        std::thread::scope(|s| {
            for t in 0..2 {
                let authz = &authz;
                s.spawn(move || {
                    let user = format!("u{t}");
                    for _ in 0..2000 {
                        let d = authz.authorize(&req(
                            Action::RunTasks,
                            Some("a"),
                            Object::Value(&user),
                        ));
                        assert!(d == allowed || d == denied, "{d:?}");
                    }
                });
            }
            for i in 0..20 {
                let acls = if i % 2 == 0 { &deny } else { &allow };
                authz.reload_blocking(acls).expect("reload");
            }
        });
        authz.reload_blocking(&deny).expect("reload");
        assert_eq!(
            authz.authorize(&req(Action::RunTasks, Some("a"), Object::Value("u0"))),
            denied
        );
    }

    #[test]
    fn authorizer_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CasbinAuthorizer>();
    }
}
