//! The agent's side of SASL authentication with the master, as a pure state
//! machine: it is fed the master's replies and the clock, and answers with
//! what to send and what the agent should do next. It sends nothing itself
//! and owns no socket; [`super::registration`] translates.
//!
//! Like Mesos's authenticatee, every attempt speaks from a process of its
//! own, `authenticatee(N)@<agent address>`: the master's session replies to
//! the sender, so replies addressed to an older attempt's process are stale
//! and ignored. Within an attempt, every reply must come from the session
//! that answered first, at the master's address.
//!
//! Timeouts are Mesos's: an attempt is abandoned after a random time in
//! `[min, max]`, where the first `max` is `min + 2 × backoff_factor` and
//! each retry doubles `max - min`, up to `--authentication_timeout_max`. A
//! refusal (AuthenticationFailedMessage) is final: the agent exits, keeping
//! its executors running, as Mesos's does. Errors and timeouts are retried.

use std::time::{Duration, Instant};

use mesos_common::auth::credentials::Credential;
use mesos_common::auth::sasl::{self, ClientSession, Mechanism};
use mesos_common::Upid;

/// Prefix of the per-attempt process ids.
pub const PROCESS_PREFIX: &str = "authenticatee(";

/// What the authenticatee needs from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--credential`.
    pub credential: Credential,
    /// Mechanisms we may use, in no particular order (our preference is
    /// [`Mechanism::PREFERENCE`]).
    pub mechanisms: Vec<Mechanism>,
    /// `--authentication_backoff_factor`.
    pub backoff_factor: Duration,
    /// `--authentication_timeout_min`.
    pub timeout_min: Duration,
    /// `--authentication_timeout_max`.
    pub timeout_max: Duration,
}

/// A reply from the master's side, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// AuthenticationMechanismsMessage.
    Mechanisms(Vec<String>),
    /// AuthenticationStepMessage.
    Step(Vec<u8>),
    /// AuthenticationCompletedMessage.
    Completed,
    /// AuthenticationFailedMessage.
    Failed,
    /// AuthenticationErrorMessage.
    Error(String),
}

/// A message to send to the master's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// AuthenticateMessage{pid}.
    Authenticate {
        /// The UPID being authenticated (the agent's `slave(1)@…`).
        pid: String,
    },
    /// AuthenticationStartMessage{mechanism, data}.
    Start {
        /// The chosen mechanism.
        mechanism: Mechanism,
        /// The client's first data (empty for CRAM-MD5).
        data: Vec<u8>,
    },
    /// AuthenticationStepMessage{data}.
    Step {
        /// The client's answer to the last challenge.
        data: Vec<u8>,
    },
}

/// What the agent should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `request` from our process `process` (on the agent's address)
    /// to `to`.
    Send {
        /// Our sending process id, `authenticatee(N)`.
        process: String,
        /// Where to.
        to: Upid,
        /// What.
        request: Request,
    },
    /// The master accepted our credential: register now.
    Authenticated {
        /// The mechanism that was used.
        mechanism: Mechanism,
    },
    /// The master refused our credential: exit (executors keep running).
    Refused,
    /// This attempt is over without a verdict; a new one starts by itself
    /// (see [`Authenticatee::deadline`]).
    Retry {
        /// Why, for the log (never a secret).
        reason: String,
    },
    /// Nothing to do (a stale or unexpected message), with why.
    Ignore(String),
}

struct Attempt {
    id: u64,
    master: Upid,
    /// The master's session process, once it answered.
    peer: Option<Upid>,
    session: Option<Box<dyn ClientSession>>,
    deadline: Instant,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("id", &self.id)
            .field("master", &self.master)
            .field("peer", &self.peer)
            .field("mechanism", &self.session.as_ref().map(|s| s.mechanism()))
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The state machine; see the module documentation.
#[derive(Debug)]
pub struct Authenticatee {
    settings: Settings,
    last_id: u64,
    attempt: Option<Attempt>,
    /// Upper bound of the current attempt's random timeout.
    window_max: Duration,
    /// After an error: when the next attempt starts, and with which master.
    retry: Option<(Instant, Upid)>,
}

impl Authenticatee {
    /// A state machine with no attempt in flight.
    pub fn new(settings: Settings) -> Self {
        let window_max = first_window_max(&settings);
        Self {
            settings,
            last_id: 0,
            attempt: None,
            window_max,
            retry: None,
        }
    }

    /// The principal we authenticate as.
    pub fn principal(&self) -> &str {
        &self.settings.credential.principal
    }

    /// The upper bound of the current timeout range.
    pub fn window_max(&self) -> Duration {
        self.window_max
    }

    /// The process id of the attempt in flight.
    pub fn current_process(&self) -> Option<String> {
        self.attempt.as_ref().map(|a| process_name(a.id))
    }

    /// Starts authenticating with `master` (a newly detected master):
    /// discards any attempt in flight and resets the timeout range.
    /// `fraction` in `[0, 1]` picks the timeout within the range.
    pub fn start(&mut self, master: &Upid, self_pid: &Upid, now: Instant, fraction: f64) -> Action {
        self.window_max = first_window_max(&self.settings);
        self.begin(master.clone(), self_pid, now, fraction)
    }

    /// Stops: no attempt in flight, no retry pending.
    pub fn cancel(&mut self) {
        self.attempt = None;
        self.retry = None;
    }

    /// When [`Authenticatee::on_timer`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.attempt, &self.retry) {
            (Some(attempt), _) => Some(attempt.deadline),
            (None, Some((at, _))) => Some(*at),
            (None, None) => None,
        }
    }

    /// An attempt timed out, or a retry is due: returns the reason the
    /// previous attempt ended (when it timed out) and the new attempt's
    /// first message.
    pub fn on_timer(
        &mut self,
        self_pid: &Upid,
        now: Instant,
        fraction: f64,
    ) -> Option<(Option<String>, Action)> {
        if let Some(attempt) = &self.attempt {
            if attempt.deadline > now {
                return None;
            }
            let master = attempt.master.clone();
            self.attempt = None;
            self.widen();
            let action = self.begin(master, self_pid, now, fraction);
            return Some((Some("timed out".to_string()), action));
        }
        let (at, master) = self.retry.clone()?;
        if at > now {
            return None;
        }
        self.retry = None;
        Some((None, self.begin(master, self_pid, now, fraction)))
    }

    /// Handles `reply`, addressed to our process `to`, from `from`.
    /// `fraction` in `[0, 1]` picks the delay before a retry after an error.
    pub fn handle(
        &mut self,
        to: &str,
        from: &Upid,
        reply: Reply,
        now: Instant,
        fraction: f64,
    ) -> Action {
        let Some(attempt) = self.attempt.as_mut() else {
            return Action::Ignore(format!("no authentication in progress (for {to})"));
        };
        if to != process_name(attempt.id) {
            return Action::Ignore(format!("stale reply for {to}"));
        }
        match &attempt.peer {
            Some(peer) if peer != from => {
                return Action::Ignore(format!(
                    "reply from {from}, not from the session {peer} that answered first"
                ));
            }
            Some(_) => {}
            None => {
                if from.host != attempt.master.host || from.port != attempt.master.port {
                    return Action::Ignore(format!(
                        "reply from {from}, not from the master {}",
                        attempt.master
                    ));
                }
            }
        }
        match reply {
            Reply::Mechanisms(offered) => {
                if attempt.session.is_some() {
                    return Action::Ignore("mechanisms offered twice".into());
                }
                attempt.peer = Some(from.clone());
                let Some(mechanism) = sasl::choose(&offered, &self.settings.mechanisms) else {
                    let allowed: Vec<&str> =
                        self.settings.mechanisms.iter().map(|m| m.name()).collect();
                    return self.error(
                        format!(
                            "the master offers [{}], none of which --authenticatee allows ([{}])",
                            offered.join(", "),
                            allowed.join(", ")
                        ),
                        now,
                        fraction,
                    );
                };
                let mut session = sasl::client_session(mechanism, &self.settings.credential);
                match session.start() {
                    Ok(data) => {
                        let process = process_name(attempt.id);
                        attempt.session = Some(session);
                        Action::Send {
                            process,
                            to: from.clone(),
                            request: Request::Start { mechanism, data },
                        }
                    }
                    Err(e) => self.error(e.to_string(), now, fraction),
                }
            }
            Reply::Step(challenge) => {
                let Some(session) = attempt.session.as_mut() else {
                    return Action::Ignore("a step before any mechanism was chosen".into());
                };
                match session.step(&challenge) {
                    Ok(data) => Action::Send {
                        process: process_name(attempt.id),
                        to: from.clone(),
                        request: Request::Step { data },
                    },
                    Err(e) => self.error(e.to_string(), now, fraction),
                }
            }
            Reply::Completed => {
                let Some(session) = attempt.session.as_ref() else {
                    return Action::Ignore("completed before any mechanism was chosen".into());
                };
                let mechanism = session.mechanism();
                if !session.is_complete() {
                    // For SCRAM, the master has not proved it knows our
                    // secret: it is not trusted to be the master.
                    return self.error(
                        format!(
                            "the master reported success before the {mechanism} exchange was over"
                        ),
                        now,
                        fraction,
                    );
                }
                self.attempt = None;
                self.retry = None;
                Action::Authenticated { mechanism }
            }
            Reply::Failed => {
                if attempt.session.is_none() {
                    // A refusal can only follow our start: before it, this is
                    // not the master's verdict (and it would stop the agent).
                    return Action::Ignore("refusal before the exchange started".into());
                }
                self.attempt = None;
                self.retry = None;
                Action::Refused
            }
            Reply::Error(error) => self.error(format!("the master said: {error}"), now, fraction),
        }
    }

    /// Ends the attempt in flight with an error; the next one starts after
    /// a random delay within `--authentication_backoff_factor`, so a master
    /// that answers every attempt with an error at once is not flooded.
    fn error(&mut self, reason: String, now: Instant, fraction: f64) -> Action {
        if let Some(attempt) = self.attempt.take() {
            self.widen();
            let delay = self
                .settings
                .backoff_factor
                .mul_f64(fraction.clamp(0.0, 1.0));
            self.retry = Some((now + delay, attempt.master));
        }
        Action::Retry { reason }
    }

    fn begin(&mut self, master: Upid, self_pid: &Upid, now: Instant, fraction: f64) -> Action {
        self.retry = None;
        self.last_id += 1;
        let id = self.last_id;
        let min = self.settings.timeout_min;
        let timeout = min
            + self
                .window_max
                .saturating_sub(min)
                .mul_f64(fraction.clamp(0.0, 1.0));
        self.attempt = Some(Attempt {
            id,
            master: master.clone(),
            peer: None,
            session: None,
            deadline: now + timeout,
        });
        Action::Send {
            process: process_name(id),
            to: master,
            request: Request::Authenticate {
                pid: self_pid.to_string(),
            },
        }
    }

    /// Doubles the width of the timeout range, up to the maximum.
    fn widen(&mut self) {
        let min = self.settings.timeout_min;
        let wider = min + self.window_max.saturating_sub(min) * 2;
        self.window_max = wider.min(self.settings.timeout_max).max(min);
    }
}

fn first_window_max(settings: &Settings) -> Duration {
    (settings.timeout_min + settings.backoff_factor * 2)
        .min(settings.timeout_max)
        .max(settings.timeout_min)
}

fn process_name(id: u64) -> String {
    format!("{PROCESS_PREFIX}{id})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_common::auth::credentials::{Credentials, Secret};
    use mesos_common::auth::sasl::ServerStep;
    use std::sync::Arc;

    fn settings(mechanisms: Vec<Mechanism>) -> Settings {
        Settings {
            credential: Credential {
                principal: "agent".into(),
                secret: Secret::new("agent-secret"),
            },
            mechanisms,
            backoff_factor: Duration::from_secs(1),
            timeout_min: Duration::from_secs(5),
            timeout_max: Duration::from_secs(60),
        }
    }

    fn master() -> Upid {
        Upid::new("master", "10.0.0.1", 5050)
    }

    fn session_pid(n: u32) -> Upid {
        Upid::new(format!("authenticator-session({n})"), "10.0.0.1", 5050)
    }

    fn agent() -> Upid {
        Upid::new("slave(1)", "10.0.0.2", 5051)
    }

    fn sent(action: Action) -> (String, Upid, Request) {
        match action {
            Action::Send {
                process,
                to,
                request,
            } => (process, to, request),
            other => panic!("expected a message to send, got {other:?}"),
        }
    }

    fn server_credentials() -> Arc<Credentials> {
        Arc::new(Credentials::from_pairs([Credential {
            principal: "agent".into(),
            secret: Secret::new("agent-secret"),
        }]))
    }

    /// Runs a whole exchange against a real server session and returns the
    /// last action.
    fn exchange(offered: &[&str], allowed: Vec<Mechanism>) -> (Vec<Request>, Action) {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(allowed));
        let (process, to, first) = sent(auth.start(&master(), &agent(), now, 0.5));
        assert_eq!(to, master());
        assert_eq!(
            first,
            Request::Authenticate {
                pid: agent().to_string()
            }
        );
        let mut requests = vec![first];
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        let mut action = auth.handle(
            &process,
            &session_pid(1),
            Reply::Mechanisms(offered),
            now,
            0.5,
        );
        let mut server: Option<Box<dyn sasl::ServerSession>> = None;
        loop {
            let (_, to, request) = match action {
                Action::Send { .. } => sent(action),
                other => return (requests, other),
            };
            assert_eq!(
                to,
                session_pid(1),
                "replies go to the session that answered"
            );
            requests.push(request.clone());
            let step = match request {
                Request::Start { mechanism, data } => {
                    let s = server.insert(sasl::server_session(
                        mechanism,
                        server_credentials(),
                        "master.example",
                    ));
                    s.start(&data)
                }
                Request::Step { data } => server.as_mut().expect("started").step(&data),
                Request::Authenticate { .. } => panic!("authenticate twice"),
            };
            let reply = match step {
                ServerStep::Challenge(data) => Reply::Step(data),
                ServerStep::Completed { principal } => {
                    assert_eq!(principal, "agent");
                    Reply::Completed
                }
                ServerStep::Failed { .. } => Reply::Failed,
                ServerStep::Error(e) => Reply::Error(e),
            };
            action = auth.handle(&process, &session_pid(1), reply, now, 0.5);
        }
    }

    #[test]
    fn scram_is_preferred_and_ends_with_an_empty_step() {
        let (requests, last) = exchange(
            &["SCRAM-SHA-256", "CRAM-MD5"],
            vec![Mechanism::ScramSha256, Mechanism::CramMd5],
        );
        assert_eq!(
            last,
            Action::Authenticated {
                mechanism: Mechanism::ScramSha256
            }
        );
        // Authenticate, Start{client-first}, Step{client-final}, Step{empty}.
        assert_eq!(requests.len(), 4, "{requests:?}");
        assert!(
            matches!(&requests[1], Request::Start { mechanism: Mechanism::ScramSha256, data } if data.starts_with(b"n,,n=agent,r="))
        );
        assert!(matches!(&requests[2], Request::Step { data } if data.starts_with(b"c=biws,r=")));
        assert_eq!(requests[3], Request::Step { data: Vec::new() });
    }

    #[test]
    fn cram_md5_is_used_when_it_is_all_the_master_offers() {
        let (requests, last) = exchange(
            &["CRAM-MD5"],
            vec![Mechanism::ScramSha256, Mechanism::CramMd5],
        );
        assert_eq!(
            last,
            Action::Authenticated {
                mechanism: Mechanism::CramMd5
            }
        );
        assert_eq!(
            requests[1],
            Request::Start {
                mechanism: Mechanism::CramMd5,
                data: Vec::new()
            }
        );
        assert!(matches!(&requests[2], Request::Step { data } if data.starts_with(b"agent ")));
        assert_eq!(requests.len(), 3);
    }

    #[test]
    fn crammd5_only_refuses_a_scram_only_master_and_retries() {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(vec![Mechanism::CramMd5]));
        let (process, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        let action = auth.handle(
            &process,
            &session_pid(1),
            Reply::Mechanisms(vec!["SCRAM-SHA-256".into()]),
            now,
            1.0,
        );
        assert!(
            matches!(action, Action::Retry { ref reason } if reason.contains("SCRAM-SHA-256")),
            "{action:?}"
        );
        assert_eq!(auth.deadline(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn failed_means_exit_and_error_means_retry() {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(vec![Mechanism::CramMd5]));
        let (process, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        let _ = auth.handle(
            &process,
            &session_pid(1),
            Reply::Mechanisms(vec!["CRAM-MD5".into()]),
            now,
            0.0,
        );
        assert_eq!(
            auth.handle(&process, &session_pid(1), Reply::Failed, now, 0.0),
            Action::Refused
        );
        assert_eq!(auth.deadline(), None, "a refusal is final");

        let (process, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        let action = auth.handle(
            &process,
            &master(),
            Reply::Error("No authenticator loaded".into()),
            now,
            0.0,
        );
        assert!(
            matches!(action, Action::Retry { ref reason } if reason.contains("No authenticator loaded"))
        );
        let (why, next) = auth.on_timer(&agent(), now, 0.0).expect("a retry is due");
        assert_eq!(why, None);
        let (next_process, to, request) = sent(next);
        assert_ne!(next_process, process, "a retry speaks from a new process");
        assert_eq!(to, master());
        assert!(matches!(request, Request::Authenticate { .. }));
    }

    #[test]
    fn replies_for_a_stale_attempt_or_from_elsewhere_are_ignored() {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(vec![Mechanism::CramMd5]));
        let (old, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        // The master is detected again: the first attempt is discarded.
        let (new, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        assert_ne!(old, new);
        assert!(matches!(
            auth.handle(&old, &session_pid(1), Reply::Failed, now, 0.0),
            Action::Ignore(_)
        ));
        assert!(matches!(
            auth.handle(&old, &session_pid(1), Reply::Completed, now, 0.0),
            Action::Ignore(_)
        ));
        // Not from the master's address.
        let stranger = Upid::new("authenticator-session(1)", "10.9.9.9", 5050);
        assert!(matches!(
            auth.handle(
                &new,
                &stranger,
                Reply::Mechanisms(vec!["CRAM-MD5".into()]),
                now,
                0.0
            ),
            Action::Ignore(_)
        ));
        // The session that answered first is the only one heard after.
        assert!(matches!(
            auth.handle(
                &new,
                &session_pid(2),
                Reply::Mechanisms(vec!["CRAM-MD5".into()]),
                now,
                0.0
            ),
            Action::Send { .. }
        ));
        assert!(matches!(
            auth.handle(&new, &session_pid(3), Reply::Failed, now, 0.0),
            Action::Ignore(_)
        ));
        // Out of order within the attempt.
        assert!(matches!(
            auth.handle(
                &new,
                &session_pid(2),
                Reply::Mechanisms(vec!["CRAM-MD5".into()]),
                now,
                0.0
            ),
            Action::Ignore(_)
        ));
        assert_eq!(
            auth.handle(&new, &session_pid(2), Reply::Failed, now, 0.0),
            Action::Refused
        );
    }

    #[test]
    fn completed_before_the_scram_server_proved_itself_is_not_trusted() {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(vec![Mechanism::ScramSha256]));
        let (process, _, _) = sent(auth.start(&master(), &agent(), now, 0.0));
        let _ = sent(auth.handle(
            &process,
            &session_pid(1),
            Reply::Mechanisms(vec!["SCRAM-SHA-256".into()]),
            now,
            0.0,
        ));
        let action = auth.handle(&process, &session_pid(1), Reply::Completed, now, 0.0);
        assert!(matches!(action, Action::Retry { .. }), "{action:?}");
    }

    #[test]
    fn timeouts_widen_from_min_plus_twice_the_factor_to_the_maximum() {
        let now = Instant::now();
        let mut auth = Authenticatee::new(settings(vec![Mechanism::CramMd5]));
        let _ = auth.start(&master(), &agent(), now, 1.0);
        assert_eq!(auth.deadline(), Some(now + Duration::from_secs(7)));
        assert!(auth
            .on_timer(&agent(), now + Duration::from_secs(6), 1.0)
            .is_none());
        let mut expected = Vec::new();
        let mut at = now;
        for _ in 0..6 {
            at = auth.deadline().expect("an attempt in flight");
            let (why, action) = auth.on_timer(&agent(), at, 1.0).expect("timed out");
            assert_eq!(why.as_deref(), Some("timed out"));
            assert!(matches!(
                action,
                Action::Send {
                    request: Request::Authenticate { .. },
                    ..
                }
            ));
            expected.push(auth.window_max().as_secs());
        }
        assert_eq!(expected, vec![9, 13, 21, 37, 60, 60]);
        // The lower bound holds with the smallest random pick.
        let _ = auth.on_timer(&agent(), auth.deadline().expect("in flight"), 0.0);
        assert!(auth.deadline().expect("in flight") >= at + Duration::from_secs(5));
        // A newly detected master starts over.
        let _ = auth.start(&master(), &agent(), now, 1.0);
        assert_eq!(auth.window_max(), Duration::from_secs(7));
    }
}
