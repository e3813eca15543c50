//! Allocator behaviour with plain values: DRF order, weights, suppression,
//! filters, reservations, activation, MULTI_ROLE and incremental cycles.

use super::*;
use mesos_common::resources::{is_allocatable_to, reservation_role};
use proptest::prelude::*;

fn res(text: &str) -> Resources {
    Resources::parse(text).expect("test resources parse")
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// (framework, agent, role) of each allocation, in order.
fn who(allocations: &[Allocation]) -> Vec<(&str, &str, &str)> {
    allocations
        .iter()
        .map(|a| {
            (
                a.framework_id.as_str(),
                a.agent_id.as_str(),
                a.role.as_str(),
            )
        })
        .collect()
}

fn cluster(agents: usize, text: &str) -> Allocator {
    let mut alloc = Allocator::new(AllocatorConfig::default());
    for i in 0..agents {
        alloc.add_agent(&format!("a{i}"), res(text), &[]);
    }
    alloc
}

#[test]
fn two_frameworks_in_one_role_alternate_across_agents() {
    let mut alloc = cluster(4, "cpus:1;mem:10");
    alloc.add_framework("f1", &roles(&["r"]), &[], true);
    alloc.add_framework("f2", &roles(&["r"]), &[], true);
    let out = alloc.allocate(Instant::now());
    assert_eq!(
        who(&out),
        vec![
            ("f1", "a0", "r"),
            ("f2", "a1", "r"),
            ("f1", "a2", "r"),
            ("f2", "a3", "r")
        ]
    );
    for a in &out {
        assert!(a.resources.iter().all(|r| allocation_role(r) == Some("r")));
        assert_eq!(a.resources.unallocated(), res("cpus:1;mem:10"));
        assert!(alloc
            .available(&a.agent_id)
            .expect("known agent")
            .is_empty());
    }
    assert_eq!(alloc.framework_share("f1", "r"), Some(0.5));
    alloc.check_invariants();
}

#[test]
fn drf_favours_the_framework_with_the_smaller_dominant_share() {
    let mut alloc = cluster(2, "cpus:4;mem:100");
    alloc.add_framework("big", &roles(&["r"]), &[], true);
    alloc.add_framework("small", &roles(&["r"]), &[], true);
    // "big" already holds a whole agent's worth through failover recovery.
    let mut held = res("cpus:4;mem:100");
    held.allocate("r");
    alloc.add_agent("old", res("cpus:4;mem:100"), &[("big".to_string(), held)]);
    let out = alloc.allocate(Instant::now());
    // "small" first; then both hold a third of the cluster and the tie goes
    // to the smaller name.
    assert_eq!(who(&out), vec![("small", "a0", "r"), ("big", "a1", "r")]);
    alloc.check_invariants();
}

#[test]
fn weights_shift_allocation_between_roles() {
    let mut weights = HashMap::new();
    weights.insert("heavy".to_string(), 3.0);
    let mut alloc = Allocator::new(AllocatorConfig { weights });
    for i in 0..8 {
        alloc.add_agent(&format!("a{i}"), res("cpus:1;mem:10"), &[]);
    }
    alloc.add_framework("fh", &roles(&["heavy"]), &[], true);
    alloc.add_framework("fl", &roles(&["light"]), &[], true);
    let out = alloc.allocate(Instant::now());
    let heavy = out.iter().filter(|a| a.role == "heavy").count();
    assert_eq!((heavy, out.len() - heavy), (6, 2));

    // Weights can change at run time; the next allocations follow them.
    let mut alloc = cluster(8, "cpus:1;mem:10");
    alloc.add_framework("fh", &roles(&["heavy"]), &[], true);
    alloc.add_framework("fl", &roles(&["light"]), &[], true);
    alloc.update_weights(&[("light".to_string(), 3.0)]);
    let out = alloc.allocate(Instant::now());
    let light = out.iter().filter(|a| a.role == "light").count();
    assert_eq!(light, 6);
    let shares = alloc.role_shares();
    let light = shares
        .iter()
        .find(|s| s.role == "light")
        .expect("light is reported");
    assert_eq!(light.weight, 3.0);
    assert_eq!(light.share, 0.75 / 3.0);
    assert_eq!(light.allocated, res("cpus:6;mem:60"));
    assert_eq!(light.frameworks, vec!["fl".to_string()]);
}

#[test]
fn suppressed_role_gets_nothing_until_revive() {
    let mut alloc = cluster(2, "cpus:1");
    alloc.add_framework("f", &roles(&["r"]), &roles(&["r"]), true);
    let t = Instant::now();
    assert!(alloc.allocate(t).is_empty());
    alloc.revive("f", &[]);
    assert_eq!(alloc.allocate(t).len(), 2);

    let mut alloc = cluster(2, "cpus:1");
    alloc.add_framework("f", &roles(&["r"]), &[], true);
    alloc.suppress("f", &[]);
    assert!(alloc.allocate(t).is_empty());
    alloc.revive("f", &roles(&["r"]));
    assert_eq!(alloc.allocate(t).len(), 2);
    alloc.check_invariants();
}

#[test]
fn refuse_filter_blocks_for_its_duration_then_expires() {
    let mut alloc = cluster(1, "cpus:2;mem:10");
    alloc.add_framework("f", &roles(&["r"]), &[], true);
    let t0 = Instant::now();
    let out = alloc.allocate(t0);
    assert_eq!(out.len(), 1);
    let offered = out[0].resources.clone();
    alloc.recover_resources("f", "a0", &offered, Some(Duration::from_secs(5)), t0);
    assert_eq!(alloc.available("a0"), Some(&res("cpus:2;mem:10")));
    assert!(alloc.allocate(t0 + Duration::from_secs(1)).is_empty());
    assert!(alloc.allocate(t0 + Duration::from_secs(4)).is_empty());
    // The expiry alone brings the agent back into the next cycle.
    let out = alloc.allocate(t0 + Duration::from_secs(5));
    assert_eq!(who(&out), vec![("f", "a0", "r")]);
    alloc.check_invariants();
}

#[test]
fn a_refused_agent_goes_to_another_framework() {
    let mut alloc = cluster(1, "cpus:2");
    alloc.add_framework("f1", &roles(&["r"]), &[], true);
    let t0 = Instant::now();
    let out = alloc.allocate(t0);
    alloc.add_framework("f2", &roles(&["r"]), &[], true);
    alloc.recover_resources(
        "f1",
        "a0",
        &out[0].resources,
        Some(Duration::from_secs(5)),
        t0,
    );
    assert_eq!(who(&alloc.allocate(t0)), vec![("f2", "a0", "r")]);
}

#[test]
fn revive_clears_filters() {
    let mut alloc = cluster(1, "cpus:2");
    alloc.add_framework("f", &roles(&["r"]), &[], true);
    let t0 = Instant::now();
    let out = alloc.allocate(t0);
    alloc.recover_resources(
        "f",
        "a0",
        &out[0].resources,
        Some(Duration::from_secs(60)),
        t0,
    );
    assert!(alloc.allocate(t0).is_empty());
    alloc.revive("f", &[]);
    assert_eq!(alloc.allocate(t0).len(), 1);
}

#[test]
fn removed_framework_resources_come_back() {
    let mut alloc = cluster(2, "cpus:2;mem:10;ports:[1-5]");
    alloc.add_framework("f1", &roles(&["r"]), &[], true);
    let t = Instant::now();
    assert_eq!(alloc.allocate(t).len(), 2);
    assert!(alloc.available("a0").expect("known").is_empty());
    alloc.remove_framework("f1");
    assert_eq!(
        alloc.available("a0"),
        Some(&res("cpus:2;mem:10;ports:[1-5]"))
    );
    assert_eq!(
        alloc.available("a1"),
        Some(&res("cpus:2;mem:10;ports:[1-5]"))
    );
    assert!(alloc.role_shares().is_empty());
    alloc.add_framework("f2", &roles(&["r"]), &[], true);
    assert_eq!(
        who(&alloc.allocate(t)),
        vec![("f2", "a0", "r"), ("f2", "a1", "r")]
    );
    alloc.check_invariants();
}

#[test]
fn reserved_resources_only_go_to_their_role() {
    let mut alloc = cluster(1, "cpus(db):4;cpus:2;mem(db/replica):8");
    alloc.add_framework("web", &roles(&["web"]), &[], true);
    let t = Instant::now();
    let out = alloc.allocate(t);
    assert_eq!(who(&out), vec![("web", "a0", "web")]);
    assert_eq!(out[0].resources.unallocated(), res("cpus:2"));
    assert_eq!(
        alloc.available("a0"),
        Some(&res("cpus(db):4;mem(db/replica):8"))
    );

    alloc.add_framework("db", &roles(&["db"]), &[], true);
    let out = alloc.allocate(t);
    assert_eq!(who(&out), vec![("db", "a0", "db")]);
    assert!(out[0]
        .resources
        .iter()
        .all(|r| reservation_role(r) == Some("db")));
    // Reserved to a child role: not allocatable to the parent.
    assert_eq!(alloc.available("a0"), Some(&res("mem(db/replica):8")));

    alloc.add_framework("replica", &roles(&["db/replica"]), &[], true);
    let out = alloc.allocate(t);
    assert_eq!(who(&out), vec![("replica", "a0", "db/replica")]);
    alloc.check_invariants();
}

#[test]
fn reservations_left_after_the_first_pick_go_to_their_role_in_the_same_cycle() {
    let mut alloc = cluster(1, "cpus(db):4;cpus:2");
    alloc.add_framework("web", &roles(&["web"]), &[], true);
    alloc.add_framework("db", &roles(&["db"]), &[], true);
    let out = alloc.allocate(Instant::now());
    // "db" sorts first (equal shares, by name) and takes both pools.
    assert_eq!(who(&out), vec![("db", "a0", "db")]);
    assert_eq!(out[0].resources.unallocated(), res("cpus(db):4;cpus:2"));

    let mut alloc = cluster(1, "cpus(web):4;cpus:2");
    alloc.add_framework("db", &roles(&["db"]), &[], true);
    alloc.add_framework("web", &roles(&["web"]), &[], true);
    let out = alloc.allocate(Instant::now());
    assert_eq!(who(&out), vec![("db", "a0", "db"), ("web", "a0", "web")]);
    assert_eq!(out[1].resources.unallocated(), res("cpus(web):4"));
}

#[test]
fn inactive_agents_and_frameworks_get_nothing() {
    let t = Instant::now();
    let mut alloc = cluster(2, "cpus:1");
    alloc.add_framework("f", &roles(&["r"]), &[], false);
    assert!(alloc.allocate(t).is_empty());
    alloc.deactivate_agent("a0");
    alloc.activate_framework("f");
    assert_eq!(who(&alloc.allocate(t)), vec![("f", "a1", "r")]);
    alloc.activate_agent("a0");
    assert_eq!(who(&alloc.allocate(t)), vec![("f", "a0", "r")]);

    let mut alloc = cluster(1, "cpus:1");
    alloc.add_framework("f", &roles(&["r"]), &[], true);
    alloc.deactivate_framework("f");
    assert!(alloc.allocate(t).is_empty());
    alloc.check_invariants();
}

#[test]
fn multi_role_framework_receives_allocations_under_each_role() {
    let mut alloc = cluster(2, "cpus:1;mem:10");
    alloc.add_agent("ra", res("cpus(b):3"), &[]);
    alloc.add_framework("f", &roles(&["a", "b"]), &[], true);
    let out = alloc.allocate(Instant::now());
    assert_eq!(
        who(&out),
        vec![("f", "a0", "a"), ("f", "a1", "b"), ("f", "ra", "b")]
    );
    for a in &out {
        assert!(a
            .resources
            .iter()
            .all(|r| allocation_role(r) == Some(a.role.as_str())));
    }
    let shares = alloc.role_shares();
    assert_eq!(shares.len(), 2);
    assert!(shares.iter().all(|s| s.frameworks == vec!["f".to_string()]));
    assert_eq!(shares[1].allocated, res("cpus:4;mem:10"));

    // Recovering one role's resources only changes that role.
    alloc.recover_resources("f", "ra", &out[2].resources, None, Instant::now());
    assert_eq!(alloc.role_shares()[1].allocated, res("cpus:1;mem:10"));
    alloc.check_invariants();
}

#[test]
fn leaving_a_role_keeps_its_allocation_accounted_until_recovered() {
    let mut alloc = cluster(1, "cpus:2");
    alloc.add_framework("f", &roles(&["a"]), &[], true);
    let out = alloc.allocate(Instant::now());
    alloc.update_framework("f", &roles(&["b"]), &[]);
    assert_eq!(alloc.role_shares().len(), 2);
    alloc.check_invariants();
    alloc.recover_resources("f", "a0", &out[0].resources, None, Instant::now());
    let shares = alloc.role_shares();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].role, "b");
    assert_eq!(who(&alloc.allocate(Instant::now())), vec![("f", "a0", "b")]);
    alloc.check_invariants();
}

#[test]
fn incremental_cycle_after_recover_allocates_only_that_agent() {
    // Leftover reservations for a role nobody uses keep every agent
    // non-empty, so a cycle that looked at all of them would notice.
    let mut alloc = cluster(100, "cpus:2;mem:10;cpus(idle):1");
    alloc.add_framework("f1", &roles(&["r"]), &[], true);
    alloc.add_framework("f2", &roles(&["r"]), &[], true);
    let t = Instant::now();
    let first = alloc.allocate(t);
    assert_eq!(first.len(), 100);
    assert_eq!(alloc.last_cycle().agents_visited, 100);
    assert!(alloc.allocate(t).is_empty());
    assert_eq!(alloc.last_cycle().agents_visited, 0);

    let a = &first[42];
    alloc.recover_resources(&a.framework_id, &a.agent_id, &a.resources, None, t);
    let out = alloc.allocate(t);
    assert_eq!(alloc.last_cycle().agents_visited, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].agent_id, a.agent_id);
    assert_eq!(out[0].resources, a.resources);
    alloc.check_invariants();
}

#[test]
fn failover_recovery_tracks_used_resources_of_unknown_frameworks() {
    let mut alloc = Allocator::new(AllocatorConfig::default());
    let mut used = res("cpus:1;mem:5");
    used.allocate("r");
    alloc.add_agent(
        "a0",
        res("cpus:4;mem:20"),
        &[
            ("late".to_string(), used.clone()),
            ("ghost".to_string(), res("cpus:100")),
        ],
    );
    // "ghost" claimed more than the agent has and got nothing.
    assert_eq!(alloc.available("a0"), Some(&res("cpus:3;mem:15")));
    assert_eq!(alloc.allocations_on("a0").len(), 1);
    assert!(!alloc.framework_index.contains_key("ghost"));
    assert_eq!(alloc.allocated("late", "a0"), Some(&used));
    alloc.check_invariants();
    // The framework re-subscribes later and is offered the rest.
    alloc.add_framework("late", &roles(&["r"]), &[], true);
    let out = alloc.allocate(Instant::now());
    assert_eq!(who(&out), vec![("late", "a0", "r")]);
    alloc.remove_framework("late");
    assert_eq!(alloc.available("a0"), Some(&res("cpus:4;mem:20")));
    alloc.check_invariants();
}

#[test]
fn agent_total_updates_and_removal_keep_accounts() {
    let mut alloc = cluster(2, "cpus:2;mem:10");
    alloc.add_framework("f", &roles(&["r"]), &[], true);
    let t = Instant::now();
    alloc.allocate(t);
    alloc.update_agent_total("a0", res("cpus:3;mem:10;gpus:1"));
    assert_eq!(alloc.available("a0"), Some(&res("cpus:1;gpus:1")));
    assert_eq!(who(&alloc.allocate(t)), vec![("f", "a0", "r")]);
    alloc.check_invariants();
    alloc.remove_agent("a0");
    assert_eq!(alloc.available("a0"), None);
    assert_eq!(alloc.framework_share("f", "r"), Some(1.0));
    alloc.check_invariants();
}

// -- property: accounts always balance -------------------------------------

const TEMPLATES: [&str; 4] = [
    "cpus:4;mem:1024;disk:100;ports:[1-10]",
    "cpus(r1):2;mem(r1):512;cpus:1",
    "gpus:1;cpus:2;mem(r2/x):10;foo:{a,b}",
    "cpus(r2):1;ports(r2):[5-6];disk:3",
];
const ROLES: [&str; 4] = ["r1", "r2", "r2/x", "*"];

#[derive(Clone, Debug)]
enum Op {
    AddAgent(u8, usize),
    RemoveAgent(u8),
    UpdateAgentTotal(u8, usize),
    AgentActive(u8, bool),
    AddFramework(u8, Vec<usize>, Vec<usize>, bool),
    UpdateFramework(u8, Vec<usize>, Vec<usize>),
    RemoveFramework(u8),
    FrameworkActive(u8, bool),
    Suppress(u8, Vec<usize>),
    Revive(u8, Vec<usize>),
    Recover(u8, u8, bool, Option<u8>),
    Allocate(u8),
    Weight(usize, u8),
}

fn role_subset() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..ROLES.len(), 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0u8..5;
    let fw = 0u8..4;
    prop_oneof![
        3 => (agent.clone(), 0..TEMPLATES.len()).prop_map(|(a, t)| Op::AddAgent(a, t)),
        1 => agent.clone().prop_map(Op::RemoveAgent),
        1 => (agent.clone(), 0..TEMPLATES.len()).prop_map(|(a, t)| Op::UpdateAgentTotal(a, t)),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, b)| Op::AgentActive(a, b)),
        3 => (fw.clone(), role_subset(), role_subset(), any::<bool>())
            .prop_map(|(f, r, s, b)| Op::AddFramework(f, r, s, b)),
        1 => (fw.clone(), role_subset(), role_subset()).prop_map(|(f, r, s)| Op::UpdateFramework(f, r, s)),
        1 => fw.clone().prop_map(Op::RemoveFramework),
        1 => (fw.clone(), any::<bool>()).prop_map(|(f, b)| Op::FrameworkActive(f, b)),
        1 => (fw.clone(), role_subset()).prop_map(|(f, r)| Op::Suppress(f, r)),
        1 => (fw.clone(), role_subset()).prop_map(|(f, r)| Op::Revive(f, r)),
        4 => (fw, agent, any::<bool>(), proptest::option::of(0u8..4))
            .prop_map(|(f, a, all, refuse)| Op::Recover(f, a, all, refuse)),
        4 => (0u8..3).prop_map(Op::Allocate),
        1 => (0..ROLES.len(), 1u8..4).prop_map(|(r, w)| Op::Weight(r, w)),
    ]
}

fn names(indices: &[usize]) -> Vec<String> {
    indices.iter().map(|&i| ROLES[i].to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn total_is_available_plus_allocated_after_any_operations(ops in proptest::collection::vec(op(), 1..40)) {
        let mut alloc = Allocator::new(AllocatorConfig::default());
        let t0 = Instant::now();
        let mut now = t0;
        for op in ops {
            match op {
                Op::AddAgent(a, t) => alloc.add_agent(&format!("a{a}"), res(TEMPLATES[t]), &[]),
                Op::RemoveAgent(a) => alloc.remove_agent(&format!("a{a}")),
                Op::UpdateAgentTotal(a, t) => {
                    let id = format!("a{a}");
                    let mut total = res(TEMPLATES[t]);
                    for (_, held) in alloc.allocations_on(&id) {
                        total += &held.unallocated();
                    }
                    alloc.update_agent_total(&id, total);
                }
                Op::AgentActive(a, true) => alloc.activate_agent(&format!("a{a}")),
                Op::AgentActive(a, false) => alloc.deactivate_agent(&format!("a{a}")),
                Op::AddFramework(f, r, s, active) => {
                    alloc.add_framework(&format!("f{f}"), &names(&r), &names(&s), active)
                }
                Op::UpdateFramework(f, r, s) => alloc.update_framework(&format!("f{f}"), &names(&r), &names(&s)),
                Op::RemoveFramework(f) => alloc.remove_framework(&format!("f{f}")),
                Op::FrameworkActive(f, true) => alloc.activate_framework(&format!("f{f}")),
                Op::FrameworkActive(f, false) => alloc.deactivate_framework(&format!("f{f}")),
                Op::Suppress(f, r) => alloc.suppress(&format!("f{f}"), &names(&r)),
                Op::Revive(f, r) => alloc.revive(&format!("f{f}"), &names(&r)),
                Op::Recover(f, a, all, refuse) => {
                    let (fid, aid) = (format!("f{f}"), format!("a{a}"));
                    if let Some(held) = alloc.allocated(&fid, &aid).cloned() {
                        let part = if all {
                            held
                        } else {
                            let first = held.iter().next().cloned().into_iter().collect();
                            Resources::new(first).expect("a held resource is valid")
                        };
                        let refuse = refuse.map(|s| Duration::from_secs(u64::from(s)));
                        alloc.recover_resources(&fid, &aid, &part, refuse, now);
                    }
                }
                Op::Allocate(advance) => {
                    now += Duration::from_secs(u64::from(advance));
                    for a in alloc.allocate(now) {
                        prop_assert!(a.resources.iter().all(|r| allocation_role(r) == Some(a.role.as_str())));
                        prop_assert!(a.resources.iter().all(|r| is_allocatable_to(r, &a.role)));
                        prop_assert!(!a.resources.is_empty());
                    }
                }
                Op::Weight(r, w) => alloc.update_weights(&[(ROLES[r].to_string(), f64::from(w))]),
            }
            alloc.check_invariants();
        }
        // Draining everything returns every agent to its total.
        let agents: Vec<String> = alloc.agent_index.keys().cloned().collect();
        for f in 0..4 {
            alloc.remove_framework(&format!("f{f}"));
        }
        for a in &agents {
            prop_assert_eq!(alloc.available(a).map(Resources::unallocated), alloc.total(a).map(Resources::unallocated));
        }
        alloc.check_invariants();
    }
}
