//! Filtering read views (`/state`, `/tasks`, GET_FRAMEWORKS, ...) by what a
//! principal may see. Mesos silently drops what is not authorized; so does
//! this. Decisions are memoized per distinct object value, so filtering
//! 100,000 tasks run by a handful of users asks the authorizer a handful of
//! times.

use std::collections::HashMap;

use crate::action::Action;
use crate::eval::{Authorizer, Object, Request};

/// Memoizing visibility check for one (principal, action) pair.
pub struct ViewFilter<'a> {
    authz: &'a dyn Authorizer,
    action: Action,
    subject: Option<&'a str>,
    unowned: Memo,
    /// Decisions about objects of frameworks registered by each owner.
    by_owner: HashMap<String, Memo>,
}

/// Decisions per object value, and for `ANY`.
#[derive(Default)]
struct Memo {
    values: HashMap<String, bool>,
    any: Option<bool>,
}

impl Memo {
    fn get_or_ask(&mut self, object: Object, ask: impl FnOnce(Object) -> bool) -> bool {
        match object {
            Object::Any => *self.any.get_or_insert_with(|| ask(Object::Any)),
            Object::Value(v) => match self.values.get(v) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = ask(object);
                    self.values.insert(v.to_owned(), allowed);
                    allowed
                }
            },
        }
    }

    fn len(&self) -> usize {
        self.values.len() + usize::from(self.any.is_some())
    }
}

impl<'a> ViewFilter<'a> {
    /// A filter for `principal` doing `action` (e.g. `view_tasks`).
    pub fn new(authz: &'a dyn Authorizer, principal: Option<&'a str>, action: Action) -> Self {
        ViewFilter {
            authz,
            action,
            subject: principal,
            unowned: Memo::default(),
            by_owner: HashMap::new(),
        }
    }

    /// Whether the object is visible; asks the authorizer once per distinct
    /// object.
    pub fn allows(&mut self, object: Object) -> bool {
        let (action, subject, authz) = (self.action, self.subject, self.authz);
        self.unowned.get_or_ask(object, |object| {
            authz
                .authorize(&Request {
                    action,
                    subject,
                    object,
                })
                .is_allowed()
        })
    }

    /// Whether the object of a framework registered by `owner` is visible
    /// ([`Authorizer::authorize_owned`]); asks once per distinct owner and
    /// object.
    pub fn allows_owned(&mut self, object: Object, owner: Option<&str>) -> bool {
        let Some(owner) = owner else {
            return self.allows(object);
        };
        let (action, subject, authz) = (self.action, self.subject, self.authz);
        let memo = match self.by_owner.get_mut(owner) {
            Some(memo) => memo,
            None => self.by_owner.entry(owner.to_owned()).or_default(),
        };
        memo.get_or_ask(object, |object| {
            authz
                .authorize_owned(
                    &Request {
                        action,
                        subject,
                        object,
                    },
                    Some(owner),
                )
                .is_allowed()
        })
    }

    /// The number of distinct objects the authorizer was asked about.
    pub fn checks(&self) -> usize {
        self.unowned.len() + self.by_owner.values().map(Memo::len).sum::<usize>()
    }

    /// Keeps the items whose object is visible.
    pub fn filter<T, I, F>(
        &mut self,
        items: I,
        object_of: F,
    ) -> impl Iterator<Item = T> + use<'_, 'a, T, I, F>
    where
        I: IntoIterator<Item = T>,
        F: Fn(&T) -> Object<'_>,
    {
        items
            .into_iter()
            .filter(move |item| self.allows(object_of(item)))
    }
}

/// Keeps the items `principal` may see under `action`; one authorization per
/// distinct object value.
pub fn visible<'a, T, I, F>(
    authz: &'a dyn Authorizer,
    principal: Option<&'a str>,
    action: Action,
    items: I,
    object_of: F,
) -> impl Iterator<Item = T> + 'a
where
    T: 'a,
    I: IntoIterator<Item = T> + 'a,
    F: Fn(&T) -> Object<'_> + 'a,
{
    let mut filter = ViewFilter::new(authz, principal, action);
    items
        .into_iter()
        .filter(move |item| filter.allows(object_of(item)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acls::Acls;
    use crate::eval::{Decision, DirectAuthorizer};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(DirectAuthorizer, AtomicUsize);

    impl Authorizer for Counting {
        fn authorize(&self, request: &Request) -> Decision {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.authorize(request)
        }
        fn authorize_no_objects(&self, action: Action, subject: Option<&str>) -> Decision {
            self.0.authorize_no_objects(action, subject)
        }
    }

    #[test]
    fn filter_keeps_visible_items_and_asks_once_per_distinct_user() {
        let acls = Acls::parse(
            r#"{"permissive": false, "view_tasks": [
                {"principals": {"values": ["ops"]}, "users": {"values": ["u1", "u3"]}}]}"#,
        )
        .expect("valid")
        .acls;
        let authz = Counting(DirectAuthorizer::new(acls), AtomicUsize::new(0));
        let tasks: Vec<(u32, String)> = (0..1000).map(|i| (i, format!("u{}", i % 5))).collect();
        let seen: Vec<u32> = visible(&authz, Some("ops"), Action::ViewTasks, tasks.iter(), |t| {
            Object::Value(t.1.as_str())
        })
        .map(|t| t.0)
        .collect();
        assert_eq!(seen.len(), 400);
        assert!(seen.iter().all(|i| i % 5 == 1 || i % 5 == 3));
        assert_eq!(authz.1.load(Ordering::Relaxed), 5);

        let mut f = ViewFilter::new(&authz, Some("ops"), Action::ViewTasks);
        assert_eq!(
            f.filter(tasks.iter(), |t| Object::Value(t.1.as_str()))
                .count(),
            400
        );
        assert!(!f.allows(Object::Any));
        assert_eq!(f.checks(), 6);
    }
}
