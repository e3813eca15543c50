//! Registry benchmarks, for the redb (default) and sled backends: what a
//! reservation or volume change costs before
//! it may be acknowledged, against the raw baseline of the same bytes
//! written and `fdatasync`ed to a plain file in the same directory, in the
//! same run.
//!
//! * `mutation`: one agent's record staged and flushed (`stage_resources`
//!   + `sync`, what one operator request pays alone).
//! * `64_one_at_a_time` / `64_group_commit`: 64 changes to 64 agents, each
//!   flushed on its own, or all staged and flushed once (what the master's
//!   actor does with a batch of concurrent requests).
//! * `load_10k_agents_50k_volumes`: reopening a registry holding 10,000
//!   admitted agents with 5 volumes each and decoding every record, as a
//!   restarted master does.
//!
//! After the criterion groups, p50/p99 of 2,000 single mutations and of the
//! raw fsync, and the group-commit speed-up, go to stderr (skipped with
//! `--test`/`--list`).

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::Criterion;
use mesos_master::registry::{RedbRegistry, Registry, SledRegistry};
use mesos_proto::v1::resource::disk_info::Persistence;
use mesos_proto::v1::resource::{reservation_info, DiskInfo, ReservationInfo};
use mesos_proto::v1::{self as v1, AgentId, AgentInfo, Resource};

/// An agent's dynamic reservations and `volumes` volumes, as the registry
/// stores them.
fn agent_resources(agent: usize, volumes: usize) -> Vec<Resource> {
    (0..volumes)
        .map(|i| Resource {
            name: "disk".into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(v1::value::Scalar { value: 64.0 }),
            reservations: vec![ReservationInfo {
                r#type: Some(reservation_info::Type::Dynamic as i32),
                role: Some("storage".into()),
                principal: Some("operator".into()),
                labels: None,
            }],
            disk: Some(Box::new(DiskInfo {
                persistence: Some(Persistence {
                    id: format!("agent-{agent}-volume-{i}"),
                    principal: Some("operator".into()),
                }),
                volume: Some(v1::Volume {
                    container_path: "data".into(),
                    mode: v1::volume::Mode::Rw as i32,
                    ..Default::default()
                }),
                source: None,
            })),
            ..Default::default()
        })
        .collect()
}

fn encoded_len(resources: &[Resource]) -> usize {
    use prost::Message;
    mesos_proto::internal::registry::AgentResources {
        resources: resources.to_vec(),
    }
    .encoded_len()
}

/// The raw baseline: `len` bytes appended and `fdatasync`ed.
struct RawFile(std::fs::File, Vec<u8>);

impl RawFile {
    fn open(dir: &std::path::Path, len: usize) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("raw"))
            .expect("raw file");
        RawFile(file, vec![7u8; len])
    }

    fn write(&mut self) {
        self.0.write_all(&self.1).expect("write");
        self.0.sync_data().expect("fdatasync");
    }
}

/// Stages `record` for agents `first..first + count`, committing after each
/// one when `each`, else once at the end (group commit).
fn mutate(
    registry: &mut dyn Registry,
    record: &[Resource],
    first: usize,
    count: usize,
    each: bool,
) {
    for i in first..first + count {
        registry
            .stage_resources(&format!("agent-{i}"), record)
            .expect("stage");
        if each {
            registry.sync().expect("sync");
        }
    }
    if !each {
        registry.sync().expect("sync");
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

type Open = fn(&std::path::Path) -> Box<dyn Registry>;

fn open_redb(dir: &std::path::Path) -> Box<dyn Registry> {
    Box::new(RedbRegistry::open(dir).expect("redb registry"))
}

fn open_sled(dir: &std::path::Path) -> Box<dyn Registry> {
    Box::new(SledRegistry::open(dir).expect("sled registry"))
}

fn main() {
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let quiet = std::env::args().any(|a| a == "--test" || a == "--list");
    let dir = tempfile::tempdir().expect("tempdir");
    let record = agent_resources(0, 5);
    let len = encoded_len(&record);
    let mut raw = RawFile::open(dir.path(), len);
    let mut group = criterion.benchmark_group("registry");
    group.bench_function("raw_fsync", |b| b.iter(|| raw.write()));
    group.finish();
    let mut summary = Vec::new();
    for (name, open) in [("redb", open_redb as Open), ("sled", open_sled as Open)] {
        let mut registry = open(&dir.path().join(format!("{name}-mutations")));
        let mut n = 0usize;
        let mut group = criterion.benchmark_group(format!("registry/{name}"));
        group.bench_function("mutation", |b| {
            b.iter(|| {
                n += 1;
                mutate(registry.as_mut(), &record, n % 1000, 1, true)
            })
        });
        group.bench_function("64_one_at_a_time", |b| {
            b.iter(|| mutate(registry.as_mut(), &record, 0, 64, true))
        });
        group.bench_function("64_group_commit", |b| {
            b.iter(|| mutate(registry.as_mut(), &record, 0, 64, false))
        });
        group.finish();

        // 10,000 agents with 5 volumes each, loaded from disk.
        let big = dir.path().join(format!("{name}-big"));
        {
            let mut r = open(&big);
            for a in 0..10_000 {
                let info = AgentInfo {
                    hostname: format!("agent-{a}"),
                    id: Some(AgentId {
                        value: format!("agent-{a}"),
                    }),
                    ..Default::default()
                };
                r.admit_agent(&info, 1.0).expect("admit");
                r.stage_resources(&format!("agent-{a}"), &agent_resources(a, 5))
                    .expect("stage");
                if a % 1000 == 999 {
                    r.sync().expect("sync");
                }
            }
            r.sync().expect("sync");
        }
        let mut group = criterion.benchmark_group(format!("registry/{name}"));
        group.sample_size(10);
        group.bench_function("load_10k_agents_50k_volumes", |b| {
            b.iter(|| {
                let mut r = open(&big);
                let recovered = r.recover().expect("recover");
                let volumes: usize = recovered
                    .resources
                    .into_values()
                    .map(|list| {
                        mesos_common::resources::Resources::new(list)
                            .expect("valid")
                            .len()
                    })
                    .sum();
                assert_eq!(volumes, 50_000);
                black_box(recovered.agents.len())
            })
        });
        group.finish();
        if quiet {
            continue;
        }
        let mut raw_samples = Vec::with_capacity(2000);
        let mut samples = Vec::with_capacity(2000);
        for i in 0..2000 {
            let t = Instant::now();
            raw.write();
            raw_samples.push(t.elapsed());
            let t = Instant::now();
            mutate(registry.as_mut(), &record, i % 1000, 1, true);
            samples.push(t.elapsed());
        }
        let (raw50, raw99) = percentiles(raw_samples);
        let (s50, s99) = percentiles(samples);
        let t = Instant::now();
        for _ in 0..20 {
            mutate(registry.as_mut(), &record, 0, 64, true);
        }
        let one = t.elapsed();
        let t = Instant::now();
        for _ in 0..20 {
            mutate(registry.as_mut(), &record, 0, 64, false);
        }
        let grouped = t.elapsed();
        summary.push(format!(
            "{name}: raw fsync p50 {raw50:?} p99 {raw99:?}; mutation p50 {s50:?} p99 {s99:?} \
             (p99 {:.2}x raw p99); 64 one at a time {:?}, group commit {:?} ({:.1}x throughput)",
            s99.as_secs_f64() / raw99.as_secs_f64(),
            one / 20,
            grouped / 20,
            one.as_secs_f64() / grouped.as_secs_f64()
        ));
    }
    for line in summary {
        eprintln!("registry summary (record {len} B) {line}");
    }
}
