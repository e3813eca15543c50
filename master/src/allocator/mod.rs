//! The allocator: hierarchical Dominant Resource Fairness over roles (with
//! weights) and over frameworks inside each role, as Mesos's
//! `HierarchicalDRFAllocator` does. It owns the allocation view of the
//! cluster (each agent's total, available and per-framework allocated
//! resources, each framework's roles, suppressions and refuse filters) and
//! decides who is offered what.
//!
//! It is a pure data structure: no IO, no tasks, no clock (every method that
//! needs the time takes `now`). The master's state machine calls it and
//! turns [`Allocation`]s into offers.
//!
//! A cycle's cost grows with what changed, not with the cluster: it visits
//! only agents whose available resources grew or whose filters lapsed since
//! the last cycle, plus every agent with available resources when demand
//! grew (a framework added, activated or revived, weights changed). Roles and
//! frameworks are kept in share-ordered sets updated incrementally; only a
//! change of the cluster's total (an agent added, removed or resized), which
//! changes every share, re-sorts them all, once, at the next cycle
//! (O(frameworks · log), independent of the number of agents).
//!
//! Simplified compared with Mesos: roles are sorted flat (no role tree
//! between parent and child roles, though reservations to `a` are offered to
//! `a/b`); no quota, no maintenance/inverse offers, no offer-size minimums;
//! refuse filters apply per (framework, agent) rather than per (framework,
//! role, agent, refused resources); agents are visited in a fixed order
//! instead of a random shuffle; shared resources are offered to one
//! framework at a time like any other.

mod filters;
mod sorter;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesos_common::conversions::{self, Conversion};
use mesos_common::resources::{allocation_role, from_fixed, Resources};
use mesos_proto::v1::value::{self, Scalar};
use mesos_proto::v1::Resource;

use filters::{Expiries, Filters};
pub use sorter::{Quantities, DRF_RESOURCES};
use sorter::{Ranks, Sorter};

/// Allocator settings.
#[derive(Clone, Debug, Default)]
pub struct AllocatorConfig {
    /// Role weights (`--weights`); roles not listed weigh 1.0.
    pub weights: HashMap<String, f64>,
}

/// Resources on one agent given to one framework under one role. The
/// resources carry `allocation_info.role = role`.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Framework the resources are offered to.
    pub framework_id: String,
    /// Agent the resources are on.
    pub agent_id: String,
    /// Role the framework receives them under.
    pub role: String,
    /// The resources, allocated to `role`.
    pub resources: Resources,
}

/// What the master's `/roles` endpoint shows about one role.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleShare {
    /// Role name.
    pub role: String,
    /// Its weight.
    pub weight: f64,
    /// Its weighted dominant share of the cluster (allocated / total over
    /// cpus, mem, disk and gpus, divided by the weight).
    pub share: f64,
    /// Scalar resources allocated to the role, summed over agents
    /// (unreserved form; use `to_state_json` to show them).
    pub allocated: Resources,
    /// Frameworks subscribed to the role or holding resources in it, sorted.
    pub frameworks: Vec<String>,
}

/// Numbers about the last allocation cycle, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleStats {
    /// Agents the cycle examined.
    pub agents_visited: usize,
    /// Allocations it made.
    pub allocations: usize,
}

/// A framework's membership in one role.
#[derive(Clone, Debug)]
struct FrameworkRole {
    role: u32,
    /// Subscribed to the role (false: only still holding resources in it).
    subscribed: bool,
    suppressed: bool,
    allocated: Quantities,
    /// Dominant share in the role; equals the sorter key while `in_sorter`.
    share: f64,
    /// Present in the role's framework sorter (eligible for offers).
    in_sorter: bool,
}

#[derive(Clone, Debug)]
struct Framework {
    id: Arc<str>,
    /// Label ordering frameworks by id in the sorters (see [`Ranks`]).
    rank: u64,
    active: bool,
    roles: Vec<FrameworkRole>,
    filters: Filters,
    /// Agents where this framework holds resources.
    agents: IndexSet,
}

impl Framework {
    fn role_pos(&self, role: u32) -> Option<usize> {
        self.roles.iter().position(|fr| fr.role == role)
    }
}

#[derive(Clone, Debug)]
struct Role {
    name: Arc<str>,
    /// Label ordering roles by name in the role sorter (see [`Ranks`]).
    rank: u64,
    weight: f64,
    allocated: Quantities,
    /// Scalars other than the DRF ones allocated to the role, in
    /// thousandths, for reporting.
    other_scalars: Vec<(String, i64)>,
    /// Weighted dominant share; equals the sorter key while `in_sorter`.
    share: f64,
    /// Frameworks eligible for offers in this role.
    frameworks: Sorter,
    /// Frameworks with a membership (subscribed or holding resources).
    members: IndexSet,
    /// Present in the role sorter (has an eligible framework).
    in_sorter: bool,
}

#[derive(Clone, Debug)]
struct Agent {
    id: String,
    total: Resources,
    /// Total minus everything allocated; never carries allocation_info.
    available: Resources,
    /// Allocated resources per framework index, with allocation_info.
    allocated: IndexMap<Resources>,
    quantities: Quantities,
    active: bool,
    /// Queued for the next cycle.
    dirty: bool,
    /// Frameworks with a refuse filter on this agent.
    filtered_by: IndexSet,
}

/// Hashes our own `u32` slot indices (not input from the network, so no
/// need for SipHash's flooding resistance): one multiply.
#[derive(Clone, Copy, Debug, Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9e_37_79_b9_7f_4a_7c_15);
    }
}

type IndexMap<V> = HashMap<u32, V, BuildHasherDefault<IndexHasher>>;
type IndexSet = HashSet<u32, BuildHasherDefault<IndexHasher>>;

/// A vector of optional slots addressed by stable `u32` indices.
#[derive(Clone, Debug)]
struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(value);
                i
            }
            None => {
                self.items.push(Some(value));
                (self.items.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, i: u32) -> Option<T> {
        let taken = self.items.get_mut(i as usize)?.take();
        if taken.is_some() {
            self.free.push(i);
        }
        taken
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, x)| x.as_ref().map(|x| (i as u32, x)))
    }
}

/// Hierarchical DRF allocator; see the module documentation.
#[derive(Clone, Debug)]
pub struct Allocator {
    weights: HashMap<String, f64>,
    agents: Slots<Agent>,
    agent_index: HashMap<String, u32>,
    frameworks: Slots<Framework>,
    framework_index: HashMap<String, u32>,
    roles: Vec<Role>,
    role_index: HashMap<Arc<str>, u32>,
    /// Roles with at least one eligible framework, by weighted share.
    role_sorter: Sorter,
    /// Sum of every agent's total DRF quantities.
    total: Quantities,
    /// `total` changed since shares were last computed.
    shares_stale: bool,
    role_ranks: Ranks,
    framework_ranks: Ranks,
    /// Ranks were relabeled since the sorters were built.
    ranks_stale: bool,
    /// Agents queued for the next cycle (deduplicated by `Agent::dirty`).
    dirty: Vec<u32>,
    /// Agents with non-empty available resources.
    with_available: BTreeSet<u32>,
    /// Demand grew: the next cycle visits every agent in `with_available`.
    revisit_all: bool,
    expiries: Expiries,
    last_cycle: CycleStats,
}

impl Allocator {
    /// An allocator with no agents and no frameworks.
    pub fn new(config: AllocatorConfig) -> Self {
        Allocator {
            weights: config
                .weights
                .into_iter()
                .filter(|(_, w)| valid_weight(*w))
                .collect(),
            agents: Slots::default(),
            agent_index: HashMap::new(),
            frameworks: Slots::default(),
            framework_index: HashMap::new(),
            roles: Vec::new(),
            role_index: HashMap::new(),
            role_sorter: Sorter::default(),
            total: Quantities::default(),
            shares_stale: false,
            role_ranks: Ranks::default(),
            framework_ranks: Ranks::default(),
            ranks_stale: false,
            dirty: Vec::new(),
            with_available: BTreeSet::new(),
            revisit_all: false,
            expiries: Expiries::default(),
            last_cycle: CycleStats::default(),
        }
    }

    // -- frameworks ----------------------------------------------------------

    /// Adds a framework subscribed to `roles`, with `suppressed_roles`
    /// suppressed. Adding a known framework (for example one that
    /// [`Allocator::add_agent`] learned about from an agent's `used`
    /// resources during master failover) updates it instead.
    pub fn add_framework(
        &mut self,
        framework_id: &str,
        roles: &[String],
        suppressed_roles: &[String],
        active: bool,
    ) {
        let f = match self.framework_index.get(framework_id) {
            Some(&f) => f,
            None => self.insert_framework(framework_id, active),
        };
        if let Some(fw) = self.frameworks.get_mut(f) {
            fw.active = active;
        }
        self.set_roles(f, roles, suppressed_roles);
        if active {
            self.revisit_all = true;
        }
    }

    /// Replaces a framework's roles and suppressed roles (MULTI_ROLE
    /// updates). Resources it holds in a role it left stay accounted to that
    /// role until they are recovered.
    pub fn update_framework(
        &mut self,
        framework_id: &str,
        roles: &[String],
        suppressed_roles: &[String],
    ) {
        if let Some(&f) = self.framework_index.get(framework_id) {
            self.set_roles(f, roles, suppressed_roles);
            self.revisit_all = true;
        }
    }

    /// Makes a framework eligible for offers again.
    pub fn activate_framework(&mut self, framework_id: &str) {
        let Some(&f) = self.framework_index.get(framework_id) else {
            return;
        };
        if let Some(fw) = self.frameworks.get_mut(f) {
            fw.active = true;
        }
        self.sync_framework(f);
        self.revisit_all = true;
    }

    /// Stops offering to a framework (it disconnected); its allocations stay.
    /// Like Mesos, this also drops its refuse filters.
    pub fn deactivate_framework(&mut self, framework_id: &str) {
        let Some(&f) = self.framework_index.get(framework_id) else {
            return;
        };
        if let Some(fw) = self.frameworks.get_mut(f) {
            fw.active = false;
        }
        self.sync_framework(f);
        self.clear_filters(f);
    }

    /// Removes a framework; everything allocated to it returns to its agents'
    /// available resources.
    pub fn remove_framework(&mut self, framework_id: &str) {
        let Some(f) = self.framework_index.remove(framework_id) else {
            return;
        };
        let agents: Vec<u32> = match self.frameworks.get(f) {
            Some(fw) => fw.agents.iter().copied().collect(),
            None => return,
        };
        for a in agents {
            let Some(resources) = self
                .agents
                .get_mut(a)
                .and_then(|ag| ag.allocated.remove(&f))
            else {
                continue;
            };
            self.charge(f, &resources, false);
            self.give_back(a, resources);
        }
        self.clear_filters(f);
        let Some(fw) = self.frameworks.remove(f) else {
            return;
        };
        self.framework_ranks.remove(&fw.id);
        for fr in &fw.roles {
            let role = &mut self.roles[fr.role as usize];
            if fr.in_sorter {
                role.frameworks.remove(fr.share, fw.rank, f);
            }
            role.members.remove(&f);
            self.refresh_role_presence(fr.role);
        }
    }

    /// Suppresses offers to a framework for `roles` (all its roles when
    /// empty).
    pub fn suppress(&mut self, framework_id: &str, roles: &[String]) {
        let Some(&f) = self.framework_index.get(framework_id) else {
            return;
        };
        self.set_suppressed(f, roles, true);
    }

    /// Unsuppresses `roles` (all when empty) and clears the framework's
    /// refuse filters, so it is considered for every agent next cycle.
    pub fn revive(&mut self, framework_id: &str, roles: &[String]) {
        let Some(&f) = self.framework_index.get(framework_id) else {
            return;
        };
        self.set_suppressed(f, roles, false);
        self.clear_filters(f);
        self.revisit_all = true;
    }

    /// Sets role weights (`/weights`). Non-positive or non-finite weights are
    /// ignored (the master validates them before).
    pub fn update_weights(&mut self, weights: &[(String, f64)]) {
        for (name, weight) in weights {
            if !valid_weight(*weight) {
                continue;
            }
            self.weights.insert(name.clone(), *weight);
            if let Some(&r) = self.role_index.get(name.as_str()) {
                self.roles[r as usize].weight = *weight;
                self.reshare_role(r);
            }
        }
        self.revisit_all = true;
    }

    // -- agents --------------------------------------------------------------

    /// Adds an agent with `total` resources, of which `used` are already
    /// allocated (resources of running tasks and executors, with
    /// allocation_info, when the agent re-registers after a master
    /// failover). A framework in `used` that is not known yet is tracked
    /// inactive until [`Allocator::add_framework`] or
    /// [`Allocator::remove_framework`]. Used resources that are not in
    /// `total` are ignored; resources without allocation_info count as
    /// allocated to the framework's only role, or `*`.
    pub fn add_agent(&mut self, agent_id: &str, total: Resources, used: &[(String, Resources)]) {
        if self.agent_index.contains_key(agent_id) {
            self.remove_agent(agent_id);
        }
        let quantities = Quantities::of(&total);
        let a = self.agents.insert(Agent {
            id: agent_id.to_owned(),
            // Our own copy, so the first allocation writes in place.
            available: total.deep_clone().unallocated(),
            total,
            allocated: IndexMap::default(),
            quantities,
            active: true,
            dirty: false,
            filtered_by: IndexSet::default(),
        });
        self.agent_index.insert(agent_id.to_owned(), a);
        self.total.add(&quantities);
        self.shares_stale = true;
        for (framework_id, resources) in used {
            let (f, placeholder) = match self.framework_index.get(framework_id.as_str()) {
                Some(&f) => (f, false),
                None => (self.insert_framework(framework_id, false), true),
            };
            let mut resources = self.with_allocation_roles(f, resources);
            let Some(agent) = self.agents.get_mut(a) else {
                return;
            };
            let plain = resources.unallocated();
            if !agent.available.contains(&plain) {
                // Keep only what the agent actually has.
                let mut left = agent.available.clone();
                resources = resources.filter(|r| {
                    let mut single = r.clone();
                    single.allocation_info = None;
                    match Resources::new(vec![single]) {
                        Ok(single) if left.contains(&single) => {
                            left -= &single;
                            true
                        }
                        _ => false,
                    }
                });
            }
            if resources.is_empty() {
                if placeholder {
                    self.remove_framework(framework_id);
                }
                continue;
            }
            agent.available -= &resources.unallocated();
            *agent.allocated.entry(f).or_default() += &resources;
            if let Some(fw) = self.frameworks.get_mut(f) {
                fw.agents.insert(a);
            }
            self.charge(f, &resources, true);
        }
        self.mark_dirty(a);
    }

    /// Replaces an agent's total (e.g. oversubscription estimates, resource
    /// provider changes). Available becomes the new total minus what is
    /// allocated; if the new total no longer holds every allocation, the
    /// agent stays oversubscribed until those resources are recovered.
    pub fn update_agent_total(&mut self, agent_id: &str, total: Resources) {
        let Some(&a) = self.agent_index.get(agent_id) else {
            return;
        };
        let Some(agent) = self.agents.get_mut(a) else {
            return;
        };
        let mut allocated = Resources::default();
        for resources in agent.allocated.values() {
            allocated += resources;
        }
        allocated.unallocate();
        let quantities = Quantities::of(&total);
        self.total.sub(&agent.quantities);
        self.total.add(&quantities);
        agent.quantities = quantities;
        agent.available = total.deep_clone().unallocated() - &allocated;
        agent.total = total;
        self.shares_stale = true;
        self.mark_dirty(a);
    }

    /// Applies an offer operation's conversions on an agent: to its total,
    /// and to what `framework_id` holds there (an ACCEPT's operations on
    /// offered resources, `allocated` carrying allocation info) or else to
    /// what is available (an operator's operation, `plain`). Conversions
    /// keep every quantity, so shares do not change. Conversions that do
    /// not apply are ignored; the master validated them.
    pub fn convert(
        &mut self,
        agent_id: &str,
        framework_id: Option<&str>,
        allocated: &[Conversion],
        plain: &[Conversion],
    ) {
        let Some(&a) = self.agent_index.get(agent_id) else {
            return;
        };
        let f = framework_id.and_then(|id| self.framework_index.get(id).copied());
        let Some(agent) = self.agents.get_mut(a) else {
            return;
        };
        if let Ok(total) = conversions::apply(&agent.total, plain, "") {
            agent.total = total;
        }
        match f {
            Some(f) => {
                if let Some(held) = agent.allocated.get_mut(&f) {
                    if let Ok(converted) = conversions::apply(held, allocated, "") {
                        *held = converted;
                    }
                }
            }
            None => {
                if let Ok(available) = conversions::apply(&agent.available, plain, "") {
                    agent.available = available;
                }
            }
        }
        self.mark_dirty(a);
    }

    /// Removes an agent and every allocation on it.
    pub fn remove_agent(&mut self, agent_id: &str) {
        let Some(a) = self.agent_index.remove(agent_id) else {
            return;
        };
        let Some(mut agent) = self.agents.remove(a) else {
            return;
        };
        for (f, resources) in agent.allocated.drain() {
            self.charge(f, &resources, false);
            if let Some(fw) = self.frameworks.get_mut(f) {
                fw.agents.remove(&a);
            }
        }
        for f in agent.filtered_by.drain() {
            if let Some(fw) = self.frameworks.get_mut(f) {
                fw.filters.remove(a);
            }
        }
        self.total.sub(&agent.quantities);
        self.shares_stale = true;
        self.with_available.remove(&a);
    }

    /// Makes an agent's resources offerable again.
    pub fn activate_agent(&mut self, agent_id: &str) {
        if let Some(&a) = self.agent_index.get(agent_id) {
            if let Some(agent) = self.agents.get_mut(a) {
                agent.active = true;
            }
            self.mark_dirty(a);
        }
    }

    /// Stops offering an agent's resources (it disconnected); its
    /// allocations stay.
    pub fn deactivate_agent(&mut self, agent_id: &str) {
        if let Some(&a) = self.agent_index.get(agent_id) {
            if let Some(agent) = self.agents.get_mut(a) {
                agent.active = false;
            }
        }
    }

    // -- resources -----------------------------------------------------------

    /// Returns resources a framework held on an agent (a declined offer, the
    /// unused part of an accepted one, a finished task's resources) to the
    /// agent's available pool. They carry allocation_info as offered;
    /// resources the framework does not hold there are ignored.
    ///
    /// `refuse` installs a refuse filter: the framework is not offered this
    /// agent again for that long (Mesos's `Filters.refuse_seconds`, which the
    /// master defaults to 5 s for declines). Simplified from Mesos: the
    /// filter covers the whole (framework, agent) pair, not only resources
    /// contained in the refused set, and all of the framework's roles.
    pub fn recover_resources(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        resources: &Resources,
        refuse: Option<Duration>,
        now: Instant,
    ) {
        let (Some(&f), Some(&a)) = (
            self.framework_index.get(framework_id),
            self.agent_index.get(agent_id),
        ) else {
            return;
        };
        let Some(agent) = self.agents.get_mut(a) else {
            return;
        };
        if let Some(held) = agent.allocated.get_mut(&f) {
            let recovered = if *held == *resources {
                // Everything comes back: move our own copy, which usually
                // shares nothing, so un-allocating it copies nothing.
                std::mem::take(held)
            } else if held.contains(resources) {
                resources.clone()
            } else {
                let mut left = held.clone();
                resources.filter(|r| match Resources::new(vec![r.clone()]) {
                    Ok(single) if left.contains(&single) => {
                        left -= &single;
                        true
                    }
                    _ => false,
                })
            };
            *held -= &recovered;
            if held.is_empty() {
                agent.allocated.remove(&f);
                if let Some(fw) = self.frameworks.get_mut(f) {
                    fw.agents.remove(&a);
                }
            }
            if !recovered.is_empty() {
                self.charge(f, &recovered, false);
                self.give_back(a, recovered);
            }
        }
        if let Some(refuse) = refuse.filter(|d| !d.is_zero()) {
            let Some(until) = now.checked_add(refuse) else {
                return;
            };
            if let (Some(fw), Some(agent)) = (self.frameworks.get_mut(f), self.agents.get_mut(a)) {
                fw.filters.install(a, until);
                agent.filtered_by.insert(f);
                self.expiries.push(until, f, a);
            }
        }
    }

    // -- the cycle -----------------------------------------------------------

    /// Runs one allocation cycle at `now`. Each visited agent (see the
    /// module documentation for which) goes, in ascending order of role
    /// share and then framework share, to the first eligible framework
    /// (active, role not suppressed, no unexpired filter on the agent): it
    /// receives everything available there that is unreserved or reserved to
    /// its role. Remaining reservations go on to other roles' frameworks.
    pub fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        self.expire_filters(now);
        if self.shares_stale || self.ranks_stale {
            self.rebuild_sorters();
        }
        let candidates: Vec<u32> = if self.revisit_all {
            for a in std::mem::take(&mut self.dirty) {
                if let Some(agent) = self.agents.get_mut(a) {
                    agent.dirty = false;
                }
            }
            self.with_available.iter().copied().collect()
        } else {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            dirty
        };
        self.revisit_all = false;
        let mut out = Vec::with_capacity(candidates.len());
        let mut visited = 0;
        for &a in &candidates {
            let Some(agent) = self.agents.get_mut(a) else {
                continue;
            };
            agent.dirty = false;
            if !agent.active || agent.available.is_empty() {
                continue;
            }
            visited += 1;
            self.allocate_agent(a, now, &mut out);
        }
        self.last_cycle = CycleStats {
            agents_visited: visited,
            allocations: out.len(),
        };
        out
    }

    /// What the last [`Allocator::allocate`] did.
    pub fn last_cycle(&self) -> CycleStats {
        self.last_cycle
    }

    // -- views ---------------------------------------------------------------

    /// An agent's unallocated resources.
    pub fn available(&self, agent_id: &str) -> Option<&Resources> {
        let &a = self.agent_index.get(agent_id)?;
        self.agents.get(a).map(|agent| &agent.available)
    }

    /// An agent's total resources.
    pub fn total(&self, agent_id: &str) -> Option<&Resources> {
        let &a = self.agent_index.get(agent_id)?;
        self.agents.get(a).map(|agent| &agent.total)
    }

    /// What a framework holds on an agent (with allocation_info).
    pub fn allocated(&self, framework_id: &str, agent_id: &str) -> Option<&Resources> {
        let &a = self.agent_index.get(agent_id)?;
        let &f = self.framework_index.get(framework_id)?;
        self.agents.get(a)?.allocated.get(&f)
    }

    /// Everything allocated on an agent, per framework id.
    pub fn allocations_on(&self, agent_id: &str) -> Vec<(&str, &Resources)> {
        let Some(agent) = self
            .agent_index
            .get(agent_id)
            .and_then(|&a| self.agents.get(a))
        else {
            return Vec::new();
        };
        let mut out: Vec<(&str, &Resources)> = agent
            .allocated
            .iter()
            .filter_map(|(&f, r)| Some((&*self.frameworks.get(f)?.id, r)))
            .collect();
        out.sort_unstable_by(|x, y| x.0.cmp(y.0));
        out
    }

    /// A role's weight (1.0 unless configured).
    pub fn weight(&self, role: &str) -> f64 {
        self.weights.get(role).copied().unwrap_or(1.0)
    }

    /// A framework's dominant share in `role` (not weighted).
    pub fn framework_share(&self, framework_id: &str, role: &str) -> Option<f64> {
        let fw = self
            .frameworks
            .get(*self.framework_index.get(framework_id)?)?;
        let &r = self.role_index.get(role)?;
        let fr = &fw.roles[fw.role_pos(r)?];
        Some(fr.allocated.dominant_share(&self.total))
    }

    /// Every role that has frameworks, allocations or a configured weight,
    /// sorted by name, with its share and allocation.
    pub fn role_shares(&self) -> Vec<RoleShare> {
        let mut out: Vec<RoleShare> = self
            .roles
            .iter()
            .filter(|role| {
                !role.members.is_empty()
                    || !role.allocated.is_zero()
                    || role.other_scalars.iter().any(|(_, v)| *v != 0)
                    || self.weights.contains_key(&*role.name)
            })
            .map(|role| {
                let mut frameworks: Vec<String> = role
                    .members
                    .iter()
                    .filter_map(|&f| self.frameworks.get(f).map(|fw| fw.id.to_string()))
                    .collect();
                frameworks.sort_unstable();
                let standard = DRF_RESOURCES
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (*name, role.allocated.get(i)));
                let others = role
                    .other_scalars
                    .iter()
                    .map(|(name, v)| (name.as_str(), *v));
                let allocated = standard
                    .chain(others)
                    .filter(|(_, v)| *v > 0)
                    .map(|(name, v)| Resource {
                        name: name.to_owned(),
                        r#type: value::Type::Scalar as i32,
                        scalar: Some(Scalar {
                            value: from_fixed(v),
                        }),
                        ..Default::default()
                    })
                    .collect();
                RoleShare {
                    role: role.name.to_string(),
                    weight: role.weight,
                    share: role.allocated.dominant_share(&self.total) / role.weight,
                    allocated: Resources::new(allocated).unwrap_or_default(),
                    frameworks,
                }
            })
            .collect();
        out.sort_unstable_by(|x, y| x.role.cmp(&y.role));
        out
    }

    // -- internals -----------------------------------------------------------

    fn insert_framework(&mut self, framework_id: &str, active: bool) -> u32 {
        let id: Arc<str> = Arc::from(framework_id);
        let (rank, relabeled) = self.framework_ranks.insert(&id);
        self.ranks_stale |= relabeled;
        let f = self.frameworks.insert(Framework {
            id,
            rank,
            active,
            roles: Vec::new(),
            filters: Filters::default(),
            agents: IndexSet::default(),
        });
        self.framework_index.insert(framework_id.to_owned(), f);
        f
    }

    fn role_or_insert(&mut self, name: &str) -> u32 {
        if let Some(&r) = self.role_index.get(name) {
            return r;
        }
        let name: Arc<str> = Arc::from(name);
        let (rank, relabeled) = self.role_ranks.insert(&name);
        self.ranks_stale |= relabeled;
        let r = self.roles.len() as u32;
        self.roles.push(Role {
            rank,
            weight: self.weights.get(&*name).copied().unwrap_or(1.0),
            name: Arc::clone(&name),
            allocated: Quantities::default(),
            other_scalars: Vec::new(),
            share: 0.0,
            frameworks: Sorter::default(),
            members: IndexSet::default(),
            in_sorter: false,
        });
        self.role_index.insert(name, r);
        r
    }

    /// Adds a membership of framework `f` in role `r` (not subscribed).
    fn membership(&mut self, f: u32, r: u32) -> Option<usize> {
        let fw = self.frameworks.get_mut(f)?;
        if let Some(pos) = fw.role_pos(r) {
            return Some(pos);
        }
        fw.roles.push(FrameworkRole {
            role: r,
            subscribed: false,
            suppressed: false,
            allocated: Quantities::default(),
            share: 0.0,
            in_sorter: false,
        });
        self.roles[r as usize].members.insert(f);
        Some(fw.roles.len() - 1)
    }

    fn set_roles(&mut self, f: u32, roles: &[String], suppressed_roles: &[String]) {
        let wanted: Vec<u32> = roles.iter().map(|name| self.role_or_insert(name)).collect();
        for &r in &wanted {
            self.membership(f, r);
        }
        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        for fr in &mut fw.roles {
            fr.subscribed = wanted.contains(&fr.role);
            let name = &self.roles[fr.role as usize].name;
            fr.suppressed = fr.subscribed && suppressed_roles.iter().any(|s| **s == **name);
        }
        self.sync_framework(f);
        self.drop_idle_memberships(f);
    }

    fn set_suppressed(&mut self, f: u32, roles: &[String], suppressed: bool) {
        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        for fr in &mut fw.roles {
            let name = &self.roles[fr.role as usize].name;
            if roles.is_empty() || roles.iter().any(|s| **s == **name) {
                fr.suppressed = suppressed && fr.subscribed;
            }
        }
        self.sync_framework(f);
    }

    /// Puts each of the framework's memberships in or out of its role's
    /// sorter according to eligibility.
    fn sync_framework(&mut self, f: u32) {
        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        let active = fw.active;
        let mut touched = Vec::new();
        for fr in &mut fw.roles {
            let eligible = active && fr.subscribed && !fr.suppressed;
            if eligible == fr.in_sorter {
                continue;
            }
            let role = &mut self.roles[fr.role as usize];
            if eligible {
                role.frameworks.insert(fr.share, fw.rank, f);
            } else {
                role.frameworks.remove(fr.share, fw.rank, f);
            }
            fr.in_sorter = eligible;
            touched.push(fr.role);
        }
        for r in touched {
            self.refresh_role_presence(r);
        }
    }

    /// Forgets memberships the framework left and holds nothing in.
    fn drop_idle_memberships(&mut self, f: u32) {
        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        let roles = &mut self.roles;
        fw.roles.retain(|fr| {
            let keep = fr.subscribed || !fr.allocated.is_zero();
            if !keep {
                roles[fr.role as usize].members.remove(&f);
            }
            keep
        });
    }

    /// Keeps the role in the role sorter exactly while it has an eligible
    /// framework.
    fn refresh_role_presence(&mut self, r: u32) {
        let role = &mut self.roles[r as usize];
        let present = !role.frameworks.is_empty();
        if present == role.in_sorter {
            return;
        }
        if present {
            self.role_sorter.insert(role.share, role.rank, r);
        } else {
            self.role_sorter.remove(role.share, role.rank, r);
        }
        role.in_sorter = present;
    }

    fn reshare_role(&mut self, r: u32) {
        let role = &mut self.roles[r as usize];
        let share = role.allocated.dominant_share(&self.total) / role.weight;
        if role.in_sorter {
            self.role_sorter.update(role.share, share, role.rank, r);
        }
        role.share = share;
    }

    /// Recomputes every share and rebuilds the sorters, after the cluster
    /// total changed or names were relabeled.
    fn rebuild_sorters(&mut self) {
        let total = self.total;
        let refresh_ranks = std::mem::take(&mut self.ranks_stale);
        for role in &mut self.roles {
            role.share = role.allocated.dominant_share(&total) / role.weight;
            if refresh_ranks {
                role.rank = self.role_ranks.get(&role.name).unwrap_or(role.rank);
            }
        }
        self.role_sorter = Sorter::from_entries(
            self.roles
                .iter()
                .enumerate()
                .filter(|(_, role)| role.in_sorter)
                .map(|(r, role)| (role.share, role.rank, r as u32)),
        );
        let mut per_role: Vec<Vec<(f64, u64, u32)>> = vec![Vec::new(); self.roles.len()];
        for slot in self.frameworks.items.iter_mut().enumerate() {
            let (f, Some(fw)) = slot else {
                continue;
            };
            if refresh_ranks {
                fw.rank = self.framework_ranks.get(&fw.id).unwrap_or(fw.rank);
            }
            for fr in &mut fw.roles {
                fr.share = fr.allocated.dominant_share(&total);
                if fr.in_sorter {
                    per_role[fr.role as usize].push((fr.share, fw.rank, f as u32));
                }
            }
        }
        for (role, entries) in self.roles.iter_mut().zip(per_role) {
            role.frameworks = Sorter::from_entries(entries);
        }
        self.shares_stale = false;
    }

    /// Assigns allocation_info to resources that lack it (recovered `used`).
    fn with_allocation_roles(&self, f: u32, resources: &Resources) -> Resources {
        if resources.iter().all(|r| allocation_role(r).is_some()) {
            return resources.clone();
        }
        let fallback = self
            .frameworks
            .get(f)
            .map(|fw| {
                let subscribed: Vec<u32> = fw
                    .roles
                    .iter()
                    .filter(|fr| fr.subscribed)
                    .map(|fr| fr.role)
                    .collect();
                match subscribed.as_slice() {
                    [only] => self.roles[*only as usize].name.to_string(),
                    _ => "*".to_owned(),
                }
            })
            .unwrap_or_else(|| "*".to_owned());
        let mut bare = resources.filter(|r| allocation_role(r).is_none());
        bare.allocate(&fallback);
        resources.filter(|r| allocation_role(r).is_some()) + bare
    }

    /// Adds (or removes) `resources`, allocated to framework `f`, to the
    /// quantities of their allocation roles and of `f` in those roles, and
    /// re-keys the sorters.
    fn charge(&mut self, f: u32, resources: &Resources, add: bool) {
        let role_of = |r: &Resource| allocation_role(r).unwrap_or("*").to_owned();
        let Some(first) = resources.iter().next().map(role_of) else {
            return;
        };
        if resources
            .iter()
            .all(|r| allocation_role(r).unwrap_or("*") == first)
        {
            let r = self.role_or_insert(&first);
            self.charge_role(f, r, resources, add);
            return;
        }
        let mut roles: Vec<String> = resources.iter().map(role_of).collect();
        roles.sort_unstable();
        roles.dedup();
        for name in roles {
            let part = resources.filter(|r| allocation_role(r).unwrap_or("*") == name);
            let r = self.role_or_insert(&name);
            self.charge_role(f, r, &part, add);
        }
    }

    /// [`Allocator::charge`] for resources all allocated to role `r`.
    fn charge_role(&mut self, f: u32, r: u32, resources: &Resources, add: bool) {
        let q = Quantities::of(resources);
        let Some(pos) = self.membership(f, r) else {
            return;
        };
        let total = self.total;
        let role = &mut self.roles[r as usize];
        if add {
            role.allocated.add(&q);
        } else {
            role.allocated.sub(&q);
        }
        for (name, amount) in resources.other_scalars_fixed() {
            let slot = match role.other_scalars.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    role.other_scalars.push((name.to_owned(), 0));
                    role.other_scalars.len() - 1
                }
            };
            let v = &mut role.other_scalars[slot].1;
            *v = if add {
                v.saturating_add(amount)
            } else {
                v.saturating_sub(amount).max(0)
            };
        }
        let share = role.allocated.dominant_share(&total) / role.weight;
        if role.in_sorter {
            self.role_sorter.update(role.share, share, role.rank, r);
        }
        role.share = share;

        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        let fr = &mut fw.roles[pos];
        if add {
            fr.allocated.add(&q);
        } else {
            fr.allocated.sub(&q);
        }
        let share = fr.allocated.dominant_share(&total);
        if fr.in_sorter {
            role.frameworks.update(fr.share, share, fw.rank, f);
        }
        fr.share = share;
        if !add && !fr.subscribed && fr.allocated.is_zero() {
            self.drop_idle_memberships(f);
        }
    }

    /// Returns allocated resources to an agent's available pool.
    fn give_back(&mut self, a: u32, mut resources: Resources) {
        let Some(agent) = self.agents.get_mut(a) else {
            return;
        };
        resources.unallocate();
        agent.available += resources;
        self.mark_dirty(a);
    }

    /// Queues an agent with available resources for the next cycle.
    fn mark_dirty(&mut self, a: u32) {
        let Some(agent) = self.agents.get_mut(a) else {
            return;
        };
        if agent.available.is_empty() {
            self.with_available.remove(&a);
            return;
        }
        self.with_available.insert(a);
        if !agent.dirty {
            agent.dirty = true;
            self.dirty.push(a);
        }
    }

    fn clear_filters(&mut self, f: u32) {
        let Some(fw) = self.frameworks.get_mut(f) else {
            return;
        };
        for a in fw.filters.clear() {
            if let Some(agent) = self.agents.get_mut(a) {
                agent.filtered_by.remove(&f);
            }
        }
    }

    fn expire_filters(&mut self, now: Instant) {
        while let Some((until, f, a)) = self.expiries.pop_due(now) {
            let expired = self
                .frameworks
                .get_mut(f)
                .is_some_and(|fw| fw.filters.expire(a, until));
            if expired {
                if let Some(agent) = self.agents.get_mut(a) {
                    agent.filtered_by.remove(&f);
                }
                self.mark_dirty(a);
            }
        }
    }

    /// The first (role, framework) in DRF order that may take something on
    /// agent `a` at `now`.
    fn pick(&self, a: u32, now: Instant) -> Option<(u32, u32)> {
        let agent = self.agents.get(a)?;
        for r in self.role_sorter.iter() {
            let role = &self.roles[r as usize];
            if !agent.available.has_allocatable_to(&role.name) {
                continue;
            }
            for f in role.frameworks.iter() {
                let filtered = !agent.filtered_by.is_empty()
                    && self
                        .frameworks
                        .get(f)
                        .is_some_and(|fw| fw.filters.blocks(a, now));
                if !filtered {
                    return Some((r, f));
                }
            }
        }
        None
    }

    fn allocate_agent(&mut self, a: u32, now: Instant, out: &mut Vec<Allocation>) {
        while let Some((r, f)) = self.pick(a, now) {
            let role_name = Arc::clone(&self.roles[r as usize].name);
            let Some(agent) = self.agents.get_mut(a) else {
                return;
            };
            let mut taken = agent.available.extract_allocatable_to(&role_name);
            taken.allocate(&role_name);
            *agent.allocated.entry(f).or_default() += &taken;
            let agent_id = agent.id.clone();
            let Some(fw) = self.frameworks.get_mut(f) else {
                return;
            };
            fw.agents.insert(a);
            let framework_id = String::from(&*fw.id);
            self.charge_role(f, r, &taken, true);
            out.push(Allocation {
                framework_id,
                agent_id,
                role: String::from(&*role_name),
                resources: taken,
            });
            if self
                .agents
                .get(a)
                .is_none_or(|agent| agent.available.is_empty())
            {
                break;
            }
        }
        if self
            .agents
            .get(a)
            .is_some_and(|agent| agent.available.is_empty())
        {
            self.with_available.remove(&a);
        }
    }

    /// Recomputes everything incremental from scratch and compares.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut total = Quantities::default();
        let mut role_alloc: HashMap<u32, Quantities> = HashMap::new();
        let mut fw_alloc: HashMap<(u32, u32), Quantities> = HashMap::new();
        for (a, agent) in self.agents.iter() {
            total.add(&agent.quantities);
            assert_eq!(agent.quantities, Quantities::of(&agent.total));
            let mut sum = agent.available.clone();
            for (&f, held) in &agent.allocated {
                assert!(!held.is_empty(), "empty allocation kept");
                let fw = self
                    .frameworks
                    .get(f)
                    .expect("allocation of a known framework");
                assert!(fw.agents.contains(&a));
                for res in held {
                    let role = self.role_index[allocation_role(res).expect("allocated")];
                    let single =
                        Resources::new(vec![res.clone()]).expect("held resources are valid");
                    let q = Quantities::of(&single);
                    role_alloc.entry(role).or_default().add(&q);
                    fw_alloc.entry((f, role)).or_default().add(&q);
                }
                sum += &held.unallocated();
            }
            assert_eq!(sum, agent.total.unallocated(), "agent {}", agent.id);
            assert_eq!(
                self.with_available.contains(&a),
                !agent.available.is_empty()
            );
            for &f in &agent.filtered_by {
                assert!(self.frameworks.get(f).is_some());
            }
        }
        assert_eq!(total, self.total);
        for (r, role) in self.roles.iter().enumerate() {
            let r = r as u32;
            assert_eq!(
                role.allocated,
                role_alloc.get(&r).copied().unwrap_or_default(),
                "role {}",
                role.name
            );
            assert_eq!(role.in_sorter, !role.frameworks.is_empty());
            if role.in_sorter && !self.shares_stale {
                assert!(self.role_sorter.contains(role.share, role.rank, r));
            }
        }
        assert_eq!(
            self.role_sorter.len(),
            self.roles.iter().filter(|r| r.in_sorter).count()
        );
        for (f, fw) in self.frameworks.iter() {
            for fr in &fw.roles {
                let want = fw_alloc.get(&(f, fr.role)).copied().unwrap_or_default();
                assert_eq!(fr.allocated, want, "framework {} role {}", fw.id, fr.role);
                let eligible = fw.active && fr.subscribed && !fr.suppressed;
                assert_eq!(fr.in_sorter, eligible);
                assert!(self.roles[fr.role as usize].members.contains(&f));
                if eligible && !self.shares_stale {
                    assert!(self.roles[fr.role as usize]
                        .frameworks
                        .contains(fr.share, fw.rank, f));
                }
            }
            for &a in &fw.agents {
                assert!(self
                    .agents
                    .get(a)
                    .is_some_and(|agent| agent.allocated.contains_key(&f)));
            }
        }
        for role in &self.roles {
            let eligible = role.members.iter().filter(|&&f| {
                self.frameworks.get(f).is_some_and(|fw| {
                    fw.roles
                        .iter()
                        .any(|fr| self.roles[fr.role as usize].name == role.name && fr.in_sorter)
                })
            });
            assert_eq!(eligible.count(), role.frameworks.len());
        }
    }
}

fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight > 0.0
}

#[cfg(test)]
mod tests;
