//! SASL mechanisms spoken over libprocess authentication messages: the
//! per-exchange state machines, with no IO and no message types of their own.
//!
//! The caller (the master's authenticator, the agent's and scheduler's
//! authenticatee) translates messages to and from these sessions:
//!
//! ```text
//! client                                   server
//! AuthenticateMessage                  -->
//!                                      <-- AuthenticationMechanismsMessage{mechanisms}
//!    choose(offered, allowed)
//!    ClientSession::start()
//! AuthenticationStartMessage{mech,data} -->   ServerSession::start(data)
//!                                      <-- AuthenticationStepMessage{data}   (ServerStep::Challenge)
//!    ClientSession::step(data)
//! AuthenticationStepMessage{data}      -->   ServerSession::step(data)
//!      ... more steps ...
//!                                      <-- AuthenticationCompletedMessage    (ServerStep::Completed)
//!                                        | AuthenticationFailedMessage       (ServerStep::Failed)
//!                                        | AuthenticationErrorMessage{error} (ServerStep::Error)
//! ```
//!
//! **CRAM-MD5** (as Cyrus SASL does it for Mesos, service `mesos`): the start
//! data is empty (non-empty data is ignored); the server answers with the RFC
//! 2195 challenge `<random.timestamp@hostname>`; the client's one step is
//! `principal SP lowercase-hex(HMAC-MD5(secret, challenge))`; the server then
//! answers Completed or Failed.
//!
//! **SCRAM-SHA-256** (RFC 5802 / RFC 7677, no channel binding: GS2 header
//! `n,,`). Mesos's Completed message carries no data, so the server-final
//! message travels as a step:
//!
//! 1. start data = client-first (`n,,n=user,r=nonce`); server → `Challenge(server-first)`.
//! 2. client step(server-first) returns client-final; server → `Challenge(server-final "v=…")`
//!    (or `Failed` for a bad proof / unknown principal).
//! 3. client step(server-final) verifies the server signature and returns an
//!    **empty** Vec (or [`SaslError::ServerSignature`]); the client sends that
//!    empty step; server → `Completed`.
//!
//! A client that receives Completed after a non-final step must treat the
//! server as unauthenticated: [`ClientSession::is_complete`] says whether the
//! client side reached its own end (for SCRAM, the server proved it knows the
//! password too).
//!
//! Outward behaviour never tells an unknown principal from a wrong secret
//! (both are [`ServerStep::Failed`]); the `reason` says which, for the audit
//! log only, and never carries secret material.
//!
//! SCRAM's per-principal PBKDF2 work (4096 iterations) is done once per
//! principal and secret in the process and cached; see [`crate::auth::scram`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::auth::credentials::{Credential, Credentials};
use crate::auth::{cram_md5, scram};

/// Largest start or step payload a session accepts (either side). Real
/// exchanges are well under 1 KiB; anything larger is refused unread.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// A SASL mechanism we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `CRAM-MD5`, what Mesos (Cyrus SASL) offers and uses.
    CramMd5,
    /// `SCRAM-SHA-256`, what our own agents prefer.
    ScramSha256,
}

impl Mechanism {
    /// Every mechanism, in our preference order (most preferred first).
    pub const PREFERENCE: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::CramMd5];

    /// The IANA/SASL name, as carried in the mechanisms and start messages.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The mechanism named `name` (SASL names are case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Mechanism::PREFERENCE
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mechanism::parse(s).ok_or_else(|| SaslError::UnknownMechanism(printable(s.as_bytes())))
    }
}

/// What the server sends next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// Send `AuthenticationStepMessage{data}` and wait for the client's step.
    Challenge(Vec<u8>),
    /// Send `AuthenticationCompletedMessage`: `principal` is authenticated.
    Completed {
        /// Who proved their identity.
        principal: String,
    },
    /// Send `AuthenticationFailedMessage`: bad principal or secret.
    Failed {
        /// The principal the client claimed, when it got that far and it is
        /// printable (it may not exist).
        principal: Option<String>,
        /// Why, for logs and the audit log. Never a secret or a digest.
        reason: String,
    },
    /// Send `AuthenticationErrorMessage{error}`: a protocol error.
    Error(String),
}

/// One server-side authentication exchange. Each session is used once.
pub trait ServerSession: Send {
    /// The mechanism this session speaks.
    fn mechanism(&self) -> Mechanism;
    /// Handles the data of `AuthenticationStartMessage`.
    fn start(&mut self, data: &[u8]) -> ServerStep;
    /// Handles the data of an `AuthenticationStepMessage`.
    fn step(&mut self, data: &[u8]) -> ServerStep;
}

/// A server session for `mechanism`, checking against the `credentials`
/// snapshot; `hostname` goes into the CRAM-MD5 challenge.
pub fn server_session(
    mechanism: Mechanism,
    credentials: Arc<Credentials>,
    hostname: &str,
) -> Box<dyn ServerSession> {
    match mechanism {
        Mechanism::CramMd5 => Box::new(cram_md5::CramMd5Server::new(credentials, hostname)),
        Mechanism::ScramSha256 => Box::new(scram::ScramServer::new(credentials)),
    }
}

/// What the client sends next (a named form of the `Vec<u8>` the
/// [`ClientSession`] methods return, for callers that prefer it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send an `AuthenticationStepMessage{data}` with these bytes (possibly
    /// empty: SCRAM's closing step after the server proved itself).
    Respond(Vec<u8>),
}

/// One client-side authentication exchange. Each session is used once.
pub trait ClientSession: Send {
    /// The mechanism this session speaks.
    fn mechanism(&self) -> Mechanism;
    /// The data for `AuthenticationStartMessage` (empty for CRAM-MD5).
    fn start(&mut self) -> Result<Vec<u8>, SaslError>;
    /// The data for the next `AuthenticationStepMessage`, answering the
    /// server's `challenge`.
    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError>;
    /// True once the client has sent its last step (CRAM-MD5: the response;
    /// SCRAM: the empty step after verifying the server's signature). A
    /// server's Completed before that must not be trusted.
    fn is_complete(&self) -> bool;
}

/// A client session proving `credential` with `mechanism`.
pub fn client_session(mechanism: Mechanism, credential: &Credential) -> Box<dyn ClientSession> {
    match mechanism {
        Mechanism::CramMd5 => Box::new(cram_md5::CramMd5Client::new(credential)),
        Mechanism::ScramSha256 => Box::new(scram::ScramClient::new(credential)),
    }
}

/// The client's pick among the server's offered names, in our preference
/// order (SCRAM-SHA-256 first), limited to `allowed`.
pub fn choose(offered: &[String], allowed: &[Mechanism]) -> Option<Mechanism> {
    Mechanism::PREFERENCE.into_iter().find(|m| {
        allowed.contains(m)
            && offered
                .iter()
                .any(|o| o.trim().eq_ignore_ascii_case(m.name()))
    })
}

/// Why a client-side step failed. Never contains a secret.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// A mechanism name we do not speak.
    #[error("unknown SASL mechanism '{0}'")]
    UnknownMechanism(String),
    /// The session was driven out of order (`what` is "start" or "step").
    #[error("unexpected authentication '{0}'")]
    OutOfOrder(&'static str),
    /// The server's challenge could not be parsed or answered.
    #[error("malformed {mechanism} challenge from the server: {reason}")]
    MalformedChallenge {
        /// The mechanism being spoken.
        mechanism: Mechanism,
        /// What was wrong with it.
        reason: String,
    },
    /// The server's SCRAM signature did not match: it does not know our
    /// secret (or the exchange was tampered with).
    #[error(
        "the server's SCRAM signature is wrong: the server could not prove it knows the secret"
    )]
    ServerSignature,
    /// The server ended the SCRAM exchange with an error (`e=...`).
    #[error("the server refused the SCRAM exchange: {0}")]
    ServerRefused(String),
    /// The credential cannot be used with this mechanism (e.g. SASLprep
    /// refuses the principal or secret).
    #[error("the credential cannot be used with {mechanism}: {reason}")]
    BadCredential {
        /// The mechanism being spoken.
        mechanism: Mechanism,
        /// Why (never the secret).
        reason: String,
    },
}

/// The text Mesos sends for a message that arrives in the wrong state.
pub(crate) fn unexpected(what: &str) -> ServerStep {
    ServerStep::Error(format!("Unexpected authentication '{what}' received"))
}

/// The principal a client claimed, as [`ServerStep::Failed`] reports it:
/// `None` when it has control characters or is over 256 bytes, so that a
/// claimed name cannot forge log lines.
pub(crate) fn claimed(principal: &str) -> Option<String> {
    (principal.len() <= 256 && !principal.chars().any(char::is_control))
        .then(|| principal.to_string())
}

/// `bytes` as a short, printable string for logs: UTF-8 with control
/// characters escaped, cut to 64 characters.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mechanism_names_parse_both_ways() {
        for m in Mechanism::PREFERENCE {
            assert_eq!(Mechanism::parse(m.name()), Some(m));
            assert_eq!(m.name().parse::<Mechanism>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Mechanism::parse("cram-md5"), Some(Mechanism::CramMd5));
        assert_eq!(Mechanism::parse("PLAIN"), None);
        assert_eq!(
            "PLAIN".parse::<Mechanism>(),
            Err(SaslError::UnknownMechanism("PLAIN".into()))
        );
    }

    #[test]
    fn choose_prefers_scram_within_what_is_allowed_and_offered() {
        let both = [Mechanism::CramMd5, Mechanism::ScramSha256];
        assert_eq!(
            choose(&names(&["CRAM-MD5", "SCRAM-SHA-256"]), &both),
            Some(Mechanism::ScramSha256)
        );
        // A Mesos master offers only CRAM-MD5.
        assert_eq!(
            choose(&names(&["CRAM-MD5"]), &both),
            Some(Mechanism::CramMd5)
        );
        assert_eq!(
            choose(
                &names(&["CRAM-MD5", "SCRAM-SHA-256"]),
                &[Mechanism::CramMd5]
            ),
            Some(Mechanism::CramMd5)
        );
        assert_eq!(
            choose(&names(&["CRAM-MD5"]), &[Mechanism::ScramSha256]),
            None
        );
        assert_eq!(choose(&names(&["PLAIN", "GSSAPI"]), &both), None);
        assert_eq!(choose(&[], &both), None);
    }

    #[test]
    fn claimed_principals_with_controls_or_huge_are_not_reported() {
        assert_eq!(claimed("agent one"), Some("agent one".into()));
        assert_eq!(claimed("a\nforged line"), None);
        assert_eq!(claimed(&"x".repeat(257)), None);
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable(b"a\nb\xff"), "a\\nb\u{fffd}");
        assert_eq!(printable(&[b'x'; 100]).chars().count(), 65);
    }

    #[test]
    fn sessions_report_their_mechanism() {
        let credentials = Arc::new(Credentials::default());
        let credential = Credential {
            principal: "p".into(),
            secret: crate::auth::credentials::Secret::new("s"),
        };
        for m in Mechanism::PREFERENCE {
            assert_eq!(server_session(m, credentials.clone(), "h").mechanism(), m);
            assert_eq!(client_session(m, &credential).mechanism(), m);
        }
    }
}
