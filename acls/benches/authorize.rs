//! Authorization checks/s at 10, 100 and 1,000 ACLs: the direct evaluator
//! (raw baseline), casbin cold (cache bypassed) and casbin cached; and
//! filtering 100,000 tasks run by 50 users through the `ViewFilter`, beside a
//! plain `HashSet` filter and an unmemoized per-task check. The request
//! always matches the last entry, the worst case for the ordered walk.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mesos_acls::{
    visible, Acl, Acls, Action, Authorizer, CasbinAuthorizer, DirectAuthorizer, Entity, Object,
    Request,
};

fn acls(n: usize) -> Acls {
    let mut acls = Acls::new(false);
    for i in 0..n {
        acls.push(
            Action::RegisterFrameworks,
            Acl {
                principals: Entity::some([format!("p{i}")]),
                object: Entity::some([format!("r{i}"), format!("r{i}/%")]),
            },
        );
    }
    acls
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for n in [10usize, 100, 1000] {
        let acls = acls(n);
        let direct = DirectAuthorizer::new(acls.clone());
        let casbin = CasbinAuthorizer::new_blocking(&acls).expect("enforcer");
        let (p, r) = (format!("p{}", n - 1), format!("r{}/x", n - 1));
        let request = Request {
            action: Action::RegisterFrameworks,
            subject: Some(&p),
            object: Object::Value(&r),
        };
        assert!(direct.authorize(&request).is_allowed());
        assert_eq!(
            casbin.authorize_uncached(&request),
            direct.authorize(&request)
        );
        group.bench_with_input(BenchmarkId::new("direct", n), &request, |b, req| {
            b.iter(|| direct.authorize(black_box(req)))
        });
        group.bench_with_input(BenchmarkId::new("casbin_cached", n), &request, |b, req| {
            b.iter(|| casbin.authorize(black_box(req)))
        });
        if n == 1000 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("casbin_cold", n), &request, |b, req| {
            b.iter(|| casbin.authorize_uncached(black_box(req)))
        });
    }
    group.finish();
}

fn filtering(c: &mut Criterion) {
    let users: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    let tasks: Vec<(u64, &str)> = (0..100_000u64)
        .map(|i| (i, users[(i % 50) as usize].as_str()))
        .collect();
    // "ops" may see the even-numbered users; 100 entries, visible users last.
    let mut acls = Acls::new(false);
    for i in 0..75 {
        acls.push(
            Action::ViewTasks,
            Acl {
                principals: Entity::some([format!("other{i}")]),
                object: Entity::any(),
            },
        );
    }
    for (i, u) in users.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let _ = i;
        acls.push(
            Action::ViewTasks,
            Acl {
                principals: Entity::some(["ops"]),
                object: Entity::some([u.clone()]),
            },
        );
    }
    let casbin = CasbinAuthorizer::new_blocking(&acls).expect("enforcer");
    let direct = DirectAuthorizer::new(acls.clone());
    let allowed: HashSet<&str> = users.iter().step_by(2).map(String::as_str).collect();
    let expected = tasks.iter().filter(|t| allowed.contains(t.1)).count();
    assert_eq!(expected, 50_000);

    let mut group = c.benchmark_group("filter_100k_tasks_50_users");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    group.bench_function("baseline_hashset", |b| {
        b.iter(|| {
            black_box(&tasks)
                .iter()
                .filter(|t| allowed.contains(t.1))
                .count()
        })
    });
    group.bench_function("view_filter_casbin", |b| {
        b.iter(|| {
            let n = visible(
                &casbin,
                Some("ops"),
                Action::ViewTasks,
                black_box(&tasks).iter(),
                |t| Object::Value(t.1),
            )
            .count();
            assert_eq!(n, expected);
        })
    });
    group.bench_function("unmemoized_direct_per_task", |b| {
        b.iter(|| {
            black_box(&tasks)
                .iter()
                .filter(|t| {
                    direct
                        .authorize(&Request {
                            action: Action::ViewTasks,
                            subject: Some("ops"),
                            object: Object::Value(t.1),
                        })
                        .is_allowed()
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, checks, filtering);
criterion_main!(benches);
