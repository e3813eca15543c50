//! Allocator benchmarks, on one core: a full allocation cycle (every agent
//! has available resources and must be allocated) at 1,000 agents × 100
//! frameworks and 10,000 × 1,000, and an incremental cycle after one agent's
//! resources come back (`recover_resources` + `allocate`) at 10,000 × 1,000.
//!
//! The full cycle is measured two ways: `allocate` re-allocates everything
//! after all resources were recovered (the steady state), and
//! `first_allocate` is the first cycle of a cluster whose agents and
//! frameworks just registered.
//!
//! The raw baseline, measured in the same run, is the least any allocator
//! must touch: iterating over the same agents' resources and summing their
//! scalars. After the criterion groups a one-line summary with the
//! allocator/baseline ratios goes to stderr (skipped with `--test`/`--list`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion};
use mesos_common::resources::Resources;
use mesos_master::allocator::{Allocation, Allocator, AllocatorConfig};

const AGENT_RESOURCES: &str = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]";
const ROLES: usize = 10;
const SIZES: [(usize, usize); 2] = [(1_000, 100), (10_000, 1_000)];

/// A cluster where every agent is free and every framework active, spread
/// over [`ROLES`] roles; plus the agents' resources for the baseline.
fn cluster(agents: usize, frameworks: usize) -> (Allocator, Vec<Resources>) {
    let total = Resources::parse(AGENT_RESOURCES).expect("the benchmark's agent resources parse");
    let mut alloc = Allocator::new(AllocatorConfig::default());
    for f in 0..frameworks {
        let role = format!("role-{}", f % ROLES);
        alloc.add_framework(&format!("framework-{f:05}"), &[role], &[], true);
    }
    for a in 0..agents {
        alloc.add_agent(&format!("agent-{a:06}"), total.clone(), &[]);
    }
    (alloc, vec![total; agents])
}

/// The least any allocator must touch: every agent's resources, once.
fn baseline(agents: &[Resources]) -> f64 {
    let mut sum = 0.0;
    for resources in agents {
        for r in resources {
            if let Some(s) = &r.scalar {
                sum += s.value;
            }
        }
    }
    sum
}

/// A fully allocated cluster in which resources come back and are
/// re-allocated.
struct Allocated {
    alloc: Allocator,
    /// The current allocation of each agent, by agent position.
    held: Vec<Allocation>,
    next: usize,
    now: Instant,
}

impl Allocated {
    fn new(agents: usize, frameworks: usize) -> Self {
        let (mut alloc, _) = cluster(agents, frameworks);
        let now = Instant::now();
        let held = alloc.allocate(now);
        assert_eq!(
            held.len(),
            agents,
            "the full cycle allocates every agent once"
        );
        Allocated {
            alloc,
            held,
            next: 0,
            now,
        }
    }

    /// Every agent's resources come back (not timed), then one full cycle
    /// allocates all of them again (timed).
    fn full_cycle(&mut self) -> Duration {
        for a in std::mem::take(&mut self.held) {
            self.alloc.recover_resources(
                &a.framework_id,
                &a.agent_id,
                &a.resources,
                None,
                self.now,
            );
        }
        let start = Instant::now();
        let out = self.alloc.allocate(self.now);
        let spent = start.elapsed();
        assert_eq!(out.len(), self.alloc.last_cycle().agents_visited);
        self.held = out;
        spent
    }

    /// One agent's resources are recovered, then one cycle runs.
    fn incremental_step(&mut self) {
        let i = self.next % self.held.len();
        self.next += 1;
        let a = &self.held[i];
        self.alloc
            .recover_resources(&a.framework_id, &a.agent_id, &a.resources, None, self.now);
        let mut out = self.alloc.allocate(self.now);
        assert_eq!(out.len(), 1, "exactly the recovered agent is re-allocated");
        if let Some(a) = out.pop() {
            self.held[i] = a;
        }
    }
}

fn bench_full(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_cycle");
    group.sample_size(10);
    for (agents, frameworks) in SIZES {
        let id = format!("{agents}x{frameworks}");
        let mut allocated = Allocated::new(agents, frameworks);
        group.bench_function(BenchmarkId::new("allocate", &id), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| allocated.full_cycle()).sum())
        });
        drop(allocated);
        // The very first cycle after every agent and framework registered.
        group.bench_function(BenchmarkId::new("first_allocate", &id), |b| {
            b.iter_batched(
                || cluster(agents, frameworks).0,
                |mut alloc| {
                    let out = alloc.allocate(Instant::now());
                    // Return both so dropping them is not timed.
                    (alloc, out)
                },
                BatchSize::PerIteration,
            )
        });
        let resources = cluster(agents, frameworks).1;
        group.bench_function(BenchmarkId::new("baseline", &id), |b| {
            b.iter(|| baseline(black_box(&resources)))
        });
    }
    group.finish();
}

fn bench_incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("incremental_cycle");
    let (agents, frameworks) = SIZES[1];
    let mut allocated = Allocated::new(agents, frameworks);
    let id = format!("{agents}x{frameworks}");
    group.bench_function(BenchmarkId::new("recover_and_allocate", &id), |b| {
        b.iter(|| allocated.incremental_step())
    });
    group.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times each case again with plain `Instant`s and prints the ratios.
fn summary() {
    let mut parts = Vec::new();
    let mut baseline_10k = Duration::ZERO;
    for (agents, frameworks) in SIZES {
        let mut allocated = Allocated::new(agents, frameworks);
        let full = median((0..7).map(|_| allocated.full_cycle()).collect());
        drop(allocated);
        let resources = cluster(agents, frameworks).1;
        let first = median(
            (0..5)
                .map(|_| {
                    let mut alloc = cluster(agents, frameworks).0;
                    let start = Instant::now();
                    let out = alloc.allocate(Instant::now());
                    let spent = start.elapsed();
                    drop((alloc, out));
                    spent
                })
                .collect(),
        );
        let base_time = median(
            (0..51)
                .map(|_| {
                    let start = Instant::now();
                    black_box(baseline(black_box(&resources)));
                    start.elapsed()
                })
                .collect(),
        );
        baseline_10k = base_time;
        let ratio = |d: Duration| d.as_secs_f64() / base_time.as_secs_f64().max(1e-9);
        parts.push(format!(
            "full {agents}x{frameworks}: {:.2} ms = {:.0}x baseline ({:.3} ms), first cycle {:.2} ms = {:.0}x",
            ms(full),
            ratio(full),
            ms(base_time),
            ms(first),
            ratio(first),
        ));
    }
    let (agents, frameworks) = SIZES[1];
    let mut allocated = Allocated::new(agents, frameworks);
    let steps = 2_000;
    let start = Instant::now();
    for _ in 0..steps {
        allocated.incremental_step();
    }
    let per_step = start.elapsed() / steps;
    parts.push(format!(
        "incremental {agents}x{frameworks}: {:.4} ms = {:.4}x the full baseline",
        ms(per_step),
        per_step.as_secs_f64() / baseline_10k.as_secs_f64().max(1e-9)
    ));
    eprintln!("allocator summary: {}", parts.join("; "));
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_full(&mut criterion);
    bench_incremental(&mut criterion);
    criterion.final_summary();
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    if !quick {
        summary();
    }
}
