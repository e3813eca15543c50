//! A bounded decision cache keyed by (action, subject, object), in front of
//! the casbin enforcer. It never decides anything itself; it is dropped as a
//! whole when the policy is reloaded.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::RwLock;

use crate::action::Action;
use crate::eval::{Decision, Object, Request};

const SHARDS: usize = 16;

#[derive(Debug, PartialEq, Eq)]
struct Key {
    action: Action,
    subject: Option<Box<str>>,
    object: Option<Box<str>>,
}

impl Key {
    fn is(&self, request: &Request) -> bool {
        self.action == request.action
            && self.subject.as_deref() == request.subject
            && match request.object {
                Object::Any => self.object.is_none(),
                Object::Value(v) => self.object.as_deref() == Some(v),
            }
    }
}

/// The map is keyed by an already-computed hash, so it must not hash again.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in for safety.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, (Key, Decision), BuildHasherDefault<Prehashed>>;

/// Bounded, sharded cache. One slot per hash: a colliding request evicts the
/// other (the stored key is always compared, so a collision is only a miss).
/// A full shard is cleared, which bounds memory at `capacity` entries without
/// per-entry bookkeeping on the hot path.
pub(crate) struct DecisionCache {
    hasher: RandomState,
    shards: Vec<RwLock<Shard>>,
    per_shard: usize,
}

impl DecisionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        DecisionCache {
            // Random keys: subjects and objects come from the network.
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn hash(&self, request: &Request) -> u64 {
        let mut h = self.hasher.build_hasher();
        request.action.hash(&mut h);
        request.subject.hash(&mut h);
        request.object.hash(&mut h);
        h.finish()
    }

    pub(crate) fn get(&self, request: &Request) -> Option<Decision> {
        let hash = self.hash(request);
        let shard = self.shards[(hash as usize) % SHARDS].read().ok()?;
        match shard.get(&hash) {
            Some((key, decision)) if key.is(request) => Some(*decision),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, request: &Request, decision: Decision) {
        let hash = self.hash(request);
        let Ok(mut shard) = self.shards[(hash as usize) % SHARDS].write() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.clear();
        }
        let key = Key {
            action: request.action,
            subject: request.subject.map(Into::into),
            object: match request.object {
                Object::Any => None,
                Object::Value(v) => Some(v.into()),
            },
        };
        shard.insert(hash, (key, decision));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Rule;

    #[test]
    fn cache_returns_what_was_stored_for_the_same_request_only() {
        let cache = DecisionCache::new(64);
        let d = Decision::new(true, Rule::NoMatch { permissive: true });
        let req = Request {
            action: Action::RunTasks,
            subject: Some("a"),
            object: Object::Value("u"),
        };
        assert_eq!(cache.get(&req), None);
        cache.insert(&req, d);
        assert_eq!(cache.get(&req), Some(d));
        let other = Request {
            subject: None,
            ..req
        };
        assert_eq!(cache.get(&other), None);
        let any = Request {
            object: Object::Any,
            ..req
        };
        assert_eq!(cache.get(&any), None);
    }

    #[test]
    fn cache_stays_bounded() {
        let cache = DecisionCache::new(32);
        let d = Decision::new(false, Rule::UnknownAction);
        let names: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
        for n in &names {
            cache.insert(
                &Request {
                    action: Action::ViewTasks,
                    subject: Some(n),
                    object: Object::Any,
                },
                d,
            );
        }
        assert!(cache.len() <= 32, "{}", cache.len());
    }
}
