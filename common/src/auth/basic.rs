//! HTTP Basic authentication, as Mesos's `basic` HTTP authenticator does it.
//!
//! Owns: parsing `Authorization: Basic base64(principal:secret)`, checking
//! it against the current [`Credentials`], the Mesos realm names, and the
//! 401 response with its `WWW-Authenticate: Basic realm="…"` challenge. It
//! does not decide whether a realm needs authentication, nor what the
//! principal may do, and never logs or echoes a secret.
//!
//! Mesos compatibility: the decoded `principal:secret` is split on `:` and
//! must yield exactly two parts, so a secret containing `:` never works
//! (exactly as in Mesos). We are more lenient than Mesos in two harmless
//! ways: the scheme name is matched case-insensitively (RFC 7617) and
//! base64 padding is optional.
//!
//! ## The success cache, and why it is safe
//!
//! [`BasicAuthenticator::authenticate`] remembers, for each header value
//! that passed, `SHA-256(full header bytes) -> principal`. The key covers the
//! whole header, secret included, so a hit means the client sent
//! byte-for-byte the header that was already verified; no secret is kept in
//! clear, and the digest is not reversible to the secret. An entry is bound
//! to the credentials snapshot it was checked against (compared with
//! `Arc::ptr_eq` against [`CredentialStore::current`]), so a reload of the
//! credentials file drops every entry: a removed principal or a changed
//! secret stops working on the next request. Only successes are cached, so
//! a client cannot fill the cache with guesses; the cache is bounded
//! ([`CACHE_CAPACITY`]) and cleared when full. Looking a digest up in a
//! hash map is not constant-time, but what leaks is at most a prefix of the
//! digest of some valid header, which does not help find a preimage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::credentials::{CredentialStore, Credentials, Secret};

/// Master realm of read-only endpoints.
pub const MASTER_READONLY: &str = "mesos-master-readonly";
/// Master realm of endpoints that change state (including `/api/v1`).
pub const MASTER_READWRITE: &str = "mesos-master-readwrite";
/// Master realm of the v1 scheduler API.
pub const MASTER_SCHEDULER: &str = "mesos-master-scheduler";
/// Agent realm of read-only endpoints.
pub const AGENT_READONLY: &str = "mesos-agent-readonly";
/// Agent realm of endpoints that change state.
pub const AGENT_READWRITE: &str = "mesos-agent-readwrite";
/// Agent realm of the v1 executor API.
pub const AGENT_EXECUTOR: &str = "mesos-agent-executor";
/// Agent realm of the resource provider API.
pub const AGENT_RESOURCE_PROVIDER: &str = "mesos-agent-resource-provider";

/// Longest `Authorization` header value we decode; longer ones are refused
/// as [`BasicError::TooLong`] before any decoding.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Most header digests the success cache holds before it is cleared.
pub const CACHE_CAPACITY: usize = 4096;

/// The challenge Mesos sends with a 401: exactly `Basic realm="<realm>"`.
///
/// A `"` or `\` in the realm is escaped and control characters are dropped,
/// so the result is always a valid header value; Mesos's realm names are
/// unchanged by this.
pub fn challenge(realm: &str) -> String {
    format!("Basic realm=\"{}\"", quoted_string_content(realm))
}

/// The value of an `Authorization` header presenting `principal` and
/// `secret` (for our own clients and tests). Never log the result.
pub fn header_value(principal: &str, secret: &Secret) -> String {
    let mut plain = Vec::with_capacity(principal.len() + 1 + secret.expose().len());
    plain.extend_from_slice(principal.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(secret.expose());
    let plain = zeroize::Zeroizing::new(plain);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(plain.as_slice())
    )
}

/// Escapes `text` for use inside an HTTP quoted-string (RFC 9110 §5.6.4).
pub(crate) fn quoted_string_content(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Why an `Authorization` header is not well-formed Basic credentials.
///
/// The texts are shown to the client; none of them quotes the header.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BasicError {
    /// No `Authorization` header at all.
    #[error("Missing 'Authorization' header")]
    Missing,
    /// The header does not start with the `Basic` scheme and one token.
    #[error("Malformed 'Authorization' header: expected 'Basic <base64(principal:secret)>'")]
    NotBasic,
    /// The header is longer than [`MAX_HEADER_LEN`] bytes.
    #[error("'Authorization' header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// The credentials token is not base64.
    #[error("Malformed 'Authorization' header: the credentials are not valid base64")]
    BadBase64,
    /// The decoded credentials are not UTF-8 text.
    #[error("Malformed 'Authorization' header: the decoded credentials are not UTF-8")]
    NotUtf8,
    /// Splitting the decoded credentials on `:` did not give exactly two
    /// parts (Mesos's rule: a secret may not contain `:`).
    #[error("Malformed 'Authorization' header: the decoded credentials must be 'principal:secret' with exactly one ':'")]
    WrongParts,
    /// The principal before the `:` is empty.
    #[error("Malformed 'Authorization' header: the principal is empty")]
    EmptyPrincipal,
}

/// Parses an `Authorization` header value into the principal and the
/// presented secret. Never panics, whatever the bytes.
pub fn parse(header: &[u8]) -> Result<(String, Secret), BasicError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(BasicError::TooLong);
    }
    let token = basic_token(header)?;
    let decoded = zeroize::Zeroizing::new(
        BASE64_LENIENT
            .decode(token)
            .map_err(|_| BasicError::BadBase64)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| BasicError::NotUtf8)?;
    let mut parts = text.split(':');
    let (Some(principal), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BasicError::WrongParts);
    };
    if principal.is_empty() {
        return Err(BasicError::EmptyPrincipal);
    }
    Ok((principal.to_string(), Secret::new(secret.as_bytes())))
}

/// Standard alphabet, padding optional (Mesos's decoder does not insist).
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The token after `Basic `: the scheme (any case), one or more spaces,
/// then a single token with nothing after it but optional whitespace.
fn basic_token(header: &[u8]) -> Result<&[u8], BasicError> {
    let header = header.trim_ascii();
    let Some(space) = header.iter().position(|&b| b == b' ') else {
        return Err(BasicError::NotBasic);
    };
    let (scheme, rest) = header.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"Basic") {
        return Err(BasicError::NotBasic);
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() || token.iter().any(|b| b.is_ascii_whitespace()) {
        return Err(BasicError::NotBasic);
    }
    Ok(token)
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No header, or one that is not Basic credentials
    /// (a missing header is `Malformed(BasicError::Missing)`).
    Malformed(BasicError),
    /// Well-formed credentials that do not match: unknown principal or
    /// wrong secret (deliberately not told apart).
    Refused {
        /// The principal the client claimed.
        principal: String,
    },
}

impl AuthFailure {
    /// The principal the client claimed, when the header got that far.
    pub fn principal(&self) -> Option<&str> {
        match self {
            AuthFailure::Malformed(_) => None,
            AuthFailure::Refused { principal } => Some(principal),
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::Malformed(e) => e.fmt(f),
            AuthFailure::Refused { principal } => {
                write!(f, "Invalid credentials for principal '{principal}'")
            }
        }
    }
}

impl std::error::Error for AuthFailure {}

/// The 401 Mesos sends: status 401, `WWW-Authenticate: Basic realm="…"`,
/// and a body `401 Unauthorized.` followed by a sentence saying why.
/// The body never contains the secret.
pub fn unauthorized(realm: &str, failure: &AuthFailure) -> http::Response<String> {
    let mut response = http::Response::new(format!("401 Unauthorized. {failure}."));
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    let value = http::HeaderValue::from_str(&challenge(realm))
        .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
    response
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, value);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Checks Basic credentials against a [`CredentialStore`], remembering
/// successes (see the module documentation). Cheap to clone; clones share
/// the cache.
#[derive(Clone, Debug)]
pub struct BasicAuthenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: CredentialStore,
    cache: Mutex<Cache>,
}

/// Successes, keyed by the digest of the whole header value.
#[derive(Debug, Default)]
struct Cache {
    /// The snapshot the entries were verified against. `Weak` so the cache
    /// does not keep replaced secrets alive; the allocation it pins cannot
    /// be reused by a later snapshot, so pointer equality is exact.
    snapshot: Weak<Credentials>,
    entries: HashMap<[u8; 32], String>,
}

impl Cache {
    /// Drops every entry when `current` is not the snapshot they belong to.
    fn bind(&mut self, current: &Arc<Credentials>) {
        if !std::ptr::eq(self.snapshot.as_ptr(), Arc::as_ptr(current)) {
            self.entries.clear();
            self.snapshot = Arc::downgrade(current);
        }
    }
}

impl BasicAuthenticator {
    /// An authenticator over `store`; it sees every later
    /// [`CredentialStore::replace`].
    pub fn new(store: CredentialStore) -> Self {
        BasicAuthenticator {
            inner: Arc::new(Inner {
                store,
                cache: Mutex::new(Cache::default()),
            }),
        }
    }

    /// The principal the header proves, using and filling the success
    /// cache.
    pub fn authenticate(&self, header: Option<&http::HeaderValue>) -> Result<String, AuthFailure> {
        let bytes = header_bytes(header)?;
        let current = self.inner.store.current();
        let key: [u8; 32] = Sha256::digest(bytes).into();
        {
            let mut cache = self.lock_cache();
            cache.bind(&current);
            if let Some(principal) = cache.entries.get(&key) {
                return Ok(principal.clone());
            }
        }
        let principal = check(&current, bytes)?;
        let mut cache = self.lock_cache();
        // The store may have been replaced while we checked: only cache
        // against the snapshot we actually used.
        cache.bind(&current);
        if cache.entries.len() >= CACHE_CAPACITY {
            cache.entries.clear();
        }
        cache.entries.insert(key, principal.clone());
        Ok(principal)
    }

    /// The principal the header proves, checked from scratch (no cache).
    pub fn authenticate_uncached(
        &self,
        header: Option<&http::HeaderValue>,
    ) -> Result<String, AuthFailure> {
        let bytes = header_bytes(header)?;
        check(&self.inner.store.current(), bytes)
    }

    /// Number of cached successes (for tests and metrics).
    pub fn cached_entries(&self) -> usize {
        self.lock_cache().entries.len()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (single insert/clear calls), so a poisoned lock is still usable.
        match self.inner.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn header_bytes(header: Option<&http::HeaderValue>) -> Result<&[u8], AuthFailure> {
    let header = header.ok_or(AuthFailure::Malformed(BasicError::Missing))?;
    let bytes = header.as_bytes();
    if bytes.len() > MAX_HEADER_LEN {
        return Err(AuthFailure::Malformed(BasicError::TooLong));
    }
    Ok(bytes)
}

fn check(credentials: &Credentials, header: &[u8]) -> Result<String, AuthFailure> {
    let (principal, presented) = parse(header).map_err(AuthFailure::Malformed)?;
    if credentials.verify(&principal, presented.expose()) {
        Ok(principal)
    } else {
        Err(AuthFailure::Refused { principal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::credentials::Credential;
    use proptest::prelude::*;

    fn b64(text: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn store(pairs: &[(&str, &str)]) -> CredentialStore {
        CredentialStore::new(Credentials::from_pairs(pairs.iter().map(|(p, s)| {
            Credential {
                principal: p.to_string(),
                secret: Secret::new(s.as_bytes()),
            }
        })))
    }

    fn header(text: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(text).expect("valid header value")
    }

    #[test]
    fn good_header_parses_into_principal_and_secret() {
        let (principal, secret) =
            parse(format!("Basic {}", b64(b"alice:s3cret")).as_bytes()).expect("parses");
        assert_eq!(principal, "alice");
        assert!(secret.matches(b"s3cret"));
        // Scheme in any case, extra spaces, no padding.
        let unpadded = b64(b"bob:pw").trim_end_matches('=').to_string();
        let (principal, secret) =
            parse(format!("  basic   {unpadded} ").as_bytes()).expect("lenient form parses");
        assert_eq!(principal, "bob");
        assert!(secret.matches(b"pw"));
    }

    #[test]
    fn empty_secret_is_allowed_as_in_mesos() {
        let (principal, secret) = parse(format!("Basic {}", b64(b"a:")).as_bytes()).expect("ok");
        assert_eq!(principal, "a");
        assert!(secret.matches(b""));
    }

    #[test]
    fn malformed_headers_are_told_apart() {
        assert_eq!(parse(b"Bearer x").map(|_| ()), Err(BasicError::NotBasic));
        assert_eq!(parse(b"Basic").map(|_| ()), Err(BasicError::NotBasic));
        assert_eq!(parse(b"").map(|_| ()), Err(BasicError::NotBasic));
        assert_eq!(parse(b"Basic a b").map(|_| ()), Err(BasicError::NotBasic));
        assert_eq!(parse(b"Basic !!!!").map(|_| ()), Err(BasicError::BadBase64));
        let three = format!("Basic {}", b64(b"a:b:c"));
        assert_eq!(
            parse(three.as_bytes()).map(|_| ()),
            Err(BasicError::WrongParts)
        );
        let none = format!("Basic {}", b64(b"nocolon"));
        assert_eq!(
            parse(none.as_bytes()).map(|_| ()),
            Err(BasicError::WrongParts)
        );
        let empty = format!("Basic {}", b64(b":secret"));
        assert_eq!(
            parse(empty.as_bytes()).map(|_| ()),
            Err(BasicError::EmptyPrincipal)
        );
        let latin1 = format!("Basic {}", b64(b"caf\xe9:pw"));
        assert_eq!(
            parse(latin1.as_bytes()).map(|_| ()),
            Err(BasicError::NotUtf8)
        );
        let huge = format!("Basic {}", "A".repeat(MAX_HEADER_LEN));
        assert_eq!(parse(huge.as_bytes()).map(|_| ()), Err(BasicError::TooLong));
    }

    #[test]
    fn authenticator_accepts_the_right_secret_only() {
        let auth = BasicAuthenticator::new(store(&[("alice", "s3cret")]));
        let good = header(&format!("Basic {}", b64(b"alice:s3cret")));
        assert_eq!(auth.authenticate_uncached(Some(&good)), Ok("alice".into()));
        assert_eq!(auth.authenticate(Some(&good)), Ok("alice".into()));

        let wrong = header(&format!("Basic {}", b64(b"alice:guess")));
        assert_eq!(
            auth.authenticate(Some(&wrong)),
            Err(AuthFailure::Refused {
                principal: "alice".into()
            })
        );
        let unknown = header(&format!("Basic {}", b64(b"mallory:s3cret")));
        assert_eq!(
            auth.authenticate(Some(&unknown)),
            Err(AuthFailure::Refused {
                principal: "mallory".into()
            })
        );
        assert_eq!(
            auth.authenticate(None),
            Err(AuthFailure::Malformed(BasicError::Missing))
        );
    }

    #[test]
    fn header_value_round_trips_through_the_authenticator() {
        let auth = BasicAuthenticator::new(store(&[("alice", "s3cret")]));
        let value = header(&header_value("alice", &Secret::new("s3cret")));
        assert_eq!(auth.authenticate(Some(&value)), Ok("alice".into()));
    }

    #[test]
    fn only_successes_are_cached_and_a_reload_invalidates_them() {
        let store = store(&[("alice", "one")]);
        let auth = BasicAuthenticator::new(store.clone());
        let old = header(&format!("Basic {}", b64(b"alice:one")));
        let bad = header(&format!("Basic {}", b64(b"alice:nope")));

        assert!(auth.authenticate(Some(&bad)).is_err());
        assert_eq!(auth.cached_entries(), 0, "failures are not cached");

        assert_eq!(auth.authenticate(Some(&old)), Ok("alice".into()));
        assert_eq!(auth.cached_entries(), 1);
        assert_eq!(
            auth.authenticate(Some(&old)),
            Ok("alice".into()),
            "cache hit"
        );
        assert_eq!(auth.cached_entries(), 1);

        store.replace(Credentials::from_pairs([Credential {
            principal: "alice".into(),
            secret: Secret::new("two"),
        }]));
        assert_eq!(
            auth.authenticate(Some(&old)),
            Err(AuthFailure::Refused {
                principal: "alice".into()
            }),
            "the old secret stops working after a reload"
        );
        assert_eq!(auth.cached_entries(), 0);
        let new = header(&format!("Basic {}", b64(b"alice:two")));
        assert_eq!(auth.authenticate(Some(&new)), Ok("alice".into()));
    }

    #[test]
    fn cache_stays_bounded() {
        let pairs: Vec<(String, String)> = (0..CACHE_CAPACITY + 10)
            .map(|i| (format!("p{i}"), format!("s{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        let auth = BasicAuthenticator::new(store(&refs));
        for (p, s) in &refs {
            let h = header(&format!("Basic {}", b64(format!("{p}:{s}").as_bytes())));
            assert_eq!(auth.authenticate(Some(&h)), Ok(p.to_string()));
            assert!(auth.cached_entries() <= CACHE_CAPACITY);
        }
    }

    #[test]
    fn unauthorized_is_a_401_with_the_mesos_challenge_and_no_secret() {
        let auth = BasicAuthenticator::new(store(&[("alice", "s3cret")]));
        let wrong = header(&format!("Basic {}", b64(b"alice:hunter2")));
        let failure = auth.authenticate(Some(&wrong)).expect_err("refused");
        let response = unauthorized(MASTER_READWRITE, &failure);
        assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[http::header::WWW_AUTHENTICATE],
            "Basic realm=\"mesos-master-readwrite\""
        );
        let body = response.body();
        assert!(body.starts_with("401 Unauthorized."), "{body}");
        assert!(
            body.contains("Invalid credentials for principal 'alice'"),
            "{body}"
        );
        assert!(!body.contains("hunter2"), "{body}");
        assert!(!body.contains(&b64(b"alice:hunter2")), "{body}");

        let missing = unauthorized(AGENT_READONLY, &AuthFailure::Malformed(BasicError::Missing));
        assert_eq!(
            missing.body(),
            "401 Unauthorized. Missing 'Authorization' header."
        );
        for e in [
            BasicError::WrongParts,
            BasicError::BadBase64,
            BasicError::NotUtf8,
        ] {
            let text = unauthorized(AGENT_READONLY, &AuthFailure::Malformed(e)).into_body();
            assert!(!text.contains("hunter2"));
        }
    }

    #[test]
    fn challenge_is_exactly_mesos_s_and_escapes_quotes() {
        assert_eq!(
            challenge("mesos-agent-executor"),
            "Basic realm=\"mesos-agent-executor\""
        );
        assert_eq!(challenge("a\"b\\c\nd"), "Basic realm=\"a\\\"b\\\\cd\"");
        let response = unauthorized("bad\r\nrealm", &AuthFailure::Malformed(BasicError::Missing));
        assert_eq!(
            response.headers()[http::header::WWW_AUTHENTICATE],
            "Basic realm=\"badrealm\""
        );
    }

    #[test]
    fn authenticator_is_clone_send_and_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<BasicAuthenticator>();
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_basic_prefixed_input(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut header = b"Basic ".to_vec();
            header.extend_from_slice(b64(&bytes).as_bytes());
            let _ = parse(&header);
        }
    }
}
