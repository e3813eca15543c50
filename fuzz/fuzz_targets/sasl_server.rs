//! What an unauthenticated peer controls in SASL authentication: the start
//! data and every step, fed to server sessions of both mechanisms. Never
//! panics, and never completes for a peer that does not know a secret.
//!
//! The first byte picks the mechanism and whether the exchange starts with
//! a well-formed opening (so the later states see fuzzed input too); the
//! rest is split at 0x00 into the start data and the steps (neither
//! mechanism allows NUL inside a message, so no reachable input is lost).
#![no_main]
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use mesos_common::auth::credentials::{Credential, Credentials, Secret};
use mesos_common::auth::sasl::{server_session, Mechanism, ServerStep};

static CREDENTIALS: LazyLock<Arc<Credentials>> = LazyLock::new(|| {
    Arc::new(Credentials::from_pairs([Credential {
        principal: "agent".into(),
        // Random per run: no input can know it.
        secret: Secret::new(format!("{:032x}", rand_secret())),
    }]))
});

fn rand_secret() -> u128 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    t ^ (u128::from(std::process::id()) << 64)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mechanism = if mode & 1 == 0 {
        Mechanism::CramMd5
    } else {
        Mechanism::ScramSha256
    };
    let mut parts = rest.split(|&b| b == 0);
    let mut server = server_session(mechanism, CREDENTIALS.clone(), "fuzz.example");
    let fuzzed_start = parts.next().unwrap_or_default();
    let start: Vec<u8> = match (mode & 2 != 0, mechanism) {
        // A well-formed opening with a fuzzed nonce and extensions.
        (true, Mechanism::ScramSha256) => [b"n,,n=agent,r=".as_slice(), fuzzed_start].concat(),
        (true, Mechanism::CramMd5) => Vec::new(),
        (false, _) => fuzzed_start.to_vec(),
    };
    let mut outcome = server.start(&start);
    for step in parts.take(4) {
        assert!(
            !matches!(outcome, ServerStep::Completed { .. }),
            "a peer without the secret completed authentication"
        );
        outcome = server.step(step);
    }
    assert!(
        !matches!(outcome, ServerStep::Completed { .. }),
        "a peer without the secret completed authentication"
    );
});
