//! Allocator benchmarks, on one core: a full allocation cycle (every agent
//! has available resources and must be allocated) at 1,000 agents × 100
//! frameworks and 10,000 × 1,000, and an incremental cycle after one agent's
//! resources come back (`recover_resources` + `allocate`) at 10,000 × 1,000.
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

/// A fully allocated cluster in which one agent at a time gets its
/// resources back and is re-allocated.
struct Incremental {
    alloc: Allocator,
    /// The current allocation of each agent, by agent position.
    held: Vec<Allocation>,
    next: usize,
    now: Instant,
}

impl Incremental {
    fn new(agents: usize, frameworks: usize) -> Self {
        let (mut alloc, _) = cluster(agents, frameworks);
        let now = Instant::now();
        let held = alloc.allocate(now);
        assert_eq!(
            held.len(),
            agents,
            "the full cycle allocates every agent once"
        );
        Incremental {
            alloc,
            held,
            next: 0,
            now,
        }
    }

    /// One agent's resources are recovered, then one cycle runs.
    fn step(&mut self) {
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
        let (base, resources) = cluster(agents, frameworks);
        let id = format!("{agents}x{frameworks}");
        group.bench_function(BenchmarkId::new("allocate", &id), |b| {
            b.iter_batched(
                || base.clone(),
                |mut alloc| {
                    let out = alloc.allocate(Instant::now());
                    // Return both so dropping them is not timed.
                    (alloc, out)
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("baseline", &id), |b| {
            b.iter(|| baseline(black_box(&resources)))
        });
    }
    group.finish();
}

fn bench_incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("incremental_cycle");
    let (agents, frameworks) = SIZES[1];
    let mut inc = Incremental::new(agents, frameworks);
    let id = format!("{agents}x{frameworks}");
    group.bench_function(BenchmarkId::new("recover_and_allocate", &id), |b| {
        b.iter(|| inc.step())
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
        let (base, resources) = cluster(agents, frameworks);
        let full = median(
            (0..5)
                .map(|_| {
                    let mut alloc = base.clone();
                    let start = Instant::now();
                    let out = alloc.allocate(Instant::now());
                    let spent = start.elapsed();
                    assert_eq!(out.len(), agents);
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
        parts.push(format!(
            "full {agents}x{frameworks}: {:.2} ms = {:.0}x baseline ({:.3} ms)",
            ms(full),
            full.as_secs_f64() / base_time.as_secs_f64().max(1e-9),
            ms(base_time)
        ));
    }
    let (agents, frameworks) = SIZES[1];
    let mut inc = Incremental::new(agents, frameworks);
    let steps = 2_000;
    let start = Instant::now();
    for _ in 0..steps {
        inc.step();
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
