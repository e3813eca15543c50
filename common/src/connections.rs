//! Limits on inbound connections, so that nobody who can merely reach a
//! port can exhaust the process: a new connection must send its first
//! request head within `--http_header_read_timeout` of being accepted, and
//! every later head within that time of its first byte; a request body may
//! not stall for longer than that either; a connection may idle between
//! requests for at most `--http_idle_timeout` (off by default, as in
//! Mesos: clients such as pymesos keep one connection for their calls and
//! do not retry one the server closed); one peer address holds at most
//! `--max_connections_per_peer`; and the process as a whole accepts no more
//! than its file limit leaves room for, refusing further connections
//! (rather than failing `accept` and leaving them in the backlog) while
//! established connections keep working. A request whose body has arrived
//! (a long event stream, a slow handler) is never timed out here. After a
//! complete request, a connection is bounded only by the idle timeout and
//! the caps: the watchdog cannot tell an idle keep-alive connection from
//! one whose next, pipelined head sits half-read in hyper's buffer.
//!
//! [`serve_tls`](crate::net::serve_tls) applies these; this module owns the
//! bookkeeping and nothing else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::flags::duration_arg;

/// The connection flags, shared by the master and the agent.
#[derive(Debug, Clone, clap::Args)]
#[command(rename_all = "snake_case")]
pub struct ConnectionFlags {
    /// How long a client may take to send a complete request head (request
    /// line and headers), counted from its first byte; slower connections
    /// are closed.
    #[arg(long, env = "MESOS_HTTP_HEADER_READ_TIMEOUT", default_value = "10secs", value_parser = duration_arg)]
    pub http_header_read_timeout: Duration,

    /// How long a connection may stay open between requests once it has
    /// sent one (0secs: no limit, the default, as in Mesos: pymesos and
    /// other clients keep one connection for their calls and lose the call
    /// that meets a connection the server closed). Long event streams are
    /// never affected; our own links send a request every 15 seconds.
    #[arg(long, env = "MESOS_HTTP_IDLE_TIMEOUT", default_value = "0secs", value_parser = duration_arg)]
    pub http_idle_timeout: Duration,

    /// Connections one peer IP address may hold open at once (0: no
    /// limit), and at most a quarter of what the file limit leaves room
    /// for. Agents and frameworks behind one NAT share an address: raise it
    /// for them. On the agent, connections from its own address (its
    /// executors) are not limited per peer. Further connections are closed
    /// at once.
    #[arg(long, env = "MESOS_MAX_CONNECTIONS_PER_PEER", default_value_t = 1024)]
    pub max_connections_per_peer: usize,
}

impl ConnectionFlags {
    /// Checks the values; `Err` is one line for the operator.
    pub fn validate(&self) -> Result<(), String> {
        // Our links' first request goes out as soon as they connect.
        if self.http_header_read_timeout < Duration::from_millis(100) {
            return Err("--http_header_read_timeout must be at least 100ms".into());
        }
        // Our links keep themselves alive every LINK_KEEPALIVE; a shorter
        // idle limit would cut them and look like a peer's exit.
        if !self.http_idle_timeout.is_zero()
            && self.http_idle_timeout < 2 * crate::transport::LINK_KEEPALIVE
        {
            return Err(format!(
                "--http_idle_timeout must be at least {} (links send a request every {})",
                crate::flags::format_duration(2 * crate::transport::LINK_KEEPALIVE),
                crate::flags::format_duration(crate::transport::LINK_KEEPALIVE),
            ));
        }
        Ok(())
    }

    /// The `/flags` entries.
    pub fn flags_json(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "http_header_read_timeout",
                crate::flags::format_duration(self.http_header_read_timeout),
            ),
            (
                "http_idle_timeout",
                crate::flags::format_duration(self.http_idle_timeout),
            ),
            (
                "max_connections_per_peer",
                self.max_connections_per_peer.to_string(),
            ),
        ]
    }
}

static INHERITED_NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards. The limits the process started with are kept
/// for [`inherited_nofile_limit`].
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    let _ = INHERITED_NOFILE.set((soft, hard));
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
        return Ok(hard);
    }
    Ok(soft)
}

/// The `(soft, hard)` `RLIMIT_NOFILE` the process started with, if
/// [`raise_nofile_limit`] raised it: what the processes it starts (the
/// agent's executors and tasks) must get back, as under Mesos, which
/// leaves the limit alone.
pub fn inherited_nofile_limit() -> Option<(u64, u64)> {
    INHERITED_NOFILE
        .get()
        .copied()
        .filter(|(soft, hard)| soft < hard)
}

/// Inbound connections accepted at once for a file limit of `nofile`: a
/// quarter (at least 64) stays free for outbound connections (to agents,
/// to the master), the registry and sandboxes' files.
pub fn max_connections_for(nofile: u64) -> usize {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let reserve = (nofile / 4).max(64);
    nofile.saturating_sub(reserve).max(1)
}

/// What [`serve_tls`](crate::net::serve_tls) enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`ConnectionFlags::http_header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`ConnectionFlags::http_idle_timeout`] (zero: none).
    pub idle_timeout: Duration,
    /// See [`ConnectionFlags::max_connections_per_peer`] (0: none).
    pub max_per_peer: usize,
    /// Inbound connections held at once, from every peer together.
    pub max_connections: usize,
    /// Whether connections from the address they arrive at are exempt from
    /// the per-peer limit (the agent's executors; not on the master).
    pub exempt_own_address: bool,
}

impl Limits {
    /// The limits of `flags`, for a process whose file limit is `nofile`.
    /// One peer gets at most a quarter of the process's connections.
    pub fn new(flags: &ConnectionFlags, nofile: u64, exempt_own_address: bool) -> Self {
        let max_connections = max_connections_for(nofile);
        let max_per_peer = match flags.max_connections_per_peer {
            0 => 0,
            n => n.min((max_connections / 4).max(1)),
        };
        Limits {
            header_read_timeout: flags.http_header_read_timeout,
            idle_timeout: flags.http_idle_timeout,
            max_per_peer,
            max_connections,
            exempt_own_address,
        }
    }

    /// Raises the file limit, then the limits of `flags`; logs what is in
    /// force. `exempt_own_address`: see [`Limits::exempt_own_address`].
    pub fn at_startup(flags: &ConnectionFlags, exempt_own_address: bool) -> Self {
        let nofile = match raise_nofile_limit() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot read or raise RLIMIT_NOFILE ({e}); assuming 1024");
                1024
            }
        };
        let limits = Limits::new(flags, nofile, exempt_own_address);
        tracing::info!(
            nofile,
            max_connections = limits.max_connections,
            max_connections_per_peer = limits.max_per_peer,
            "accepting connections"
        );
        limits
    }
}

impl Default for Limits {
    /// The flags' defaults with a file limit of 1024 (tests, embedders).
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::ZERO,
            max_per_peer: max_connections_for(1024) / 4,
            max_connections: max_connections_for(1024),
            exempt_own_address: false,
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The peer address holds `limit` connections already.
    PeerLimit {
        /// The address.
        ip: IpAddr,
        /// `--max_connections_per_peer`.
        limit: usize,
    },
    /// The process holds `limit` connections already.
    ProcessLimit {
        /// The connections the file limit leaves room for.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PeerLimit { ip, limit } => write!(
                f,
                "too many connections from {ip}: {limit} are open (--max_connections_per_peer)"
            ),
            Refusal::ProcessLimit { limit } => write!(
                f,
                "too many connections: {limit} are open, all the file limit (RLIMIT_NOFILE) leaves room for"
            ),
        }
    }
}

/// Counts open inbound connections, in total and per peer address.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    refused: u64,
    last_report: Option<Instant>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    /// Bookkeeping for `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits a connection from `ip` arriving at `local`, or says why not.
    /// With [`Limits::exempt_own_address`] a peer on this host
    /// (`ip == local`) is held only to the process limit. Refusals are logged at most every ten seconds, with how many
    /// there were.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, local: IpAddr) -> Result<Ticket, Refusal> {
        let mut counts = self.lock();
        let from_peer = counts.per_peer.get(&ip).copied().unwrap_or(0);
        let limited =
            self.limits.max_per_peer > 0 && !(self.limits.exempt_own_address && ip == local);
        let refusal = if counts.total >= self.limits.max_connections {
            Some(Refusal::ProcessLimit {
                limit: self.limits.max_connections,
            })
        } else if limited && from_peer >= self.limits.max_per_peer {
            Some(Refusal::PeerLimit {
                ip,
                limit: self.limits.max_per_peer,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            counts.refused += 1;
            let now = Instant::now();
            if counts
                .last_report
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
            {
                tracing::warn!(
                    refused = counts.refused,
                    "refusing new connections: {refusal}"
                );
                counts.refused = 0;
                counts.last_report = Some(now);
            }
            return Err(refusal);
        }
        counts.total += 1;
        *counts.per_peer.entry(ip).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now, in total.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_peer.remove(&self.ip);
            }
        }
    }
}

/// Milliseconds since the first call, on the monotonic clock.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

const NEVER: u64 = u64::MAX;

/// What one connection is doing, as its watchdog needs to know: requests
/// in progress, request bodies still arriving, when it last became idle and
/// when the head now being read started arriving.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    /// Request bodies not yet received whole.
    bodies_open: AtomicUsize,
    /// When a body last made progress (or started).
    body_progress: AtomicU64,
    /// Wakes the watchdog when its deadline moves: the connection became
    /// idle, or a head started arriving.
    changed: Notify,
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took longer than the header read timeout (for a
    /// new connection, counted from its accept).
    HeaderReadTimeout,
    /// A request body stalled for longer than the header read timeout.
    BodyReadTimeout,
    /// No request for the idle timeout.
    IdleTimeout,
}

impl Activity {
    /// A new connection: its first request head is due from now.
    pub fn new() -> Arc<Self> {
        let now = now_ms();
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(now),
            bodies_open: AtomicUsize::new(0),
            body_progress: AtomicU64::new(now),
            changed: Notify::new(),
        })
    }

    /// Bytes arrived: with no request in progress they start a head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == NEVER
        {
            self.head_started.store(now_ms(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A request head was read; the request is in progress until the
    /// returned guard (held by its response body) is dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NEVER, Ordering::Relaxed);
        RequestGuard {
            activity: self.clone(),
        }
    }

    /// A request body started arriving; it counts as open until the
    /// returned guard (held by the body) sees its end or is dropped.
    pub fn body_started(self: &Arc<Self>) -> BodyGuard {
        self.body_progress.store(now_ms(), Ordering::Relaxed);
        self.bodies_open.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        BodyGuard {
            activity: Some(self.clone()),
        }
    }

    /// When the connection expires if nothing happens, and why; `None`
    /// while a request whose body has arrived is in progress (or, with no
    /// idle timeout, while idle after a request).
    fn deadline(&self, limits: &Limits) -> Option<(u64, Expiry)> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.bodies_open.load(Ordering::Acquire) > 0 {
            let progress = self.body_progress.load(Ordering::Relaxed);
            return Some((
                progress.saturating_add(ms(limits.header_read_timeout)),
                Expiry::BodyReadTimeout,
            ));
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NEVER {
            return Some((
                head.saturating_add(ms(limits.header_read_timeout)),
                Expiry::HeaderReadTimeout,
            ));
        }
        if limits.idle_timeout.is_zero() {
            return None;
        }
        let idle = self.idle_since.load(Ordering::Relaxed);
        Some((
            idle.saturating_add(ms(limits.idle_timeout)),
            Expiry::IdleTimeout,
        ))
    }

    /// Resolves when the connection has expired under `limits`.
    pub async fn expired(&self, limits: Limits) -> Expiry {
        loop {
            let changed = self.changed.notified();
            match self.deadline(&limits) {
                None => changed.await,
                Some((at, why)) => {
                    let now = now_ms();
                    if now >= at {
                        // A request may have started since the deadline
                        // was read.
                        if self.deadline(&limits).is_some_and(|(at, _)| now >= at) {
                            return why;
                        }
                        continue;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                        _ = changed => {}
                    }
                }
            }
        }
    }
}

/// Keeps a request counted as in progress; see [`Activity::request_started`].
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.idle_since.store(now_ms(), Ordering::Relaxed);
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.changed.notify_one();
        }
    }
}

/// Keeps a request body counted as open; see [`Activity::body_started`].
#[derive(Debug)]
pub struct BodyGuard {
    activity: Option<Arc<Activity>>,
}

impl BodyGuard {
    /// The body made progress (a frame arrived).
    pub fn progressed(&self) {
        if let Some(activity) = &self.activity {
            activity.body_progress.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// The body has arrived whole: it no longer holds the connection open.
    pub fn finished(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.bodies_open.fetch_sub(1, Ordering::AcqRel);
            activity.changed.notify_one();
        }
    }
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.finished();
    }
}

/// A stream that tells its connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Watches `inner` for `activity`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_peer: usize, total: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            max_per_peer: per_peer,
            max_connections: total,
            exempt_own_address: true,
        }
    }

    /// `now_ms` truncates: a deadline may fire up to a millisecond early.
    const SLACK: Duration = Duration::from_millis(5);

    #[test]
    fn a_peer_over_its_limit_is_refused_and_others_still_admitted() {
        let admission = Admission::new(limits(2, 100));
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let first = admission.admit(a, local).expect("first");
        let _second = admission.admit(a, local).expect("second");
        assert_eq!(
            admission.admit(a, local).expect_err("third"),
            Refusal::PeerLimit { ip: a, limit: 2 }
        );
        let _other = admission.admit(b, local).expect("another peer");
        drop(first);
        let _again = admission.admit(a, local).expect("a freed place is reused");
        assert_eq!(admission.open(), 3);
        // The agent's own executors are not limited per peer...
        let own: Vec<Ticket> = (0..5)
            .map(|_| admission.admit(local, local).expect("same host"))
            .collect();
        assert_eq!(admission.open(), 3 + own.len());
        // ... but on the master the own address is a peer like any other.
        let master = Admission::new(Limits {
            exempt_own_address: false,
            ..limits(2, 100)
        });
        let _one = master.admit(local, local).expect("one");
        let _two = master.admit(local, local).expect("two");
        assert!(master.admit(local, local).is_err());
    }

    #[test]
    fn the_process_limit_applies_to_every_peer_and_zero_means_no_peer_limit() {
        let admission = Admission::new(limits(0, 3));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let local: IpAddr = "10.0.0.2".parse().expect("ip");
        let tickets: Vec<Ticket> = (0..3)
            .map(|_| admission.admit(a, local).expect("room"))
            .collect();
        let refusal = admission.admit(a, local).expect_err("full");
        assert_eq!(refusal, Refusal::ProcessLimit { limit: 3 });
        assert!(refusal.to_string().contains("RLIMIT_NOFILE"), "{refusal}");
        drop(tickets);
        assert_eq!(admission.open(), 0);
        assert!(admission.admit(a, local).is_ok());
    }

    #[test]
    fn a_quarter_of_the_file_limit_stays_free_and_one_peer_gets_a_quarter_of_the_rest() {
        assert_eq!(max_connections_for(20_000), 15_000);
        assert_eq!(max_connections_for(1024), 768);
        assert_eq!(max_connections_for(100), 36);
        assert_eq!(max_connections_for(10), 1);
        let flags = ConnectionFlags {
            http_header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::ZERO,
            max_connections_per_peer: 1024,
        };
        assert_eq!(Limits::new(&flags, 20_000, false).max_per_peer, 1024);
        assert_eq!(Limits::new(&flags, 1024, false).max_per_peer, 192);
        let unlimited = ConnectionFlags {
            max_connections_per_peer: 0,
            ..flags
        };
        assert_eq!(Limits::new(&unlimited, 1024, false).max_per_peer, 0);
    }

    #[test]
    fn flags_refuse_an_idle_timeout_that_would_cut_links() {
        let mut flags = ConnectionFlags {
            http_header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::ZERO,
            max_connections_per_peer: 1024,
        };
        assert_eq!(flags.validate(), Ok(()));
        flags.http_idle_timeout = Duration::from_secs(120);
        assert_eq!(flags.validate(), Ok(()));
        flags.http_idle_timeout = Duration::from_secs(5);
        let error = flags.validate().expect_err("too short");
        assert!(
            error.starts_with("--http_idle_timeout must be at least"),
            "{error}"
        );
        flags.http_idle_timeout = Duration::ZERO;
        flags.http_header_read_timeout = Duration::from_millis(1);
        assert!(flags.validate().is_err());
    }

    /// An activity whose first request has come and gone.
    fn after_one_request() -> Arc<Activity> {
        let activity = Activity::new();
        drop(activity.request_started());
        activity
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_expires_after_the_header_timeout() {
        let activity = Activity::new();
        let started = Instant::now();
        let why = activity.expired(limits(0, 10)).await;
        assert_eq!(why, Expiry::HeaderReadTimeout);
        assert!(started.elapsed() + SLACK >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn an_idle_connection_expires_after_the_idle_timeout() {
        let activity = after_one_request();
        let started = Instant::now();
        let why = activity.expired(limits(0, 10)).await;
        assert_eq!(why, Expiry::IdleTimeout);
        assert!(started.elapsed() + SLACK >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn with_no_idle_timeout_an_idle_connection_is_kept() {
        let activity = after_one_request();
        let no_idle = Limits {
            idle_timeout: Duration::ZERO,
            ..limits(0, 10)
        };
        let kept =
            tokio::time::timeout(Duration::from_millis(700), activity.expired(no_idle)).await;
        assert!(kept.is_err(), "expired: {kept:?}");
    }

    #[tokio::test]
    async fn a_head_starting_on_an_idle_connection_brings_the_deadline_forward() {
        let activity = after_one_request();
        let waiting = activity.expired(Limits {
            idle_timeout: Duration::from_secs(3600),
            ..limits(0, 10)
        });
        tokio::pin!(waiting);
        // The watchdog is asleep until the idle deadline, an hour away.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err()
        );
        activity.bytes_read();
        let why = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the header timeout applies to a head begun after the watchdog slept");
        assert_eq!(why, Expiry::HeaderReadTimeout);
    }

    #[tokio::test]
    async fn a_request_in_progress_never_expires_and_idling_restarts_after_it() {
        let activity = Activity::new();
        activity.bytes_read();
        let guard = activity.request_started();
        let waiting = activity.expired(limits(0, 10));
        tokio::pin!(waiting);
        // Far past both timeouts: still in progress.
        let outcome = tokio::time::timeout(Duration::from_millis(900), &mut waiting).await;
        assert!(outcome.is_err(), "expired during a request: {outcome:?}");
        let ended = Instant::now();
        drop(guard);
        assert_eq!(waiting.await, Expiry::IdleTimeout);
        assert!(ended.elapsed() + SLACK >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn a_stalled_request_body_expires_but_a_finished_one_does_not() {
        let activity = Activity::new();
        let request = activity.request_started();
        let mut body = activity.body_started();
        let started = Instant::now();
        let why = activity.expired(limits(0, 10)).await;
        assert_eq!(why, Expiry::BodyReadTimeout);
        assert!(started.elapsed() + SLACK >= Duration::from_millis(200));

        body.finished();
        let held =
            tokio::time::timeout(Duration::from_millis(700), activity.expired(limits(0, 10))).await;
        assert!(
            held.is_err(),
            "a request whose body arrived was cut: {held:?}"
        );
        drop(request);
    }
}
