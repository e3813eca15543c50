//! Executor tokens: HS256 JSON Web Tokens, as Mesos's `jwt` HTTP
//! authenticator mints and checks them.
//!
//! Owns: minting a token for an executor (claims `fid`, `eid`, `cid`:
//! framework, executor and container id, Mesos's names), verifying one
//! (`alg` must be `HS256`, `none` and every other algorithm refused, the
//! signature compared in constant time, `exp` enforced when present), the
//! `Authorization: Bearer` parsing and the `WWW-Authenticate: Bearer`
//! challenge. It does not decide which executor may call what.
//!
//! Why hand-written rather than the `jsonwebtoken` crate: we need one
//! algorithm, HS256, and nothing else must ever be accepted. `jsonwebtoken`
//! 10 makes you pick a crypto backend: `aws_lc_rs` (C code built with cc
//! and cmake) or `rust_crypto`, which is pure Rust but pulls in `rsa`,
//! `p256`, `p384`, `ed25519-dalek` and `rand` 0.8 for algorithms we must
//! then make sure are unreachable. HS256 is HMAC-SHA-256 over
//! `header.payload` with base64url without padding: a few dozen lines on
//! top of the RustCrypto `hmac` and `sha2` crates (pure Rust, also used
//! for SCRAM), checked against the RFC 7515 appendix A.1 test vector
//! below.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::basic::quoted_string_content;
use super::credentials::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Longest `Authorization: Bearer` header value we look at.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The claims of an executor's token, with Mesos's claim names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorClaims {
    /// Framework id (claim `fid`).
    pub fid: String,
    /// Executor id (claim `eid`).
    pub eid: String,
    /// Container id (claim `cid`).
    pub cid: String,
}

/// Why a bearer token was refused. The texts may be shown to the client
/// (in `error_description`); none of them quotes the token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// No `Authorization` header.
    #[error("missing 'Authorization' header")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("malformed 'Authorization' header: expected 'Bearer <token>'")]
    NotBearer,
    /// The token is not a well-formed JWT (the text says which part).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not `HS256` (`none` included). Holds a sanitized, shortened
    /// copy of the algorithm name.
    #[error("unsupported token algorithm '{0}': only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The signature does not match.
    #[error("token signature does not match")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// A required claim is absent or not a string.
    #[error("token lacks the string claim '{0}'")]
    MissingClaim(&'static str),
}

/// A token for `claims`, without expiry (as Mesos mints executor tokens).
pub fn mint(key: &Secret, claims: &ExecutorClaims) -> String {
    sign(key, &claims_json(claims, None))
}

/// A token for `claims` that stops being valid at `expires`.
pub fn mint_with_expiry(key: &Secret, claims: &ExecutorClaims, expires: SystemTime) -> String {
    let exp = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sign(key, &claims_json(claims, Some(exp)))
}

fn claims_json(claims: &ExecutorClaims, exp: Option<u64>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("cid".into(), claims.cid.clone().into());
    map.insert("eid".into(), claims.eid.clone().into());
    map.insert("fid".into(), claims.fid.clone().into());
    if let Some(exp) = exp {
        map.insert("exp".into(), exp.into());
    }
    serde_json::Value::Object(map)
}

const HEADER_HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn sign(key: &Secret, payload: &serde_json::Value) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(HEADER_HS256);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string()));
    let signature = mac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

fn mac(key: &Secret, signing_input: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed first), so
    // `new_from_slice` never fails for HMAC-SHA-256, whatever the key file.
    #[allow(clippy::expect_used)]
    let mut mac =
        HmacSha256::new_from_slice(key.expose()).expect("HMAC accepts keys of any length");
    mac.update(signing_input);
    mac
}

/// Verifies `token` with `key` at the current time; see [`verify_at`].
pub fn verify(key: &Secret, token: &str) -> Result<ExecutorClaims, JwtError> {
    verify_at(key, token, SystemTime::now())
}

/// Verifies `token` with `key` as of `now`: `alg` must be `HS256`, the
/// signature must match (compared in constant time), `exp` (seconds since
/// the epoch) when present must be after `now`, and `fid`, `eid`, `cid`
/// must be string claims. The payload is parsed only after the signature
/// has been checked.
pub fn verify_at(key: &Secret, token: &str, now: SystemTime) -> Result<ExecutorClaims, JwtError> {
    if token.len() > MAX_HEADER_LEN {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three '.'-separated parts"));
    };

    let header = decode_object(header_b64, "header")?;
    match header.get("alg") {
        Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
        Some(serde_json::Value::String(alg)) => {
            return Err(JwtError::UnsupportedAlgorithm(sanitize_alg(alg)))
        }
        Some(_) => return Err(JwtError::Malformed("header 'alg' is not a string")),
        None => return Err(JwtError::Malformed("header has no 'alg'")),
    }
    match header.get("typ") {
        None => {}
        Some(serde_json::Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(JwtError::Malformed("header 'typ' is not 'JWT'")),
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        return Err(JwtError::Malformed("header has 'crit' extensions"));
    }

    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    mac(key, signing_input.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;

    let payload = decode_object(payload_b64, "payload")?;
    if let Some(exp) = payload.get("exp") {
        let exp = exp
            .as_f64()
            .ok_or(JwtError::Malformed("claim 'exp' is not a number"))?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if exp <= now {
            return Err(JwtError::Expired);
        }
    }
    let claim = |name: &'static str| match payload.get(name) {
        Some(serde_json::Value::String(value)) => Ok(value.clone()),
        _ => Err(JwtError::MissingClaim(name)),
    };
    Ok(ExecutorClaims {
        fid: claim("fid")?,
        eid: claim("eid")?,
        cid: claim("cid")?,
    })
}

fn decode_object(
    part: &str,
    which: &'static str,
) -> Result<serde_json::Map<String, serde_json::Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        JwtError::Malformed(if which == "header" {
            "header is not base64url"
        } else {
            "payload is not base64url"
        })
    })?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(if which == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
    }
}

/// At most 32 characters of `[A-Za-z0-9_-]`, so the name is safe to echo.
fn sanitize_alg(alg: &str) -> String {
    alg.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect()
}

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// matched case-insensitively). Never panics, whatever the bytes.
pub fn parse_bearer(header: &[u8]) -> Result<&str, JwtError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(JwtError::Malformed("too long"));
    }
    let header = std::str::from_utf8(header.trim_ascii()).map_err(|_| JwtError::NotBearer)?;
    let Some((scheme, token)) = header.split_once(' ') else {
        return Err(JwtError::NotBearer);
    };
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(JwtError::NotBearer);
    }
    let token = token.trim_start();
    if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(JwtError::NotBearer);
    }
    Ok(token)
}

/// The `WWW-Authenticate` challenge of a 401: `Bearer realm="<realm>"`, or
/// for a presented but refused token (RFC 6750 §3)
/// `Bearer realm="<realm>", error="invalid_token", error_description="..."`.
/// [`JwtError::Missing`] counts as no error.
pub fn bearer_challenge(realm: &str, error: Option<&JwtError>) -> String {
    let realm = quoted_string_content(realm);
    match error {
        None | Some(JwtError::Missing) => format!("Bearer realm=\"{realm}\""),
        Some(error) => format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
            quoted_string_content(&error.to_string())
        ),
    }
}

/// A fresh random 32-byte HMAC key, for when `--jwt_secret_key` is not
/// given (tokens then stop working when the agent restarts).
pub fn generate_key() -> Secret {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn claims() -> ExecutorClaims {
        ExecutorClaims {
            fid: "f-1".into(),
            eid: "e-1".into(),
            cid: "c-1".into(),
        }
    }

    fn key() -> Secret {
        Secret::new(*b"0123456789abcdef0123456789abcdef")
    }

    /// A token signed with `key` whose header and payload are the given
    /// JSON texts, for crafting bad tokens.
    fn raw_token(key: &Secret, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = mac(key, input.as_bytes()).finalize().into_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn minted_token_verifies_to_its_claims() {
        let token = mint(&key(), &claims());
        assert_eq!(verify(&key(), &token), Ok(claims()));
        assert_eq!(
            verify(&Secret::new("other key"), &token),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn rfc7515_a1_hs256_vector_verifies() {
        // RFC 7515 appendix A.1: the JWK "k" value, and the token exactly
        // as printed (header with CRLF and spaces, so we must sign the
        // bytes as sent, not a re-serialization).
        let k = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .expect("key decodes");
        let key = Secret::new(k);
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
                     .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
                     .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let expected = URL_SAFE_NO_PAD.decode(sig).expect("sig decodes");
        assert_eq!(
            mac(&key, input.as_bytes())
                .finalize()
                .into_bytes()
                .as_slice(),
            expected.as_slice()
        );
        // The signature checks out; the vector's exp (2011) is past and it
        // has no executor claims.
        let before_exp = UNIX_EPOCH + Duration::from_secs(1_300_819_000);
        assert_eq!(
            verify_at(&key, token, before_exp),
            Err(JwtError::MissingClaim("fid"))
        );
        assert_eq!(verify(&key, token), Err(JwtError::Expired));
        let mut tampered = token.to_string();
        tampered.pop();
        tampered.push('Y');
        assert_eq!(
            verify_at(&key, &tampered, before_exp),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_or_signature_is_refused() {
        let token = mint(&key(), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(r#"{"cid":"c-2","eid":"e-1","fid":"f-1"}"#);
        let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert_eq!(verify(&key(), &forged), Err(JwtError::BadSignature));

        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(verify(&key(), &forged), Err(JwtError::BadSignature));

        let truncated = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(&sig[..31])
        );
        assert_eq!(verify(&key(), &truncated), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let payload = r#"{"cid":"c-1","eid":"e-1","fid":"f-1"}"#;
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        assert_eq!(
            verify(&key(), &unsigned),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
        for alg in ["HS512", "RS256", "hs256", "ES256"] {
            let token = raw_token(&key(), &format!(r#"{{"alg":"{alg}"}}"#), payload);
            assert_eq!(
                verify(&key(), &token),
                Err(JwtError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
        let token = raw_token(&key(), r#"{"typ":"JWT"}"#, payload);
        assert!(matches!(
            verify(&key(), &token),
            Err(JwtError::Malformed(_))
        ));
        let token = raw_token(&key(), r#"{"alg":"HS256","crit":["x"]}"#, payload);
        assert!(matches!(
            verify(&key(), &token),
            Err(JwtError::Malformed(_))
        ));
        let token = raw_token(&key(), "{\"alg\":\"\\\"\\r\\nX\"}", payload);
        match verify(&key(), &token) {
            Err(JwtError::UnsupportedAlgorithm(alg)) => assert_eq!(alg, "X"),
            other => panic!("expected UnsupportedAlgorithm, got {other:?}"),
        }
    }

    #[test]
    fn expired_tokens_are_refused_and_exp_is_optional() {
        let now = SystemTime::now();
        let live = mint_with_expiry(&key(), &claims(), now + Duration::from_secs(60));
        assert_eq!(verify_at(&key(), &live, now), Ok(claims()));
        assert_eq!(
            verify_at(&key(), &live, now + Duration::from_secs(61)),
            Err(JwtError::Expired)
        );
        let token = raw_token(
            &key(),
            HEADER_HS256,
            r#"{"cid":"c","eid":"e","fid":"f","exp":"soon"}"#,
        );
        assert!(matches!(
            verify(&key(), &token),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn missing_or_non_string_claims_are_named() {
        let token = raw_token(&key(), HEADER_HS256, r#"{"cid":"c","eid":"e"}"#);
        assert_eq!(verify(&key(), &token), Err(JwtError::MissingClaim("fid")));
        let token = raw_token(&key(), HEADER_HS256, r#"{"cid":"c","eid":5,"fid":"f"}"#);
        assert_eq!(verify(&key(), &token), Err(JwtError::MissingClaim("eid")));
        let token = raw_token(&key(), HEADER_HS256, "[1,2]");
        assert!(matches!(
            verify(&key(), &token),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in ["", "a", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"] {
            assert!(verify(&key(), token).is_err(), "{token}");
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(parse_bearer(b"Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(parse_bearer(b"bearer   abc "), Ok("abc"));
        assert_eq!(parse_bearer(b"Basic abc"), Err(JwtError::NotBearer));
        assert_eq!(parse_bearer(b"Bearer"), Err(JwtError::NotBearer));
        assert_eq!(parse_bearer(b"Bearer a b"), Err(JwtError::NotBearer));
        assert_eq!(parse_bearer(b"Bearer \xff"), Err(JwtError::NotBearer));
        let huge = format!("Bearer {}", "a".repeat(MAX_HEADER_LEN));
        assert!(matches!(
            parse_bearer(huge.as_bytes()),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn challenges_match_mesos() {
        assert_eq!(
            bearer_challenge("mesos-agent-executor", None),
            "Bearer realm=\"mesos-agent-executor\""
        );
        assert_eq!(
            bearer_challenge("mesos-agent-executor", Some(&JwtError::Missing)),
            "Bearer realm=\"mesos-agent-executor\""
        );
        assert_eq!(
            bearer_challenge("mesos-agent-executor", Some(&JwtError::Expired)),
            "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\", \
             error_description=\"token has expired\""
        );
        let value = bearer_challenge("r", Some(&JwtError::UnsupportedAlgorithm("none".into())));
        assert!(http::HeaderValue::from_str(&value).is_ok(), "{value}");
    }

    #[test]
    fn generated_keys_are_32_random_bytes() {
        let a = generate_key();
        let b = generate_key();
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a.expose(), b.expose());
        let token = mint(&a, &claims());
        assert_eq!(verify(&a, &token), Ok(claims()));
        assert_eq!(verify(&b, &token), Err(JwtError::BadSignature));
    }
}
