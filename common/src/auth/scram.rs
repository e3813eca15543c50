//! SCRAM-SHA-256 (RFC 5802, RFC 7677) over Mesos's authentication
//! messages, both ends, through rsasl; see [`crate::auth::sasl`] for how
//! the exchange maps onto the messages (the server-final message travels as
//! a step, answered by an empty step).
//!
//! rsasl does the SCRAM arithmetic; this module owns what rsasl does not do
//! safely on its own, and must stay in front of it:
//!
//! - **Grammar.** Every message is checked against RFC 5802's grammar
//!   before rsasl sees it: rsasl 2.3's parsers slice attributes without
//!   length checks and panic on inputs such as `n,a,…` or `n,,x`, and an
//!   rsasl session panics if stepped again after an error. No channel
//!   binding (`n,,` or `y,,`), and no authorization identity other than
//!   the principal itself (which Cyrus clients send), are accepted.
//! - **Key cache (server).** The salted password is derived with PBKDF2
//!   (4096 iterations, a random salt per principal per process) once, and
//!   only its StoredKey and ServerKey are kept, in a process-wide map keyed
//!   by principal and guarded by a keyed fingerprint of the secret. A
//!   credentials reload that keeps a principal's secret reuses the entry;
//!   one that changes it derives again with a fresh salt. Exchanges then
//!   cost a few HMACs, not 4096 of them. [`prepare_server_keys`] derives
//!   every principal ahead of time (e.g. after loading `--credentials`), so
//!   that the first login of a principal is not slower than an unknown
//!   one's.
//! - **Unknown principals.** rsasl would answer an unknown user with a new
//!   random salt and a different iteration count on every attempt, which
//!   tells a prober that the user does not exist. We instead hand rsasl a
//!   decoy entry, derived from a per-process key and the name, so that an
//!   unknown principal gets a stable salt, the same iteration count, the
//!   same work, and finally the same `Failed` as a wrong secret.
//! - **Client limits.** The client refuses iteration counts below 4096
//!   (RFC 7677's floor: a man in the middle offering `i=1` would get an
//!   offline-crackable proof) and above [`MAX_ITERATIONS`] (a CPU sink).
//!   It caches its own salted password per (principal, secret, salt,
//!   iterations), so reconnecting to the same master skips PBKDF2 too.
//!
//! Secrets are used as bytes (no SASLprep): both ends are ours, and Mesos
//! secrets are arbitrary strings. Principals are escaped as SCRAM requires
//! (`,` → `=2C`, `=` → `=3D`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use hmac::{Hmac, Mac};
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::{Iterations, Salt, SaltedPassword, ScramStoredPassword};
use rsasl::mechanisms::scram::SCRAM_SHA256;
use rsasl::prelude::{
    Mechanism as RsaslMechanism, Registry, SASLClient, SASLConfig, SASLServer, Session,
    SessionError,
};
use rsasl::property::{AuthId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::auth::credentials::{Credential, Credentials, Secret};
use crate::auth::sasl::{
    claimed, printable, unexpected, ClientSession, Mechanism, SaslError, ServerSession, ServerStep,
    MAX_MESSAGE_LEN,
};

type HmacSha256 = Hmac<Sha256>;

/// PBKDF2 iterations the server asks for (RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// The fewest iterations the client accepts from a server.
pub const MIN_ITERATIONS: u32 = 4096;

/// The most iterations the client accepts from a server (about 30 times
/// our own; more is a way to make clients burn CPU).
pub const MAX_ITERATIONS: u32 = 131_072;

/// Salt length of the server's per-principal salts.
const SALT_LEN: usize = 16;

/// Bound on the server cache; past it the cache is emptied (entries are
/// re-derived on demand), so stale principals cannot pile up forever.
const MAX_SERVER_ENTRIES: usize = 65_536;

/// Bound on the client cache (a client talks to few masters).
const MAX_CLIENT_ENTRIES: usize = 64;

/// Only SCRAM-SHA-256 in rsasl's registry: no other mechanism can be picked.
static SCRAM_ONLY: [RsaslMechanism; 1] = [SCRAM_SHA256];

/// A random key for this process, for secret fingerprints and decoys.
static PROCESS_KEY: LazyLock<Zeroizing<[u8; 32]>> = LazyLock::new(|| {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::fill(&mut key[..]);
    key
});

/// Keyed HMAC-SHA256 of `parts` (each length-prefixed, so that no two
/// different lists collide).
fn keyed(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A fingerprint of (`principal`, `secret`) that identifies the secret
/// within this process without being a plain hash of it.
fn fingerprint(principal: &str, secret: &Secret) -> [u8; 32] {
    keyed(
        &PROCESS_KEY[..],
        &[b"fingerprint", principal.as_bytes(), secret.expose()],
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What a SCRAM server keeps for a principal (RFC 5802 §3): enough to
/// check a proof and sign the answer, not enough to log in as the user.
pub struct ServerKeys {
    salt: [u8; SALT_LEN],
    stored_key: Zeroizing<[u8; 32]>,
    server_key: Zeroizing<[u8; 32]>,
}

impl ServerKeys {
    /// Derives the keys of `secret` with `salt` (PBKDF2-HMAC-SHA-256,
    /// [`ITERATIONS`] rounds): the costly part, done once per principal.
    pub fn derive(secret: &[u8], salt: [u8; SALT_LEN]) -> Self {
        let salted = salted_password(secret, &salt, ITERATIONS);
        let client_key = hmac_sha256(&salted[..], b"Client Key");
        ServerKeys {
            salt,
            stored_key: Zeroizing::new(Sha256::digest(client_key).into()),
            server_key: Zeroizing::new(hmac_sha256(&salted[..], b"Server Key")),
        }
    }

    /// Stable, fake keys for a principal that does not exist.
    fn decoy(principal: &str) -> Self {
        let key = &PROCESS_KEY[..];
        let name = principal.as_bytes();
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&keyed(key, &[b"decoy salt", name])[..SALT_LEN]);
        ServerKeys {
            salt,
            stored_key: Zeroizing::new(keyed(key, &[b"decoy stored key", name])),
            server_key: Zeroizing::new(keyed(key, &[b"decoy server key", name])),
        }
    }
}

/// PBKDF2-HMAC-SHA-256 of `secret`: SCRAM's SaltedPassword.
pub fn salted_password(secret: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, iterations, &mut out[..]);
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

struct CachedKeys {
    fingerprint: [u8; 32],
    keys: Arc<ServerKeys>,
}

static SERVER_CACHE: LazyLock<Mutex<HashMap<String, CachedKeys>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The server keys of `principal`, derived on first use and whenever its
/// secret changes.
fn server_keys(principal: &str, secret: &Secret) -> Arc<ServerKeys> {
    let print = fingerprint(principal, secret);
    if let Some(entry) = lock(&SERVER_CACHE).get(principal) {
        if bool::from(entry.fingerprint.ct_eq(&print)) {
            return entry.keys.clone();
        }
    }
    // Derive without holding the lock: PBKDF2 takes milliseconds, and two
    // sessions racing here each get consistent keys.
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt[..]);
    let keys = Arc::new(ServerKeys::derive(secret.expose(), salt));
    let mut cache = lock(&SERVER_CACHE);
    if cache.len() >= MAX_SERVER_ENTRIES {
        cache.clear();
    }
    cache.insert(
        principal.to_string(),
        CachedKeys {
            fingerprint: print,
            keys: keys.clone(),
        },
    );
    keys
}

/// Derives (or confirms cached) server keys for every principal of
/// `credentials`, so later exchanges never run PBKDF2. Takes a few
/// milliseconds per principal; call it off the hot path after loading or
/// reloading credentials. Optional: sessions derive lazily otherwise.
pub fn prepare_server_keys(credentials: &Credentials) {
    for principal in credentials.principals() {
        if let Some(secret) = credentials.secret(principal) {
            server_keys(principal, secret);
        }
    }
}

// ---------------------------------------------------------------------------
// RFC 5802 grammar checks, run before rsasl parses anything.

/// `printable = %x21-2B / %x2D-7E` (no comma), at least one.
fn is_nonce(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|b| matches!(b, 0x21..=0x2B | 0x2D..=0x7E))
}

/// Standard base64 with padding; empty allowed only where `allow_empty`.
fn is_base64(value: &[u8], allow_empty: bool) -> bool {
    if value.is_empty() {
        return allow_empty;
    }
    if !value.chunks_exact(4).remainder().is_empty() {
        return false;
    }
    let body = value.len() - value.iter().rev().take_while(|&&b| b == b'=').count();
    value.len() - body <= 2
        && value[..body]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// `attr-val = ALPHA "=" value`, value without NUL or comma.
fn is_extension(part: &[u8]) -> bool {
    part.len() >= 2 && part[0].is_ascii_alphabetic() && part[1] == b'=' && !part.contains(&0)
}

/// Unescapes a SCRAM `saslname` (`=2C` → `,`, `=3D` → `=`).
fn unescape_saslname(name: &[u8]) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("empty user name");
    }
    let mut out = Vec::with_capacity(name.len());
    let mut rest = name;
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            0 | b',' => return Err("user name contains NUL or ','"),
            b'=' => match tail {
                [b'2', b'C', more @ ..] => {
                    out.push(b',');
                    rest = more;
                }
                [b'3', b'D', more @ ..] => {
                    out.push(b'=');
                    rest = more;
                }
                _ => return Err("user name contains a bad '=' escape"),
            },
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "user name is not UTF-8")
}

/// Checks a client-first message; returns the (unescaped) principal.
fn check_client_first(data: &[u8]) -> Result<String, String> {
    if data.contains(&0) {
        return Err("contains NUL".into());
    }
    let parts: Vec<&[u8]> = data.split(|&b| b == b',').collect();
    if parts.len() < 4 {
        return Err("expected 'n,,n=<user>,r=<nonce>'".into());
    }
    match parts[0] {
        b"n" | b"y" => {}
        flag if flag.starts_with(b"p=") => {
            return Err("channel binding is not supported".into());
        }
        _ => return Err("bad GS2 channel-binding flag".into()),
    }
    // Cyrus clients (as Mesos configures them) name the principal again as
    // authorization identity; that is accepted, any other identity is not.
    let authzid = match parts[1] {
        b"" => None,
        a => match a.strip_prefix(b"a=") {
            Some(name) => Some(unescape_saslname(name)?),
            None => return Err("bad GS2 authorization identity".into()),
        },
    };
    if parts[2].starts_with(b"m=") {
        return Err("mandatory extensions are not supported".into());
    }
    let Some(name) = parts[2].strip_prefix(b"n=") else {
        return Err("expected 'n=<user>' after the GS2 header".into());
    };
    let principal = unescape_saslname(name)?;
    if authzid.is_some_and(|authzid| authzid != principal) {
        return Err("an authorization identity other than the principal is not supported".into());
    }
    match parts[3].strip_prefix(b"r=") {
        Some(nonce) if is_nonce(nonce) => {}
        _ => return Err("expected 'r=<printable nonce>' after the user name".into()),
    }
    if !parts[4..].iter().all(|p| is_extension(p)) {
        return Err("malformed extension attribute".into());
    }
    Ok(principal)
}

/// Checks a client-final message's shape (rsasl checks its values).
fn check_client_final(data: &[u8]) -> Result<(), &'static str> {
    if data.contains(&0) {
        return Err("contains NUL");
    }
    let parts: Vec<&[u8]> = data.split(|&b| b == b',').collect();
    let (Some(first), Some(second), Some(last)) = (parts.first(), parts.get(1), parts.last())
    else {
        return Err("expected 'c=…,r=…,p=…'");
    };
    if parts.len() < 3 {
        return Err("expected 'c=…,r=…,p=…'");
    }
    match first.strip_prefix(b"c=") {
        Some(cb) if is_base64(cb, false) => {}
        _ => return Err("expected 'c=<base64 channel binding>' first"),
    }
    match second.strip_prefix(b"r=") {
        Some(nonce) if is_nonce(nonce) => {}
        _ => return Err("expected 'r=<nonce>' second"),
    }
    match last.strip_prefix(b"p=") {
        Some(proof) if is_base64(proof, false) => {}
        _ => return Err("expected 'p=<base64 proof>' last"),
    }
    let middle = &parts[2..parts.len() - 1];
    if !middle
        .iter()
        .all(|p| is_extension(p) && !p.starts_with(b"p="))
    {
        return Err("malformed extension attribute");
    }
    Ok(())
}

/// Checks a server-first message; returns its iteration count.
fn check_server_first(data: &[u8]) -> Result<u32, String> {
    if data.contains(&0) {
        return Err("contains NUL".into());
    }
    let parts: Vec<&[u8]> = data.split(|&b| b == b',').collect();
    if parts.len() < 3 {
        return Err("expected 'r=…,s=…,i=…'".into());
    }
    if parts[0].starts_with(b"m=") {
        return Err("mandatory extensions are not supported".into());
    }
    match parts[0].strip_prefix(b"r=") {
        Some(nonce) if is_nonce(nonce) => {}
        _ => return Err("expected 'r=<nonce>' first".into()),
    }
    match parts[1].strip_prefix(b"s=") {
        Some(salt) if is_base64(salt, false) => {}
        _ => return Err("expected 's=<base64 salt>' second".into()),
    }
    let iterations = match parts[2].strip_prefix(b"i=") {
        Some(digits)
            if !digits.is_empty()
                && digits.len() <= 10
                && digits.iter().all(u8::is_ascii_digit) =>
        {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or("bad iteration count")?
        }
        _ => return Err("expected 'i=<iteration count>' third".into()),
    };
    if iterations < u64::from(MIN_ITERATIONS) || iterations > u64::from(MAX_ITERATIONS) {
        return Err(format!(
            "iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
        ));
    }
    if !parts[3..].iter().all(|p| is_extension(p)) {
        return Err("malformed extension attribute".into());
    }
    u32::try_from(iterations).map_err(|_| "bad iteration count".into())
}

/// What a server-final message says.
enum ServerFinal<'a> {
    Verifier,
    Error(&'a [u8]),
}

fn check_server_final(data: &[u8]) -> Result<ServerFinal<'_>, &'static str> {
    if data.contains(&0) {
        return Err("contains NUL");
    }
    let mut parts = data.split(|&b| b == b',');
    let first = parts.next().unwrap_or_default();
    if !parts.all(is_extension) {
        return Err("malformed extension attribute");
    }
    if let Some(error) = first.strip_prefix(b"e=") {
        return Ok(ServerFinal::Error(error));
    }
    match first.strip_prefix(b"v=") {
        Some(verifier) if is_base64(verifier, false) => Ok(ServerFinal::Verifier),
        _ => Err("expected 'v=<base64 signature>' or 'e=<error>'"),
    }
}

// ---------------------------------------------------------------------------
// Server.

/// rsasl's outcome of a server exchange: the authenticated principal.
struct PrincipalValidation;

impl Validation for PrincipalValidation {
    type Value = String;
}

/// Answers rsasl's questions for one server exchange: the keys of the
/// principal named in the client-first message (or its decoy).
struct ServerCallback {
    principal: String,
    keys: Arc<ServerKeys>,
}

impl SessionCallback for ServerCallback {
    fn callback(
        &self,
        _session: &SessionData,
        _context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
            ITERATIONS,
            &self.keys.salt,
            &self.keys.stored_key[..],
            &self.keys.server_key[..],
        ))?;
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        _context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        // rsasl calls this only once the client's proof checked out.
        validate.finalize::<PrincipalValidation>(self.principal.clone());
        Ok(())
    }
}

enum ServerState {
    /// Waiting for the client-first message.
    Start,
    /// Server-first sent; waiting for the client-final message.
    ClientFinal {
        session: Box<Session<PrincipalValidation>>,
        principal: String,
        known: bool,
    },
    /// Server-final sent; waiting for the client's empty step.
    Ack { principal: String },
    /// Completed, failed or errored: nothing more is accepted.
    Done,
}

/// The server side of one SCRAM-SHA-256 exchange.
pub struct ScramServer {
    credentials: Arc<Credentials>,
    state: ServerState,
}

impl ScramServer {
    /// A session checking against `credentials`.
    pub fn new(credentials: Arc<Credentials>) -> Self {
        ScramServer {
            credentials,
            state: ServerState::Start,
        }
    }

    fn client_first(&mut self, data: &[u8]) -> ServerStep {
        if data.len() > MAX_MESSAGE_LEN {
            return ServerStep::Error(format!(
                "SCRAM client-first message of {} bytes is longer than {MAX_MESSAGE_LEN}",
                data.len()
            ));
        }
        let principal = match check_client_first(data) {
            Ok(principal) => principal,
            Err(reason) => {
                return ServerStep::Error(format!("malformed SCRAM client-first message: {reason}"))
            }
        };
        let (keys, known) = match self.credentials.secret(&principal) {
            Some(secret) => (server_keys(&principal, secret), true),
            None => (Arc::new(ServerKeys::decoy(&principal)), false),
        };
        let callback = ServerCallback {
            principal: principal.clone(),
            keys,
        };
        let session = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(&SCRAM_ONLY))
            .with_callback(callback)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                SASLServer::<PrincipalValidation>::new(config)
                    .start_suggested(SCRAM_SHA256.mechanism)
                    .map_err(|e| e.to_string())
            });
        let mut session = match session {
            Ok(session) => Box::new(session),
            Err(e) => return ServerStep::Error(format!("SCRAM-SHA-256 is unavailable: {e}")),
        };
        let mut out = Vec::new();
        match session.step(Some(data), &mut out) {
            Ok(state) if state.is_running() => {
                self.state = ServerState::ClientFinal {
                    session,
                    principal,
                    known,
                };
                ServerStep::Challenge(out)
            }
            Ok(_) => {
                ServerStep::Error("SCRAM exchange ended after the client-first message".into())
            }
            Err(e) => ServerStep::Error(format!("SCRAM client-first message refused: {e}")),
        }
    }

    fn client_final(
        &mut self,
        session: &mut Session<PrincipalValidation>,
        principal: String,
        known: bool,
        data: &[u8],
    ) -> ServerStep {
        if data.len() > MAX_MESSAGE_LEN {
            return ServerStep::Error(format!(
                "SCRAM client-final message of {} bytes is longer than {MAX_MESSAGE_LEN}",
                data.len()
            ));
        }
        if let Err(reason) = check_client_final(data) {
            return ServerStep::Error(format!("malformed SCRAM client-final message: {reason}"));
        }
        let mut out = Vec::new();
        match session.step(Some(data), &mut out) {
            Ok(_) => match session.validation() {
                Some(validated) if validated == principal => {
                    self.state = ServerState::Ack { principal };
                    ServerStep::Challenge(out)
                }
                _ => {
                    let reason = if !known {
                        "unknown principal".to_string()
                    } else if out == b"e=invalid-proof" {
                        "wrong secret".to_string()
                    } else {
                        format!("SCRAM exchange refused ({})", printable(&out))
                    };
                    ServerStep::Failed {
                        principal: claimed(&principal),
                        reason,
                    }
                }
            },
            Err(e) => ServerStep::Error(format!("SCRAM client-final message refused: {e}")),
        }
    }
}

impl ServerSession for ScramServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::ScramSha256
    }

    fn start(&mut self, data: &[u8]) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Start => self.client_first(data),
            _ => unexpected("start"),
        }
    }

    fn step(&mut self, data: &[u8]) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::ClientFinal {
                mut session,
                principal,
                known,
            } => self.client_final(&mut session, principal, known, data),
            ServerState::Ack { principal } if data.is_empty() => {
                ServerStep::Completed { principal }
            }
            ServerState::Ack { .. } => ServerStep::Error(
                "expected an empty step after the SCRAM server-final message".into(),
            ),
            ServerState::Start | ServerState::Done => unexpected("step"),
        }
    }
}

// ---------------------------------------------------------------------------
// Client.

/// Salted passwords this process computed, keyed by the secret's
/// fingerprint, the salt and the iteration count. Entries are computed
/// locally, so a hostile server cannot plant a wrong one.
type ClientCacheKey = ([u8; 32], Vec<u8>, u32);

static CLIENT_CACHE: LazyLock<Mutex<HashMap<ClientCacheKey, Zeroizing<[u8; 32]>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn client_salted_password(
    print: [u8; 32],
    secret: &Secret,
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; 32]> {
    let key = (print, salt.to_vec(), iterations);
    if let Some(salted) = lock(&CLIENT_CACHE).get(&key) {
        return salted.clone();
    }
    let salted = salted_password(secret.expose(), salt, iterations);
    let mut cache = lock(&CLIENT_CACHE);
    if cache.len() >= MAX_CLIENT_ENTRIES {
        cache.clear();
    }
    cache.insert(key, salted.clone());
    salted
}

/// Answers rsasl's questions for one client exchange.
struct ClientCallback {
    principal: String,
    secret: Secret,
    fingerprint: [u8; 32],
}

impl SessionCallback for ClientCallback {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if request.is::<SaltedPassword>() {
            // Salt and iteration count were checked by check_server_first.
            if let (Some(salt), Some(&iterations)) =
                (context.get_ref::<Salt>(), context.get_ref::<Iterations>())
            {
                let salted =
                    client_salted_password(self.fingerprint, &self.secret, salt, iterations);
                request.satisfy::<SaltedPassword>(&salted[..])?;
            }
            return Ok(());
        }
        request
            .satisfy::<AuthId>(&self.principal)?
            .satisfy::<Password>(self.secret.expose())?;
        Ok(())
    }
}

enum ClientState {
    Start,
    ServerFirst(Box<Session>),
    ServerFinal(Box<Session>),
    Done,
    Broken,
}

/// The client side of one SCRAM-SHA-256 exchange.
pub struct ScramClient {
    credential: Credential,
    state: ClientState,
}

impl ScramClient {
    /// A session proving `credential`.
    pub fn new(credential: &Credential) -> Self {
        ScramClient {
            credential: credential.clone(),
            state: ClientState::Start,
        }
    }

    fn malformed(reason: impl Into<String>) -> SaslError {
        SaslError::MalformedChallenge {
            mechanism: Mechanism::ScramSha256,
            reason: reason.into(),
        }
    }

    fn client_first(&mut self) -> Result<Vec<u8>, SaslError> {
        let principal = &self.credential.principal;
        if principal.is_empty() || principal.contains('\0') {
            return Err(SaslError::BadCredential {
                mechanism: Mechanism::ScramSha256,
                reason: "the principal is empty or contains NUL".into(),
            });
        }
        let callback = ClientCallback {
            principal: principal.clone(),
            secret: self.credential.secret.clone(),
            fingerprint: fingerprint(principal, &self.credential.secret),
        };
        let session = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(&SCRAM_ONLY))
            .with_callback(callback)
            .and_then(|config| {
                SASLClient::new(config).start_suggested_iter([SCRAM_SHA256.mechanism])
            })
            .map_err(|e| Self::malformed(format!("SCRAM-SHA-256 is unavailable: {e}")))?;
        let mut session = Box::new(session);
        let mut out = Vec::new();
        session
            .step(None, &mut out)
            .map_err(|e| Self::malformed(format!("cannot build the client-first message: {e}")))?;
        self.state = ClientState::ServerFirst(session);
        Ok(out)
    }
}

impl ClientSession for ScramClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::ScramSha256
    }

    fn start(&mut self) -> Result<Vec<u8>, SaslError> {
        match std::mem::replace(&mut self.state, ClientState::Broken) {
            ClientState::Start => self.client_first(),
            _ => Err(SaslError::OutOfOrder("start")),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let state = std::mem::replace(&mut self.state, ClientState::Broken);
        if matches!(
            state,
            ClientState::ServerFirst(_) | ClientState::ServerFinal(_)
        ) && challenge.len() > MAX_MESSAGE_LEN
        {
            return Err(Self::malformed("message longer than 4096 bytes"));
        }
        match state {
            ClientState::ServerFirst(mut session) => {
                check_server_first(challenge)
                    .map_err(|e| Self::malformed(format!("server-first message: {e}")))?;
                let mut out = Vec::new();
                session
                    .step(Some(challenge), &mut out)
                    .map_err(|e| Self::malformed(format!("server-first message: {e}")))?;
                self.state = ClientState::ServerFinal(session);
                Ok(out)
            }
            ClientState::ServerFinal(mut session) => {
                match check_server_final(challenge)
                    .map_err(|e| Self::malformed(format!("server-final message: {e}")))?
                {
                    ServerFinal::Error(error) => Err(SaslError::ServerRefused(printable(error))),
                    ServerFinal::Verifier => {
                        let mut out = Vec::new();
                        match session.step(Some(challenge), &mut out) {
                            Ok(_) => {
                                self.state = ClientState::Done;
                                Ok(Vec::new())
                            }
                            Err(SessionError::MutualAuthenticationFailed) => {
                                Err(SaslError::ServerSignature)
                            }
                            Err(e) => Err(Self::malformed(format!("server-final message: {e}"))),
                        }
                    }
                }
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
    use base64::Engine;
    use proptest::prelude::*;

    fn cred(principal: &str, secret: &str) -> Credential {
        Credential {
            principal: principal.into(),
            secret: Secret::new(secret),
        }
    }

    fn credentials() -> Arc<Credentials> {
        Arc::new(Credentials::from_pairs([
            cred("agent", "pencil"),
            cred("odd,name=x", "p,=w"),
        ]))
    }

    /// Runs a whole exchange; returns the server's last step and whether
    /// the client verified the server.
    fn exchange(credentials: Arc<Credentials>, credential: &Credential) -> (ServerStep, bool) {
        let mut server = server_session(Mechanism::ScramSha256, credentials, "master");
        let mut client = client_session(Mechanism::ScramSha256, credential);
        let mut step = server.start(&client.start().expect("client-first"));
        loop {
            let ServerStep::Challenge(challenge) = step else {
                return (step, client.is_complete());
            };
            match client.step(&challenge) {
                Ok(response) => step = server.step(&response),
                Err(e) => panic!("client refused: {e}"),
            }
        }
    }

    #[test]
    fn round_trip_completes_and_the_client_verifies_the_server() {
        let (step, verified) = exchange(credentials(), &cred("agent", "pencil"));
        assert_eq!(
            step,
            ServerStep::Completed {
                principal: "agent".into()
            }
        );
        assert!(verified);
    }

    #[test]
    fn principals_with_commas_and_equals_signs_round_trip() {
        let (step, _) = exchange(credentials(), &cred("odd,name=x", "p,=w"));
        assert_eq!(
            step,
            ServerStep::Completed {
                principal: "odd,name=x".into()
            }
        );
    }

    #[test]
    fn wrong_secret_fails() {
        let (step, verified) = exchange(credentials(), &cred("agent", "crayon"));
        assert_eq!(
            step,
            ServerStep::Failed {
                principal: Some("agent".into()),
                reason: "wrong secret".into()
            }
        );
        assert!(!verified);
    }

    #[test]
    fn unknown_principal_fails_and_sees_a_stable_salt_and_count() {
        let (step, _) = exchange(credentials(), &cred("mallory", "pencil"));
        assert_eq!(
            step,
            ServerStep::Failed {
                principal: Some("mallory".into()),
                reason: "unknown principal".into()
            }
        );
        let server_first = |name: &str| {
            let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
            let ServerStep::Challenge(first) =
                server.start(format!("n,,n={name},r=abc").as_bytes())
            else {
                panic!("expected server-first")
            };
            let text = String::from_utf8(first).expect("utf-8");
            text.split_once(",s=").expect("salt").1.to_string()
        };
        assert_eq!(server_first("mallory"), server_first("mallory"));
        assert_eq!(server_first("agent"), server_first("agent"));
        assert!(server_first("mallory").ends_with(",i=4096"));
    }

    #[test]
    fn credentials_reload_with_a_new_secret_derives_again() {
        let old = Arc::new(Credentials::from_pairs([cred("reload", "one")]));
        assert!(matches!(
            exchange(old, &cred("reload", "one")).0,
            ServerStep::Completed { .. }
        ));
        let new = Arc::new(Credentials::from_pairs([cred("reload", "two")]));
        assert!(matches!(
            exchange(new.clone(), &cred("reload", "one")).0,
            ServerStep::Failed { .. }
        ));
        assert!(matches!(
            exchange(new, &cred("reload", "two")).0,
            ServerStep::Completed { .. }
        ));
    }

    #[test]
    fn cached_keys_are_reused_for_an_unchanged_secret() {
        let creds = Credentials::from_pairs([cred("cached", "s")]);
        prepare_server_keys(&creds);
        let secret = creds.secret("cached").expect("present");
        let a = server_keys("cached", secret);
        let b = server_keys("cached", &Secret::new("s"));
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn client_detects_a_wrong_server_signature() {
        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        let mut client = client_session(Mechanism::ScramSha256, &cred("agent", "pencil"));
        let ServerStep::Challenge(first) = server.start(&client.start().expect("start")) else {
            panic!("expected server-first")
        };
        let ServerStep::Challenge(_real) = server.step(&client.step(&first).expect("final")) else {
            panic!("expected server-final")
        };
        let forged = format!(
            "v={}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        );
        assert_eq!(
            client.step(forged.as_bytes()),
            Err(SaslError::ServerSignature)
        );
        assert!(!client.is_complete());
        assert_eq!(client.step(b""), Err(SaslError::OutOfOrder("step")));
    }

    #[test]
    fn client_refuses_weak_or_huge_iteration_counts() {
        for count in ["1", "4095", "131073", "99999999999"] {
            let mut client = ScramClient::new(&cred("agent", "pencil"));
            let first = String::from_utf8(client.start().expect("start")).expect("utf-8");
            let nonce = first.split_once(",r=").expect("nonce").1;
            let server_first = format!("r={nonce}xyz,s=c2FsdA==,i={count}");
            let err = client.step(server_first.as_bytes()).expect_err(count);
            assert!(err.to_string().contains("iteration count"), "{err}");
        }
    }

    #[test]
    fn client_reports_a_server_error() {
        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        let mut client = client_session(Mechanism::ScramSha256, &cred("agent", "pencil"));
        let ServerStep::Challenge(first) = server.start(&client.start().expect("start")) else {
            panic!("expected server-first")
        };
        client.step(&first).expect("final");
        assert_eq!(
            client.step(b"e=invalid-proof"),
            Err(SaslError::ServerRefused("invalid-proof".into()))
        );
    }

    #[test]
    fn out_of_order_messages_are_errors() {
        let start_err = ServerStep::Error("Unexpected authentication 'start' received".into());
        let step_err = ServerStep::Error("Unexpected authentication 'step' received".into());

        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        assert_eq!(server.step(b"c=biws,r=x,p=AAAA"), step_err);

        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        assert!(matches!(
            server.start(b"n,,n=agent,r=abc"),
            ServerStep::Challenge(_)
        ));
        assert_eq!(server.start(b"n,,n=agent,r=abc"), start_err);
        assert_eq!(server.step(b""), step_err);

        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        let mut client = client_session(Mechanism::ScramSha256, &cred("agent", "pencil"));
        let ServerStep::Challenge(first) = server.start(&client.start().expect("start")) else {
            panic!("expected server-first")
        };
        let ServerStep::Challenge(last) = server.step(&client.step(&first).expect("final")) else {
            panic!("expected server-final")
        };
        assert_eq!(client.step(&last).expect("verified"), b"");
        assert!(matches!(server.step(b""), ServerStep::Completed { .. }));
        assert_eq!(server.step(b""), step_err);
        assert_eq!(client.step(b""), Err(SaslError::OutOfOrder("step")));
        assert_eq!(client.start(), Err(SaslError::OutOfOrder("start")));
    }

    #[test]
    fn inputs_that_panic_rsasl_are_refused_first() {
        let inputs: [&[u8]; 14] = [
            b"n,a,n=agent,r=abc",
            b"n,a=,n=agent,r=abc",
            b"n,a=other,n=agent,r=abc",
            b"n,,x",
            b"n,,n",
            b"n,,n=agent,r",
            b"n,,n=agent,r=",
            b"p=tls-unique,,n=agent,r=abc",
            b"n,,m=ext,n=agent,r=abc",
            b"n,,n==2,r=abc",
            b"n,,n=a=,r=abc",
            b"n,,n=\xff,r=abc",
            b"",
            b",,,",
        ];
        for input in inputs {
            let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
            assert!(
                matches!(server.start(input), ServerStep::Error(_)),
                "{}",
                printable(input)
            );
        }
        let finals: [&[u8]; 6] = [
            b"c",
            b"c=biws",
            b"c=biws,r=x",
            b"c=biws,r=x,p",
            b"c=biws,r=x,p=AAAA,x",
            b"x,r=x,p=AAAA",
        ];
        for input in finals {
            let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
            assert!(matches!(
                server.start(b"n,,n=agent,r=abc"),
                ServerStep::Challenge(_)
            ));
            assert!(
                matches!(server.step(input), ServerStep::Error(_)),
                "{}",
                printable(input)
            );
        }
    }

    #[test]
    fn an_authorization_identity_equal_to_the_principal_is_accepted() {
        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        let step = server.start(b"n,a=odd=2Cname=3Dx,n=odd=2Cname=3Dx,r=abc");
        assert!(matches!(step, ServerStep::Challenge(_)), "{step:?}");
    }

    #[test]
    fn a_client_final_with_a_bad_nonce_fails() {
        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        assert!(matches!(
            server.start(b"n,,n=agent,r=abc"),
            ServerStep::Challenge(_)
        ));
        let step = server.step(b"c=biws,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(matches!(step, ServerStep::Failed { .. }), "{step:?}");
    }

    #[test]
    fn server_refuses_a_non_empty_closing_step() {
        let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
        let mut client = client_session(Mechanism::ScramSha256, &cred("agent", "pencil"));
        let ServerStep::Challenge(first) = server.start(&client.start().expect("start")) else {
            panic!("expected server-first")
        };
        assert!(matches!(
            server.step(&client.step(&first).expect("final")),
            ServerStep::Challenge(_)
        ));
        assert!(matches!(server.step(b"x"), ServerStep::Error(_)));
    }

    #[test]
    fn saslname_unescaping() {
        assert_eq!(unescape_saslname(b"a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
        assert!(unescape_saslname(b"a=").is_err());
        assert!(unescape_saslname(b"a=2").is_err());
        assert!(unescape_saslname(b"a=41").is_err());
        assert!(unescape_saslname(b"").is_err());
    }

    /// A message shaped like SCRAM, to get past the first checks often.
    fn scramish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..96),
            "(n|y|p=x|),(a=x|),(n=|m=|r=|x)[a-z=,]{0,8}(,r=[!-~]{0,6})?(,[a-z]=[a-z]{0,3}){0,2}"
                .prop_map(String::into_bytes),
            "(c=|r=|p=|x)[A-Za-z0-9+/=]{0,8}(,r=[!-~]{0,6})?(,[a-z]=[A-Za-z0-9=]{0,6}){0,3}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_server(
            start in scramish(),
            steps in proptest::collection::vec(scramish(), 0..4),
        ) {
            let mut server = server_session(Mechanism::ScramSha256, credentials(), "m");
            let _ = server.start(&start);
            for step in &steps {
                let answer = server.step(step);
                prop_assert!(!matches!(answer, ServerStep::Completed { .. }), "garbage completed: {:?}", answer);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_client(
            steps in proptest::collection::vec(scramish(), 0..4),
        ) {
            let mut client = ScramClient::new(&cred("agent", "pencil"));
            let _ = client.start();
            for step in &steps {
                let _ = client.step(step);
            }
        }
    }
}
