//! CRAM-MD5 (RFC 2195) as Cyrus SASL speaks it for Mesos: both ends of
//! the exchange, written by hand because rsasl has no CRAM-MD5.
//!
//! The server's challenge is `<random.timestamp@hostname>`; the client
//! answers `principal SP lowercase-hex(HMAC-MD5(secret, challenge))`. Like
//! Cyrus, the server splits the response at its last space (a principal may
//! contain spaces). This module only computes and checks proofs; the message
//! plumbing and the audit log belong to the caller.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;

use crate::auth::credentials::{Credential, Credentials, Secret};
use crate::auth::sasl::{
    claimed, printable, unexpected, ClientSession, Mechanism, SaslError, ServerSession, ServerStep,
    MAX_MESSAGE_LEN,
};

type HmacMd5 = Hmac<Md5>;

/// Length of an MD5 digest in bytes.
const DIGEST_LEN: usize = 16;

/// `HMAC-MD5(secret, challenge)` as 32 lowercase hex digits: the digest
/// part of a CRAM-MD5 response.
pub fn response_digest(secret: &[u8], challenge: &[u8]) -> String {
    hex(&hmac_md5(secret, challenge))
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length (longer ones are hashed first, as
    // Cyrus does): `new_from_slice` only fails for fixed-size-key MACs.
    let Ok(mut mac) = HmacMd5::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly 32 hex digits (either case) into a digest.
fn parse_digest(text: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    if text.len() != DIGEST_LEN * 2 {
        return None;
    }
    let mut out = [0u8; DIGEST_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// A fresh RFC 2195 challenge, `<random.timestamp@hostname>`, as Cyrus
/// builds it.
pub fn new_challenge(hostname: &str) -> Vec<u8> {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random: u64 = rand::random();
    let host = sanitize_hostname(hostname);
    format!("<{random}.{seconds}@{host}>").into_bytes()
}

/// The hostname as it may appear inside `<…>`: no spaces, controls or
/// angle brackets (they would make the challenge ambiguous to a client).
fn sanitize_hostname(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '<' && *c != '>')
        .take(255)
        .collect();
    if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    }
}

enum ServerState {
    /// Waiting for `AuthenticationStartMessage`.
    Start,
    /// Challenge sent, waiting for the client's response.
    Response { challenge: Vec<u8> },
    /// Completed, failed or errored: nothing more is accepted.
    Done,
}

/// The server side of one CRAM-MD5 exchange.
pub struct CramMd5Server {
    credentials: Arc<Credentials>,
    hostname: String,
    state: ServerState,
}

impl CramMd5Server {
    /// A session checking against `credentials`; `hostname` goes into the
    /// challenge.
    pub fn new(credentials: Arc<Credentials>, hostname: &str) -> Self {
        CramMd5Server {
            credentials,
            hostname: hostname.to_string(),
            state: ServerState::Start,
        }
    }

    /// A session that sends `challenge` instead of a fresh one (for tests
    /// against published vectors; never use a fixed challenge in service).
    #[cfg(test)]
    fn with_challenge(credentials: Arc<Credentials>, challenge: &[u8]) -> Self {
        CramMd5Server {
            credentials,
            hostname: String::new(),
            state: ServerState::Response {
                challenge: challenge.to_vec(),
            },
        }
    }

    fn check(&self, challenge: &[u8], response: &[u8]) -> ServerStep {
        if response.len() > MAX_MESSAGE_LEN {
            return ServerStep::Error(format!(
                "CRAM-MD5 response of {} bytes is longer than {MAX_MESSAGE_LEN}",
                response.len()
            ));
        }
        // Cyrus splits at the last space: the digest never contains one.
        let Some(space) = response.iter().rposition(|&b| b == b' ') else {
            return ServerStep::Error(
                "malformed CRAM-MD5 response: expected 'principal digest'".to_string(),
            );
        };
        let (name, digest) = (&response[..space], &response[space + 1..]);
        let Ok(principal) = std::str::from_utf8(name) else {
            return ServerStep::Failed {
                principal: None,
                reason: format!("CRAM-MD5 principal is not UTF-8: '{}'", printable(name)),
            };
        };
        let secret = self.credentials.secret(principal);
        // An unknown principal costs the same HMAC as a known one, so the
        // answer's timing does not tell which principals exist.
        let decoy;
        let key = match secret {
            Some(secret) => secret.expose(),
            None => {
                decoy = Secret::new(Vec::new());
                decoy.expose()
            }
        };
        let expected = hmac_md5(key, challenge);
        let presented = parse_digest(digest);
        let digest_ok = match &presented {
            Some(presented) => bool::from(expected.ct_eq(presented)),
            None => false,
        };
        let shown = claimed(principal);
        match (secret.is_some(), presented.is_some(), digest_ok) {
            (true, _, true) => ServerStep::Completed {
                principal: principal.to_string(),
            },
            (false, _, _) => ServerStep::Failed {
                principal: shown,
                reason: "unknown principal".to_string(),
            },
            (true, false, _) => ServerStep::Failed {
                principal: shown,
                reason: "malformed CRAM-MD5 digest: expected 32 hex digits".to_string(),
            },
            (true, true, false) => ServerStep::Failed {
                principal: shown,
                reason: "wrong secret".to_string(),
            },
        }
    }
}

impl ServerSession for CramMd5Server {
    fn mechanism(&self) -> Mechanism {
        Mechanism::CramMd5
    }

    fn start(&mut self, _data: &[u8]) -> ServerStep {
        // Mesos sends empty start data for CRAM-MD5; Cyrus ignores any.
        match self.state {
            ServerState::Start => {
                let challenge = new_challenge(&self.hostname);
                self.state = ServerState::Response {
                    challenge: challenge.clone(),
                };
                ServerStep::Challenge(challenge)
            }
            _ => {
                self.state = ServerState::Done;
                unexpected("start")
            }
        }
    }

    fn step(&mut self, data: &[u8]) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Response { challenge } => self.check(&challenge, data),
            ServerState::Start | ServerState::Done => unexpected("step"),
        }
    }
}

enum ClientState {
    Start,
    Challenge,
    Done,
    Broken,
}

/// The client side of one CRAM-MD5 exchange.
pub struct CramMd5Client {
    credential: Credential,
    state: ClientState,
}

impl CramMd5Client {
    /// A session proving `credential`.
    pub fn new(credential: &Credential) -> Self {
        CramMd5Client {
            credential: credential.clone(),
            state: ClientState::Start,
        }
    }

    /// The response to `challenge`: `principal SP hex-digest`.
    fn respond(&self, challenge: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.credential.principal.len() + 1 + 2 * DIGEST_LEN);
        out.extend_from_slice(self.credential.principal.as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            response_digest(self.credential.secret.expose(), challenge).as_bytes(),
        );
        out
    }
}

impl ClientSession for CramMd5Client {
    fn mechanism(&self) -> Mechanism {
        Mechanism::CramMd5
    }

    fn start(&mut self) -> Result<Vec<u8>, SaslError> {
        match self.state {
            ClientState::Start => {
                self.state = ClientState::Challenge;
                Ok(Vec::new())
            }
            _ => {
                self.state = ClientState::Broken;
                Err(SaslError::OutOfOrder("start"))
            }
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match std::mem::replace(&mut self.state, ClientState::Broken) {
            ClientState::Challenge => {
                let malformed = |reason: &str| SaslError::MalformedChallenge {
                    mechanism: Mechanism::CramMd5,
                    reason: reason.to_string(),
                };
                if challenge.is_empty() {
                    return Err(malformed("empty challenge"));
                }
                if challenge.len() > MAX_MESSAGE_LEN {
                    return Err(malformed("challenge longer than 4096 bytes"));
                }
                self.state = ClientState::Done;
                Ok(self.respond(challenge))
            }
            ClientState::Start | ClientState::Done | ClientState::Broken => {
                Err(SaslError::OutOfOrder("step"))
            }
        }
    }

    fn is_complete(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sasl::{client_session, server_session};
    use proptest::prelude::*;

    const RFC_CHALLENGE: &[u8] = b"<1896.697170952@postoffice.reston.mci.net>";

    fn tim() -> Credential {
        Credential {
            principal: "tim".into(),
            secret: Secret::new("tanstaaftanstaaf"),
        }
    }

    fn credentials() -> Arc<Credentials> {
        Arc::new(Credentials::from_pairs([
            tim(),
            Credential {
                principal: "agent one".into(),
                secret: Secret::new("s3cret"),
            },
        ]))
    }

    #[test]
    fn client_answers_the_rfc_2195_example() {
        let mut client = CramMd5Client::new(&tim());
        assert_eq!(client.start().expect("start"), b"");
        let response = client.step(RFC_CHALLENGE).expect("step");
        assert_eq!(response, b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert!(client.is_complete());
    }

    #[test]
    fn server_accepts_the_rfc_2195_example() {
        let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
        let step = server.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            step,
            ServerStep::Completed {
                principal: "tim".into()
            }
        );
    }

    #[test]
    fn server_accepts_an_uppercase_digest() {
        let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
        let step = server.step(b"tim B913A602C7EDA7A495B4E6E7334D3890");
        assert_eq!(
            step,
            ServerStep::Completed {
                principal: "tim".into()
            }
        );
    }

    #[test]
    fn challenge_has_the_rfc_2195_shape() {
        let challenge = String::from_utf8(new_challenge("master.example")).expect("utf-8");
        assert!(challenge.starts_with('<') && challenge.ends_with("@master.example>"));
        let inner = &challenge[1..challenge.find('@').expect("@")];
        let (random, time) = inner.split_once('.').expect("random.time");
        assert!(random.parse::<u64>().is_ok() && time.parse::<u64>().is_ok());
        assert_ne!(
            new_challenge("h"),
            new_challenge("h"),
            "challenges are fresh"
        );
        assert!(String::from_utf8(new_challenge("a b<c>\n"))
            .expect("utf-8")
            .ends_with("@abc>"));
    }

    #[test]
    fn round_trip_completes_with_a_principal_containing_a_space() {
        let cred = Credential {
            principal: "agent one".into(),
            secret: Secret::new("s3cret"),
        };
        let mut server = server_session(Mechanism::CramMd5, credentials(), "master");
        let mut client = client_session(Mechanism::CramMd5, &cred);
        let ServerStep::Challenge(challenge) = server.start(&client.start().expect("start")) else {
            panic!("expected a challenge")
        };
        let response = client.step(&challenge).expect("response");
        assert_eq!(
            server.step(&response),
            ServerStep::Completed {
                principal: "agent one".into()
            }
        );
    }

    fn exchange(cred: &Credential) -> ServerStep {
        let mut server = server_session(Mechanism::CramMd5, credentials(), "master");
        let mut client = client_session(Mechanism::CramMd5, cred);
        let ServerStep::Challenge(challenge) = server.start(&client.start().expect("start")) else {
            panic!("expected a challenge")
        };
        server.step(&client.step(&challenge).expect("response"))
    }

    #[test]
    fn wrong_secret_fails() {
        let step = exchange(&Credential {
            principal: "tim".into(),
            secret: Secret::new("wrong"),
        });
        assert_eq!(
            step,
            ServerStep::Failed {
                principal: Some("tim".into()),
                reason: "wrong secret".into()
            }
        );
    }

    #[test]
    fn unknown_principal_fails_like_a_wrong_secret() {
        let step = exchange(&Credential {
            principal: "mallory".into(),
            secret: Secret::new("tanstaaftanstaaf"),
        });
        assert!(
            matches!(&step, ServerStep::Failed { principal: Some(p), .. } if p == "mallory"),
            "{step:?}"
        );
    }

    #[test]
    fn out_of_order_messages_are_errors() {
        let mut server = server_session(Mechanism::CramMd5, credentials(), "m");
        assert_eq!(
            server.step(b"tim 00"),
            ServerStep::Error("Unexpected authentication 'step' received".into())
        );

        let mut server = server_session(Mechanism::CramMd5, credentials(), "m");
        assert!(matches!(server.start(b""), ServerStep::Challenge(_)));
        assert_eq!(
            server.start(b""),
            ServerStep::Error("Unexpected authentication 'start' received".into())
        );

        let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
        assert!(matches!(
            server.step(b"tim b913a602c7eda7a495b4e6e7334d3890"),
            ServerStep::Completed { .. }
        ));
        assert_eq!(
            server.step(b"tim b913a602c7eda7a495b4e6e7334d3890"),
            ServerStep::Error("Unexpected authentication 'step' received".into())
        );

        let mut client = CramMd5Client::new(&tim());
        assert_eq!(client.step(b"<x>"), Err(SaslError::OutOfOrder("step")));
    }

    #[test]
    fn malformed_responses_fail_or_error() {
        let cases: [(&[u8], bool); 7] = [
            (b"timb913a602c7eda7a495b4e6e7334d3890", false),
            (b"tim b913a602c7eda7a495b4e6e7334d389", true),
            (b"tim b913a602c7eda7a495b4e6e7334d3890a", true),
            (b"tim zz13a602c7eda7a495b4e6e7334d3890", true),
            (b"tim \xff\xfe13a602c7eda7a495b4e6e7334d38", true),
            (b"\xff\xfe b913a602c7eda7a495b4e6e7334d3890", true),
            (b"", false),
        ];
        for (response, failed) in cases {
            let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
            let step = server.step(response);
            match step {
                ServerStep::Failed { .. } if failed => {}
                ServerStep::Error(_) if !failed => {}
                other => panic!("{:?}: unexpected {other:?}", printable(response)),
            }
        }
        let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
        let huge = vec![b'a'; MAX_MESSAGE_LEN + 1];
        assert!(matches!(server.step(&huge), ServerStep::Error(_)));
    }

    #[test]
    fn failure_reasons_never_carry_the_digest_or_secret() {
        let mut server = CramMd5Server::with_challenge(credentials(), RFC_CHALLENGE);
        let step = server.step(b"tim 0123456789abcdef0123456789abcdef");
        let shown = format!("{step:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("tanstaaf"), "{shown}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_server(
            start in proptest::collection::vec(any::<u8>(), 0..64),
            steps in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..128), 0..4),
        ) {
            let mut server = server_session(Mechanism::CramMd5, credentials(), "m");
            let _ = server.start(&start);
            for step in &steps {
                let step = server.step(step);
                prop_assert!(!matches!(step, ServerStep::Completed { .. }), "garbage completed: {:?}", step);
            }
        }

        #[test]
        fn arbitrary_challenges_never_panic_the_client(
            challenge in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut client = CramMd5Client::new(&tim());
            let _ = client.start();
            let _ = client.step(&challenge);
            let _ = client.step(&challenge);
        }
    }
}
