//! The posix launcher (`--launcher=posix`): no cgroups, no root needed. The
//! executor leads its own session; a container is that session, its process
//! groups, and every process descended from them.
//!
//! Limitation (as in Mesos): a process that double-forks *and* calls `setsid`
//! is reparented away from the tree and leaves the session, so destroy cannot
//! find it. Use the linux launcher to contain such processes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};

use super::reaper::Reaper;
use super::{prepare, validate_container_id, LaunchSpec, Launcher, LauncherError};
use crate::sys::{KillTarget, ProcessInfo, Signal, SpawnRequest, Syscalls};

/// How long destroy waits for the killed processes to be gone.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(30);

/// See the module documentation.
pub struct PosixLauncher {
    inner: Arc<Inner>,
}

struct Inner {
    sys: Arc<dyn Syscalls>,
    reaper: Reaper,
    /// container id -> executor pid (= its session id and process group id).
    leaders: Mutex<HashMap<String, u32>>,
}

impl Inner {
    fn leaders(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.leaders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PosixLauncher {
    /// A posix launcher making its system calls through `sys`.
    pub fn new(sys: Arc<dyn Syscalls>) -> Self {
        let reaper = Reaper::new(Arc::clone(&sys));
        Self {
            inner: Arc::new(Inner {
                sys,
                reaper,
                leaders: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// The live processes of the container whose executor (session leader) was
/// `leader`: members of its session or process group, and their descendants.
/// Works after the leader itself is gone, because the ids outlive it.
pub(crate) fn container_processes(procs: &[ProcessInfo], leader: u32) -> BTreeSet<u32> {
    let me = std::process::id();
    let mut found: BTreeSet<u32> = procs
        .iter()
        .filter(|p| p.sid == leader || p.pgid == leader)
        .map(|p| p.pid)
        .collect();
    loop {
        let before = found.len();
        for p in procs {
            if found.contains(&p.ppid) {
                found.insert(p.pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    let exited: BTreeSet<u32> = procs
        .iter()
        .filter(|p| p.is_exited())
        .map(|p| p.pid)
        .collect();
    found.retain(|pid| *pid > 1 && *pid != me && !exited.contains(pid));
    found
}

impl Launcher for PosixLauncher {
    fn name(&self) -> &'static str {
        "posix"
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<u32, LauncherError> {
        validate_container_id(&spec.container_id)?;
        let inner = &self.inner;
        if inner.leaders().contains_key(&spec.container_id) {
            return Err(LauncherError::ContainerExists(spec.container_id.clone()));
        }
        if spec.namespaces != crate::sys::Namespaces::default() {
            return Err(LauncherError::Io {
                context: format!("launching container {}", spec.container_id),
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "namespaces need --launcher=linux",
                ),
            });
        }
        if !spec.mounts.is_empty() {
            return Err(LauncherError::Spawn {
                container_id: spec.container_id.clone(),
                program: spec.program.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "bind mounts need --launcher=linux",
                ),
            });
        }
        if let Some(program) = &spec.bind_filter {
            // Never run a container without the filter it was promised.
            self.restrict_bind(&spec.container_id, program)?;
        }
        let prepared = prepare(inner.sys.as_ref(), spec)?;
        let pid = inner
            .sys
            .spawn(SpawnRequest {
                program: spec.program.clone(),
                args: spec.args.clone(),
                env: spec.env.clone(),
                working_dir: spec.working_dir.clone(),
                stdout: prepared.stdout,
                stderr: prepared.stderr,
                cgroup_procs: Vec::new(),
                new_session: true,
                user: prepared.user,
                security: spec.security.clone(),
                namespaces: Default::default(),
                mounts: Vec::new(),
            })
            .map_err(|source| LauncherError::Spawn {
                container_id: spec.container_id.clone(),
                program: spec.program.clone(),
                source,
            })?;
        inner
            .reaper
            .adopt_child(&spec.container_id, pid)
            .map_err(LauncherError::io(format!(
                "starting the reaper of container {}",
                spec.container_id
            )))?;
        inner.leaders().insert(spec.container_id.clone(), pid);
        tracing::info!(container_id = %spec.container_id, pid, launcher = "posix", "launched executor");
        Ok(pid)
    }

    fn wait(&self, container_id: &str, pid: u32) -> BoxFuture<'static, Option<i32>> {
        self.inner.reaper.wait(container_id, pid)
    }

    fn destroy(&self, container_id: &str) -> BoxFuture<'static, Result<(), LauncherError>> {
        let inner = Arc::clone(&self.inner);
        let container_id = container_id.to_string();
        async move {
            let Some(leader) = inner.leaders().get(&container_id).copied() else {
                return Ok(());
            };
            let procs = || {
                inner
                    .sys
                    .processes()
                    .map_err(LauncherError::io("listing processes in /proc"))
            };
            // Stop everything first, re-listing until nothing new appears, so a
            // process cannot fork a new one between our listing and our kill.
            // Remember each one (with its start time, against pid reuse): once
            // its parent dies it may be reparented out of the tree.
            let mut targets: BTreeMap<u32, u64> = BTreeMap::new();
            for _ in 0..10 {
                let all = procs()?;
                let fresh: Vec<&ProcessInfo> = container_processes(&all, leader)
                    .into_iter()
                    .filter(|pid| !targets.contains_key(pid))
                    .filter_map(|pid| all.iter().find(|p| p.pid == pid))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                for p in fresh {
                    let _ = inner.sys.kill(KillTarget::Process(p.pid), Signal::SIGSTOP);
                    targets.insert(p.pid, p.start_time);
                }
            }
            let _ = inner.sys.kill(KillTarget::Group(leader), Signal::SIGKILL);
            let deadline = Instant::now() + DESTROY_TIMEOUT;
            loop {
                let all = procs()?;
                let mut alive = container_processes(&all, leader);
                alive.extend(
                    all.iter()
                        .filter(|p| !p.is_exited() && targets.get(&p.pid) == Some(&p.start_time))
                        .map(|p| p.pid),
                );
                if alive.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LauncherError::DestroyTimeout {
                        container_id,
                        pids: alive.into_iter().collect(),
                        seconds: DESTROY_TIMEOUT.as_secs(),
                    });
                }
                for pid in alive {
                    let _ = inner.sys.kill(KillTarget::Process(pid), Signal::SIGKILL);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            inner.leaders().remove(&container_id);
            inner.reaper.forget(&container_id);
            tracing::info!(%container_id, launcher = "posix", "destroyed container");
            Ok(())
        }
        .boxed()
    }

    fn pids(&self, container_id: &str) -> Result<Vec<u32>, LauncherError> {
        let Some(leader) = self.inner.leaders().get(container_id).copied() else {
            return Ok(Vec::new());
        };
        let procs = self
            .inner
            .sys
            .processes()
            .map_err(LauncherError::io("listing processes in /proc"))?;
        Ok(container_processes(&procs, leader).into_iter().collect())
    }

    fn recover(&self, alive: &[(String, u32)]) -> Result<Vec<String>, LauncherError> {
        let mut leaders = self.inner.leaders();
        for (container_id, pid) in alive {
            validate_container_id(container_id)?;
            leaders.insert(container_id.clone(), *pid);
        }
        // Without cgroups there is nothing that remembers unknown containers.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::testutil::{
        eventually, is_running, kill_quietly, new_id, read_pid_file, sh_spec,
    };
    use crate::launcher::{exit_code, exit_signal};
    use crate::sys::fake::{Call, RecordingSyscalls};
    use crate::sys::RealSyscalls;

    fn proc(pid: u32, ppid: u32, pgid: u32, sid: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            pgid,
            sid,
            state: 'S',
            start_time: u64::from(pid),
        }
    }

    #[test]
    fn the_container_is_the_session_its_groups_and_their_descendants() {
        let procs = [
            proc(100, 1, 100, 100),   // executor, session leader
            proc(101, 100, 101, 100), // its own process group, same session
            proc(102, 100, 102, 102), // setsid child, still in the tree
            proc(103, 102, 102, 102), // grandchild of that
            proc(200, 1, 200, 200),   // unrelated
            proc(104, 1, 104, 104),   // double-forked + setsid: escaped
            ProcessInfo {
                state: 'Z',
                ..proc(105, 100, 100, 100)
            }, // already dead
        ];
        let got: Vec<u32> = container_processes(&procs, 100).into_iter().collect();
        assert_eq!(got, vec![100, 101, 102, 103]);
        // After the leader is gone its group and session members are still
        // found by their ids; its setsid child, reparented, is not (destroy
        // remembers what it saw before killing the leader for that reason).
        let orphaned = [
            proc(101, 1, 101, 100),
            proc(102, 1, 102, 102),
            proc(103, 102, 102, 102),
        ];
        let got: Vec<u32> = container_processes(&orphaned, 100).into_iter().collect();
        assert_eq!(got, vec![101]);
    }

    #[tokio::test]
    async fn the_spec_security_reaches_the_child_after_the_user_switch() {
        use crate::sys::{PrivilegeStep, ProcessSecurity, UserIds};
        let sys = Arc::new(RecordingSyscalls::new());
        sys.add_user(UserIds {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        });
        let launcher = PosixLauncher::new(sys.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = sh_spec(dir.path(), "c1", "exit 0");
        spec.user = Some("nobody".into());
        spec.security = ProcessSecurity {
            bounding: Some(u64::MAX >> 23),
            effective: Some(1 << 13),
            no_new_privs: true,
            seccomp: vec![Vec::new()],
        };
        let pid = launcher.launch(&spec).expect("fake launch");
        let steps = sys
            .calls()
            .into_iter()
            .find_map(|c| match c {
                Call::Privileges { pid: p, steps } if p == pid => Some(steps),
                _ => None,
            })
            .expect("privileged steps recorded");
        use PrivilegeStep::*;
        assert_eq!(
            steps,
            vec![
                KeepCaps,
                SwitchUser,
                ClearAmbient,
                SetCapabilities {
                    effective: 1 << 13,
                    permitted: 1 << 13,
                    inheritable: 1 << 13
                },
                RaiseAmbient(13),
                NoNewPrivs,
                LoadSeccomp(0),
            ],
            "the fake kernel knows capabilities 0-40: none to drop from 0-40"
        );
    }

    #[tokio::test]
    async fn launch_passes_exactly_the_given_environment_in_a_new_session() {
        let sys = Arc::new(RecordingSyscalls::new());
        let launcher = PosixLauncher::new(sys.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = sh_spec(dir.path(), "c1", "exit 0");
        let pid = launcher.launch(&spec).expect("fake launch");
        let spawn = sys.calls().into_iter().find_map(|c| match c {
            Call::Spawn {
                pid: p,
                env,
                new_session,
                cgroup_procs,
                args,
                ..
            } if p == pid => Some((env, new_session, cgroup_procs, args)),
            _ => None,
        });
        let (env, new_session, cgroup_procs, args) = spawn.expect("spawn recorded");
        assert_eq!(env, spec.env);
        assert!(new_session);
        assert!(cgroup_procs.is_empty());
        assert_eq!(args, spec.args);
        assert!(matches!(
            launcher.launch(&spec),
            Err(LauncherError::ContainerExists(_))
        ));
        sys.exit(pid, 0);
        assert_eq!(launcher.wait("c1", pid).await, Some(0));
    }

    #[tokio::test]
    async fn destroy_stops_then_kills_only_the_containers_processes_and_is_idempotent() {
        let sys = Arc::new(RecordingSyscalls::new());
        let launcher = PosixLauncher::new(sys.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        let pid = launcher
            .launch(&sh_spec(dir.path(), "c1", "sleep 30"))
            .expect("fake launch");
        sys.add_process(proc(5000, pid, 5000, pid));
        sys.add_process(proc(5001, 5000, 5001, 5001));
        sys.add_process(proc(6000, 1, 6000, 6000));
        assert_eq!(launcher.pids("c1").expect("pids"), vec![pid, 5000, 5001]);
        launcher.destroy("c1").await.expect("destroy");
        let kills = sys.kills();
        for p in [pid, 5000, 5001] {
            assert!(
                kills.contains(&(KillTarget::Process(p), Signal::SIGSTOP)),
                "{p} stopped"
            );
        }
        assert!(kills.contains(&(KillTarget::Group(pid), Signal::SIGKILL)));
        assert!(
            !kills.iter().any(|(t, _)| *t == KillTarget::Process(6000)),
            "unrelated untouched"
        );
        assert!(sys.process(6000).expect("fake").is_some());
        launcher
            .destroy("c1")
            .await
            .expect("second destroy is a no-op");
        launcher
            .destroy("never-launched")
            .await
            .expect("unknown container is a no-op");
    }

    #[tokio::test]
    async fn posix_output_lands_in_the_files_and_wait_resolves_after_destroy() {
        let launcher = PosixLauncher::new(Arc::new(RealSyscalls));
        let dir = tempfile::tempdir().expect("tempdir");
        let id = new_id();
        let spec = sh_spec(dir.path(), &id, "echo out; echo err >&2; sleep 30");
        std::fs::write(&spec.stdout, "earlier\n").expect("pre-existing stdout");
        let pid = launcher.launch(&spec).expect("launch sh");
        let waiting = tokio::spawn(launcher.wait(&id, pid));

        let out = eventually(Duration::from_secs(10), || {
            let out = std::fs::read_to_string(&spec.stdout).ok()?;
            let err = std::fs::read_to_string(&spec.stderr).ok()?;
            (out.contains("out") && err.contains("err")).then_some((out, err))
        })
        .await
        .expect("output reaches the files");
        assert_eq!(out.0, "earlier\nout\n", "stdout is appended to");
        assert_eq!(out.1, "err\n");

        let info = RealSyscalls
            .process(pid)
            .expect("proc")
            .expect("executor runs");
        assert_eq!(
            (info.sid, info.pgid),
            (pid, pid),
            "executor leads its own session"
        );
        assert!(launcher.pids(&id).expect("pids").contains(&pid));

        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "wait does not resolve while the executor runs"
        );
        launcher.destroy(&id).await.expect("destroy");
        let status = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("wait resolves after destroy")
            .expect("join")
            .expect("our child has a status");
        assert_eq!(exit_signal(status), Some(libc::SIGKILL));
        assert!(launcher.pids(&id).expect("pids").is_empty());
    }

    #[tokio::test]
    async fn posix_wait_gives_the_exit_code_of_a_process_that_exits_3() {
        let launcher = PosixLauncher::new(Arc::new(RealSyscalls));
        let dir = tempfile::tempdir().expect("tempdir");
        let id = new_id();
        let pid = launcher
            .launch(&sh_spec(dir.path(), &id, "exit 3"))
            .expect("launch");
        let status = tokio::time::timeout(Duration::from_secs(10), launcher.wait(&id, pid))
            .await
            .expect("exits promptly")
            .expect("our child has a status");
        assert_eq!(status, 3 << 8, "raw wait status, as Mesos reports it");
        assert_eq!(exit_code(status), Some(3));
        launcher.destroy(&id).await.expect("destroy after exit");
    }

    #[tokio::test]
    async fn posix_destroy_kills_children_that_left_the_process_group_or_session() {
        let launcher = PosixLauncher::new(Arc::new(RealSyscalls));
        let dir = tempfile::tempdir().expect("tempdir");
        let id = new_id();
        // `setsid sleep` (not a group leader, so it setsid()s in place): a child
        // in a new session, still below the executor in the process tree.
        let script = "setsid sleep 100 & echo $! > escaped.pid; sleep 100 & wait";
        let pid = launcher
            .launch(&sh_spec(dir.path(), &id, script))
            .expect("launch");
        let escaped = read_pid_file(&dir.path().join("escaped.pid")).await;
        let moved = eventually(Duration::from_secs(10), || {
            RealSyscalls
                .process(escaped)
                .ok()
                .flatten()
                .filter(|p| p.sid == escaped)
        })
        .await;
        assert!(moved.is_some(), "the child runs in its own session");
        assert!(launcher.pids(&id).expect("pids").contains(&escaped));
        launcher.destroy(&id).await.expect("destroy");
        assert!(!is_running(escaped), "the setsid child was killed");
        assert!(!is_running(pid));
        kill_quietly(escaped);
    }

    #[tokio::test]
    async fn posix_destroy_misses_a_double_forked_setsid_daemon_which_linux_contains() {
        // Pins the documented limitation, so nobody relies on posix for this.
        let launcher = PosixLauncher::new(Arc::new(RealSyscalls));
        let dir = tempfile::tempdir().expect("tempdir");
        let id = new_id();
        let script = "(setsid sleep 300 & echo $! > daemon.pid); sleep 300";
        launcher
            .launch(&sh_spec(dir.path(), &id, script))
            .expect("launch");
        let daemon = read_pid_file(&dir.path().join("daemon.pid")).await;
        eventually(Duration::from_secs(10), || {
            let tree = launcher.pids(&id).ok()?;
            RealSyscalls
                .process(daemon)
                .ok()
                .flatten()
                .filter(|p| p.sid == daemon && !tree.contains(&p.ppid))
        })
        .await
        .expect("the daemon is in its own session and out of the process tree");
        launcher.destroy(&id).await.expect("destroy");
        let survived = is_running(daemon);
        kill_quietly(daemon);
        assert!(
            survived,
            "posix cannot see a reparented daemon in another session"
        );
    }
}
