//! The linux launcher (`--launcher=linux`, root only): each container is a set
//! of cgroups (see [`super::cgroups`]) that the executor joins between fork and
//! exec, so neither it nor anything it starts (daemons included) ever runs
//! outside them; destroy kills the whole cgroup and removes it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};

use super::cgroups::{Cgroups, Layout};
use super::reaper::Reaper;
use super::{prepare, validate_container_id, LaunchSpec, Launcher, LauncherError};
use crate::sys::{KillTarget, Signal, SpawnRequest, Syscalls};

/// How long destroy waits for the freezer before killing anyway.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long destroy waits for the killed processes to leave the cgroups.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(60);

/// See the module documentation.
pub struct LinuxLauncher {
    inner: Arc<Inner>,
}

struct Inner {
    sys: Arc<dyn Syscalls>,
    reaper: Reaper,
    cgroups: Cgroups,
    /// container id -> executor pid, launched or recovered.
    executors: Mutex<HashMap<String, u32>>,
}

impl Inner {
    fn executors(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.executors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LinuxLauncher {
    /// Detects the cgroup layout under `hierarchy` and makes a launcher keeping
    /// its containers under `root`. Fails without root or usable cgroups, with a
    /// message that names `--launcher=posix`.
    pub fn new(
        sys: Arc<dyn Syscalls>,
        hierarchy: &Path,
        root: &str,
    ) -> Result<Self, LauncherError> {
        let euid = sys.geteuid();
        if euid != 0 {
            return Err(LauncherError::NotRoot { euid });
        }
        let layout = Layout::detect_host(hierarchy)?;
        if let Layout::V1 { mounts, .. } = &layout {
            for controller in ["cpu", "memory"] {
                if !mounts.contains_key(controller) {
                    tracing::warn!(controller, hierarchy = %hierarchy.display(),
                        "cgroup v1 controller not mounted: limits on it will be refused");
                }
            }
        }
        tracing::info!(version = layout.version(), hierarchy = %hierarchy.display(), root,
            "linux launcher uses cgroup v{}", layout.version());
        Ok(Self::with_cgroups(sys, Cgroups::new(layout, root)?))
    }

    pub(crate) fn with_cgroups(sys: Arc<dyn Syscalls>, cgroups: Cgroups) -> Self {
        let reaper = Reaper::new(Arc::clone(&sys));
        Self {
            inner: Arc::new(Inner {
                sys,
                reaper,
                cgroups,
                executors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cgroup layout in use (for logs and `/state`).
    pub fn layout(&self) -> &Layout {
        self.inner.cgroups.layout()
    }
}

/// Freezes (when needed), kills and thaws, then waits for the cgroups to empty.
async fn kill_container(inner: &Inner, container_id: &str) -> Result<(), LauncherError> {
    let cgroups = &inner.cgroups;
    let me = std::process::id();
    let kill_listed = |pids: &[u32]| {
        for &pid in pids {
            if pid != me {
                // ESRCH: it died meanwhile. Anything else is reported by the wait below.
                let _ = inner.sys.kill(KillTarget::Process(pid), Signal::SIGKILL);
            }
        }
    };
    // Nothing left (the executor exited and took its tasks along): nothing
    // can fork either, so there is nothing to freeze or kill.
    if cgroups.pids(container_id)?.is_empty() {
        return Ok(());
    }
    // An orphan may have lost its freezer cgroup (but not, say, its memory one):
    // then there is nothing to freeze, only processes to kill.
    let freezable = cgroups.primary_dir(container_id).is_dir();
    if freezable && !cgroups.kill_all(container_id)? {
        // Frozen processes cannot fork, so the listing below is complete.
        cgroups.set_frozen(container_id, true)?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        while !cgroups.is_frozen(container_id)? {
            if Instant::now() > deadline {
                tracing::warn!(%container_id, "cgroup did not freeze; killing without freezing");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            // The v1 freezer can stay FREEZING; asking again moves it on (as Mesos does).
            cgroups.set_frozen(container_id, true)?;
        }
        kill_listed(&cgroups.pids(container_id)?);
        cgroups.set_frozen(container_id, false)?;
    }
    let deadline = Instant::now() + EMPTY_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    loop {
        let left = cgroups.pids(container_id)?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LauncherError::DestroyTimeout {
                container_id: container_id.to_string(),
                pids: left,
                seconds: EMPTY_TIMEOUT.as_secs(),
            });
        }
        // Stragglers (e.g. in a v1 memory cgroup but not in the freezer's).
        kill_listed(&left);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Attaches `program` to the container's v2 cgroup.
fn attach_bind_filter(
    inner: &Inner,
    container_id: &str,
    program: &[crate::sys::EbpfInstruction],
) -> Result<(), LauncherError> {
    let unsupported = |reason: String| LauncherError::BindFilterUnsupported {
        container_id: container_id.to_string(),
        reason,
    };
    let dir = inner.cgroups.v2_dir(container_id).ok_or_else(|| {
        unsupported(bind_filter_layout_problem(inner.cgroups.layout()).unwrap_or_default())
    })?;
    inner
        .sys
        .attach_bind_filter(&dir, program)
        .map_err(|e| unsupported(e.to_string()))
}

/// Why this cgroup layout cannot carry bind filters, if it cannot.
fn bind_filter_layout_problem(layout: &Layout) -> Option<String> {
    match layout {
        Layout::V1 {
            unified: None,
            hierarchy,
            ..
        } => Some(format!(
            "cgroup BPF needs a cgroup v2 hierarchy and none is mounted under {} \
             (mount cgroup2 at {}/unified, or use a cgroup v2 host)",
            hierarchy.display(),
            hierarchy.display()
        )),
        _ => None,
    }
}

/// Removes the container's cgroups, retrying while the kernel still reports them busy.
async fn remove_cgroups(inner: &Inner, container_id: &str) -> Result<(), LauncherError> {
    let mut tries = 0;
    loop {
        match inner.cgroups.remove(inner.sys.as_ref(), container_id) {
            Ok(()) => return Ok(()),
            Err(e) if tries < 50 => {
                tracing::debug!(%container_id, error = %e, "cgroup busy; retrying removal");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Launcher for LinuxLauncher {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<u32, LauncherError> {
        let id = &spec.container_id;
        validate_container_id(id)?;
        let inner = &self.inner;
        if inner.executors().contains_key(id) {
            return Err(LauncherError::ContainerExists(id.clone()));
        }
        // Everything that can fail without side effects comes before the cgroups.
        let prepared = prepare(inner.sys.as_ref(), spec)?;
        let cgroup_procs = inner.cgroups.create(inner.sys.as_ref(), id, &spec.limits)?;
        if let Some(program) = &spec.bind_filter {
            // Before the executor exists, so nothing in the container ever
            // binds without the filter.
            if let Err(e) = attach_bind_filter(inner, id, program) {
                if let Err(e) = inner.cgroups.remove(inner.sys.as_ref(), id) {
                    tracing::warn!(container_id = %id, error = %e, "could not remove cgroups of a failed launch");
                }
                return Err(e);
            }
        }
        let spawned = inner.sys.spawn(SpawnRequest {
            program: spec.program.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            stdout: prepared.stdout,
            stderr: prepared.stderr,
            cgroup_procs,
            new_session: true,
            user: prepared.user,
            security: spec.security.clone(),
            namespaces: spec.namespaces,
            mounts: spec.mounts.clone(),
        });
        let pid = match spawned {
            Ok(pid) => pid,
            Err(source) => {
                // The child never exec'd (it is reaped by spawn): the cgroups are empty.
                if let Err(e) = inner.cgroups.remove(inner.sys.as_ref(), id) {
                    tracing::warn!(container_id = %id, error = %e, "could not remove cgroups of a failed launch");
                }
                return Err(LauncherError::Spawn {
                    container_id: id.clone(),
                    program: spec.program.clone(),
                    source,
                });
            }
        };
        if let Err(source) = inner.reaper.adopt_child(id, pid) {
            let _ = inner.cgroups.remove(inner.sys.as_ref(), id);
            return Err(LauncherError::Io {
                context: format!("starting the reaper of container {id}"),
                source,
            });
        }
        inner.executors().insert(id.clone(), pid);
        tracing::info!(container_id = %id, pid, launcher = "linux", "launched executor");
        Ok(pid)
    }

    fn wait(&self, container_id: &str, pid: u32) -> BoxFuture<'static, Option<i32>> {
        self.inner.reaper.wait(container_id, pid)
    }

    fn destroy(&self, container_id: &str) -> BoxFuture<'static, Result<(), LauncherError>> {
        let inner = Arc::clone(&self.inner);
        let container_id = container_id.to_string();
        async move {
            validate_container_id(&container_id)?;
            if inner.cgroups.exists(&container_id) {
                kill_container(&inner, &container_id).await?;
                remove_cgroups(&inner, &container_id).await?;
                tracing::info!(%container_id, launcher = "linux", "destroyed container");
            }
            inner.executors().remove(&container_id);
            inner.reaper.forget(&container_id);
            Ok(())
        }
        .boxed()
    }

    fn pids(&self, container_id: &str) -> Result<Vec<u32>, LauncherError> {
        validate_container_id(container_id)?;
        self.inner.cgroups.pids(container_id)
    }

    fn cgroup_ids(&self, container_id: &str) -> Result<Vec<u64>, LauncherError> {
        validate_container_id(container_id)?;
        self.inner.cgroups.v2_ids(container_id)
    }

    fn bind_filter_support(&self) -> Result<(), String> {
        if let Some(problem) = bind_filter_layout_problem(self.inner.cgroups.layout()) {
            return Err(problem);
        }
        self.inner
            .sys
            .probe_bind_filter(&crate::isolators::bind_filter::allow_all())
            .map_err(|e| format!("this kernel does not run cgroup bind filters: {e}"))
    }

    fn restrict_bind(
        &self,
        container_id: &str,
        program: &[crate::sys::EbpfInstruction],
    ) -> Result<(), LauncherError> {
        validate_container_id(container_id)?;
        attach_bind_filter(&self.inner, container_id, program)
    }

    fn recover(&self, alive: &[(String, u32)]) -> Result<Vec<String>, LauncherError> {
        let inner = &self.inner;
        let mut known = BTreeSet::new();
        for (container_id, pid) in alive {
            validate_container_id(container_id)?;
            if !inner.cgroups.exists(container_id) {
                tracing::warn!(%container_id, pid, "recovered container has no cgroup; it cannot be contained");
            } else if !inner.cgroups.pids(container_id)?.contains(pid) {
                tracing::warn!(%container_id, pid, "recovered executor is not in its container's cgroup");
            }
            inner.executors().insert(container_id.clone(), *pid);
            known.insert(container_id.as_str());
        }
        let orphans: Vec<String> = inner
            .cgroups
            .containers()?
            .into_iter()
            .filter(|id| !known.contains(id.as_str()))
            .collect();
        if !orphans.is_empty() {
            tracing::info!(?orphans, "found orphan containers");
        }
        Ok(orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::cgroups::MIN_MEMORY_BYTES;
    use crate::launcher::testutil::{
        eventually, is_running, kill_quietly, new_id, read_pid_file, sh_spec,
    };
    use crate::launcher::{exit_code, exit_signal, Limits};
    use crate::sys::fake::{Call, RecordingSyscalls};
    use crate::sys::RealSyscalls;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    // ---- logic, with the recording fake and a v1 tree in a temporary directory ----

    fn fake_v1() -> (tempfile::TempDir, Arc<RecordingSyscalls>, LinuxLauncher) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounts: BTreeMap<String, PathBuf> = ["freezer", "cpu", "memory"]
            .iter()
            .map(|c| (c.to_string(), dir.path().join(c)))
            .collect();
        let layout = Layout::V1 {
            hierarchy: dir.path().to_path_buf(),
            mounts,
            unified: None,
        };
        let sys = Arc::new(RecordingSyscalls::new());
        let launcher =
            LinuxLauncher::with_cgroups(sys.clone(), Cgroups::new(layout, "mesos").expect("root"));
        (dir, sys, launcher)
    }

    #[tokio::test]
    async fn launch_joins_every_cgroup_before_exec_and_destroy_freezes_kills_thaws_removes() {
        let (dir, sys, launcher) = fake_v1();
        let sandbox = tempfile::tempdir().expect("sandbox");
        let mut spec = sh_spec(sandbox.path(), "c1", "sleep 30");
        spec.limits = Limits {
            cpus: Some(0.5),
            mem_bytes: Some(1),
            cfs_quota: true,
        };
        let pid = launcher.launch(&spec).expect("fake launch");
        let joined = sys.calls().into_iter().find_map(|c| match c {
            Call::Spawn {
                cgroup_procs,
                new_session,
                ..
            } => Some((cgroup_procs, new_session)),
            _ => None,
        });
        let expected: Vec<PathBuf> = ["freezer", "cpu", "memory"]
            .iter()
            .map(|c| dir.path().join(c).join("mesos/c1/cgroup.procs"))
            .collect();
        assert_eq!(joined, Some((expected, true)));
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).expect("limit file");
        assert_eq!(read("cpu/mesos/c1/cpu.shares"), "512");
        assert_eq!(read("cpu/mesos/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(
            read("memory/mesos/c1/memory.limit_in_bytes"),
            MIN_MEMORY_BYTES.to_string()
        );
        assert_eq!(launcher.pids("c1").expect("pids"), vec![pid]);

        let waiting = launcher.wait("c1", pid);
        launcher.destroy("c1").await.expect("destroy");
        assert_eq!(waiting.await, Some(libc::SIGKILL));
        assert!(sys
            .kills()
            .contains(&(KillTarget::Process(pid), Signal::SIGKILL)));
        for c in ["freezer", "cpu", "memory"] {
            assert!(
                !dir.path().join(c).join("mesos/c1").exists(),
                "{c} cgroup removed"
            );
        }
        launcher.destroy("c1").await.expect("idempotent");
    }

    #[tokio::test]
    async fn a_bind_filter_is_attached_to_the_unified_cgroup_before_the_executor_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounts: BTreeMap<String, PathBuf> = ["freezer", "memory"]
            .iter()
            .map(|c| (c.to_string(), dir.path().join(c)))
            .collect();
        let layout = Layout::V1 {
            hierarchy: dir.path().to_path_buf(),
            mounts,
            unified: Some(dir.path().join("unified")),
        };
        let sys = Arc::new(RecordingSyscalls::new());
        let launcher =
            LinuxLauncher::with_cgroups(sys.clone(), Cgroups::new(layout, "mesos").expect("root"));
        assert_eq!(launcher.bind_filter_support(), Ok(()));
        let sandbox = tempfile::tempdir().expect("sandbox");
        let mut spec = sh_spec(sandbox.path(), "c1", "sleep 30");
        let program = crate::isolators::bind_filter::allow_all();
        spec.bind_filter = Some(program.clone());
        launcher.launch(&spec).expect("fake launch");
        let unified = dir.path().join("unified/mesos/c1");
        let calls: Vec<Call> = sys
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::AttachBindFilter { .. } | Call::Spawn { .. }))
            .collect();
        assert!(
            matches!(&calls[..], [Call::AttachBindFilter { cgroup, program: p }, Call::Spawn { cgroup_procs, .. }]
                if *cgroup == unified && *p == program && cgroup_procs.contains(&unified.join("cgroup.procs"))),
            "attached first, then the executor joins the unified cgroup too: {calls:?}"
        );
        launcher.restrict_bind("c1", &program).expect("replaced");
        launcher.destroy("c1").await.expect("destroy");
        assert!(!unified.exists(), "the unified cgroup is removed too");

        sys.refuse_bind_filters();
        let err = launcher.bind_filter_support().expect_err("refused");
        assert!(err.contains("does not run cgroup bind filters"), "{err}");
        let err = launcher
            .launch(&sh_spec(sandbox.path(), "c2", "x"))
            .map(|_| ());
        assert!(err.is_ok(), "containers without a filter still launch");
        let mut spec = sh_spec(sandbox.path(), "c3", "x");
        spec.bind_filter = Some(program);
        let err = launcher
            .launch(&spec)
            .expect_err("never without its filter");
        assert!(
            matches!(err, LauncherError::BindFilterUnsupported { .. }),
            "{err}"
        );
        assert!(
            !dir.path().join("freezer/mesos/c3").exists(),
            "nothing left behind"
        );
    }

    #[tokio::test]
    async fn without_a_v2_hierarchy_bind_filters_are_refused_naming_the_fix() {
        let (_dir, _sys, launcher) = fake_v1();
        let err = launcher.bind_filter_support().expect_err("v1 only");
        assert!(
            err.contains("cgroup BPF needs a cgroup v2 hierarchy"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_failed_spawn_leaves_no_cgroup_behind() {
        let (dir, sys, launcher) = fake_v1();
        sys.fail_spawn(std::io::ErrorKind::NotFound);
        let sandbox = tempfile::tempdir().expect("sandbox");
        let err = launcher
            .launch(&sh_spec(sandbox.path(), "c1", "x"))
            .expect_err("spawn fails");
        assert!(matches!(err, LauncherError::Spawn { .. }), "{err}");
        assert!(!dir.path().join("freezer/mesos/c1").exists());
    }

    #[tokio::test]
    async fn recover_returns_unknown_cgroups_as_orphans() {
        let (dir, _sys, launcher) = fake_v1();
        for d in [
            "freezer/mesos/known",
            "freezer/mesos/orphan1",
            "memory/mesos/orphan2",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let orphans = launcher
            .recover(&[("known".to_string(), 4242)])
            .expect("recover");
        assert_eq!(orphans, vec!["orphan1".to_string(), "orphan2".to_string()]);
        assert!(
            launcher.recover(&[("../x".to_string(), 1)]).is_err(),
            "ids are validated"
        );
        // An orphan without a freezer cgroup is still destroyed.
        launcher.destroy("orphan2").await.expect("destroy orphan2");
        assert!(!dir.path().join("memory/mesos/orphan2").exists());
    }

    #[test]
    fn the_linux_launcher_refuses_to_start_without_root() {
        let sys = Arc::new(RecordingSyscalls::new());
        sys.set_euid(1000);
        let err = LinuxLauncher::new(sys, Path::new("/sys/fs/cgroup"), "mesos")
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "the linux launcher needs root (effective uid is 1000); use --launcher=posix"
        );
    }

    // ---- the real thing: root and cgroups required ----

    /// A launcher on this host's cgroups under a unique root, removed on drop
    /// (killing whatever is left, so a failed test leaks nothing).
    struct Real {
        launcher: LinuxLauncher,
        cgroups: Cgroups,
    }

    impl Real {
        fn new(hierarchy: &str) -> Option<Real> {
            Self::with(hierarchy, |c| c)
        }

        fn with(hierarchy: &str, tweak: impl FnOnce(Cgroups) -> Cgroups) -> Option<Real> {
            if RealSyscalls.geteuid() != 0 {
                eprintln!("skipped: the linux launcher tests need root");
                return None;
            }
            let layout = match Layout::detect_host(Path::new(hierarchy)) {
                Ok(layout) => layout,
                Err(e) => {
                    eprintln!("skipped: {e}");
                    return None;
                }
            };
            let root = format!("mesos-test-{}", new_id());
            let cgroups = tweak(Cgroups::new(layout, &root).expect("valid root"));
            let launcher = LinuxLauncher::with_cgroups(Arc::new(RealSyscalls), cgroups.clone());
            Some(Real { launcher, cgroups })
        }

        fn second_instance(&self) -> LinuxLauncher {
            LinuxLauncher::with_cgroups(Arc::new(RealSyscalls), self.cgroups.clone())
        }
    }

    impl Drop for Real {
        fn drop(&mut self) {
            for base in self.cgroups.bases() {
                for _ in 0..100 {
                    let cgroups: Vec<PathBuf> = {
                        let mut all = vec![base.clone()];
                        let mut i = 0;
                        while i < all.len() {
                            if let Ok(entries) = std::fs::read_dir(&all[i]) {
                                all.extend(
                                    entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()),
                                );
                            }
                            i += 1;
                        }
                        all
                    };
                    for cg in &cgroups {
                        let _ = std::fs::write(cg.join("freezer.state"), "THAWED");
                        let _ = std::fs::write(cg.join("cgroup.freeze"), "0");
                        for pid in std::fs::read_to_string(cg.join("cgroup.procs"))
                            .unwrap_or_default()
                            .lines()
                        {
                            if let Ok(pid) = pid.trim().parse() {
                                kill_quietly(pid);
                            }
                        }
                    }
                    for cg in cgroups.iter().rev() {
                        let _ = std::fs::remove_dir(cg);
                    }
                    if !base.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    fn cgroup_lines(pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_executor_is_in_the_container_cgroup_from_its_first_instruction() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        let sandbox = tempfile::tempdir().expect("sandbox");
        let id = new_id();
        // The executor itself reads its cgroups: proves it joined before exec.
        let mut spec = sh_spec(sandbox.path(), &id, "");
        spec.program = PathBuf::from("/bin/cat");
        spec.args = vec!["/proc/self/cgroup".into()];
        let pid = real.launcher.launch(&spec).expect("launch cat");
        let status = real.launcher.wait(&id, pid).await.expect("our child");
        assert_eq!(exit_code(status), Some(0));
        let seen = std::fs::read_to_string(&spec.stdout).expect("cat output");
        let leaf = format!("/{}/{id}", real.cgroups_root());
        match real.launcher.layout() {
            Layout::V1 { mounts, .. } => {
                for controller in mounts.keys() {
                    assert!(
                        seen.lines()
                            .any(|l| l.contains(controller.as_str()) && l.ends_with(&leaf)),
                        "{controller} cgroup {leaf} in:\n{seen}"
                    );
                }
            }
            Layout::V2 { .. } => assert!(seen.lines().any(|l| l == format!("0::{leaf}")), "{seen}"),
        }
        real.launcher.destroy(&id).await.expect("destroy");
    }

    impl Real {
        fn cgroups_root(&self) -> String {
            let primary = self.cgroups.primary_dir("x");
            primary
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .unwrap_or_default()
        }
    }

    async fn double_forked_daemon_is_killed(real: Real) {
        let sandbox = tempfile::tempdir().expect("sandbox");
        let id = new_id();
        let script = "(setsid sleep 300 & echo $! > daemon.pid); sleep 300";
        let pid = real
            .launcher
            .launch(&sh_spec(sandbox.path(), &id, script))
            .expect("launch");
        let daemon = read_pid_file(&sandbox.path().join("daemon.pid")).await;
        let escaped = eventually(Duration::from_secs(10), || {
            let p = RealSyscalls.process(daemon).ok().flatten()?;
            (p.sid == daemon && p.ppid != pid).then_some(p)
        })
        .await;
        assert!(escaped.is_some(), "the daemon left the executor's session");
        let pids = real.launcher.pids(&id).expect("pids");
        assert!(
            pids.contains(&pid) && pids.contains(&daemon),
            "both in the cgroup: {pids:?}"
        );
        assert!(cgroup_lines(daemon).contains(&id));

        let waiting = real.launcher.wait(&id, pid);
        real.launcher.destroy(&id).await.expect("destroy");
        assert!(!is_running(daemon), "the double-forked daemon was killed");
        assert_eq!(
            exit_signal(waiting.await.expect("our child")),
            Some(libc::SIGKILL)
        );
        for dir in real.cgroups.dirs(&id) {
            assert!(!dir.exists(), "{} removed", dir.display());
        }
        assert!(real
            .launcher
            .pids(&id)
            .expect("pids of a gone container")
            .is_empty());
        real.launcher
            .destroy(&id)
            .await
            .expect("destroy is idempotent");
    }

    #[tokio::test]
    async fn destroy_kills_a_double_forked_daemon_and_removes_the_cgroups() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        double_forked_daemon_is_killed(real).await;
    }

    #[tokio::test]
    async fn on_cgroup_v2_destroy_kills_a_daemon_with_cgroup_kill() {
        // On a hybrid host, the v2 hierarchy is usable for everything but limits.
        let Some(real) =
            Real::new("/sys/fs/cgroup/unified").or_else(|| Real::new("/sys/fs/cgroup"))
        else {
            return;
        };
        if real.launcher.layout().version() != 2 {
            eprintln!("skipped: no cgroup v2 hierarchy here");
            return;
        }
        double_forked_daemon_is_killed(real).await;
    }

    #[tokio::test]
    async fn on_cgroup_v2_destroy_kills_a_daemon_by_freezing_without_cgroup_kill() {
        let hierarchy = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|h| matches!(Layout::detect_host(Path::new(h)), Ok(Layout::V2 { .. })));
        let Some(hierarchy) = hierarchy else {
            eprintln!("skipped: no cgroup v2 hierarchy here");
            return;
        };
        let Some(real) = Real::with(hierarchy, Cgroups::without_cgroup_kill) else {
            return;
        };
        double_forked_daemon_is_killed(real).await;
    }

    #[tokio::test]
    async fn limits_are_written_to_the_cgroup_files() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        let sandbox = tempfile::tempdir().expect("sandbox");
        let id = new_id();
        let mut spec = sh_spec(sandbox.path(), &id, "sleep 30");
        spec.limits = Limits {
            cpus: Some(0.5),
            mem_bytes: Some(64 << 20),
            cfs_quota: true,
        };
        let launched = real.launcher.launch(&spec);
        if let Err(LauncherError::ControllerUnavailable { .. }) = &launched {
            eprintln!(
                "skipped: {}",
                launched.err().map(|e| e.to_string()).unwrap_or_default()
            );
            return;
        }
        launched.expect("launch with limits");
        let read = |dir: &Path, file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let dirs = real.cgroups.dirs(&id);
        let find = |file: &str| {
            dirs.iter()
                .find(|d| d.join(file).exists())
                .map(|d| read(d, file))
        };
        match real.launcher.layout() {
            Layout::V1 { .. } => {
                assert_eq!(find("memory.limit_in_bytes").as_deref(), Some("67108864"));
                assert_eq!(find("cpu.shares").as_deref(), Some("512"));
                assert_eq!(find("cpu.cfs_quota_us").as_deref(), Some("50000"));
                assert_eq!(find("cpu.cfs_period_us").as_deref(), Some("100000"));
            }
            Layout::V2 { .. } => {
                assert_eq!(find("memory.max").as_deref(), Some("67108864"));
                assert_eq!(find("cpu.max").as_deref(), Some("50000 100000"));
            }
        }
        real.launcher.destroy(&id).await.expect("destroy");
    }

    #[tokio::test]
    async fn recover_reports_an_orphan_left_by_a_previous_launcher() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        let sandbox = tempfile::tempdir().expect("sandbox");
        let (kept, orphan) = (new_id(), new_id());
        let kept_pid = real
            .launcher
            .launch(&sh_spec(sandbox.path(), &kept, "sleep 300"))
            .expect("launch kept");
        let mut spec = sh_spec(sandbox.path(), &orphan, "sleep 300");
        spec.stdout = sandbox.path().join("orphan.out");
        let orphan_pid = real.launcher.launch(&spec).expect("launch orphan");

        // "Restart": a new instance that knows only `kept`.
        let restarted = real.second_instance();
        let orphans = restarted
            .recover(&[(kept.clone(), kept_pid)])
            .expect("recover");
        assert_eq!(orphans, vec![orphan.clone()]);
        assert!(restarted.pids(&kept).expect("pids").contains(&kept_pid));

        let waiting = restarted.wait(&kept, kept_pid);
        restarted.destroy(&orphan).await.expect("destroy orphan");
        assert!(!is_running(orphan_pid));
        restarted.destroy(&kept).await.expect("destroy kept");
        let status = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("wait resolves");
        assert_eq!(status, None, "not the new instance's child: no status");
        assert!(
            restarted.recover(&[]).expect("recover again").is_empty(),
            "nothing left"
        );
    }

    #[tokio::test]
    async fn a_user_switch_to_nobody_runs_the_executor_as_nobody() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        let Ok(Some(nobody)) = RealSyscalls.lookup_user("nobody") else {
            eprintln!("skipped: no user nobody");
            return;
        };
        let sandbox = tempfile::tempdir().expect("sandbox");
        let id = new_id();
        let mut spec = sh_spec(sandbox.path(), &id, "sleep 30");
        spec.user = Some("nobody".into());
        let pid = real.launcher.launch(&spec).expect("launch as nobody");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let ids = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| {
                    l.split_whitespace()
                        .skip(1)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let uid = nobody.uid.to_string();
        let gid = nobody.gid.to_string();
        assert_eq!(
            ids("Uid:"),
            vec![uid.clone(), uid.clone(), uid.clone(), uid],
            "real, effective, saved, fs"
        );
        assert_eq!(
            ids("Gid:"),
            vec![gid.clone(), gid.clone(), gid.clone(), gid]
        );
        let groups = ids("Groups:");
        assert!(
            !groups.contains(&"0".to_string()),
            "root's groups dropped: {groups:?}"
        );
        real.launcher.destroy(&id).await.expect("destroy");

        let mut spec = sh_spec(sandbox.path(), &new_id(), "true");
        spec.user = Some("no-such-user-here".into());
        let err = real.launcher.launch(&spec).expect_err("unknown user");
        assert_eq!(err.to_string(), "user \"no-such-user-here\" does not exist");
    }

    #[tokio::test]
    async fn linux_wait_gives_the_exit_code_of_a_process_that_exits_3() {
        let Some(real) = Real::new("/sys/fs/cgroup") else {
            return;
        };
        let sandbox = tempfile::tempdir().expect("sandbox");
        let id = new_id();
        let pid = real
            .launcher
            .launch(&sh_spec(sandbox.path(), &id, "exit 3"))
            .expect("launch");
        let status = tokio::time::timeout(Duration::from_secs(10), real.launcher.wait(&id, pid))
            .await
            .expect("exits promptly")
            .expect("our child");
        assert_eq!(exit_code(status), Some(3));
        real.launcher.destroy(&id).await.expect("destroy");
    }
}
