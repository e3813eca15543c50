//! Authentication at the master's edges, before anything reaches the state
//! machine: SASL sessions over libprocess messages for agents (and v0
//! frameworks), and HTTP Basic on the `mesos-master-*` realms.
//!
//! SASL follows Mesos's message sequence (reference §5.1). A client's
//! `AuthenticateMessage` to `master` opens a session process
//! `authenticator-session(N)`; the client answers the session. While a
//! peer's authentication is in flight its registration messages are held
//! and released, in order, right after the master has been told the
//! outcome, so the state machine always judges a registration knowing
//! whether its sender authenticated. What the master does with an
//! unauthenticated agent is the state machine's decision, not this
//! module's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use mesos_common::auth::audit::{AuditEvent, AuditLog, Outcome};
use mesos_common::auth::basic::{self, AuthFailure, BasicAuthenticator};
use mesos_common::auth::credentials::{load_credentials, CredentialStore, Credentials};
use mesos_common::auth::limiter::{FailureLimiter, LimiterConfig};
use mesos_common::auth::sasl::{server_session, Mechanism, ServerSession, ServerStep};
use mesos_common::auth::scram;
use mesos_common::net::PeerAddr;
use mesos_common::transport::{Message, MessageSink, Transport};
use mesos_common::Upid;
use mesos_proto::internal as msg;
use prost::Name;

use crate::actor::{Command, MasterHandle};

/// Messages held while their sender authenticates (v0 framework
/// registration is not served, so only the agents').
const HELD_MESSAGES: [&str; 2] = [
    "mesos.internal.RegisterSlaveMessage",
    "mesos.internal.ReregisterSlaveMessage",
];

/// At most this many messages, and this many bytes, are held per
/// authenticating peer; more are dropped (agents retry registration).
const MAX_HELD: usize = 4;
const MAX_HELD_BYTES: usize = 8 << 20;

/// At most this many authentications in flight at once, and per address.
const MAX_SESSIONS: usize = 4096;
const MAX_SESSIONS_PER_ADDRESS: usize = 64;

/// Which HTTP realms require authentication.
#[derive(Clone, Copy, Debug, Default)]
pub struct Realms {
    /// `mesos-master-scheduler` (`--authenticate_http_frameworks`).
    pub scheduler: bool,
    /// `mesos-master-readonly` (`--authenticate_http_readonly`).
    pub readonly: bool,
    /// `mesos-master-readwrite` (`--authenticate_http_readwrite`).
    pub readwrite: bool,
}

/// How the master authenticates.
pub struct Settings {
    /// `--credentials`, as given (a path or `file://` URL); `None` when
    /// nothing may authenticate.
    pub credentials_path: Option<String>,
    /// `--authenticators`, in preference order.
    pub mechanisms: Vec<Mechanism>,
    /// Host name in CRAM-MD5 challenges.
    pub hostname: String,
    /// `--authentication_v0_timeout`.
    pub timeout: Duration,
    /// Enforced realms.
    pub realms: Realms,
    /// `--audit_log`.
    pub audit: AuditLog,
}

/// The master's authenticators. Cheap to clone.
#[derive(Clone)]
pub struct Authn {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    store: CredentialStore,
    basic: BasicAuthenticator,
    limiter: FailureLimiter,
    sessions: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    /// In-flight attempts by the pid the client claimed.
    by_pid: HashMap<String, Attempt>,
    /// Claimed pid by session process id.
    pid_of: HashMap<String, String>,
}

struct Attempt {
    session_id: String,
    /// Where replies go (the authenticatee process); only it may answer.
    client: Upid,
    peer: Option<SocketAddr>,
    session: Option<Box<dyn ServerSession>>,
    held: Vec<Message>,
    /// Cancels the timeout when the attempt ends first.
    timer: Option<tokio::task::AbortHandle>,
}

impl Attempt {
    fn held_bytes(&self) -> usize {
        self.held.iter().map(|m| m.body.len()).sum()
    }

    /// Ends the attempt's timer; the attempt itself is dropped by the caller.
    fn cancel_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

/// The address a pid names, when its host is an IP literal.
fn pid_ip(pid: &Upid) -> Option<IpAddr> {
    pid.host.parse().ok()
}

/// True when a message's claimed sender lives at the address it came from
/// (Mesos's `LIBPROCESS_REQUIRE_PEER_ADDRESS_IP_MATCH`, on here): a peer
/// cannot speak for another host's processes.
fn sender_matches_peer(message: &Message) -> bool {
    match (pid_ip(&message.from), message.peer) {
        (Some(claimed), Some(peer)) => {
            claimed == peer.ip() || (claimed.is_unspecified() && peer.ip().is_loopback())
        }
        _ => true,
    }
}

impl Authn {
    /// Loads `--credentials` (if given) and builds the authenticators.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let credentials = match &settings.credentials_path {
            Some(path) => {
                let credentials = load_credentials(path).map_err(|e| e.to_string())?;
                // Derive SCRAM keys now, so no login pays PBKDF2 and a
                // known principal's first login is not slower than an
                // unknown one's.
                scram::prepare_server_keys(&credentials);
                tracing::info!(
                    principals = credentials.len(),
                    "Loading credentials for authentication from '{path}'"
                );
                credentials
            }
            None => Credentials::default(),
        };
        let store = CredentialStore::new(credentials);
        Ok(Authn {
            inner: Arc::new(Inner {
                basic: BasicAuthenticator::new(store.clone()),
                store,
                settings,
                limiter: FailureLimiter::new(LimiterConfig::default()),
                sessions: Mutex::new(Sessions::default()),
            }),
        })
    }

    /// Re-reads `--credentials` (SIGHUP). Authenticated agents and open
    /// sessions keep what they proved; a bad file keeps the old
    /// credentials and says why.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.inner.settings.credentials_path else {
            return Err("no --credentials to reload".into());
        };
        let credentials = load_credentials(path).map_err(|e| e.to_string())?;
        scram::prepare_server_keys(&credentials);
        let count = credentials.len();
        self.inner.store.replace(credentials);
        Ok(count)
    }

    /// The enforced realms.
    pub fn realms(&self) -> Realms {
        self.inner.settings.realms
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        match self.inner.sessions.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn audit(
        &self,
        peer: Option<SocketAddr>,
        principal: Option<&str>,
        mechanism: &str,
        outcome: Outcome,
        reason: Option<&str>,
        realm: Option<&str>,
    ) {
        self.inner.settings.audit.record(&AuditEvent {
            peer,
            principal,
            mechanism,
            outcome,
            reason,
            realm,
        });
    }

    /// Authenticates an HTTP request for `realm`: `Ok(Some(principal))`
    /// for good credentials, or the response refusing the request. A realm
    /// that does not require authentication lets every request through with
    /// no principal, whatever it carries (Mesos: a realm without an
    /// authenticator).
    pub fn check_http(
        &self,
        realm: &'static str,
        required: bool,
        headers: &http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<String>, Refusal> {
        if !required {
            return Ok(None);
        }
        let Some(header) = headers.get(http::header::AUTHORIZATION) else {
            // No attempt, nothing to count: a browser's first load or a
            // health checker must not delay the address's real requests.
            return Err(Refusal::Unauthorized {
                realm,
                failure: AuthFailure::Malformed(basic::BasicError::Missing),
            });
        };
        let header = Some(header);
        let ip = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let claimed = header.and_then(|h| basic::parse(h.as_bytes()).ok().map(|(p, _)| p));
        let now = Instant::now();
        if let Err(retry_after) = self.inner.limiter.check(claimed.as_deref(), ip, now) {
            return Err(Refusal::Backoff(retry_after));
        }
        match self.inner.basic.authenticate(header) {
            Ok(principal) => {
                self.inner.limiter.record_success(&principal, ip);
                self.audit(
                    peer,
                    Some(&principal),
                    "basic",
                    Outcome::Success,
                    None,
                    Some(realm),
                );
                Ok(Some(principal))
            }
            Err(failure) => {
                let reason = failure.to_string();
                self.inner
                    .limiter
                    .record_failure(failure.principal(), ip, now);
                self.audit(
                    peer,
                    failure.principal(),
                    "basic",
                    Outcome::Failure,
                    Some(&reason),
                    Some(realm),
                );
                Err(Refusal::Unauthorized { realm, failure })
            }
        }
    }
}

/// Why an HTTP request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// 401 with the realm's challenge.
    Unauthorized {
        /// The realm.
        realm: &'static str,
        /// What was wrong.
        failure: AuthFailure,
    },
    /// 429: this address or principal failed too often; retry after this.
    Backoff(Duration),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized { realm, failure } => {
                basic::unauthorized(realm, &failure).into_response()
            }
            Refusal::Backoff(retry_after) => {
                let seconds = retry_after.as_secs().max(1);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(http::header::RETRY_AFTER, seconds.to_string())],
                    format!("Too many failed authentication attempts; retry in {seconds} seconds"),
                )
                    .into_response()
            }
        }
    }
}

pub use mesos_common::http::Principal;

async fn realm_layer(
    authn: Authn,
    realm: &'static str,
    required: bool,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
    match authn.check_http(realm, required, request.headers(), peer) {
        Ok(principal) => {
            request.extensions_mut().insert(Principal(principal));
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Middleware for `mesos-master-readonly` routes.
pub async fn readonly(State(authn): State<Authn>, request: Request, next: Next) -> Response {
    let required = authn.realms().readonly;
    realm_layer(authn, basic::MASTER_READONLY, required, request, next).await
}

/// Middleware for `mesos-master-readwrite` routes.
pub async fn readwrite(State(authn): State<Authn>, request: Request, next: Next) -> Response {
    let required = authn.realms().readwrite;
    realm_layer(authn, basic::MASTER_READWRITE, required, request, next).await
}

/// Middleware for `/api/v1/scheduler` (`mesos-master-scheduler`).
pub async fn scheduler(State(authn): State<Authn>, request: Request, next: Next) -> Response {
    let required = authn.realms().scheduler;
    realm_layer(authn, basic::MASTER_SCHEDULER, required, request, next).await
}

/// The libprocess entry of the master: SASL sessions are handled here,
/// everything else goes to the master task (held while its sender
/// authenticates).
#[derive(Clone)]
pub struct Gate {
    /// The authenticators.
    pub authn: Authn,
    /// The master task.
    pub master: MasterHandle,
    /// For replies from session processes.
    pub transport: Transport,
    /// Our own address (session pids share it).
    pub self_upid: Upid,
}

impl MessageSink for Gate {
    fn deliver(&self, message: Message) -> bool {
        if !sender_matches_peer(&message) {
            tracing::warn!(
                from = %message.from,
                peer = ?message.peer,
                name = %message.name,
                "dropping a message whose sender is not at the address it came from"
            );
            return true;
        }
        if message.to == "master" && message.name == msg::AuthenticateMessage::full_name() {
            self.authenticate(message);
            return true;
        }
        if message.to.starts_with("authenticator-session(") {
            return self.session_message(message);
        }
        let known = message.to == "master" || message.to.starts_with("slave-observer(");
        if !known {
            return false;
        }
        if message.to == "master" && HELD_MESSAGES.contains(&message.name.as_str()) {
            // Decided and forwarded under the lock, so an authentication
            // starting now cannot overtake this message.
            let mut sessions = self.authn.lock();
            if let Some(attempt) = sessions.by_pid.get_mut(&message.from.to_string()) {
                if attempt.held.len() < MAX_HELD
                    && attempt.held_bytes() + message.body.len() <= MAX_HELD_BYTES
                {
                    tracing::debug!(pid = %message.from, name = %message.name, "holding message until authentication ends");
                    attempt.held.push(message);
                }
                return true;
            }
            return self.master.send(Command::Message(message));
        }
        self.master.send(Command::Message(message))
    }
}

impl Gate {
    fn reply<M: prost::Message + prost::Name>(&self, session_id: &str, to: &Upid, message: &M) {
        let from = Upid::new(session_id, self.self_upid.host.clone(), self.self_upid.port);
        self.transport.send_raw(
            &from,
            to,
            M::full_name(),
            Bytes::from(message.encode_to_vec()),
        );
    }

    fn authenticate(&self, message: Message) {
        let claimed = match message.decode::<msg::AuthenticateMessage>() {
            Ok(m) => m.pid,
            Err(e) => {
                tracing::warn!(from = %message.from, "dropping malformed AuthenticateMessage: {e}");
                return;
            }
        };
        // A peer may only authenticate its own processes: the claimed pid
        // must live where the authenticatee does (same libprocess address).
        let same_process = claimed
            .parse::<Upid>()
            .is_ok_and(|pid| pid.host == message.from.host && pid.port == message.from.port);
        if !same_process {
            tracing::warn!(from = %message.from, claimed = %claimed.escape_default(), "dropping AuthenticateMessage for a pid that is not the sender's");
            return;
        }
        let client = message.from.clone();
        let peer = message.peer;
        let settings = &self.authn.inner.settings;
        let ip = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut sessions = self.authn.lock();
        let session_id = format!("authenticator-session({})", uuid::Uuid::new_v4().simple());
        let refuse = |error: String| {
            self.reply(
                &session_id,
                &client,
                &msg::AuthenticationErrorMessage { error: Some(error) },
            );
        };
        if settings.credentials_path.is_none() {
            refuse("No authenticator loaded".into());
            return;
        }
        if let Err(retry_after) = self.authn.inner.limiter.check(None, ip, Instant::now()) {
            let seconds = retry_after.as_secs().max(1);
            tracing::warn!(pid = %claimed, %ip, "refusing authentication: too many failures from this address");
            refuse(format!(
                "Too many failed authentication attempts from {ip}; retry in {seconds} seconds"
            ));
            return;
        }
        let from_address = sessions
            .by_pid
            .values()
            .filter(|a| a.peer.map(|p| p.ip()) == peer.map(|p| p.ip()))
            .count();
        if sessions.by_pid.len() >= MAX_SESSIONS || from_address >= MAX_SESSIONS_PER_ADDRESS {
            refuse("Too many authentications in progress; retry later".into());
            return;
        }
        // A new attempt replaces an in-flight one and forgets an earlier
        // success, as Mesos does.
        let mut held = Vec::new();
        if let Some(mut old) = sessions.by_pid.remove(&claimed) {
            tracing::info!(pid = %claimed, "Re-authenticating; discarding the attempt in flight");
            old.cancel_timer();
            sessions.pid_of.remove(&old.session_id);
            held = old.held;
        }
        self.master.send(Command::Authenticated {
            pid: claimed.clone(),
            principal: None,
        });
        tracing::info!(pid = %claimed, "Authenticating {claimed}");
        self.reply(
            &session_id,
            &client,
            &msg::AuthenticationMechanismsMessage {
                mechanisms: settings
                    .mechanisms
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect(),
            },
        );
        let gate = self.clone();
        let timeout = settings.timeout;
        let (expiring_pid, expiring_session) = (claimed.clone(), session_id.clone());
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            gate.expire(&expiring_pid, &expiring_session);
        });
        sessions.pid_of.insert(session_id.clone(), claimed.clone());
        sessions.by_pid.insert(
            claimed,
            Attempt {
                session_id,
                client,
                peer,
                session: None,
                held,
                timer: Some(timer.abort_handle()),
            },
        );
    }

    /// Discards an attempt that did not finish in time.
    fn expire(&self, pid: &str, session_id: &str) {
        let mut sessions = self.authn.lock();
        if sessions
            .by_pid
            .get(pid)
            .is_some_and(|a| a.session_id == session_id)
        {
            if let Some(attempt) = sessions.by_pid.remove(pid) {
                sessions.pid_of.remove(session_id);
                tracing::warn!(%pid, "Authentication of {pid} timed out; discarding it");
                let ip = attempt
                    .peer
                    .map(|p| p.ip())
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                self.authn
                    .inner
                    .limiter
                    .record_failure(None, ip, Instant::now());
                self.authn.audit(
                    attempt.peer,
                    None,
                    attempt
                        .session
                        .as_ref()
                        .map(|s| s.mechanism().name())
                        .unwrap_or("none"),
                    Outcome::Failure,
                    Some("timed out"),
                    None,
                );
                self.release(attempt.held);
            }
        }
    }

    fn session_message(&self, message: Message) -> bool {
        let mut sessions = self.authn.lock();
        let Some(pid) = sessions.pid_of.get(&message.to).cloned() else {
            tracing::debug!(to = %message.to, "message for an authentication session that is over");
            return false;
        };
        let Some(attempt) = sessions.by_pid.get_mut(&pid) else {
            return false;
        };
        let from_client = message.from == attempt.client
            && match (message.peer, attempt.peer) {
                (Some(now), Some(then)) => now.ip() == then.ip(),
                _ => true,
            };
        if !from_client {
            tracing::warn!(from = %message.from, session = %message.to, "ignoring a message for an authentication session from someone else");
            return true;
        }
        let step = if message.name == msg::AuthenticationStartMessage::full_name() {
            match message.decode::<msg::AuthenticationStartMessage>() {
                Err(e) => ServerStep::Error(format!("Malformed AuthenticationStartMessage: {e}")),
                Ok(_) if attempt.session.is_some() => {
                    ServerStep::Error("Unexpected authentication 'start' received".into())
                }
                Ok(start) => match Mechanism::parse(&start.mechanism) {
                    Some(m) if self.authn.inner.settings.mechanisms.contains(&m) => {
                        let mut session = server_session(
                            m,
                            self.authn.inner.store.current(),
                            &self.authn.inner.settings.hostname,
                        );
                        let step = session.start(start.data.as_deref().unwrap_or_default());
                        attempt.session = Some(session);
                        step
                    }
                    _ => ServerStep::Error(format!(
                        "Unsupported authentication mechanism '{}'",
                        start.mechanism.escape_default()
                    )),
                },
            }
        } else if message.name == msg::AuthenticationStepMessage::full_name() {
            match (
                message.decode::<msg::AuthenticationStepMessage>(),
                &mut attempt.session,
            ) {
                (Err(e), _) => {
                    ServerStep::Error(format!("Malformed AuthenticationStepMessage: {e}"))
                }
                (Ok(_), None) => {
                    ServerStep::Error("Unexpected authentication 'step' received".into())
                }
                (Ok(step), Some(session)) => session.step(&step.data),
            }
        } else {
            // Mesos's session ignores what it does not expect.
            tracing::debug!(name = %message.name, "ignoring a message during authentication");
            return true;
        };
        let session_id = attempt.session_id.clone();
        let client = attempt.client.clone();
        match step {
            ServerStep::Challenge(data) => {
                self.reply(
                    &session_id,
                    &client,
                    &msg::AuthenticationStepMessage { data: data.into() },
                );
            }
            ServerStep::Completed { principal } => {
                self.reply(
                    &session_id,
                    &client,
                    &msg::AuthenticationCompletedMessage {},
                );
                self.finish(&mut sessions, &pid, Ok(principal));
            }
            ServerStep::Failed { principal, reason } => {
                self.reply(&session_id, &client, &msg::AuthenticationFailedMessage {});
                self.finish(&mut sessions, &pid, Err((principal, reason)));
            }
            ServerStep::Error(error) => {
                self.reply(
                    &session_id,
                    &client,
                    &msg::AuthenticationErrorMessage {
                        error: Some(error.clone()),
                    },
                );
                self.finish(&mut sessions, &pid, Err((None, error)));
            }
        }
        true
    }

    /// Ends an attempt: tells the master the outcome, then releases the
    /// held messages behind it (under the lock, so nothing overtakes).
    fn finish(
        &self,
        sessions: &mut Sessions,
        pid: &str,
        outcome: Result<String, (Option<String>, String)>,
    ) {
        let Some(mut attempt) = sessions.by_pid.remove(pid) else {
            return;
        };
        attempt.cancel_timer();
        sessions.pid_of.remove(&attempt.session_id);
        let mechanism = attempt
            .session
            .as_ref()
            .map(|s| s.mechanism().name())
            .unwrap_or("none");
        let ip = attempt
            .peer
            .map(|p| p.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        match outcome {
            Ok(principal) => {
                tracing::info!(%pid, %principal, mechanism, "Successfully authenticated principal '{principal}' at {pid}");
                self.authn.inner.limiter.record_success(&principal, ip);
                self.authn.audit(
                    attempt.peer,
                    Some(&principal),
                    mechanism,
                    Outcome::Success,
                    None,
                    None,
                );
                self.master.send(Command::Authenticated {
                    pid: pid.to_string(),
                    principal: Some(principal),
                });
            }
            Err((principal, reason)) => {
                tracing::warn!(%pid, principal = principal.as_deref().unwrap_or(""), mechanism, "Failed to authenticate {pid}: {reason}");
                self.authn
                    .inner
                    .limiter
                    .record_failure(principal.as_deref(), ip, Instant::now());
                self.authn.audit(
                    attempt.peer,
                    principal.as_deref(),
                    mechanism,
                    Outcome::Failure,
                    Some(&reason),
                    None,
                );
            }
        }
        self.release(attempt.held);
    }

    fn release(&self, held: Vec<Message>) {
        for message in held {
            self.master.send(Command::Message(message));
        }
    }
}
