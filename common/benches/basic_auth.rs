//! Per-request cost of HTTP Basic authentication, cached and uncached, and
//! of executor JWT verification, each beside a raw baseline measured in the
//! same run:
//!
//! - Basic baseline: what a naive check does — base64-decode the token,
//!   split on `:`, look the principal up and compare with `==`.
//! - JWT baseline: HMAC-SHA-256 over the signing input, nothing else.
//!
//! After criterion's report, the ratios are printed from a short timing
//! loop of our own (criterion does not hand its estimates back).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::Criterion;
use hmac::Mac as _;
use mesos_common::auth::basic::{header_value, BasicAuthenticator};
use mesos_common::auth::credentials::{Credential, CredentialStore, Credentials, Secret};
use mesos_common::auth::jwt::{self, ExecutorClaims};

const PRINCIPALS: usize = 100;

struct Fixture {
    authenticator: BasicAuthenticator,
    header: http::HeaderValue,
    plain: HashMap<String, String>,
    jwt_key: Secret,
    token: String,
}

fn fixture() -> Fixture {
    let pairs: Vec<(String, String)> = (0..PRINCIPALS)
        .map(|i| {
            (
                format!("principal-{i}"),
                format!("secret-{i}-0123456789abcdef"),
            )
        })
        .collect();
    let store = CredentialStore::new(Credentials::from_pairs(pairs.iter().map(|(p, s)| {
        Credential {
            principal: p.clone(),
            secret: Secret::new(s.as_bytes()),
        }
    })));
    let (principal, secret) = &pairs[PRINCIPALS / 2];
    let header =
        http::HeaderValue::from_str(&header_value(principal, &Secret::new(secret.as_bytes())))
            .expect("header value is ASCII");
    let jwt_key = Secret::new(*b"0123456789abcdef0123456789abcdef");
    let token = jwt::mint(
        &jwt_key,
        &ExecutorClaims {
            fid: "2b6f0d1e-7c9a-4e1b-9a53-3d1f0c2b8e77-0000".into(),
            eid: "default-executor".into(),
            cid: "5e3a9f1c-0b2d-4c8e-a1f7-9d6b2e4c3a10".into(),
        },
    );
    Fixture {
        authenticator: BasicAuthenticator::new(store),
        header,
        plain: pairs.into_iter().collect(),
        jwt_key,
        token,
    }
}

/// The naive Basic check the baseline measures.
fn raw_basic(plain: &HashMap<String, String>, header: &[u8]) -> bool {
    let Some(token) = header.strip_prefix(b"Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let Some((principal, secret)) = text.split_once(':') else {
        return false;
    };
    plain.get(principal).is_some_and(|s| s == secret)
}

/// HMAC-SHA-256 over the token's signing input: the JWT baseline.
fn raw_hmac(key: &Secret, token: &str) -> [u8; 32] {
    let input = token.rsplit_once('.').map_or(token, |(input, _)| input);
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose()).expect("any key length works");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().into()
}

fn bench(c: &mut Criterion, f: &Fixture) {
    assert!(raw_basic(&f.plain, f.header.as_bytes()));
    assert!(f.authenticator.authenticate(Some(&f.header)).is_ok());

    let mut basic = c.benchmark_group("basic");
    basic.bench_function("raw_baseline_decode_and_eq", |b| {
        b.iter(|| raw_basic(black_box(&f.plain), black_box(f.header.as_bytes())))
    });
    basic.bench_function("authenticate_uncached", |b| {
        b.iter(|| {
            f.authenticator
                .authenticate_uncached(black_box(Some(&f.header)))
        })
    });
    basic.bench_function("authenticate_cached_hit", |b| {
        b.iter(|| f.authenticator.authenticate(black_box(Some(&f.header))))
    });
    basic.finish();

    let mut jwt_group = c.benchmark_group("jwt");
    jwt_group.bench_function("raw_baseline_hmac_sha256", |b| {
        b.iter(|| raw_hmac(black_box(&f.jwt_key), black_box(&f.token)))
    });
    jwt_group.bench_function("verify", |b| {
        b.iter(|| jwt::verify(black_box(&f.jwt_key), black_box(&f.token)))
    });
    jwt_group.finish();
}

/// Median nanoseconds per call of `f` over a few rounds.
fn per_call_ns(mut f: impl FnMut()) -> f64 {
    let mut iterations: u32 = 1_000;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        if start.elapsed() >= Duration::from_millis(20) || iterations >= 1 << 24 {
            break;
        }
        iterations *= 2;
    }
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn print_ratios(f: &Fixture) {
    let raw = per_call_ns(|| {
        black_box(raw_basic(
            black_box(&f.plain),
            black_box(f.header.as_bytes()),
        ));
    });
    let uncached = per_call_ns(|| {
        let _ = black_box(
            f.authenticator
                .authenticate_uncached(black_box(Some(&f.header))),
        );
    });
    let cached = per_call_ns(|| {
        let _ = black_box(f.authenticator.authenticate(black_box(Some(&f.header))));
    });
    let hmac = per_call_ns(|| {
        black_box(raw_hmac(black_box(&f.jwt_key), black_box(&f.token)));
    });
    let verify = per_call_ns(|| {
        let _ = black_box(jwt::verify(black_box(&f.jwt_key), black_box(&f.token)));
    });
    println!();
    println!("basic: raw baseline (decode + ==)   {raw:8.1} ns");
    println!(
        "basic: authenticate_uncached        {uncached:8.1} ns  ({:.2}x baseline)",
        uncached / raw
    );
    println!(
        "basic: authenticate (cache hit)     {cached:8.1} ns  ({:.2}x baseline, {:.2}x uncached)",
        cached / raw,
        cached / uncached
    );
    println!("jwt:   raw baseline (HMAC-SHA-256)  {hmac:8.1} ns");
    println!(
        "jwt:   verify                       {verify:8.1} ns  ({:.2}x baseline)",
        verify / hmac
    );
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &f);
    c.final_summary();
    // `cargo test --benches` runs this in test mode: skip the timing loop.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_ratios(&f);
    }
}
