//! Brute-force protection: growing delays after failed authentications,
//! tracked per principal and per peer address separately.
//!
//! Owns the failure counters and back-off windows; it does not authenticate
//! anything nor choose the response (the caller turns `Err(retry_after)`
//! into a refusal, e.g. a 429 with `Retry-After` or an authentication
//! failure, without checking the credentials at all). A refusal because of
//! the back-off must not be recorded as another failure.
//!
//! ## Delays
//! Failure number `n` of a key (counted since its last success, forgetting
//! keys idle for [`LimiterConfig::idle_forget`]) is free while
//! `n <= free`; beyond that the key is blocked for
//! `base_delay × 2^(n - free - 1)`, capped at `max_delay`: with the
//! defaults the first failure over the allowance waits 250 ms, the next
//! 500 ms, 1 s, … up to 60 s.
//!
//! ## Lock-out abuse, and the two allowances
//! Counting per principal stops an attacker spread over many addresses
//! from guessing one principal's secret; counting per address stops one
//! address from guessing across many principals (password spraying). But
//! anyone can fail on purpose for someone else's principal and so delay its
//! owner. We accept that, bounded: the principal's allowance is larger
//! ([`LimiterConfig::principal_free_failures`], 10) than an address's
//! ([`LimiterConfig::free_failures`], 3), so the owner's own typos stay free
//! and an attacker must first spend its address's allowance; the delay is
//! never a permanent lock-out (at most `max_delay`), and it drains after
//! `idle_forget` without failures. An attacker with many addresses can keep
//! a principal delayed; that is visible in the audit log, and the
//! alternative (no per-principal counting) would let the same attacker
//! guess freely.
//!
//! A success resets both the principal's and the address's counters. This
//! lets someone holding a valid credential reset their own address between
//! guesses, but each guessed principal keeps its own counter.
//!
//! IPv6 peers are counted per /64 (one host usually owns a whole /64), and
//! IPv4-mapped IPv6 addresses as the IPv4 address.
//!
//! Memory is bounded: at most [`LimiterConfig::max_keys`] keys, idle ones
//! dropped first, then the least recently failed; principal names are
//! truncated to [`MAX_PRINCIPAL_KEY_LEN`] bytes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest principal name stored as a key (longer names are truncated).
pub const MAX_PRINCIPAL_KEY_LEN: usize = 256;

/// How forgiving the limiter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures a peer address may make before it is delayed.
    pub free_failures: u32,
    /// Failures a principal may suffer before it is delayed; larger than
    /// `free_failures` so others cannot cheaply delay its owner.
    pub principal_free_failures: u32,
    /// Delay after the first failure beyond the allowance.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Most keys (principals plus addresses) tracked at once.
    pub max_keys: usize,
    /// A key without failures for this long is forgotten.
    pub idle_forget: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            free_failures: 3,
            principal_free_failures: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
            max_keys: 10_000,
            idle_forget: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Principal(String),
    Peer(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Option<Instant>,
    last_failure: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Failures recorded since the last sweep of idle entries.
    since_sweep: usize,
}

/// Per-principal and per-address failure counters with growing delays.
/// Send + Sync; share it behind an `Arc`.
#[derive(Debug)]
pub struct FailureLimiter {
    config: LimiterConfig,
    state: Mutex<State>,
}

impl FailureLimiter {
    /// A limiter with `config`.
    pub fn new(config: LimiterConfig) -> Self {
        FailureLimiter {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// `Err(retry_after)` while the principal or the peer address is in its
    /// back-off window (the longer of the two remaining waits).
    pub fn check(
        &self,
        principal: Option<&str>,
        peer: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let state = self.lock();
        let mut wait = Duration::ZERO;
        for key in keys(principal, peer) {
            if let Some(entry) = state.entries.get(&key) {
                if self.is_idle(entry, now) {
                    continue;
                }
                if let Some(until) = entry.blocked_until {
                    wait = wait.max(until.saturating_duration_since(now));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts a failed authentication against the principal (when the
    /// client got as far as naming one) and the peer address.
    pub fn record_failure(&self, principal: Option<&str>, peer: IpAddr, now: Instant) {
        let mut state = self.lock();
        state.since_sweep += 1;
        if state.since_sweep >= 1024 {
            self.sweep(&mut state, now);
        }
        for key in keys(principal, peer) {
            let free = match key {
                Key::Principal(_) => self.config.principal_free_failures,
                Key::Peer(_) => self.config.free_failures,
            };
            if !state.entries.contains_key(&key) {
                self.make_room(&mut state, now);
            }
            let idle_forget = self.config.idle_forget;
            let entry = state.entries.entry(key).or_insert(Entry {
                failures: 0,
                blocked_until: None,
                last_failure: now,
            });
            if now.saturating_duration_since(entry.last_failure) >= idle_forget {
                entry.failures = 0;
                entry.blocked_until = None;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if entry.failures > free {
                let delay = self.delay(entry.failures - free - 1);
                entry.blocked_until = Some(now + delay);
            }
        }
    }

    /// Forgets the failures of the principal and of the peer address.
    pub fn record_success(&self, principal: &str, peer: IpAddr) {
        let mut state = self.lock();
        for key in keys(Some(principal), peer) {
            state.entries.remove(&key);
        }
    }

    /// Number of keys tracked now (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().entries.len()
    }

    /// `base_delay × 2^exponent`, capped at `max_delay`.
    fn delay(&self, exponent: u32) -> Duration {
        let factor = 1u32.checked_shl(exponent).unwrap_or(u32::MAX);
        self.config
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.config.max_delay)
            .min(self.config.max_delay)
    }

    fn is_idle(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_failure) >= self.config.idle_forget
    }

    fn sweep(&self, state: &mut State, now: Instant) {
        state.since_sweep = 0;
        let idle_forget = self.config.idle_forget;
        state
            .entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) < idle_forget);
    }

    /// Makes room for one more key: idle keys go first, then the least
    /// recently failed one.
    fn make_room(&self, state: &mut State, now: Instant) {
        if state.entries.len() < self.config.max_keys.max(1) {
            return;
        }
        self.sweep(state, now);
        while state.entries.len() >= self.config.max_keys.max(1) {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters are plain integers: a panic elsewhere cannot leave them
        // half-updated in a way that matters, so keep using a poisoned lock.
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn keys(principal: Option<&str>, peer: IpAddr) -> impl Iterator<Item = Key> {
    principal
        .map(|p| Key::Principal(truncate(p).to_string()))
        .into_iter()
        .chain(std::iter::once(Key::Peer(peer_key(peer))))
}

fn truncate(principal: &str) -> &str {
    if principal.len() <= MAX_PRINCIPAL_KEY_LEN {
        return principal;
    }
    let mut end = MAX_PRINCIPAL_KEY_LEN;
    while !principal.is_char_boundary(end) {
        end -= 1;
    }
    &principal[..end]
}

/// IPv4 as is; IPv4-mapped IPv6 as IPv4; other IPv6 as its /64.
fn peer_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MS: Duration = Duration::from_millis(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn limiter() -> FailureLimiter {
        FailureLimiter::new(LimiterConfig::default())
    }

    #[test]
    fn peer_delay_grows_after_its_free_failures_and_is_capped() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(None, ip(1), t0), Ok(()));
            l.record_failure(None, ip(1), t0);
        }
        assert_eq!(l.check(None, ip(1), t0), Ok(()), "three failures are free");
        let mut expected = 250 * MS;
        let mut now = t0;
        for _ in 0..12 {
            l.record_failure(None, ip(1), now);
            assert_eq!(l.check(None, ip(1), now), Err(expected));
            assert_eq!(l.check(None, ip(2), now), Ok(()), "other peers unaffected");
            now += expected;
            assert_eq!(l.check(None, ip(1), now), Ok(()), "window over");
            expected = (expected * 2).min(Duration::from_secs(60));
        }
        assert_eq!(expected, Duration::from_secs(60), "capped at max_delay");
    }

    #[test]
    fn principal_gets_a_larger_allowance_than_a_peer() {
        let l = limiter();
        let now = Instant::now();
        // Ten different peers fail once each for alice: still free.
        for i in 0..10 {
            l.record_failure(Some("alice"), ip(i), now);
        }
        assert_eq!(l.check(Some("alice"), ip(100), now), Ok(()));
        l.record_failure(Some("alice"), ip(10), now);
        assert_eq!(l.check(Some("alice"), ip(100), now), Err(250 * MS));
        assert_eq!(l.check(Some("bob"), ip(100), now), Ok(()));
        assert_eq!(l.check(None, ip(100), now), Ok(()));
    }

    #[test]
    fn check_reports_the_longer_of_the_two_waits() {
        let config = LimiterConfig {
            free_failures: 0,
            principal_free_failures: 0,
            ..LimiterConfig::default()
        };
        let l = FailureLimiter::new(config);
        let now = Instant::now();
        l.record_failure(Some("alice"), ip(1), now);
        l.record_failure(None, ip(1), now);
        assert_eq!(l.check(Some("alice"), ip(9), now), Err(250 * MS));
        assert_eq!(l.check(None, ip(1), now), Err(500 * MS));
        assert_eq!(l.check(Some("alice"), ip(1), now), Err(500 * MS));
    }

    #[test]
    fn success_resets_principal_and_peer() {
        let l = limiter();
        let now = Instant::now();
        for _ in 0..20 {
            l.record_failure(Some("alice"), ip(1), now);
        }
        assert!(l.check(Some("alice"), ip(1), now).is_err());
        l.record_success("alice", ip(1));
        assert_eq!(l.check(Some("alice"), ip(1), now), Ok(()));
        assert_eq!(l.tracked_keys(), 0);
        l.record_failure(Some("alice"), ip(1), now);
        assert_eq!(
            l.check(Some("alice"), ip(1), now),
            Ok(()),
            "counting restarts"
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..10 {
            l.record_failure(None, ip(1), t0);
        }
        assert!(l.check(None, ip(1), t0).is_err());
        let later = t0 + Duration::from_secs(15 * 60);
        assert_eq!(l.check(None, ip(1), later), Ok(()));
        l.record_failure(None, ip(1), later);
        assert_eq!(l.check(None, ip(1), later), Ok(()), "count started over");
    }

    #[test]
    fn tracked_keys_are_capped() {
        let config = LimiterConfig {
            max_keys: 50,
            ..LimiterConfig::default()
        };
        let l = FailureLimiter::new(config);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let name = format!("p{i}");
            let peer = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            l.record_failure(Some(&name), peer, t0 + i * MS);
            assert!(l.tracked_keys() <= 50);
        }
        // The most recent keys are still tracked.
        let long = "x".repeat(10_000);
        for _ in 0..11 {
            l.record_failure(Some(&long), ip(7), t0 + 2000 * MS);
        }
        assert!(l.check(Some(&long), ip(8), t0 + 2000 * MS).is_err());
    }

    #[test]
    fn ipv6_peers_count_per_64_and_mapped_v4_as_v4() {
        let config = LimiterConfig {
            free_failures: 0,
            principal_free_failures: 0,
            ..LimiterConfig::default()
        };
        let l = FailureLimiter::new(config);
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        l.record_failure(None, a, now);
        assert!(l.check(None, b, now).is_err());
        assert_eq!(l.check(None, c, now), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.5".parse().expect("mapped");
        l.record_failure(None, mapped, now);
        assert!(l.check(None, ip(5), now).is_err());
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let l = limiter();
        let now = Instant::now();
        for _ in 0..200 {
            l.record_failure(Some("a"), ip(1), now);
        }
        assert_eq!(l.check(Some("a"), ip(1), now), Err(Duration::from_secs(60)));
    }

    #[test]
    fn limiter_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FailureLimiter>();
    }
}
