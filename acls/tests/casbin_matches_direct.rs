//! Property: for random ACL sets and random requests, the casbin authorizer
//! (cold and cached) decides exactly as the direct evaluator of Mesos's
//! ordered walk, down to the index of the deciding entry; and the direct
//! evaluator agrees with a literal transcription of Mesos's C++
//! (`matches`/`allows` matrices, `createHierarchicalRoleACLs` splitting,
//! `isRecursiveACL`/`isNestedHierarchy`), which shares no code with it.

use mesos_acls::{
    Acl, Acls, Action, Authorizer, CasbinAuthorizer, Decision, DirectAuthorizer, Entity,
    EntityType, Object, ObjectKind, Outcome, Request, Rule,
};
use proptest::prelude::*;

const ACTIONS: &[Action] = &[
    Action::RegisterFrameworks,
    Action::RunTasks,
    Action::TeardownFrameworks,
    Action::ViewRoles,
];
const ACL_VALUES: &[&str] = &["a", "b", "c", "a/b", "a/%", "a/b/%", "*", "%", "/%"];
const SUBJECTS: &[&str] = &["a", "b", "c", ""];
const OBJECTS: &[&str] = &["a", "b", "a/b", "a/b/c", "a/%", "*", "c/d", "/x", ""];

fn entity() -> impl Strategy<Value = Entity> {
    prop_oneof![
        1 => Just(Entity::any()),
        1 => Just(Entity::none()),
        3 => proptest::sample::subsequence(ACL_VALUES, 0..=3).prop_map(Entity::some),
    ]
}

fn acls() -> impl Strategy<Value = Acls> {
    let per_action = proptest::collection::vec((entity(), entity()), 0..=8);
    (
        any::<bool>(),
        proptest::collection::vec(per_action, ACTIONS.len()),
    )
        .prop_map(|(permissive, lists)| {
            let mut acls = Acls::new(permissive);
            for (action, list) in ACTIONS.iter().zip(lists) {
                for (principals, object) in list {
                    acls.push(*action, Acl { principals, object });
                }
            }
            acls
        })
}

#[derive(Debug, Clone)]
struct Req {
    action: Action,
    subject: Option<&'static str>,
    object: Option<&'static str>,
}

fn request() -> impl Strategy<Value = Req> {
    let action = prop_oneof![8 => proptest::sample::select(ACTIONS), 1 => Just(Action::Unknown)];
    let subject = proptest::option::of(proptest::sample::select(SUBJECTS));
    let object = proptest::option::of(proptest::sample::select(OBJECTS));
    (action, subject, object).prop_map(|(action, subject, object)| Req {
        action,
        subject,
        object,
    })
}

/// Mesos's `ACL::Entity` for a request: ANY, or SOME with these values.
#[derive(Clone)]
struct MEntity {
    kind: EntityType,
    values: Vec<String>,
}

fn m_matches(request: &MEntity, acl: &MEntity) -> bool {
    match request.kind {
        EntityType::None => acl.kind == EntityType::None,
        EntityType::Any => matches!(acl.kind, EntityType::Any | EntityType::None),
        EntityType::Some => match acl.kind {
            EntityType::Any | EntityType::None => true,
            EntityType::Some => request.values.iter().all(|v| acl.values.contains(v)),
        },
    }
}

fn m_allows(request: &MEntity, acl: &MEntity) -> bool {
    match request.kind {
        EntityType::None => acl.kind == EntityType::None,
        EntityType::Any => acl.kind == EntityType::Any,
        EntityType::Some => match acl.kind {
            EntityType::Any => true,
            EntityType::None => false,
            EntityType::Some => request.values.iter().all(|v| acl.values.contains(v)),
        },
    }
}

fn m_entity(e: &Entity) -> MEntity {
    MEntity {
        kind: e.kind,
        values: e.values.clone(),
    }
}

/// Literal transcription of the local authorizer's approvers. Returns the
/// outcome and the original index of the deciding entry.
fn mesos_literal(acls: &Acls, r: &Req) -> (bool, Option<usize>) {
    if r.action == Action::Unknown {
        return (false, None);
    }
    let subject = match r.subject {
        Some(p) => MEntity {
            kind: EntityType::Some,
            values: vec![p.to_string()],
        },
        None => MEntity {
            kind: EntityType::Any,
            values: vec![],
        },
    };
    let object = match r.object {
        Some(o) => MEntity {
            kind: EntityType::Some,
            values: vec![o.to_string()],
        },
        None => MEntity {
            kind: EntityType::Any,
            values: vec![],
        },
    };
    let hierarchical = r.action.object_kind() == ObjectKind::Role;
    // (original index, subjects, objects)
    let mut generic: Vec<(usize, MEntity, MEntity)> = Vec::new();
    for (i, acl) in acls.entries(r.action).iter().enumerate() {
        if hierarchical && acl.object.kind == EntityType::Some {
            let mut plain = Vec::new();
            for v in &acl.object.values {
                if v.ends_with("/%") {
                    generic.push((
                        i,
                        m_entity(&acl.principals),
                        MEntity {
                            kind: EntityType::Some,
                            values: vec![v.clone()],
                        },
                    ));
                } else {
                    plain.push(v.clone());
                }
            }
            if !plain.is_empty() {
                generic.push((
                    i,
                    m_entity(&acl.principals),
                    MEntity {
                        kind: EntityType::Some,
                        values: plain,
                    },
                ));
            }
        } else {
            generic.push((i, m_entity(&acl.principals), m_entity(&acl.object)));
        }
    }
    let any = MEntity {
        kind: EntityType::Any,
        values: vec![],
    };
    for (i, subjects, objects) in &generic {
        let recursive =
            hierarchical && objects.values.len() == 1 && objects.values[0].ends_with("/%");
        if !recursive {
            if m_matches(&subject, subjects) && m_matches(&object, objects) {
                return (
                    m_allows(&subject, subjects) && m_allows(&object, objects),
                    Some(*i),
                );
            }
        } else if object.kind == EntityType::Some {
            let parent = &objects.values[0];
            if object.values[0].starts_with(&parent[..parent.len() - 1])
                && m_matches(&subject, subjects)
                && m_matches(&object, &any)
            {
                return (
                    m_allows(&subject, subjects) && m_allows(&object, &any),
                    Some(*i),
                );
            }
        }
    }
    (acls.permissive, None)
}

fn as_pair(d: Decision) -> (bool, Option<usize>) {
    let index = match d.rule {
        Rule::Acl { index, .. } => Some(index),
        _ => None,
    };
    (d.outcome == Outcome::Allowed, index)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn casbin_decides_like_the_direct_evaluator(acls in acls(), requests in proptest::collection::vec(request(), 1..24)) {
        let direct = DirectAuthorizer::new(acls.clone());
        let casbin = CasbinAuthorizer::new_blocking(&acls).expect("enforcer builds");
        for r in &requests {
            let request = Request {
                action: r.action,
                subject: r.subject,
                object: r.object.map_or(Object::Any, Object::Value),
            };
            let want = direct.authorize(&request);
            prop_assert_eq!(as_pair(want), mesos_literal(&acls, r), "direct vs Mesos: {:?}\n{}", request, acls.to_json());
            prop_assert_eq!(casbin.authorize_uncached(&request), want, "cold: {:?}\n{}", request, acls.to_json());
            prop_assert_eq!(casbin.authorize(&request), want, "first: {:?}", request);
            prop_assert_eq!(casbin.authorize(&request), want, "cached: {:?}", request);
        }
    }
}
