//! HTTP authentication at the agent's edges, before a request reaches a
//! handler: HTTP Basic on the `mesos-agent-readonly` and
//! `mesos-agent-readwrite` realms (with the failure limiter and the audit
//! log), and executor tokens (HS256 JWTs the agent mints at launch) on
//! `mesos-agent-executor`. It decides who a caller is; whether an
//! executor's token matches the container it calls about is checked by the
//! agent task, which owns that state.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use mesos_common::auth::audit::{AuditEvent, AuditLog, Outcome};
use mesos_common::auth::basic::{self, AuthFailure, BasicAuthenticator};
use mesos_common::auth::credentials::Secret;
use mesos_common::auth::jwt::{self, ExecutorClaims, JwtError};
use mesos_common::auth::limiter::{FailureLimiter, LimiterConfig};
use mesos_common::net::PeerAddr;

use crate::flags::Config;

/// The environment variable carrying an executor's token (Mesos's name).
pub const EXECUTOR_TOKEN_ENV: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// File under `<work_dir>/meta` holding the generated executor token key.
const GENERATED_KEY_FILE: &str = "jwt_secret_key";

/// Why a request is refused; each maps to one status here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// 401 with a `Basic` challenge.
    Basic {
        /// The realm.
        realm: &'static str,
        /// Why.
        failure: AuthFailure,
    },
    /// 401 with a `Bearer` challenge: no token, or a bad one.
    Token(JwtError),
    /// 403: a valid token, for another executor or container.
    Forbidden(String),
    /// 429 while the principal or address backs off after failures.
    TooMany(Duration),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::Basic { realm, failure } => {
                basic::unauthorized(realm, &failure).into_response()
            }
            AuthError::Token(error) => {
                let challenge = jwt::bearer_challenge(basic::AGENT_EXECUTOR, Some(&error));
                let value = HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
                (
                    StatusCode::UNAUTHORIZED,
                    [(http::header::WWW_AUTHENTICATE, value)],
                    format!("401 Unauthorized. {error}."),
                )
                    .into_response()
            }
            AuthError::Forbidden(why) => {
                (StatusCode::FORBIDDEN, format!("403 Forbidden. {why}.")).into_response()
            }
            AuthError::TooMany(retry_after) => {
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

/// The agent's HTTP authenticators. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpAuth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    readonly: bool,
    readwrite: bool,
    basic: Option<BasicAuthenticator>,
    executor_key: Option<Secret>,
    limiter: FailureLimiter,
    audit: AuditLog,
}

impl HttpAuth {
    /// Authenticators as the validated `config` says (`--http_credentials`,
    /// the `--authenticate_http_*` flags, the executor token key).
    pub fn new(config: &Config, audit: AuditLog) -> Self {
        let flags = &config.flags;
        HttpAuth {
            inner: Arc::new(Inner {
                readonly: flags.authenticate_http_readonly,
                readwrite: flags.authenticate_http_readwrite,
                basic: config.http_credentials.clone().map(BasicAuthenticator::new),
                executor_key: if flags.authenticate_http_executors {
                    config.jwt_key.clone()
                } else {
                    None
                },
                limiter: FailureLimiter::new(LimiterConfig::default()),
                audit,
            }),
        }
    }

    /// True when executors must present a token.
    pub fn executors_authenticated(&self) -> bool {
        self.inner.executor_key.is_some()
    }

    fn audit(&self, event: AuditEvent<'_>) {
        self.inner.audit.record(&event);
    }

    /// Authenticates a request for a Basic realm: `Ok(Some(principal))`
    /// for good credentials, `Ok(None)` where the realm requires none and
    /// none were sent, or why it is refused. Credentials that are sent are
    /// checked even where they are not required, as on the master.
    pub fn check_basic(
        &self,
        realm: &'static str,
        required: bool,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<String>, AuthError> {
        if !required {
            // As on the master (and in Mesos): a realm that does not require
            // authentication lets every request through with no principal.
            return Ok(None);
        }
        let header = headers.get(http::header::AUTHORIZATION);
        let Some(authenticator) = &self.inner.basic else {
            // Only reachable with the realm off (the flags refuse an
            // authenticated realm without --http_credentials).
            return Ok(None);
        };
        let Some(header) = header else {
            if !required {
                return Ok(None);
            }
            // Nothing was guessed: a plain challenge, not counted against
            // the address (a browser's first request looks like this).
            let failure = AuthFailure::Malformed(basic::BasicError::Missing);
            let reason = failure.to_string();
            self.audit(AuditEvent {
                peer,
                principal: None,
                mechanism: "basic",
                outcome: Outcome::Failure,
                reason: Some(&reason),
                realm: Some(realm),
            });
            return Err(AuthError::Basic { realm, failure });
        };
        let ip = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let claimed = basic::parse(header.as_bytes()).ok().map(|(p, _)| p);
        let now = Instant::now();
        if let Err(retry_after) = self.inner.limiter.check(claimed.as_deref(), ip, now) {
            return Err(AuthError::TooMany(retry_after));
        }
        match authenticator.authenticate(Some(header)) {
            Ok(principal) => {
                self.inner.limiter.record_success(&principal, ip);
                self.audit(AuditEvent {
                    peer,
                    principal: Some(&principal),
                    mechanism: "basic",
                    outcome: Outcome::Success,
                    reason: None,
                    realm: Some(realm),
                });
                Ok(Some(principal))
            }
            Err(failure) => {
                let reason = failure.to_string();
                self.inner
                    .limiter
                    .record_failure(failure.principal(), ip, now);
                self.audit(AuditEvent {
                    peer,
                    principal: failure.principal(),
                    mechanism: "basic",
                    outcome: Outcome::Failure,
                    reason: Some(&reason),
                    realm: Some(realm),
                });
                Err(AuthError::Basic { realm, failure })
            }
        }
    }

    /// Verifies an executor's bearer token: `Ok(None)` when executor
    /// authentication is off, the token's claims when it is valid. Failures
    /// are audited but not rate limited: every executor of a host shares
    /// its address, and a 256-bit HMAC key cannot be guessed anyway.
    pub fn check_executor(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<ExecutorClaims>, AuthError> {
        let Some(key) = &self.inner.executor_key else {
            return Ok(None);
        };
        let verified = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(JwtError::Missing)
            .and_then(|h| jwt::parse_bearer(h.as_bytes()))
            .and_then(|token| jwt::verify(key, token));
        match verified {
            Ok(claims) => Ok(Some(claims)),
            Err(error) => {
                let reason = error.to_string();
                self.audit(AuditEvent {
                    peer,
                    principal: None,
                    mechanism: "jwt",
                    outcome: Outcome::Failure,
                    reason: Some(&reason),
                    realm: Some(basic::AGENT_EXECUTOR),
                });
                Err(AuthError::Token(error))
            }
        }
    }

    /// Checks that verified `claims` are for the executor a call names
    /// (the container is checked by the agent task). A successful
    /// subscription is audited; other calls would flood the log.
    pub fn authorize_executor(
        &self,
        claims: &ExecutorClaims,
        framework_id: &str,
        executor_id: &str,
        subscribe: bool,
        peer: Option<SocketAddr>,
    ) -> Result<(), AuthError> {
        let principal = format!("executor '{}' of framework '{}'", claims.eid, claims.fid);
        if claims.fid != framework_id || claims.eid != executor_id {
            let reason = format!(
                "the token is for executor '{}' of framework '{}', not executor '{executor_id}' of framework '{framework_id}'",
                claims.eid, claims.fid
            );
            self.audit(AuditEvent {
                peer,
                principal: Some(&principal),
                mechanism: "jwt",
                outcome: Outcome::Failure,
                reason: Some(&reason),
                realm: Some(basic::AGENT_EXECUTOR),
            });
            return Err(AuthError::Forbidden(format!(
                "The executor authentication token {reason}"
            )));
        }
        if subscribe {
            self.audit(AuditEvent {
                peer,
                principal: Some(&principal),
                mechanism: "jwt",
                outcome: Outcome::Success,
                reason: None,
                realm: Some(basic::AGENT_EXECUTOR),
            });
        }
        Ok(())
    }
}

pub use mesos_common::http::Principal;

/// The peer address `mesos_common::net::serve` recorded.
pub fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<PeerAddr>().map(|p| p.0)
}

async fn realm_layer(
    auth: HttpAuth,
    realm: &'static str,
    required: bool,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer(&request);
    match auth.check_basic(realm, required, request.headers(), peer) {
        Ok(principal) => {
            request.extensions_mut().insert(Principal(principal));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware for `mesos-agent-readonly` routes.
pub async fn readonly(State(auth): State<HttpAuth>, request: Request, next: Next) -> Response {
    let required = auth.inner.readonly;
    realm_layer(auth, basic::AGENT_READONLY, required, request, next).await
}

/// Middleware for `mesos-agent-readwrite` routes.
pub async fn readwrite(State(auth): State<HttpAuth>, request: Request, next: Next) -> Response {
    let required = auth.inner.readwrite;
    realm_layer(auth, basic::AGENT_READWRITE, required, request, next).await
}

/// The key executor tokens are signed with, when executor authentication
/// is on: `--jwt_secret_key` if given, else a key generated once and kept
/// in `<meta>/jwt_secret_key` (mode 0600 in the agent-only `meta`
/// directory). A key that lived only in memory would make every executor
/// that survives an agent restart unable to re-subscribe.
pub fn executor_key(config: &Config, meta: &Path) -> Result<Option<Secret>, String> {
    if !config.flags.authenticate_http_executors {
        return Ok(None);
    }
    if let Some(key) = &config.jwt_key {
        return Ok(Some(key.clone()));
    }
    let path = meta.join(GENERATED_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => {
            tracing::info!(file = %path.display(), "using the executor token key generated earlier (no --jwt_secret_key given)");
            return Ok(Some(Secret::new(bytes)));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let key = jwt::generate_key();
    mesos_common::atomic_file::write_atomic(&path, key.expose(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(file = %path.display(), "no --jwt_secret_key given: generated a random key for executor tokens");
    Ok(Some(key))
}

/// The token an executor of `container_id` gets, or `None` when executor
/// authentication is off.
pub fn executor_token(
    key: Option<&Secret>,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> Option<String> {
    key.map(|key| {
        jwt::mint(
            key,
            &ExecutorClaims {
                fid: framework_id.to_string(),
                eid: executor_id.to_string(),
                cid: container_id.to_string(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use mesos_common::auth::credentials::{Credential, CredentialStore, Credentials};

    /// A config with every realm on, one principal and a token key.
    fn config() -> Config {
        let flags = crate::flags::Flags::try_parse_from([
            "mesos-agent",
            "--master=127.0.0.1:5050",
            "--work_dir=/tmp/w",
            "--insecure",
        ])
        .expect("valid flags");
        let mut config = Config::from_flags(flags).expect("valid config");
        config.flags.authenticate_http_readonly = true;
        config.flags.authenticate_http_readwrite = true;
        config.flags.authenticate_http_executors = true;
        config.flags.insecure = false;
        config.http_credentials = Some(CredentialStore::new(Credentials::from_pairs([
            Credential {
                principal: "ops".into(),
                secret: Secret::new("ops-secret"),
            },
        ])));
        config.jwt_key = Some(Secret::new("k".repeat(32)));
        config
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        headers
    }

    fn peer_addr() -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 40000)))
    }

    #[test]
    fn basic_realms_need_good_credentials_and_back_off_after_failures() {
        let auth = HttpAuth::new(&config(), AuditLog::disabled());
        let good = basic::header_value("ops", &Secret::new("ops-secret"));
        assert_eq!(
            auth.check_basic(
                basic::AGENT_READONLY,
                true,
                &headers(Some(&good)),
                peer_addr()
            ),
            Ok(Some("ops".to_string()))
        );
        let missing = auth
            .check_basic(basic::AGENT_READONLY, true, &headers(None), peer_addr())
            .expect_err("no credentials");
        let response = missing.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[http::header::WWW_AUTHENTICATE],
            "Basic realm=\"mesos-agent-readonly\""
        );
        // Requests without credentials guess nothing and are not limited.
        for _ in 0..10 {
            let refused = auth
                .check_basic(basic::AGENT_READONLY, true, &headers(None), peer_addr())
                .expect_err("no credentials");
            assert!(matches!(refused, AuthError::Basic { .. }), "{refused:?}");
        }
        let bad = basic::header_value("ops", &Secret::new("wrong"));
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let status = match auth.check_basic(
                basic::AGENT_READWRITE,
                true,
                &headers(Some(&bad)),
                peer_addr(),
            ) {
                Err(e) => e.into_response().status(),
                Ok(_) => StatusCode::OK,
            };
            statuses.push(status);
        }
        assert!(
            statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
            "{statuses:?}"
        );
        // Not required and nothing sent: let through without a principal.
        assert_eq!(
            auth.check_basic(
                basic::AGENT_READONLY,
                false,
                &headers(None),
                Some(SocketAddr::from(([10, 0, 0, 9], 1)))
            ),
            Ok(None)
        );
    }

    #[test]
    fn executor_tokens_are_verified_and_matched_to_the_call() {
        let config = config();
        let auth = HttpAuth::new(&config, AuditLog::disabled());
        let token = executor_token(config.jwt_key.as_ref(), "F1", "E1", "C1").expect("on");
        let claims = auth
            .check_executor(&headers(Some(&format!("Bearer {token}"))), peer_addr())
            .expect("valid token")
            .expect("claims");
        assert_eq!(claims.cid, "C1");
        assert!(auth
            .authorize_executor(&claims, "F1", "E1", true, peer_addr())
            .is_ok());
        let other = auth
            .authorize_executor(&claims, "F1", "E2", false, peer_addr())
            .expect_err("another executor");
        assert_eq!(other.into_response().status(), StatusCode::FORBIDDEN);

        let missing = auth
            .check_executor(&headers(None), peer_addr())
            .expect_err("no token")
            .into_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer realm=\"mesos-agent-executor\""
        );
        let forged =
            executor_token(Some(&Secret::new("other key")), "F1", "E1", "C1").expect("minted");
        let refused = auth
            .check_executor(&headers(Some(&format!("Bearer {forged}"))), peer_addr())
            .expect_err("wrong key")
            .into_response();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let challenge = refused.headers()[http::header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    #[test]
    fn the_generated_key_is_kept_for_the_next_agent_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = tempfile::tempdir().expect("tempdir");
        let mut config = config();
        config.jwt_key = None;
        let first = executor_key(&config, meta.path())
            .expect("generated")
            .expect("on");
        let second = executor_key(&config, meta.path())
            .expect("read back")
            .expect("on");
        assert_eq!(first, second);
        let mode = std::fs::metadata(meta.path().join(GENERATED_KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        config.flags.authenticate_http_executors = false;
        assert_eq!(executor_key(&config, meta.path()).expect("off"), None);
        assert_eq!(executor_token(None, "f", "e", "c"), None);
    }
}
