//! Refuse filters (a decline's `refuse_seconds`): which agents a framework
//! must not be offered until when, and a min-heap of expiries so that an
//! allocation cycle revisits exactly the agents whose filters lapsed. Times
//! come from the caller; nothing here reads a clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// One framework's filters: agent index → filtered until.
///
/// Simplified from Mesos, which filters per (framework, role, agent) and
/// only the refused resources: here a filter blocks every offer of that
/// agent to that framework, whatever the role or the resources.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    until: HashMap<u32, Instant>,
}

impl Filters {
    /// Whether offers of `agent` are filtered at `now`.
    pub fn blocks(&self, agent: u32, now: Instant) -> bool {
        !self.until.is_empty() && self.until.get(&agent).is_some_and(|&t| now < t)
    }

    /// Filters `agent` until `until` (keeping a later existing filter).
    pub fn install(&mut self, agent: u32, until: Instant) {
        let slot = self.until.entry(agent).or_insert(until);
        if *slot < until {
            *slot = until;
        }
    }

    /// Removes the filter on `agent` if it is the one that expires at
    /// `until`; true when it was removed.
    pub fn expire(&mut self, agent: u32, until: Instant) -> bool {
        if self.until.get(&agent) == Some(&until) {
            self.until.remove(&agent);
            true
        } else {
            false
        }
    }

    /// Removes the filter on `agent`, if any.
    pub fn remove(&mut self, agent: u32) {
        self.until.remove(&agent);
    }

    /// Removes every filter, returning the agents that had one.
    pub fn clear(&mut self) -> Vec<u32> {
        self.until.drain().map(|(agent, _)| agent).collect()
    }
}

/// Every installed filter's expiry, soonest first. Entries whose filter was
/// replaced or removed stay until they are due and are then ignored.
#[derive(Clone, Debug, Default)]
pub struct Expiries {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

impl Expiries {
    /// Records that `framework`'s filter on `agent` expires at `until`.
    pub fn push(&mut self, until: Instant, framework: u32, agent: u32) {
        self.heap.push(Reverse((until, framework, agent)));
    }

    /// The next `(until, framework, agent)` that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32, u32)> {
        match self.heap.peek() {
            Some(Reverse((until, _, _))) if *until <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_filter_blocks_until_it_expires() {
        let t0 = Instant::now();
        let mut f = Filters::default();
        f.install(3, t0 + Duration::from_secs(5));
        f.install(3, t0 + Duration::from_secs(1));
        assert!(f.blocks(3, t0 + Duration::from_secs(4)));
        assert!(!f.blocks(3, t0 + Duration::from_secs(5)));
        assert!(!f.blocks(4, t0));
        assert!(!f.expire(3, t0 + Duration::from_secs(1)));
        assert!(f.expire(3, t0 + Duration::from_secs(5)));
        assert!(!f.blocks(3, t0));
    }

    #[test]
    fn expiries_pop_in_time_order_when_due() {
        let t0 = Instant::now();
        let mut e = Expiries::default();
        e.push(t0 + Duration::from_secs(9), 1, 1);
        e.push(t0 + Duration::from_secs(2), 2, 2);
        assert_eq!(e.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(
            e.pop_due(t0 + Duration::from_secs(9)),
            Some((t0 + Duration::from_secs(2), 2, 2))
        );
        assert_eq!(
            e.pop_due(t0 + Duration::from_secs(9)),
            Some((t0 + Duration::from_secs(9), 1, 1))
        );
        assert_eq!(e.pop_due(t0 + Duration::from_secs(99)), None);
    }
}
