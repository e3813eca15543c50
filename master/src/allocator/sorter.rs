//! Dominant Resource Fairness bookkeeping: the quantities DRF compares
//! (`cpus`, `mem`, `disk`, `gpus` in Mesos's fixed point) and an ordered set
//! of clients (roles, or frameworks inside a role) keyed by share, then name
//! (through integer [`Ranks`]).
//! It owns no cluster state: callers keep each client's share and pass the
//! old value back when it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use mesos_common::resources::{Resources, STANDARD_SCALARS};

/// The resources whose shares DRF compares.
pub const DRF_RESOURCES: [&str; 4] = STANDARD_SCALARS;

/// Amounts of the [`DRF_RESOURCES`], in thousandths (Mesos's fixed point),
/// so that adding and removing the same allocation leaves exactly zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities([i64; 4]);

impl Quantities {
    /// The DRF quantities of `resources` (from its cached sums: the
    /// resources themselves are not read).
    pub fn of(resources: &Resources) -> Self {
        Quantities(resources.standard_scalars_fixed())
    }

    /// The quantity of `DRF_RESOURCES[i]`, in thousandths.
    pub fn get(&self, i: usize) -> i64 {
        self.0[i]
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Quantities) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    /// Subtracts `other`, never going below zero.
    pub fn sub(&mut self, other: &Quantities) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_sub(b).max(0);
        }
    }

    /// True when every quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }

    /// The dominant share of these quantities in `total`: the largest
    /// fraction over the resources the cluster has any of.
    pub fn dominant_share(&self, total: &Quantities) -> f64 {
        self.0
            .iter()
            .zip(total.0)
            .filter(|&(_, t)| t > 0)
            .map(|(&a, t)| a as f64 / t as f64)
            .fold(0.0, f64::max)
    }
}

/// Order-preserving integer labels for names: `rank(a) < rank(b)` exactly
/// when `a < b`, so sorter keys compare as integers instead of strings.
/// New names get a label between their neighbours'; when there is no room
/// left, every label is reassigned (rare: names appended in order, like
/// Mesos's sequential framework ids, never run out of room).
#[derive(Clone, Debug, Default)]
pub struct Ranks {
    by_name: BTreeMap<Arc<str>, u64>,
}

/// Distance between labels given to names appended at either end.
const STEP: u64 = 1 << 32;

impl Ranks {
    /// The label of `name`, assigning one if it is new. The flag is true
    /// when every label was reassigned: labels read earlier are stale.
    pub fn insert(&mut self, name: &Arc<str>) -> (u64, bool) {
        if let Some(&rank) = self.by_name.get(&**name) {
            return (rank, false);
        }
        let below = self
            .by_name
            .range::<str, _>((Unbounded, Excluded(&**name)))
            .next_back()
            .map(|(_, &r)| r);
        let above = self
            .by_name
            .range::<str, _>((Excluded(&**name), Unbounded))
            .next()
            .map(|(_, &r)| r);
        let free = match (below, above) {
            (None, None) => Some(1 << 63),
            (Some(b), None) => b.checked_add(STEP).or_else(|| midpoint(b, u64::MAX)),
            (None, Some(a)) => a.checked_sub(STEP).or_else(|| midpoint(0, a)),
            (Some(b), Some(a)) => midpoint(b, a),
        };
        if let Some(rank) = free {
            self.by_name.insert(Arc::clone(name), rank);
            return (rank, false);
        }
        self.by_name.insert(Arc::clone(name), 0);
        let step = u64::MAX / (self.by_name.len() as u64 + 1);
        for (i, rank) in self.by_name.values_mut().enumerate() {
            *rank = step * (i as u64 + 1);
        }
        (self.by_name[&**name], true)
    }

    /// The current label of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }

    /// Forgets `name`.
    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }
}

/// A value strictly between `low` and `high`, if there is one.
fn midpoint(low: u64, high: u64) -> Option<u64> {
    (high > low.saturating_add(1)).then(|| low + (high - low) / 2)
}

/// Shares are finite and non-negative, and such floats order like their
/// bit patterns.
fn share_bits(share: f64) -> u64 {
    if share > 0.0 {
        share.to_bits()
    } else {
        0
    }
}

/// Clients ordered by (share, name rank, index): O(log n) insert, remove
/// and re-key with integer comparisons only, and in-order iteration from the
/// smallest share.
#[derive(Clone, Debug, Default)]
pub struct Sorter {
    set: BTreeSet<(u64, u64, u32)>,
}

impl Sorter {
    /// Builds a sorter from `(share, rank, index)` triples.
    pub fn from_entries(entries: impl IntoIterator<Item = (f64, u64, u32)>) -> Self {
        Sorter {
            set: entries
                .into_iter()
                .map(|(share, rank, index)| (share_bits(share), rank, index))
                .collect(),
        }
    }

    /// Adds a client with `share`.
    pub fn insert(&mut self, share: f64, rank: u64, index: u32) {
        self.set.insert((share_bits(share), rank, index));
    }

    /// Removes the client that was inserted with `share`.
    pub fn remove(&mut self, share: f64, rank: u64, index: u32) {
        self.set.remove(&(share_bits(share), rank, index));
    }

    /// Moves a client from share `old` to share `new`.
    pub fn update(&mut self, old: f64, new: f64, rank: u64, index: u32) {
        let (old, new) = (share_bits(old), share_bits(new));
        if old != new {
            self.set.remove(&(old, rank, index));
            self.set.insert((new, rank, index));
        }
    }

    /// Client indices, smallest share first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.set.iter().map(|&(_, _, index)| index)
    }

    /// Number of clients.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when there are no clients.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether the client is present with exactly `share` (for invariant
    /// checks).
    #[cfg(test)]
    pub fn contains(&self, share: f64, rank: u64, index: u32) -> bool {
        self.set.contains(&(share_bits(share), rank, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_common::resources::Resources;

    #[test]
    fn quantities_count_only_drf_scalars_in_fixed_point() {
        let r = Resources::parse("cpus:0.1;cpus(web):0.2;mem:10;gpus:1;ports:[1-5];foo:7")
            .expect("parses");
        let mut q = Quantities::of(&r);
        assert_eq!(q, Quantities([300, 10_000, 0, 1000]));
        q.sub(&Quantities::of(
            &Resources::parse("cpus:0.3;mem:10;gpus:1").expect("parses"),
        ));
        assert!(q.is_zero());
    }

    #[test]
    fn dominant_share_is_the_largest_fraction() {
        let total = Quantities([8000, 16_000, 0, 0]);
        assert_eq!(Quantities([2000, 8000, 0, 0]).dominant_share(&total), 0.5);
        assert_eq!(Quantities([4000, 0, 0, 5]).dominant_share(&total), 0.5);
        assert_eq!(Quantities::default().dominant_share(&total), 0.0);
    }

    #[test]
    fn sorter_orders_by_share_then_rank() {
        let mut s = Sorter::default();
        s.insert(0.5, 1, 0);
        s.insert(0.0, 3, 2);
        s.insert(0.0, 2, 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 2, 0]);
        s.update(0.0, 0.7, 2, 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![2, 0, 1]);
        s.remove(0.5, 1, 0);
        assert_eq!(s.len(), 2);
        assert!(s.contains(0.7, 2, 1));
    }

    #[test]
    fn ranks_order_like_names_and_relabel_when_crowded() {
        let mut ranks = Ranks::default();
        let names: Vec<Arc<str>> = ["m", "a", "z", "b", "ab", "aa"]
            .into_iter()
            .map(Arc::from)
            .collect();
        for n in &names {
            ranks.insert(n);
        }
        let mut sorted = names.clone();
        sorted.sort();
        let labels: Vec<u64> = sorted
            .iter()
            .map(|n| ranks.get(n).expect("ranked"))
            .collect();
        assert!(labels.windows(2).all(|w| w[0] < w[1]), "{labels:?}");

        // Squeezing names between two neighbours exhausts the room and
        // forces a relabel, after which the order still holds.
        let mut ranks = Ranks::default();
        let mut relabeled = false;
        let mut all: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b")];
        ranks.insert(&all[0]);
        ranks.insert(&all[1]);
        let mut name = String::from("a");
        for _ in 0..80 {
            name.push('z');
            let n: Arc<str> = Arc::from(name.as_str());
            relabeled |= ranks.insert(&n).1;
            all.push(n);
        }
        assert!(relabeled);
        all.sort();
        let labels: Vec<u64> = all.iter().map(|n| ranks.get(n).expect("ranked")).collect();
        assert!(labels.windows(2).all(|w| w[0] < w[1]));
        ranks.remove("a");
        assert_eq!(ranks.get("a"), None);
    }

    #[test]
    fn appending_names_in_order_never_relabels() {
        let mut ranks = Ranks::default();
        for i in 0..10_000 {
            let name: Arc<str> = Arc::from(format!("framework-{i:06}"));
            assert!(!ranks.insert(&name).1);
        }
    }
}
