//! The authentication audit log (`--audit_log`): one JSON object per line
//! for every authentication success and failure, plus a `tracing` event
//! for each.
//!
//! Owns the log file and the line format:
//! `{"time":"2024-05-01T12:00:00.123Z","peer":"10.0.0.1:5050","principal":"p","mechanism":"basic","outcome":"failure","reason":"…","realm":"…"}`
//! (absent values are omitted). Each line is written with a single
//! `write` on a file opened for appending, so it reaches the kernel at once
//! and concurrent writers never interleave within a line. It never records
//! a secret: [`AuditEvent`] has no field that could hold one. A write error
//! is reported once through `tracing` and never stops authentication.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether the authentication succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer proved who it is.
    Success,
    /// It did not.
    Failure,
}

impl Outcome {
    /// `"success"` or `"failure"`, as written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One authentication attempt's result. Holds no secret by construction.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    /// The peer's address, when known.
    pub peer: Option<SocketAddr>,
    /// The principal claimed (failure) or proved (success), when known.
    pub principal: Option<&'a str>,
    /// `"CRAM-MD5"`, `"SCRAM-SHA-256"`, `"basic"` or `"jwt"`.
    pub mechanism: &'a str,
    /// Success or failure.
    pub outcome: Outcome,
    /// Why it failed (never the secret nor the credential-bearing header).
    pub reason: Option<&'a str>,
    /// The HTTP realm, for HTTP authentication.
    pub realm: Option<&'a str>,
}

/// Where audit events go. Cheap to clone; clones share the file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Option<Arc<LogFile>>,
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
    write_failed: AtomicBool,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    mechanism: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

/// One authorization decision, for the same log. Its line has
/// `"mechanism":"acl:<action>"`, `"outcome":"success"` (allowed) or
/// `"failure"` (denied), and `action`, `object` (absent = any object),
/// `rule` and, for a denial, `reason` (the explanation). Holds no secret by
/// construction.
#[derive(Debug, Clone, Copy)]
pub struct AuthzEvent<'a> {
    /// The principal asking (absent = an unauthenticated request).
    pub principal: Option<&'a str>,
    /// The ACL action, e.g. `run_tasks`.
    pub action: &'a str,
    /// The object asked about (a role, a user, a path); absent = any.
    pub object: Option<&'a str>,
    /// Allowed (`Success`) or denied (`Failure`).
    pub outcome: Outcome,
    /// The rule that decided, e.g. `acl run_tasks[0]`.
    pub rule: &'a str,
    /// Why it was denied and what would allow it.
    pub reason: Option<&'a str>,
}

impl AuditLog {
    /// Opens (creating with mode 0600) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        warn_if_readable_by_others(path, &file);
        Ok(AuditLog {
            file: Some(Arc::new(LogFile {
                path: path.to_path_buf(),
                file: Mutex::new(file),
                write_failed: AtomicBool::new(false),
            })),
        })
    }

    /// A log that writes no file (the `tracing` events are still emitted).
    pub fn disabled() -> Self {
        AuditLog { file: None }
    }

    /// True when events are written to a file.
    pub fn is_enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Records `event`: a `tracing` event (info on success, warn on
    /// failure) and, when enabled, one JSON line in the file.
    pub fn record(&self, event: &AuditEvent<'_>) {
        self.record_at(event, SystemTime::now());
    }

    fn record_at(&self, event: &AuditEvent<'_>, time: SystemTime) {
        let peer = event.peer.map(tracing::field::display);
        match event.outcome {
            Outcome::Success => tracing::info!(
                target: "mesos::audit",
                peer,
                principal = event.principal,
                mechanism = event.mechanism,
                outcome = event.outcome.as_str(),
                reason = event.reason,
                realm = event.realm,
                "authentication succeeded"
            ),
            Outcome::Failure => tracing::warn!(
                target: "mesos::audit",
                peer,
                principal = event.principal,
                mechanism = event.mechanism,
                outcome = event.outcome.as_str(),
                reason = event.reason,
                realm = event.realm,
                "authentication failed"
            ),
        }
        let Some(log) = &self.file else {
            return;
        };
        let line = Line {
            time: rfc3339_utc(time),
            peer: event.peer.map(|p| p.to_string()),
            principal: event.principal,
            mechanism: event.mechanism,
            outcome: event.outcome.as_str(),
            reason: event.reason,
            realm: event.realm,
            action: None,
            object: None,
            rule: None,
        };
        self.write_line(log, &line);
    }

    /// Records an authorization decision: a `tracing` event (debug when
    /// allowed, warn when denied) and, when enabled, one JSON line.
    pub fn record_authorization(&self, event: &AuthzEvent<'_>) {
        self.record_authorization_at(event, SystemTime::now());
    }

    fn record_authorization_at(&self, event: &AuthzEvent<'_>, time: SystemTime) {
        match event.outcome {
            Outcome::Success => tracing::debug!(
                target: "mesos::audit",
                principal = event.principal,
                action = event.action,
                object = event.object,
                rule = event.rule,
                "authorized"
            ),
            Outcome::Failure => tracing::warn!(
                target: "mesos::audit",
                principal = event.principal,
                action = event.action,
                object = event.object,
                rule = event.rule,
                reason = event.reason,
                "not authorized"
            ),
        }
        let Some(log) = &self.file else {
            return;
        };
        let mechanism = format!("acl:{}", event.action);
        let line = Line {
            time: rfc3339_utc(time),
            peer: None,
            principal: event.principal,
            mechanism: &mechanism,
            outcome: event.outcome.as_str(),
            reason: event.reason,
            realm: None,
            action: Some(event.action),
            object: event.object,
            rule: Some(event.rule),
        };
        self.write_line(log, &line);
    }

    fn write_line(&self, log: &LogFile, line: &Line<'_>) {
        let mut bytes = match serde_json::to_vec(line) {
            Ok(bytes) => bytes,
            Err(e) => {
                log.report_once(&e);
                return;
            }
        };
        bytes.push(b'\n');
        let result = {
            let mut file = match log.file.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            file.write_all(&bytes).and_then(|()| file.flush())
        };
        if let Err(e) = result {
            log.report_once(&e);
        }
    }
}

impl LogFile {
    fn report_once(&self, error: &dyn std::fmt::Display) {
        if !self.write_failed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                file = %self.path.display(),
                %error,
                "cannot write the audit log; further write errors are not reported"
            );
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, file: &File) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = file.metadata() {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "audit log is accessible by other users; run `chmod 600 {}`",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _file: &File) {}

/// `time` as RFC 3339 in UTC with milliseconds, e.g.
/// `2024-05-01T12:00:00.123Z`.
fn rfc3339_utc(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59.000Z"
        );
    }

    #[test]
    fn lines_are_json_with_the_fields_and_the_file_is_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).expect("opens");
        assert!(log.is_enabled());
        log.record(&AuditEvent {
            peer: Some("10.0.0.1:5050".parse().expect("addr")),
            principal: Some("alice"),
            mechanism: "basic",
            outcome: Outcome::Success,
            reason: None,
            realm: Some("mesos-master-readwrite"),
        });
        log.clone().record(&AuditEvent {
            peer: None,
            principal: Some("bob\"\n"),
            mechanism: "CRAM-MD5",
            outcome: Outcome::Failure,
            reason: Some("wrong secret"),
            realm: None,
        });
        let text = std::fs::read_to_string(&path).expect("reads");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["peer"], "10.0.0.1:5050");
        assert_eq!(lines[0]["principal"], "alice");
        assert_eq!(lines[0]["mechanism"], "basic");
        assert_eq!(lines[0]["outcome"], "success");
        assert_eq!(lines[0]["realm"], "mesos-master-readwrite");
        assert!(lines[0].get("reason").is_none());
        let time = lines[0]["time"].as_str().expect("time is a string");
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        assert_eq!(lines[1]["principal"], "bob\"\n");
        assert_eq!(lines[1]["outcome"], "failure");
        assert_eq!(lines[1]["reason"], "wrong secret");
        assert!(lines[1].get("peer").is_none());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Reopening appends.
        drop(log);
        let log = AuditLog::open(&path).expect("reopens");
        log.record(&AuditEvent {
            peer: None,
            principal: None,
            mechanism: "jwt",
            outcome: Outcome::Failure,
            reason: Some("token has expired"),
            realm: Some("mesos-agent-executor"),
        });
        let text = std::fs::read_to_string(&path).expect("reads");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn authorization_lines_name_the_action_object_and_rule() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).expect("opens");
        log.record_authorization(&AuthzEvent {
            principal: Some("alice"),
            action: "run_tasks",
            object: Some("root"),
            outcome: Outcome::Failure,
            rule: "Default(\"run-tasks-as-root\")",
            reason: Some("principal 'alice' denied to run_tasks"),
        });
        log.record_authorization(&AuthzEvent {
            principal: None,
            action: "view_flags",
            object: None,
            outcome: Outcome::Success,
            rule: "NoMatch { permissive: true }",
            reason: None,
        });
        let text = std::fs::read_to_string(&path).expect("reads");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["mechanism"], "acl:run_tasks");
        assert_eq!(lines[0]["action"], "run_tasks");
        assert_eq!(lines[0]["object"], "root");
        assert_eq!(lines[0]["outcome"], "failure");
        assert_eq!(lines[0]["principal"], "alice");
        assert!(lines[0]["reason"].as_str().is_some());
        assert_eq!(lines[1]["outcome"], "success");
        assert!(lines[1].get("object").is_none());
        assert!(lines[1].get("principal").is_none());
        assert!(lines[1].get("reason").is_none());
    }

    #[test]
    fn disabled_log_and_unwritable_file_do_not_panic() {
        let event = AuditEvent {
            peer: None,
            principal: None,
            mechanism: "basic",
            outcome: Outcome::Failure,
            reason: None,
            realm: None,
        };
        AuditLog::disabled().record(&event);
        assert!(!AuditLog::disabled().is_enabled());
        assert!(AuditLog::open(Path::new("/nonexistent/dir/audit.log")).is_err());
        #[cfg(target_os = "linux")]
        if let Ok(log) = AuditLog::open(Path::new("/dev/full")) {
            log.record(&event);
            log.record(&event);
        }
    }

    #[test]
    fn audit_log_is_clone_send_and_sync() {
        fn check<T: Clone + Send + Sync>() {}
        check::<AuditLog>();
    }
}
