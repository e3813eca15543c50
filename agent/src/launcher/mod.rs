//! The executor launcher (Mesos's `--launcher=posix|linux`): starts one executor
//! process tree per container, waits for it, lists and kills every process of a
//! container, and re-adopts containers after an agent restart.
//!
//! It owns processes and (for `linux`) the container's cgroups; it must not
//! decide what to run, for whom, or when: the containerizer does. Every
//! privileged or raw system call goes through [`crate::sys::Syscalls`].
//!
//! * [`posix::PosixLauncher`]: the executor gets its own session; destroy kills
//!   that session, its process groups and every descendant still in the process
//!   tree. A process that double-forks *and* calls `setsid` leaves the tree and
//!   the session, and escapes it (as in Mesos).
//! * [`linux::LinuxLauncher`]: the executor joins the container's cgroups before
//!   it execs; destroy freezes the cgroup (or uses `cgroup.kill`), kills every
//!   process in it, thaws it, waits for it to empty and removes it. Nothing
//!   escapes, daemons included.
//!
//! [`Launcher::wait`] resolves to the raw wait status (as `waitpid` returns it
//! and as Mesos reports it in `ContainerTermination.status`); use
//! [`exit_code`] and [`exit_signal`] to read it.

pub mod cgroups;
pub mod linux;
pub mod posix;
mod reaper;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::sys::{RealSyscalls, Syscalls, UserIds};

/// Resource limits of a container. Only the linux launcher applies them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// CPUs: `cpu.shares = 1024 * cpus` (at least 2; v2: the matching `cpu.weight`).
    pub cpus: Option<f64>,
    /// Memory in bytes: the hard limit (at least 32 MiB, as in Mesos).
    pub mem_bytes: Option<u64>,
    /// Also cap CPU time with a CFS quota of `cpus` per period (Mesos's `--cgroups_enable_cfs`).
    pub cfs_quota: bool,
}

/// What to start: one executor process tree in its own container.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    /// A UUID; also the cgroup leaf name. Letters, digits, `-`, `_` and `.` only.
    pub container_id: String,
    /// The executor program.
    pub program: PathBuf,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The COMPLETE environment; nothing is inherited from the agent.
    pub env: Vec<(String, String)>,
    /// The sandbox: the executor's working directory.
    pub working_dir: PathBuf,
    /// File the executor's standard output is appended to (created if missing).
    pub stdout: PathBuf,
    /// File the executor's standard error is appended to (created if missing).
    pub stderr: PathBuf,
    /// Run as this user (supplementary groups included) when the agent is root;
    /// an unknown user is an error either way.
    pub user: Option<String>,
    /// Resource limits (linux launcher only).
    pub limits: Limits,
    /// Capabilities and `no_new_privs` the executor starts with (from the
    /// `linux/capabilities` and `linux/nnp` isolators).
    pub security: crate::sys::ProcessSecurity,
    /// Namespaces of its own (`namespaces/user`, `namespaces/pid`,
    /// `namespaces/ipc`; linux launcher only).
    pub namespaces: crate::sys::Namespaces,
    /// A bind filter to attach to the container's cgroup before the executor
    /// starts (`network/ports` with `--container_ports_enforce_at_bind`;
    /// linux launcher only).
    pub bind_filter: Option<Vec<crate::sys::EbpfInstruction>>,
    /// Persistent volumes bind-mounted into the container's own mount
    /// namespace (linux launcher only; the agent links them into the
    /// sandbox instead under the posix launcher).
    pub mounts: Vec<crate::sys::BindMount>,
}

/// Which launcher (`--launcher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    /// Sessions and process groups; no cgroups.
    Posix,
    /// cgroups (v1 freezer, cpu, memory or v2), as root.
    Linux,
}

impl LauncherKind {
    /// The flag value: `posix` or `linux`.
    pub fn as_str(self) -> &'static str {
        match self {
            LauncherKind::Posix => "posix",
            LauncherKind::Linux => "linux",
        }
    }
}

impl fmt::Display for LauncherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LauncherKind {
    type Err = LauncherError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "posix" => Ok(LauncherKind::Posix),
            "linux" => Ok(LauncherKind::Linux),
            other => Err(LauncherError::UnknownKind(other.to_string())),
        }
    }
}

/// Everything that can go wrong in a launcher; each message names the input.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// `--launcher` named something else.
    #[error("unknown launcher {0:?}: expected \"posix\" or \"linux\"")]
    UnknownKind(String),
    /// The linux launcher was asked for without root.
    #[error("the linux launcher needs root (effective uid is {euid}); use --launcher=posix")]
    NotRoot {
        /// The agent's effective uid.
        euid: u32,
    },
    /// No usable cgroups.
    #[error(
        "cgroup freezer controller not found under {hierarchy} ({detail}); use --launcher=posix"
    )]
    NoCgroups {
        /// `--cgroups_hierarchy`.
        hierarchy: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// A limit was asked for but its controller is missing.
    #[error(
        "cannot limit {resource} of container {container_id}: the cgroup {controller} \
         controller is not available under {hierarchy}"
    )]
    ControllerUnavailable {
        /// The container.
        container_id: String,
        /// `cpus` or `mem`.
        resource: &'static str,
        /// The cgroup controller needed.
        controller: &'static str,
        /// Where it was looked for.
        hierarchy: PathBuf,
    },
    /// The container id cannot name a cgroup or is unsafe as a path component.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidContainerId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `--cgroups_root` is unusable.
    #[error("invalid --cgroups_root {root:?}: {reason}")]
    InvalidCgroupsRoot {
        /// The value given.
        root: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A container with that id is already running here.
    #[error("container {0} already exists")]
    ContainerExists(String),
    /// `LaunchSpec::user` names no account.
    #[error("user {0:?} does not exist")]
    UnknownUser(String),
    /// fork/exec (or the steps before exec: joining cgroups, setsid, switching user) failed.
    #[error("failed to launch {program} for container {container_id}: {source}")]
    Spawn {
        /// The container.
        container_id: String,
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bind filter was asked for but cannot be attached.
    #[error("cannot attach a bind filter to container {container_id}: {reason}")]
    BindFilterUnsupported {
        /// The container.
        container_id: String,
        /// Why not.
        reason: String,
    },
    /// The user cannot be mapped into the container's user namespace.
    #[error(
        "user {user:?} (uid {uid}) cannot run in a user namespace of {count} ids \
         (--user_namespace_range or /etc/subuid gives too few)"
    )]
    UserOutsideNamespace {
        /// The user.
        user: String,
        /// Its uid (or gid).
        uid: u32,
        /// How many ids the namespace maps.
        count: u32,
    },
    /// Processes survived destroy.
    #[error("container {container_id} still has processes {pids:?} after {seconds}s of killing")]
    DestroyTimeout {
        /// The container.
        container_id: String,
        /// The survivors.
        pids: Vec<u32>,
        /// How long we tried.
        seconds: u64,
    },
    /// Any other I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, naming the file or process.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LauncherError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LauncherError {
        let context = context.into();
        move |source| LauncherError::Io { context, source }
    }
}

/// Starts, waits for, lists and kills the processes of containers.
pub trait Launcher: Send + Sync + 'static {
    /// `posix` or `linux`.
    fn name(&self) -> &'static str;

    /// Starts the executor and returns its pid. It runs in its own session (so it
    /// outlives the agent) and, for `linux`, inside the container's cgroups from
    /// before it execs. Call [`Launcher::wait`] for every launched container:
    /// its exit status is collected in the background either way.
    fn launch(&self, spec: &LaunchSpec) -> Result<u32, LauncherError>;

    /// Resolves when the executor `pid` exits: `Some(raw wait status)` when it is
    /// our child (see [`exit_code`], [`exit_signal`]), `None` when it is a
    /// recovered process that is not our child (its status is not ours to read).
    /// Call it before `destroy` finishes: `destroy` forgets the container.
    fn wait(&self, container_id: &str, pid: u32) -> BoxFuture<'static, Option<i32>>;

    /// Kills every process of the container and releases what it held. Idempotent:
    /// destroying an unknown or already destroyed container succeeds.
    fn destroy(&self, container_id: &str) -> BoxFuture<'static, Result<(), LauncherError>>;

    /// The processes of the container, sorted.
    fn pids(&self, container_id: &str) -> Result<Vec<u32>, LauncherError>;

    /// Whether bind filters can be attached to this launcher's containers;
    /// if not, why (said once at startup by the agent).
    fn bind_filter_support(&self) -> Result<(), String> {
        Err(format!(
            "the {} launcher has no cgroups to attach a bind filter to",
            self.name()
        ))
    }

    /// Attaches `program` as the container's bind filter, replacing the one
    /// before (its ports changed).
    fn restrict_bind(
        &self,
        container_id: &str,
        _program: &[crate::sys::EbpfInstruction],
    ) -> Result<(), LauncherError> {
        Err(LauncherError::BindFilterUnsupported {
            container_id: container_id.to_string(),
            reason: self.bind_filter_support().err().unwrap_or_default(),
        })
    }

    /// The cgroup v2 ids of the container's cgroup and those below it (what
    /// sock_diag reports as a socket's cgroup), for the `network/ports` scan.
    fn cgroup_ids(&self, container_id: &str) -> Result<Vec<u64>, LauncherError> {
        Err(LauncherError::Io {
            context: format!("listing the cgroup ids of container {container_id}"),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("the {} launcher has no cgroups", self.name()),
            ),
        })
    }

    /// After an agent restart: re-adopts `alive` (container id, executor pid) and
    /// returns the ids of orphan containers (found under the cgroup root, not in
    /// `alive`) for the agent to destroy. The posix launcher finds no orphans.
    fn recover(&self, alive: &[(String, u32)]) -> Result<Vec<String>, LauncherError>;
}

/// Makes the launcher `kind`. `cgroups_hierarchy` (default `/sys/fs/cgroup`) and
/// `cgroups_root` (default `mesos`) matter only to `linux`, which fails here,
/// with a message naming the fix, when it cannot work on this host.
pub fn create(
    kind: LauncherKind,
    cgroups_hierarchy: &Path,
    cgroups_root: &str,
) -> Result<Arc<dyn Launcher>, LauncherError> {
    let sys: Arc<dyn Syscalls> = Arc::new(RealSyscalls);
    Ok(match kind {
        LauncherKind::Posix => Arc::new(posix::PosixLauncher::new(sys)),
        LauncherKind::Linux => Arc::new(linux::LinuxLauncher::new(
            sys,
            cgroups_hierarchy,
            cgroups_root,
        )?),
    })
}

/// The default cgroups hierarchy (`--cgroups_hierarchy`).
pub const DEFAULT_CGROUPS_HIERARCHY: &str = "/sys/fs/cgroup";
/// The default cgroups root (`--cgroups_root`).
pub const DEFAULT_CGROUPS_ROOT: &str = "mesos";

/// `linux` when the agent is root and cgroups under `/sys/fs/cgroup` are usable,
/// otherwise `posix`.
pub fn default_kind() -> LauncherKind {
    let usable = RealSyscalls.geteuid() == 0
        && cgroups::Layout::detect_host(Path::new(DEFAULT_CGROUPS_HIERARCHY)).is_ok();
    if usable {
        LauncherKind::Linux
    } else {
        LauncherKind::Posix
    }
}

/// The exit code of a raw wait status, when the process exited normally.
pub fn exit_code(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// The signal that terminated the process, when a signal did.
pub fn exit_signal(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// Checks that `id` is safe as one path component and a cgroup name.
pub(crate) fn validate_container_id(id: &str) -> Result<(), LauncherError> {
    let reason = validate_name(id);
    match reason {
        None => Ok(()),
        Some(reason) => Err(LauncherError::InvalidContainerId {
            id: id.to_string(),
            reason,
        }),
    }
}

/// Why `name` cannot be one path component of a cgroup, if it cannot.
pub(crate) fn validate_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else if name.starts_with("cgroup.") || name == "tasks" || name == "notify_on_release" {
        Some("it is the name of a cgroup control file")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("only letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    }
}

/// Opens a standard output/error file for appending, creating it if missing.
fn open_output(path: &Path, container_id: &str) -> Result<File, LauncherError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(LauncherError::io(format!(
            "opening {} for container {container_id}",
            path.display()
        )))
}

/// What launch() prepares in the parent, shared by both launchers.
pub(crate) struct Prepared {
    pub stdout: File,
    pub stderr: File,
    pub user: Option<UserIds>,
}

/// Opens the output files and resolves the user (chowning the files to it).
pub(crate) fn prepare(sys: &dyn Syscalls, spec: &LaunchSpec) -> Result<Prepared, LauncherError> {
    let user = match &spec.user {
        None => None,
        Some(name) => {
            let ids = sys
                .lookup_user(name)
                .map_err(LauncherError::io(format!("looking up user {name:?}")))?
                .ok_or_else(|| LauncherError::UnknownUser(name.clone()))?;
            let euid = sys.geteuid();
            if euid == 0 {
                Some(ids)
            } else {
                if ids.uid != euid {
                    tracing::warn!(
                        container_id = %spec.container_id,
                        user = %name,
                        euid,
                        "not root: cannot switch user; the executor runs as the agent's user"
                    );
                }
                None
            }
        }
    };
    let stdout = open_output(&spec.stdout, &spec.container_id)?;
    let stderr = open_output(&spec.stderr, &spec.container_id)?;
    let mut user = user;
    // Who owns the sandbox on the host: the user, or in a user namespace the
    // host ids the user (or the namespace's root) maps to.
    let owner = match (spec.namespaces.user, &mut user) {
        (None, None) => None,
        (None, Some(u)) => Some((u.uid, u.gid, u.name.clone(), Vec::new())),
        (Some(map), user) => {
            let (name, uid, gid) = match user {
                Some(u) => (u.name.clone(), u.uid, u.gid),
                None => ("root".to_string(), 0, 0),
            };
            let host = map.host_uid(uid).zip(map.host_gid(gid)).ok_or_else(|| {
                LauncherError::UserOutsideNamespace {
                    user: name.clone(),
                    uid,
                    count: map.count,
                }
            })?;
            if let Some(u) = user {
                // Groups the namespace cannot map are dropped, as setgroups
                // inside it would refuse them.
                u.groups.retain(|&g| map.host_gid(g).is_some());
            }
            // The sandbox and the volumes mounted into it, so the user
            // can write them through the mapping.
            let mut dirs = vec![spec.working_dir.clone()];
            dirs.extend(spec.mounts.iter().map(|m| m.source.clone()));
            Some((host.0, host.1, name, dirs))
        }
    };
    if let Some((uid, gid, name, dirs)) = owner {
        for path in dirs.iter().chain([&spec.stdout, &spec.stderr]) {
            sys.chown(path, uid, gid)
                .map_err(LauncherError::io(format!(
                    "chowning {} to {name} ({uid}:{gid} on the host)",
                    path.display(),
                )))?;
        }
    }
    Ok(Prepared {
        stdout,
        stderr,
        user,
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers shared by the launcher tests.

    use super::*;
    use std::time::{Duration, Instant};

    /// A spec running `sh -c script` in `dir`, output in `dir/stdout` and `dir/stderr`.
    pub fn sh_spec(dir: &Path, container_id: &str, script: &str) -> LaunchSpec {
        LaunchSpec {
            container_id: container_id.to_string(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_string(), script.to_string()],
            env: vec![(
                "PATH".to_string(),
                "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            )],
            working_dir: dir.to_path_buf(),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            user: None,
            limits: Limits::default(),
            security: Default::default(),
            namespaces: Default::default(),
            bind_filter: None,
            mounts: Vec::new(),
        }
    }

    /// A fresh container id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// Polls `check` until it returns Some or `timeout` passes.
    pub async fn eventually<T>(
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads a pid the script wrote to `path`, waiting for it to appear.
    pub async fn read_pid_file(path: &Path) -> u32 {
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        })
        .await
        .unwrap_or_else(|| panic!("the script should have written a pid to {}", path.display()))
    }

    /// Whether `pid` is running (exists and is not a zombie). In this test
    /// machine PID 1 does not reap orphans, so a killed daemon may stay a zombie.
    pub fn is_running(pid: u32) -> bool {
        matches!(crate::sys::RealSyscalls.process(pid), Ok(Some(p)) if !p.is_exited())
    }

    /// Kills `pid` if it still runs (test cleanup).
    pub fn kill_quietly(pid: u32) {
        let _ = crate::sys::RealSyscalls.kill(
            crate::sys::KillTarget::Process(pid),
            crate::sys::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_kind_parses_the_flag_values_and_rejects_others() {
        assert_eq!(
            "posix".parse::<LauncherKind>().ok(),
            Some(LauncherKind::Posix)
        );
        assert_eq!(
            "linux".parse::<LauncherKind>().ok(),
            Some(LauncherKind::Linux)
        );
        let err = "docker"
            .parse::<LauncherKind>()
            .expect_err("unknown kind refused");
        assert!(err.to_string().contains("\"docker\""), "{err}");
        assert_eq!(LauncherKind::Linux.to_string(), "linux");
    }

    #[test]
    fn container_ids_that_are_not_one_safe_path_component_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "cgroup.procs",
            "tasks",
            "a b",
            "x\0y",
            ".hidden",
        ] {
            assert!(
                validate_container_id(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        for good in [
            "3f2c6a8e-1b2c-4d5e-8f90-a1b2c3d4e5f6",
            "task_1.executor",
            "A-Z",
        ] {
            assert!(
                validate_container_id(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn wait_status_helpers_read_exit_codes_and_signals() {
        assert_eq!(exit_code(3 << 8), Some(3));
        assert_eq!(exit_signal(3 << 8), None);
        assert_eq!(exit_code(libc::SIGKILL), None);
        assert_eq!(exit_signal(libc::SIGKILL), Some(libc::SIGKILL));
    }

    #[test]
    fn default_kind_is_linux_only_for_root_with_cgroups() {
        let kind = default_kind();
        if RealSyscalls.geteuid() != 0 {
            assert_eq!(kind, LauncherKind::Posix);
        }
        if cgroups::Layout::detect_host(Path::new(DEFAULT_CGROUPS_HIERARCHY)).is_err() {
            assert_eq!(kind, LauncherKind::Posix);
        }
    }

    #[test]
    fn an_unknown_user_is_refused_before_anything_starts() {
        let sys = crate::sys::fake::RecordingSyscalls::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = testutil::sh_spec(dir.path(), "c1", "true");
        spec.user = Some("no-such-user".into());
        let err = prepare(&sys, &spec).err().expect("unknown user refused");
        assert!(
            matches!(err, LauncherError::UnknownUser(ref u) if u == "no-such-user"),
            "{err}"
        );
    }

    #[test]
    fn output_files_are_chowned_to_the_user_only_when_root() {
        use crate::sys::fake::{Call, RecordingSyscalls};
        let nobody = UserIds {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = testutil::sh_spec(dir.path(), "c1", "true");
        spec.user = Some("nobody".into());

        let sys = RecordingSyscalls::new();
        sys.add_user(nobody.clone());
        let prepared = prepare(&sys, &spec).expect("prepare as root");
        assert_eq!(prepared.user.as_ref(), Some(&nobody));
        assert!(sys
            .calls()
            .contains(&Call::Chown(spec.stdout.clone(), 65534, 65534)));
        assert!(
            spec.stdout.exists() && spec.stderr.exists(),
            "output files are created"
        );

        let sys = RecordingSyscalls::new();
        sys.add_user(nobody);
        sys.set_euid(1000);
        let prepared = prepare(&sys, &spec).expect("prepare as non-root");
        assert_eq!(prepared.user, None, "no switch without root");
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Chown(..))));
    }

    #[test]
    fn in_a_user_namespace_mounted_volumes_are_chowned_to_the_mapped_host_ids() {
        use crate::sys::fake::{Call, RecordingSyscalls};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = testutil::sh_spec(dir.path(), "c1", "true");
        spec.user = Some("nobody".into());
        spec.namespaces.user = Some(crate::sys::IdMap {
            uid_first: 100_000,
            gid_first: 200_000,
            count: 65_536,
        });
        let volume = dir.path().join("volume");
        spec.mounts.push(crate::sys::BindMount {
            source: volume.clone(),
            target: dir.path().join("data"),
            read_only: false,
        });
        let sys = RecordingSyscalls::new();
        sys.add_user(UserIds {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        });
        prepare(&sys, &spec).expect("prepare");
        assert!(
            sys.calls()
                .contains(&Call::Chown(volume, 100_000 + 65534, 200_000 + 65534)),
            "{:?}",
            sys.calls()
        );
    }
}
