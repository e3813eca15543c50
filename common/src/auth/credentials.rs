//! Credentials files, as Mesos reads them, and the secret type.
//!
//! `--credentials` (master, agent `--http_credentials`) holds many
//! principal/secret pairs, either as Mesos's JSON
//! `{"credentials":[{"principal":"p","secret":"s"}]}` or in the older text
//! form, one `principal secret` pair per line. `--credential` (agent, our
//! frameworks) holds one pair as `{"principal":"p","secret":"s"}` or one
//! text line. A value is a path, `file:///path`, or (as Mesos allows for
//! flags generally) the JSON itself.
//!
//! Secrets live in [`Secret`], which has no `Display`, whose `Debug` prints
//! `<redacted>`, which compares in constant time and is wiped when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret: never printed, compared in constant time, zeroed on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// The secret's bytes, for a MAC key or a hash input. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison with a presented secret. Both sides are
    /// hashed first, so neither the secret's length nor a common prefix
    /// shows in the timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let ours: [u8; 32] = Sha256::digest(self.0.as_slice()).into();
        let theirs: [u8; 32] = Sha256::digest(presented).into();
        bool::from(ours.ct_eq(&theirs))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose())
    }
}

impl Eq for Secret {}

/// One principal and its secret (`--credential`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Who.
    pub principal: String,
    /// The proof.
    pub secret: Secret,
}

/// Every principal the master (or the agent's HTTP side) accepts.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    by_principal: HashMap<String, Secret>,
}

impl Credentials {
    /// Builds the set from pairs; a later duplicate principal replaces an
    /// earlier one, as Mesos's map does.
    pub fn from_pairs(pairs: impl IntoIterator<Item = Credential>) -> Self {
        Credentials {
            by_principal: pairs.into_iter().map(|c| (c.principal, c.secret)).collect(),
        }
    }

    /// The secret of `principal`, if it has one.
    pub fn secret(&self, principal: &str) -> Option<&Secret> {
        self.by_principal.get(principal)
    }

    /// True when `principal` exists and `presented` is its secret. An
    /// unknown principal still pays for one comparison, so timing does not
    /// tell which principals exist.
    pub fn verify(&self, principal: &str, presented: &[u8]) -> bool {
        match self.by_principal.get(principal) {
            Some(secret) => secret.matches(presented),
            None => {
                // Same work as a known principal with a wrong secret.
                let _ = Secret::new(Vec::new()).matches(presented);
                false
            }
        }
    }

    /// The principals, sorted (for logs; never the secrets).
    pub fn principals(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_principal.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Number of principals.
    pub fn len(&self) -> usize {
        self.by_principal.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_principal.is_empty()
    }
}

/// The master's credentials, replaceable at run time (SIGHUP) while every
/// session keeps the snapshot it started with.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore(Arc<RwLock<Arc<Credentials>>>);

impl CredentialStore {
    /// A store holding `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        CredentialStore(Arc::new(RwLock::new(Arc::new(credentials))))
    }

    /// The current credentials.
    pub fn current(&self) -> Arc<Credentials> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the credentials; sessions already authenticated are kept.
    pub fn replace(&self, credentials: Credentials) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(credentials);
    }
}

/// Why a credentials value was refused. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds nothing.
    #[error("credentials file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The flag held the credentials themselves instead of a path.
    #[error("credentials must be given as a file path or file:///path, not inline JSON (the command line is visible to every user)")]
    Inline,
    /// JSON that is not Mesos's credentials shape.
    #[error("credentials file {path}: line {line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What was wrong (never the secret).
        reason: String,
    },
}

/// Where a credentials value came from, and its text.
struct Source {
    path: PathBuf,
    text: String,
}

fn read_source(value: &str) -> Result<Source, CredentialsError> {
    if value.trim_start().starts_with('{') {
        // A secret on the command line shows in `ps` and `/flags`.
        return Err(CredentialsError::Inline);
    }
    let path = PathBuf::from(value.strip_prefix("file://").unwrap_or(value));
    let text = std::fs::read_to_string(&path).map_err(|source| CredentialsError::Read {
        path: path.clone(),
        source,
    })?;
    warn_if_world_accessible(&path);
    Ok(Source { path, text })
}

#[cfg(unix)]
fn warn_if_world_accessible(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o007 != 0 {
            tracing::warn!(
                file = %path.display(),
                "credentials file is accessible by every user on this machine; \
                 run `chmod o-rwx {}`",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_world_accessible(_path: &Path) {}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCredential {
    principal: String,
    #[serde(default)]
    secret: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCredentials {
    credentials: Vec<JsonCredential>,
}

fn malformed(source: &Source, line: usize, reason: impl Into<String>) -> CredentialsError {
    CredentialsError::Malformed {
        path: source.path.clone(),
        line,
        reason: reason.into(),
    }
}

/// The serde error without the input it quotes (which could be a secret).
fn json_error(source: &Source, e: &serde_json::Error) -> CredentialsError {
    let reason = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("invalid JSON at column {}", e.column())
        }
        _ => {
            // serde's data errors quote the offending value, which may be a
            // secret ("invalid type: integer `1234`"): only the missing or
            // unknown field's name is kept.
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or_default();
            if text.starts_with("missing field") || text.starts_with("unknown field") {
                text.split(", expected")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            } else {
                "expected {\"credentials\": [{\"principal\": \"…\", \"secret\": \"…\"}]} with string values".to_string()
            }
        }
    };
    malformed(source, e.line(), reason)
}

fn check_principal(source: &Source, line: usize, principal: &str) -> Result<(), CredentialsError> {
    if principal.is_empty() {
        return Err(malformed(source, line, "empty principal"));
    }
    if principal.chars().any(|c| c.is_control()) {
        return Err(malformed(
            source,
            line,
            "principal contains a control character",
        ));
    }
    Ok(())
}

/// One `principal secret` text line; a trailing newline or carriage return
/// is not part of the secret.
fn text_line(source: &Source, number: usize, line: &str) -> Result<Credential, CredentialsError> {
    let mut parts = line.split_whitespace();
    let (Some(principal), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(
            source,
            number,
            "expected `principal secret` separated by whitespace",
        ));
    };
    check_principal(source, number, principal)?;
    Ok(Credential {
        principal: principal.to_string(),
        secret: Secret::new(secret.as_bytes()),
    })
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Loads `--credentials`: JSON first, then the text form.
pub fn load_credentials(value: &str) -> Result<Credentials, CredentialsError> {
    let source = read_source(value)?;
    parse_credentials(&source)
}

fn parse_credentials(source: &Source) -> Result<Credentials, CredentialsError> {
    if source.text.lines().all(is_blank_or_comment) {
        return Err(CredentialsError::Empty {
            path: source.path.clone(),
        });
    }
    if source.text.trim_start().starts_with('{') {
        let parsed: JsonCredentials =
            serde_json::from_str(&source.text).map_err(|e| json_error(source, &e))?;
        if parsed.credentials.is_empty() {
            return Err(malformed(source, 1, "\"credentials\" is an empty list"));
        }
        let mut pairs = Vec::with_capacity(parsed.credentials.len());
        for (index, c) in parsed.credentials.into_iter().enumerate() {
            let line = line_of_nth_principal(&source.text, index);
            check_principal(source, line, &c.principal)?;
            pairs.push(Credential {
                principal: c.principal,
                secret: Secret::new(c.secret.into_bytes()),
            });
        }
        return Ok(Credentials::from_pairs(pairs));
    }
    let mut pairs = Vec::new();
    for (index, line) in source.text.lines().enumerate() {
        if is_blank_or_comment(line) {
            continue;
        }
        pairs.push(text_line(source, index + 1, line)?);
    }
    Ok(Credentials::from_pairs(pairs))
}

/// Best-effort line of the `index`-th `"principal"` key, for messages.
fn line_of_nth_principal(text: &str, index: usize) -> usize {
    text.match_indices("\"principal\"")
        .nth(index)
        .map(|(at, _)| text[..at].matches('\n').count() + 1)
        .unwrap_or(1)
}

/// Loads `--credential`: one pair, JSON or a text line.
pub fn load_credential(value: &str) -> Result<Credential, CredentialsError> {
    let source = read_source(value)?;
    let lines: Vec<(usize, &str)> = source
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| !is_blank_or_comment(l))
        .collect();
    if lines.is_empty() {
        return Err(CredentialsError::Empty { path: source.path });
    }
    if source.text.trim_start().starts_with('{') {
        let parsed: JsonCredential =
            serde_json::from_str(&source.text).map_err(|e| json_error(&source, &e))?;
        check_principal(&source, 1, &parsed.principal)?;
        return Ok(Credential {
            principal: parsed.principal,
            secret: Secret::new(parsed.secret.into_bytes()),
        });
    }
    if lines.len() > 1 {
        return Err(malformed(
            &source,
            lines[1].0 + 1,
            "a --credential file holds exactly one `principal secret` line",
        ));
    }
    text_line(&source, lines[0].0 + 1, lines[0].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn json_credentials_load_from_a_path_and_a_file_url() {
        let f = file(
            r#"{"credentials":[{"principal":"a","secret":"s1"},{"principal":"b","secret":"s2"}]}"#,
        );
        let path = f.path().display().to_string();
        for value in [path.clone(), format!("file://{path}")] {
            let c = load_credentials(&value).expect("loads");
            assert_eq!(c.principals(), vec!["a", "b"]);
            assert!(c.verify("a", b"s1"));
            assert!(!c.verify("a", b"s2"));
            assert!(!c.verify("nobody", b"s1"));
        }
    }

    #[test]
    fn text_credentials_ignore_trailing_newlines_and_blank_lines() {
        let f = file("alice secret1\r\n\n# comment\nbob   secret2\n\n");
        let c = load_credentials(&f.path().display().to_string()).expect("loads");
        assert!(c.verify("alice", b"secret1"));
        assert!(c.verify("bob", b"secret2"));
    }

    #[test]
    fn single_credential_in_both_forms() {
        let f = file("{\"principal\":\"agent\",\"secret\":\"pw\"}\n");
        let c = load_credential(&f.path().display().to_string()).expect("json");
        assert_eq!(c.principal, "agent");
        assert!(c.secret.matches(b"pw"));
        let f = file("agent pw\n");
        let c = load_credential(&f.path().display().to_string()).expect("text");
        assert!(c.secret.matches(b"pw"));
    }

    #[test]
    fn empty_and_malformed_files_name_the_file_and_line() {
        let f = file("\n\n");
        let err = load_credentials(&f.path().display().to_string()).expect_err("empty");
        assert!(matches!(err, CredentialsError::Empty { .. }), "{err}");
        assert!(err.to_string().contains(&f.path().display().to_string()));

        let f = file("alice one\nbob\n");
        let err = load_credentials(&f.path().display().to_string()).expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");

        let f = file("{\"credentials\":[{\"principal\":\"a\",\n\"secret\":\"hunter2\",}]}");
        let err = load_credentials(&f.path().display().to_string()).expect_err("bad json");
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let f = file("{\"credentials\":[{\"principal\":\"\",\"secret\":\"x\"}]}");
        let err = load_credentials(&f.path().display().to_string()).expect_err("empty principal");
        assert!(err.to_string().contains("empty principal"));
    }

    #[test]
    fn data_errors_never_quote_the_value() {
        for text in [
            "{\"credentials\":[{\"principal\":\"a\",\"secret\":12345678}]}",
            "{\"credentials\":[\"a:hunter2hunter2\"]}",
            "{\"principal\":\"a\",\"secret\":[\"hunter2hunter2\"]}",
        ] {
            let f = file(text);
            let path = f.path().display().to_string();
            let err = load_credentials(&path)
                .err()
                .or_else(|| load_credential(&path).err())
                .expect("refused");
            let shown = err.to_string();
            assert!(
                !shown.contains("12345678") && !shown.contains("hunter2"),
                "{shown}"
            );
        }
    }

    #[test]
    fn missing_file_is_a_read_error_naming_it() {
        let err = load_credentials("/nonexistent/creds.json").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/creds.json"));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential {
            principal: "p".into(),
            secret: Secret::new("hunter2"),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let all = Credentials::from_pairs([c]);
        assert!(!format!("{all:?}").contains("hunter2"));
    }

    #[test]
    fn store_replacement_keeps_old_snapshots() {
        let store = CredentialStore::new(Credentials::from_pairs([Credential {
            principal: "a".into(),
            secret: Secret::new("1"),
        }]));
        let before = store.current();
        store.replace(Credentials::from_pairs([Credential {
            principal: "b".into(),
            secret: Secret::new("2"),
        }]));
        assert!(before.verify("a", b"1"));
        assert!(store.current().verify("b", b"2"));
        assert!(!store.current().verify("a", b"1"));
    }
}
