//! Dominant Resource Fairness bookkeeping: the quantities DRF compares
//! (`cpus`, `mem`, `disk`, `gpus` in Mesos's fixed point) and an ordered set
//! of clients (roles, or frameworks inside a role) keyed by share, then name.
//! It owns no cluster state: callers keep each client's share and pass the
//! old value back when it changes.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use mesos_common::resources::to_fixed;
use mesos_proto::v1::value;
use mesos_proto::v1::Resource;

/// The resources whose shares DRF compares.
pub const DRF_RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// Amounts of the [`DRF_RESOURCES`], in thousandths (Mesos's fixed point),
/// so that adding and removing the same allocation leaves exactly zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities([i64; 4]);

impl Quantities {
    /// The DRF quantities of the scalar resources in `resources`.
    pub fn of<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Self {
        let mut q = [0i64; 4];
        for r in resources {
            if r.r#type != value::Type::Scalar as i32 {
                continue;
            }
            let slot = match r.name.as_str() {
                "cpus" => 0,
                "mem" => 1,
                "disk" => 2,
                "gpus" => 3,
                _ => continue,
            };
            let amount = r.scalar.as_ref().map_or(0, |s| to_fixed(s.value));
            q[slot] = q[slot].saturating_add(amount);
        }
        Quantities(q)
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

/// A sorter entry: ascending share, ties broken by name (then index, which
/// only matters if two clients share a name, which callers prevent).
#[derive(Clone, Debug)]
struct Key {
    share: f64,
    name: Arc<str>,
    index: u32,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.share
            .total_cmp(&other.share)
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.index.cmp(&other.index))
    }
}

/// Clients ordered by (share, name): O(log n) insert, remove and re-key, and
/// in-order iteration from the smallest share.
#[derive(Clone, Debug, Default)]
pub struct Sorter {
    set: BTreeSet<Key>,
}

impl Sorter {
    /// Builds a sorter from `(share, name, index)` triples in O(n log n).
    pub fn from_entries(entries: impl IntoIterator<Item = (f64, Arc<str>, u32)>) -> Self {
        Sorter {
            set: entries
                .into_iter()
                .map(|(share, name, index)| Key { share, name, index })
                .collect(),
        }
    }

    /// Adds a client with `share`.
    pub fn insert(&mut self, share: f64, name: &Arc<str>, index: u32) {
        self.set.insert(Key {
            share,
            name: Arc::clone(name),
            index,
        });
    }

    /// Removes the client that was inserted with `share`.
    pub fn remove(&mut self, share: f64, name: &Arc<str>, index: u32) {
        self.set.remove(&Key {
            share,
            name: Arc::clone(name),
            index,
        });
    }

    /// Moves a client from share `old` to share `new`.
    pub fn update(&mut self, old: f64, new: f64, name: &Arc<str>, index: u32) {
        if old.to_bits() != new.to_bits() {
            self.remove(old, name, index);
            self.insert(new, name, index);
        }
    }

    /// Client indices, smallest share first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.set.iter().map(|k| k.index)
    }

    /// Number of clients.
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
    pub fn contains(&self, share: f64, name: &Arc<str>, index: u32) -> bool {
        self.set.contains(&Key {
            share,
            name: Arc::clone(name),
            index,
        })
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
    fn sorter_orders_by_share_then_name() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut s = Sorter::default();
        s.insert(0.5, &a, 0);
        s.insert(0.0, &c, 2);
        s.insert(0.0, &b, 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 2, 0]);
        s.update(0.0, 0.7, &b, 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![2, 0, 1]);
        s.remove(0.5, &a, 0);
        assert_eq!(s.len(), 2);
        assert!(s.contains(0.7, &b, 1));
    }
}
