//! `/files/browse`, `/files/read` and `/files/download`: sandbox contents
//! for the web UI and the CLI. Only files under `<work_dir>/slaves` are
//! served: the requested path is canonicalized (resolving `..` and
//! symlinks) and must stay under that root, and the file actually opened is
//! checked again through `/proc/self/fd`, so a task cannot swap in a symlink
//! to `/etc/shadow` between the check and the open. Each resolved path is
//! then authorized (`access_sandboxes`, see [`crate::sandbox_authz`]).

use std::io::SeekFrom;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use mesos_common::http::{json_response, HttpError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::agent::AgentHandle;
use crate::auth::Principal;
use crate::sandbox_authz::SandboxAuthz;

/// Longest chunk `/files/read` returns at once.
const MAX_READ: u64 = 1 << 20;

/// The confinement root, canonical.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
    authz: SandboxAuthz,
    agent: Option<AgentHandle>,
}

/// Query of the `/files` endpoints.
#[derive(Debug, Default, serde::Deserialize)]
pub struct FilesQuery {
    path: Option<String>,
    offset: Option<String>,
    length: Option<String>,
    jsonp: Option<String>,
}

impl Files {
    /// Serves files under `root` (`<work_dir>/slaves`), which must exist.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
            authz: SandboxAuthz::default(),
            agent: None,
        })
    }

    /// Checks `access_sandboxes` with `authz` (default: everything allowed).
    pub fn with_authz(mut self, authz: SandboxAuthz) -> Self {
        self.authz = authz;
        self
    }

    /// Reloads the sandbox ACLs on SIGHUP (see
    /// [`SandboxAuthz::reload_on_sighup`]).
    pub fn reload_acls_on_sighup(&self) {
        self.authz.reload_on_sighup();
    }

    /// Asks `agent` whose sandbox a path is (it also knows completed
    /// executors, whose checkpoints are gone).
    pub fn with_agent(mut self, agent: AgentHandle) -> Self {
        self.agent = Some(agent);
        self
    }

    /// The authorizer in force on this agent.
    pub fn authz(&self) -> &SandboxAuthz {
        &self.authz
    }

    /// Resolves as [`Files::resolve`], then checks that `principal` may
    /// read the sandbox the path lies in.
    pub async fn resolve_for(
        &self,
        principal: Option<&str>,
        requested: Option<&str>,
    ) -> Result<PathBuf, HttpError> {
        let canonical = self.resolve(requested)?;
        if !self.authz.is_on() {
            return Ok(canonical);
        }
        let mut owner = None;
        if let (Some(agent), Some((_, framework_id, executor_id))) = (
            &self.agent,
            crate::sandbox_authz::sandbox_ids(&self.root, &canonical),
        ) {
            owner = agent.sandbox_owner(framework_id, executor_id).await;
        }
        if owner.is_none() {
            owner = crate::sandbox_authz::sandbox_owner(&self.root, &canonical);
        }
        self.authz.check(principal, owner.as_ref())?;
        Ok(canonical)
    }

    /// Resolves a requested path to a canonical path under the root, or the
    /// HTTP error to answer with.
    pub fn resolve(&self, requested: Option<&str>) -> Result<PathBuf, HttpError> {
        let requested = requested
            .filter(|p| !p.is_empty())
            .ok_or_else(|| HttpError::bad_request("Expecting 'path=value' in query."))?;
        if requested.contains('\0') {
            return Err(HttpError::bad_request("Path contains a NUL byte"));
        }
        let path = Path::new(requested);
        if !path.is_absolute() {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                format!("'{requested}' is not an absolute sandbox path (use the 'directory' shown in /state)"),
            ));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(self.forbidden(requested));
        }
        let canonical = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("'{requested}' does not exist"),
                ));
            }
            Err(e) => {
                return Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("Cannot access '{requested}': {e}"),
                ))
            }
        };
        if !canonical.starts_with(&self.root) {
            return Err(self.forbidden(requested));
        }
        Ok(canonical)
    }

    fn forbidden(&self, requested: &str) -> HttpError {
        HttpError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Access to '{requested}' is forbidden: only files under {} are served",
                self.root.display()
            ),
        )
    }

    /// Opens a resolved file and re-checks where the opened descriptor
    /// really points.
    async fn open(&self, canonical: &Path, requested: &str) -> Result<tokio::fs::File, HttpError> {
        let file = tokio::fs::File::open(canonical).await.map_err(|e| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!("Cannot open '{requested}': {e}"),
            )
        })?;
        let std_file = file.into_std().await;
        // Fail closed: the descriptor must be readable back, under the
        // root, and in the same executor's sandbox that was authorized (a
        // task could swap a directory of its sandbox for a symlink into
        // another one between the check and the open).
        let Some(real) = fd_path(&std_file) else {
            return Err(self.forbidden(requested));
        };
        let same_sandbox = |p: &Path| {
            crate::sandbox_authz::sandbox_ids(&self.root, p)
                .map(|(_, framework, executor)| (framework.to_string(), executor.to_string()))
        };
        if !real.starts_with(&self.root) || same_sandbox(&real) != same_sandbox(canonical) {
            return Err(self.forbidden(requested));
        }
        Ok(tokio::fs::File::from_std(std_file))
    }
}

fn fd_path(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// `ls -l` style mode text, e.g. `-rw-r--r--`.
pub fn mode_string(metadata: &std::fs::Metadata) -> String {
    let kind = if metadata.is_dir() {
        'd'
    } else if metadata.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = metadata.permissions().mode();
    let mut out = String::with_capacity(10);
    out.push(kind);
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        out.push(match (mode & special != 0, exec) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn file_info(path: &str, metadata: &std::fs::Metadata) -> serde_json::Value {
    json!({
        "path": path,
        "nlink": metadata.nlink(),
        "size": metadata.size(),
        "mtime": metadata.mtime(),
        "mode": mode_string(metadata),
        "uid": user_name(metadata.uid()),
        "gid": group_name(metadata.gid()),
    })
}

/// `GET /files/browse?path=`.
pub async fn browse(
    State(files): State<Files>,
    Principal(principal): Principal,
    Query(query): Query<FilesQuery>,
) -> Response {
    let result = async {
        let canonical = files
            .resolve_for(principal.as_deref(), query.path.as_deref())
            .await?;
        let requested = query.path.clone().unwrap_or_default();
        let metadata = tokio::fs::metadata(&canonical).await.map_err(|e| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!("Cannot stat '{requested}': {e}"),
            )
        })?;
        if !metadata.is_dir() {
            return Ok(json!([file_info(&requested, &metadata)]));
        }
        let mut entries = tokio::fs::read_dir(&canonical).await.map_err(|e| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                format!("Cannot list '{requested}': {e}"),
            )
        })?;
        let base = requested.trim_end_matches('/');
        let mut listing = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(metadata) = entry.metadata().await else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            listing.push((
                name.clone(),
                file_info(&format!("{base}/{name}"), &metadata),
            ));
        }
        listing.sort_by(|a, b| a.0.cmp(&b.0));
        Ok::<_, HttpError>(serde_json::Value::Array(
            listing.into_iter().map(|(_, v)| v).collect(),
        ))
    }
    .await;
    match result {
        Ok(value) => json_response(&value, query.jsonp.as_deref()),
        Err(e) => e.into_response(),
    }
}

fn parse_i64(name: &str, value: Option<&str>) -> Result<Option<i64>, HttpError> {
    value
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                HttpError::bad_request(format!("Failed to parse {name}: '{v}' is not an integer"))
            })
        })
        .transpose()
}

/// `GET /files/read?path=&offset=&length=`: `{"data": ..., "offset": N}`;
/// `offset=-1` (or none) returns the file's size as the offset.
pub async fn read(
    State(files): State<Files>,
    Principal(principal): Principal,
    Query(query): Query<FilesQuery>,
) -> Response {
    let result = async {
        let offset = parse_i64("offset", query.offset.as_deref())?.unwrap_or(-1);
        let length = parse_i64("length", query.length.as_deref())?;
        if offset < -1 {
            return Err(HttpError::bad_request(format!(
                "Negative offset provided: {offset}"
            )));
        }
        if length.is_some_and(|l| l < -1) {
            return Err(HttpError::bad_request("Negative length provided"));
        }
        let canonical = files
            .resolve_for(principal.as_deref(), query.path.as_deref())
            .await?;
        let requested = query.path.clone().unwrap_or_default();
        if canonical.is_dir() {
            return Err(HttpError::bad_request(format!(
                "Cannot read '{requested}': it is a directory"
            )));
        }
        let mut file = files.open(&canonical, &requested).await?;
        let size = file
            .metadata()
            .await
            .map_err(|e| {
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("Cannot stat '{requested}': {e}"),
                )
            })?
            .len();
        if offset == -1 {
            return Ok(json!({"data": "", "offset": size}));
        }
        let offset = offset as u64;
        if offset >= size {
            return Ok(json!({"data": "", "offset": offset}));
        }
        let wanted = match length {
            Some(l) if l >= 0 => (l as u64).min(size - offset),
            _ => size - offset,
        }
        .min(MAX_READ);
        file.seek(SeekFrom::Start(offset)).await.map_err(|e| {
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Cannot seek '{requested}': {e}"),
            )
        })?;
        let mut data = Vec::with_capacity(wanted as usize);
        (&mut file)
            .take(wanted)
            .read_to_end(&mut data)
            .await
            .map_err(|e| {
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Cannot read '{requested}': {e}"),
                )
            })?;
        let text = match String::from_utf8(data) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(json!({"data": text, "offset": offset}))
    }
    .await;
    match result {
        Ok(value) => json_response(&value, query.jsonp.as_deref()),
        Err(e) => e.into_response(),
    }
}

/// `GET /files/download?path=`: the raw file as an attachment.
pub async fn download(
    State(files): State<Files>,
    Principal(principal): Principal,
    Query(query): Query<FilesQuery>,
) -> Response {
    let result = async {
        let canonical = files
            .resolve_for(principal.as_deref(), query.path.as_deref())
            .await?;
        let requested = query.path.clone().unwrap_or_default();
        if canonical.is_dir() {
            return Err(HttpError::bad_request(format!(
                "Cannot download '{requested}': it is a directory"
            )));
        }
        let file = files.open(&canonical, &requested).await?;
        let size = file
            .metadata()
            .await
            .map_err(|e| {
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("Cannot stat '{requested}': {e}"),
                )
            })?
            .len();
        // Serve the size seen now, even if the task keeps writing.
        let file = file.take(size);
        let name = canonical
            .file_name()
            .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"))
            .unwrap_or_else(|| "download".into());
        let stream = futures::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        let mut response = Response::new(Body::from_stream(stream));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
        Ok::<_, HttpError>(response)
    }
    .await;
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Files, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("slaves");
        let sandbox = root.join("S/frameworks/F/executors/E/runs/C");
        std::fs::create_dir_all(&sandbox).expect("mkdir");
        std::fs::write(sandbox.join("stdout"), "hello\n").expect("write");
        std::fs::write(dir.path().join("secret"), "top secret").expect("write");
        let files = Files::new(&root).expect("root");
        (dir, files, sandbox)
    }

    #[test]
    fn sandbox_paths_resolve() {
        let (_dir, files, sandbox) = setup();
        let path = sandbox.join("stdout");
        let resolved = files.resolve(path.to_str()).expect("inside the root");
        assert_eq!(resolved, path.canonicalize().expect("canonical"));
    }

    #[test]
    fn escapes_are_refused() {
        let (dir, files, sandbox) = setup();
        let dotdot = format!("{}/../../../../../../../secret", sandbox.display());
        assert_eq!(
            files.resolve(Some(&dotdot)).expect_err("dotdot").status,
            StatusCode::FORBIDDEN
        );
        let outside = dir.path().join("secret");
        assert_eq!(
            files.resolve(outside.to_str()).expect_err("outside").status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            files.resolve(Some("/etc/passwd")).expect_err("etc").status,
            StatusCode::FORBIDDEN
        );
        std::os::unix::fs::symlink(&outside, sandbox.join("link")).expect("symlink");
        let link = sandbox.join("link");
        let err = files.resolve(link.to_str()).expect_err("symlink escape");
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("forbidden"), "{}", err.message);
        std::os::unix::fs::symlink("/", sandbox.join("rootlink")).expect("symlink");
        let through = format!("{}/rootlink/etc/passwd", sandbox.display());
        assert_eq!(
            files
                .resolve(Some(&through))
                .expect_err("dir symlink")
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            files
                .resolve(Some("relative/path"))
                .expect_err("relative")
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            files.resolve(None).expect_err("missing").status,
            StatusCode::BAD_REQUEST
        );
        let missing = sandbox.join("nope");
        assert_eq!(
            files
                .resolve(missing.to_str())
                .expect_err("missing file")
                .status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn modes_print_like_ls() {
        let (_dir, _files, sandbox) = setup();
        let file = sandbox.join("stdout");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            mode_string(&std::fs::metadata(&file).expect("stat")),
            "-rw-r--r--"
        );
        std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            mode_string(&std::fs::metadata(&sandbox).expect("stat")),
            "drwxr-xr-x"
        );
    }

    #[tokio::test]
    async fn read_returns_data_and_size() {
        let (_dir, files, sandbox) = setup();
        let path = sandbox.join("stdout").display().to_string();
        let query = |offset: Option<&str>, length: Option<&str>| FilesQuery {
            path: Some(path.clone()),
            offset: offset.map(String::from),
            length: length.map(String::from),
            jsonp: None,
        };
        let body = |r: Response| async move {
            let bytes = http_body_util::BodyExt::collect(r.into_body())
                .await
                .expect("body")
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")
        };
        let r = read(
            State(files.clone()),
            Principal(None),
            Query(query(Some("0"), None)),
        )
        .await;
        assert_eq!(body(r).await, json!({"data": "hello\n", "offset": 0}));
        let r = read(
            State(files.clone()),
            Principal(None),
            Query(query(Some("-1"), None)),
        )
        .await;
        assert_eq!(body(r).await, json!({"data": "", "offset": 6}));
        let r = read(
            State(files.clone()),
            Principal(None),
            Query(query(Some("1"), Some("3"))),
        )
        .await;
        assert_eq!(body(r).await, json!({"data": "ell", "offset": 1}));
        let r = read(
            State(files.clone()),
            Principal(None),
            Query(query(Some("x"), None)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = read(
            State(files.clone()),
            Principal(None),
            Query(query(Some("-5"), None)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
