//! The namespace isolators: `namespaces/pid` and `namespaces/ipc` (Mesos's),
//! and `namespaces/user` (proposed for Mesos in seed 002, never shipped).
//!
//! * `namespaces/user`: the executor and its tasks run in a user namespace
//!   whose ids `0..count` are host ids from `/etc/subuid` and `/etc/subgid`
//!   (the agent user's entry) or `--user_namespace_range`, so root in a task
//!   is an unprivileged id on the host; the launcher chowns the sandbox to
//!   the mapped ids so the task can still write it.
//! * `namespaces/pid`: the executor is pid 1 of a pid namespace of its own,
//!   with `/proc` remounted (in a private mount namespace) to show it; tasks
//!   cannot see or signal anything outside. `LinuxInfo.share_pid_namespace`
//!   keeps the agent's, unless `--disallow_sharing_agent_pid_namespace`.
//! * `namespaces/ipc`: System V IPC and POSIX message queues of its own;
//!   `LinuxInfo.ipc_mode = SHARE_PARENT` keeps the agent's, unless
//!   `--disallow_sharing_agent_ipc_namespace`.
//!
//! They only say which namespaces a container gets
//! ([`ContainerLaunchInfo::namespaces`]); the launcher's child enters them
//! through the syscall seam ([`crate::sys::Namespaces`]).

use mesos_proto::v1;

use super::{ContainerConfig, ContainerLaunchInfo, Isolator, IsolatorError};
use crate::sys::{IdMap, Namespaces};

/// `namespaces/user`.
pub const NAMESPACES_USER: &str = "namespaces/user";
/// `namespaces/pid`.
pub const NAMESPACES_PID: &str = "namespaces/pid";
/// `namespaces/ipc`.
pub const NAMESPACES_IPC: &str = "namespaces/ipc";

/// Which namespace an isolator gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user namespace with this mapping.
    User(IdMap),
    /// A pid namespace; `true`: sharing the agent's is refused.
    Pid { disallow_sharing: bool },
    /// An IPC namespace; `true`: sharing the agent's is refused.
    Ipc { disallow_sharing: bool },
}

impl Kind {
    /// The namespaces a container of this isolator gets, unless it asks to
    /// share the agent's.
    pub fn namespaces(self) -> Namespaces {
        match self {
            Kind::User(map) => Namespaces {
                user: Some(map),
                ..Namespaces::default()
            },
            Kind::Pid { .. } => Namespaces {
                pid: true,
                ..Namespaces::default()
            },
            Kind::Ipc { .. } => Namespaces {
                ipc: true,
                ..Namespaces::default()
            },
        }
    }
}

/// One of the three isolators (see the module documentation).
#[derive(Debug)]
pub struct NamespacesIsolator {
    kind: Kind,
}

impl NamespacesIsolator {
    /// The isolator for `kind`.
    pub fn new(kind: Kind) -> Self {
        Self { kind }
    }
}

fn linux_info(config: &ContainerConfig) -> Option<&v1::LinuxInfo> {
    config.container_info.as_ref()?.linux_info.as_ref()
}

impl Isolator for NamespacesIsolator {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::User(_) => NAMESPACES_USER,
            Kind::Pid { .. } => NAMESPACES_PID,
            Kind::Ipc { .. } => NAMESPACES_IPC,
        }
    }

    fn prepare(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        let info = linux_info(config);
        match self.kind {
            Kind::User(_) => {}
            Kind::Pid { disallow_sharing } => {
                if info.and_then(|i| i.share_pid_namespace) == Some(true) {
                    if disallow_sharing {
                        return Err(IsolatorError::Refused(
                            "Sharing agent pid namespace with top-level container is not \
                             allowed (--disallow_sharing_agent_pid_namespace)"
                                .into(),
                        ));
                    }
                    return Ok(None);
                }
            }
            Kind::Ipc { disallow_sharing } => {
                let share = v1::linux_info::IpcMode::ShareParent as i32;
                if info.and_then(|i| i.ipc_mode) == Some(share) {
                    if disallow_sharing {
                        return Err(IsolatorError::Refused(
                            "Sharing agent ipc namespace with top-level container is not \
                             allowed (--disallow_sharing_agent_ipc_namespace)"
                                .into(),
                        ));
                    }
                    return Ok(None);
                }
            }
        }
        let namespaces = self.kind.namespaces();
        Ok(Some(ContainerLaunchInfo {
            namespaces,
            ..ContainerLaunchInfo::default()
        }))
    }
}

/// One `name:first:count` line of `/etc/subuid` or `/etc/subgid`.
fn subid_entry(text: &str, names: &[&str]) -> Option<(u32, u32)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split(':');
            let (name, first, count) = (fields.next()?, fields.next()?, fields.next()?);
            Some((name, first.trim().parse().ok()?, count.trim().parse().ok()?))
        })
        .find(|(name, _, count): &(&str, u32, u32)| names.contains(name) && *count > 0)
        .map(|(_, first, count)| (first, count))
}

/// The user namespace's mapping: `--user_namespace_range` (`[first-last]`,
/// for uids and gids alike), else the entries of the agent's user (`names`:
/// its name and uid) in `subuid` and `subgid` (the files' texts, `None` when
/// missing). The error says what to add.
pub fn id_map(
    range: Option<&str>,
    subuid: Option<&str>,
    subgid: Option<&str>,
    names: &[&str],
) -> Result<IdMap, String> {
    if let Some(range) = range {
        let bad = || {
            format!(
                "invalid --user_namespace_range '{range}': expected [first-last], \
                 e.g. [100000-165535], not including 0"
            )
        };
        let inner = range
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(bad)?;
        let (first, last) = inner.split_once('-').ok_or_else(bad)?;
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        return Ok(IdMap {
            uid_first: first,
            gid_first: first,
            count: last - first + 1,
        });
    }
    let who = names.first().copied().unwrap_or("root");
    let missing = |file: &str| {
        format!(
            "namespaces/user needs host ids for the containers and {file} has none for \
             '{who}': add a line such as '{who}:100000:65536' to /etc/subuid and to \
             /etc/subgid, or pass --user_namespace_range=[100000-165535]"
        )
    };
    let (uid_first, uid_count) =
        subid_entry(subuid.unwrap_or(""), names).ok_or_else(|| missing("/etc/subuid"))?;
    let (gid_first, gid_count) =
        subid_entry(subgid.unwrap_or(""), names).ok_or_else(|| missing("/etc/subgid"))?;
    if uid_first == 0 || gid_first == 0 {
        return Err(format!(
            "namespaces/user: the /etc/subuid or /etc/subgid entry of '{who}' starts at id 0, \
             which would make root inside root outside"
        ));
    }
    Ok(IdMap {
        uid_first,
        gid_first,
        count: uid_count.min(gid_count),
    })
}

/// Whether an unprivileged id can execute `executor` (every directory above
/// it searchable by others, the file executable by others): in a user
/// namespace the executor runs as a host id with no other access.
pub fn check_reachable(executor: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.permissions().mode());
    match mode(executor) {
        Ok(m) if m & 0o001 == 0 => {
            return Err(format!(
                "namespaces/user: {} is not executable by other users (mode {:o}); \
                 the executor runs as an unprivileged host id",
                executor.display(),
                m & 0o7777
            ))
        }
        // A missing executor is reported at startup already.
        _ => {}
    }
    for dir in executor.ancestors().skip(1) {
        if let Ok(m) = mode(dir) {
            if m & 0o001 == 0 {
                return Err(format!(
                    "namespaces/user: the executor {} cannot be reached by an unprivileged \
                     host id: {} is mode {:o} (others need search permission); give \
                     --launcher_dir a directory others can reach",
                    executor.display(),
                    dir.display(),
                    m & 0o7777
                ));
            }
        }
    }
    Ok(())
}

/// Whether this host can start a process in `namespaces`: runs `/bin/true`
/// in them (the agent asks once at startup, so a host that cannot is told
/// at once rather than at every launch).
pub fn probe(namespaces: crate::sys::Namespaces) -> Result<(), String> {
    use crate::sys::{RealSyscalls, SpawnRequest, Syscalls};
    let null = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("opening /dev/null: {e}"))
    };
    let sys = RealSyscalls;
    let pid = sys
        .spawn(SpawnRequest {
            program: "/bin/true".into(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: "/".into(),
            stdout: null()?,
            stderr: null()?,
            cgroup_procs: Vec::new(),
            new_session: true,
            user: None,
            security: crate::sys::ProcessSecurity::default(),
            namespaces,
            mounts: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
    match sys.wait_child(pid) {
        Ok(0) => Ok(()),
        Ok(status) => Err(format!(
            "a probe in the namespaces exited with status {status}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: IdMap = IdMap {
        uid_first: 100_000,
        gid_first: 200_000,
        count: 65_536,
    };

    fn with_linux_info(info: v1::LinuxInfo) -> ContainerConfig {
        ContainerConfig {
            container_id: "c1".into(),
            container_info: Some(v1::ContainerInfo {
                linux_info: Some(info),
                ..Default::default()
            }),
            ..ContainerConfig::default()
        }
    }

    #[test]
    fn each_isolator_asks_for_its_namespace() {
        let plain = ContainerConfig {
            container_id: "c1".into(),
            ..ContainerConfig::default()
        };
        let ns = |kind| {
            NamespacesIsolator::new(kind)
                .prepare(&plain)
                .expect("prepared")
                .expect("launch info")
                .namespaces
        };
        assert_eq!(ns(Kind::User(MAP)).user, Some(MAP));
        assert!(
            ns(Kind::Pid {
                disallow_sharing: true
            })
            .pid
        );
        assert!(
            ns(Kind::Ipc {
                disallow_sharing: true
            })
            .ipc
        );
        let mut merged = ContainerLaunchInfo::default();
        for kind in [
            Kind::User(MAP),
            Kind::Pid {
                disallow_sharing: false,
            },
            Kind::Ipc {
                disallow_sharing: false,
            },
        ] {
            merged.merge(
                NamespacesIsolator::new(kind)
                    .prepare(&plain)
                    .expect("ok")
                    .expect("info"),
            );
        }
        assert_eq!(
            merged.namespaces,
            Namespaces {
                user: Some(MAP),
                pid: true,
                ipc: true
            }
        );
    }

    #[test]
    fn sharing_the_agents_namespaces_is_allowed_unless_disallowed() {
        let share_pid = with_linux_info(v1::LinuxInfo {
            share_pid_namespace: Some(true),
            ..Default::default()
        });
        let pid = NamespacesIsolator::new(Kind::Pid {
            disallow_sharing: false,
        });
        assert_eq!(pid.prepare(&share_pid).expect("shares"), None);
        let err = NamespacesIsolator::new(Kind::Pid {
            disallow_sharing: true,
        })
        .prepare(&share_pid)
        .expect_err("refused");
        assert!(
            err.to_string().starts_with("Sharing agent pid namespace"),
            "{err}"
        );

        let share_ipc = with_linux_info(v1::LinuxInfo {
            ipc_mode: Some(v1::linux_info::IpcMode::ShareParent as i32),
            ..Default::default()
        });
        let ipc = NamespacesIsolator::new(Kind::Ipc {
            disallow_sharing: false,
        });
        assert_eq!(ipc.prepare(&share_ipc).expect("shares"), None);
        assert!(NamespacesIsolator::new(Kind::Ipc {
            disallow_sharing: true
        })
        .prepare(&share_ipc)
        .is_err());
        let private = with_linux_info(v1::LinuxInfo {
            ipc_mode: Some(v1::linux_info::IpcMode::Private as i32),
            ..Default::default()
        });
        assert!(
            ipc.prepare(&private)
                .expect("ok")
                .expect("info")
                .namespaces
                .ipc
        );
    }

    #[test]
    fn the_mapping_comes_from_the_flag_or_the_agent_users_subid_entries() {
        assert_eq!(
            id_map(Some("[100000-165535]"), None, None, &["root"]),
            Ok(IdMap {
                uid_first: 100_000,
                gid_first: 100_000,
                count: 65_536
            })
        );
        for bad in ["100000-165535", "[0-10]", "[5-4]", "[a-b]", "[1]"] {
            let err = id_map(Some(bad), None, None, &["root"]).expect_err(bad);
            assert!(err.starts_with("invalid --user_namespace_range"), "{err}");
        }
        let subuid = "# comment\nalice:1000000:65536\nroot:100000:65536\n";
        let subgid = "0:200000:70000\n";
        assert_eq!(
            id_map(None, Some(subuid), Some(subgid), &["root", "0"]),
            Ok(MAP),
            "the smaller count of the two; entries by name or uid"
        );
        let err = id_map(None, None, Some(subgid), &["root", "0"]).expect_err("no subuid");
        assert!(
            err.contains("/etc/subuid has none for 'root': add a line such as 'root:100000:65536'"),
            "{err}"
        );
        let err =
            id_map(None, Some("root:0:65536\n"), Some(subgid), &["root", "0"]).expect_err("0");
        assert!(err.contains("starts at id 0"), "{err}");
    }

    #[test]
    fn an_executor_behind_a_private_directory_is_refused_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let private = dir.path().join("private");
        std::fs::create_dir(&private).expect("mkdir");
        let executor = private.join("mesos-executor");
        std::fs::write(&executor, "").expect("file");
        std::fs::set_permissions(&executor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let err = check_reachable(&executor).expect_err("private directory");
        assert!(
            err.contains(&format!("{} is mode 700", private.display())),
            "{err}"
        );
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let reachable = check_reachable(&executor);
        // The temporary directory's own ancestors may be private on this machine.
        if dir.path().ancestors().all(|a| {
            std::fs::metadata(a)
                .map(|m| m.permissions().mode() & 1 == 1)
                .unwrap_or(true)
        }) {
            assert_eq!(reachable, Ok(()));
        }
        std::fs::set_permissions(&executor, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let err = check_reachable(&executor).expect_err("not executable by others");
        assert!(err.contains("is not executable by other users"), "{err}");
    }

    #[test]
    fn host_ids_are_offsets_into_the_mapping() {
        assert_eq!(MAP.host_uid(0), Some(100_000));
        assert_eq!(MAP.host_gid(65_534), Some(265_534));
        assert_eq!(MAP.host_uid(65_536), None, "outside the mapping");
    }
}
