//! Cost of one whole SASL exchange (client and server sessions, in
//! process, no IO) for CRAM-MD5 and SCRAM-SHA-256, each beside a raw
//! baseline measured in the same run:
//!
//! - CRAM-MD5 baseline: one bare HMAC-MD5 of a challenge (the proof itself).
//! - SCRAM baseline: the bare HMAC/SHA-256 work of one exchange, both
//!   sides, from a precomputed salted password (ClientKey, StoredKey,
//!   ServerKey, two signatures on each side, the proof check).
//!
//! SCRAM is measured warm: the server's per-principal keys and the client's
//! salted password are cached after the first exchange, which is what
//! reconnecting agents see. One PBKDF2 derivation (paid once per principal
//! and secret by the server, once per server salt by a client) is measured
//! too, for scale.
//!
//! After criterion's report, exchanges per second and the ratios are
//! printed from a short timing loop of our own (criterion does not hand its
//! estimates back).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hmac::Mac as _;
use mesos_common::auth::credentials::{Credential, Credentials, Secret};
use mesos_common::auth::sasl::{client_session, server_session, Mechanism, ServerStep};
use mesos_common::auth::scram;
use sha2::Digest as _;

const CHALLENGE: &[u8] = b"<1896.697170952@postoffice.reston.mci.net>";

struct Fixture {
    credentials: Arc<Credentials>,
    credential: Credential,
    salted: [u8; 32],
    auth_message: Vec<u8>,
}

fn fixture() -> Fixture {
    let credential = Credential {
        principal: "agent-0042".into(),
        secret: Secret::new("correct horse battery staple"),
    };
    let credentials = Arc::new(Credentials::from_pairs(
        (0..100)
            .map(|i| Credential {
                principal: format!("agent-{i:04}"),
                secret: Secret::new(format!("secret-{i}")),
            })
            .chain([credential.clone()]),
    ));
    let salted = *scram::salted_password(credential.secret.expose(), b"0123456789abcdef", 4096);
    // An AuthMessage the size of a real one (client-first-bare, server-first,
    // client-final-without-proof).
    let auth_message = b"n=agent-0042,r=fyko+d2lbbFgONRv9qkxdawL,\
r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,\
c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
        .to_vec();
    Fixture {
        credentials,
        credential,
        salted,
        auth_message,
    }
}

/// One whole exchange; panics unless it completes.
fn exchange(f: &Fixture, mechanism: Mechanism) {
    let mut server = server_session(mechanism, f.credentials.clone(), "master.example");
    let mut client = client_session(mechanism, &f.credential);
    let mut step = server.start(&client.start().expect("client start"));
    loop {
        match step {
            ServerStep::Challenge(challenge) => {
                step = server.step(&client.step(&challenge).expect("client step"));
            }
            ServerStep::Completed { .. } => return,
            other => panic!("exchange did not complete: {other:?}"),
        }
    }
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(key).expect("any key length works");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length works");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The bare SCRAM arithmetic of one exchange, both sides, with the salted
/// password already known.
fn raw_scram(salted: &[u8; 32], auth_message: &[u8]) -> bool {
    // Client.
    let client_key = hmac_sha256(salted, b"Client Key");
    let stored_key: [u8; 32] = sha2::Sha256::digest(client_key).into();
    let client_signature = hmac_sha256(&stored_key, auth_message);
    let proof: Vec<u8> = client_key
        .iter()
        .zip(client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac_sha256(salted, b"Server Key");
    let expected_server_signature = hmac_sha256(&server_key, auth_message);
    // Server (StoredKey and ServerKey are what it stores).
    let signature = hmac_sha256(&stored_key, auth_message);
    let recovered: Vec<u8> = proof.iter().zip(signature).map(|(a, b)| a ^ b).collect();
    let proof_ok = sha2::Sha256::digest(&recovered)[..] == stored_key[..];
    let server_signature = hmac_sha256(&server_key, auth_message);
    proof_ok && server_signature == expected_server_signature
}

fn bench(c: &mut Criterion, f: &Fixture) {
    // Warm the SCRAM caches, and check every routine works.
    exchange(f, Mechanism::CramMd5);
    exchange(f, Mechanism::ScramSha256);
    assert!(raw_scram(&f.salted, &f.auth_message));

    let mut cram = c.benchmark_group("cram_md5");
    cram.bench_function("raw_baseline_hmac_md5", |b| {
        b.iter(|| {
            hmac_md5(
                black_box(f.credential.secret.expose()),
                black_box(CHALLENGE),
            )
        })
    });
    cram.bench_function("full_exchange", |b| {
        b.iter(|| exchange(black_box(f), Mechanism::CramMd5))
    });
    cram.finish();

    let mut scram_group = c.benchmark_group("scram_sha256");
    scram_group.bench_function("raw_baseline_hmac_sha256_work", |b| {
        b.iter(|| raw_scram(black_box(&f.salted), black_box(&f.auth_message)))
    });
    scram_group.bench_function("full_exchange_warm", |b| {
        b.iter(|| exchange(black_box(f), Mechanism::ScramSha256))
    });
    scram_group.sample_size(10);
    scram_group.bench_function("pbkdf2_4096_one_derivation", |b| {
        b.iter(|| scram::salted_password(black_box(b"secret"), black_box(b"salt"), 4096))
    });
    scram_group.finish();
}

/// Calls per second of `f`, timed for about `budget`.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(f: &Fixture) {
    let budget = Duration::from_secs(1);
    let cram_raw = rate(budget, || {
        black_box(hmac_md5(f.credential.secret.expose(), black_box(CHALLENGE)));
    });
    let cram = rate(budget, || exchange(f, Mechanism::CramMd5));
    let scram_raw = rate(budget, || {
        black_box(raw_scram(&f.salted, black_box(&f.auth_message)));
    });
    let scram = rate(budget, || exchange(f, Mechanism::ScramSha256));
    let pbkdf2 = rate(budget, || {
        black_box(scram::salted_password(b"secret", black_box(b"salt"), 4096));
    });
    println!();
    println!("SASL exchanges, client and server in one thread:");
    println!(
        "  CRAM-MD5       {cram:>10.0} exchanges/s  baseline (1 HMAC-MD5) {cram_raw:>10.0}/s  ratio {:.1}x",
        cram_raw / cram
    );
    println!(
        "  SCRAM-SHA-256  {scram:>10.0} exchanges/s  baseline (HMAC work) {scram_raw:>10.0}/s  ratio {:.1}x",
        scram_raw / scram
    );
    println!(
        "  PBKDF2-SHA-256 4096 rounds: {pbkdf2:.0}/s (once per principal on the server, per server salt on a client)"
    );
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &f);
    c.final_summary();
    report(&f);
}
