//! `Authorization` header values from the network: Basic parsing and
//! Bearer/JWT verification never panic, and never accept a token that was
//! not signed with the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_common::auth::basic;
use mesos_common::auth::credentials::Secret;
use mesos_common::auth::jwt;

fuzz_target!(|data: &[u8]| {
    if let Ok((principal, _secret)) = basic::parse(data) {
        assert!(!principal.is_empty());
        assert!(!principal.contains(':'));
    }
    let key = Secret::new(*b"fuzzing-key-fuzzing-key-fuzzing");
    if let Ok(token) = jwt::parse_bearer(data) {
        let _ = jwt::verify(&key, token);
    }
    // The bytes as a bare token too, so the fuzzer need not find `Bearer `.
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(claims) = jwt::verify(&key, token) {
            // Only a token minted with the key verifies; re-minting its
            // claims must verify to the same claims.
            assert_eq!(
                jwt::verify(&key, &jwt::mint(&key, &claims)).ok(),
                Some(claims)
            );
        }
    }
});
