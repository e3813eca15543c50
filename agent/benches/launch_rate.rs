//! Container launch rate with every isolator a root linux agent enables by
//! default, plus `network/ports`, beside the raw cost of the same cgroups and
//! the same process measured in the same run. The isolators and their
//! settings come from the agent's own flag handling (`Config::from_flags`
//! with the default `--isolation`, plus `network/ports`), so the bench follows
//! the defaults; `LAUNCH_RATE_AGENT_FLAGS="--isolation=..."` (any agent flags,
//! space separated) measures another set.
//!
//! * **raw** (the baseline), per launch: `mkdir` a fresh cgroup in each
//!   directory the linux launcher uses (v1: the distinct mounts of `freezer`,
//!   `cpu`, `cpuacct` and `memory`, plus on a hybrid host the controller-less
//!   one in the unified mount that the launcher makes for bind filters; v2:
//!   the one directory), fork a child that writes itself into their
//!   `cgroup.procs` and execs `/bin/true`, wait for it, and `rmdir` the
//!   cgroups. **raw + limits** also writes the container's limits
//!   (`cpu.shares`, `memory.limit_in_bytes`, `memory.soft_limit_in_bytes`;
//!   v2: `cpu.weight`, `memory.max`), which any launcher enforcing `cpus` and
//!   `mem` must do.
//! * Diagnostics (not baselines) split our overhead: raw + limits with the
//!   child spawned through the agent's syscall seam (`RealSyscalls::spawn`:
//!   output files in a sandbox, `setsid`); then also with the security the
//!   isolators ask for (bounding set, capabilities, `no_new_privs`, seccomp
//!   compiled once); then with their namespaces too (when there are any).
//! * **ours**, per launch, what the agent does for one container
//!   (`agent::executors::launch_container` and `agent::isolation`):
//!   `Isolators::prepare`, `ContainerLaunchInfo::security` (compiles the
//!   seccomp profile), `LinuxLauncher::launch` of `/bin/true` with the
//!   container's cpus/mem limits, `Launcher::wait`, `Isolators::isolate` and
//!   `Isolators::watch` (each watch spawned, as the agent does), wait for the
//!   exit, `Launcher::destroy`, `Isolators::cleanup`.
//!
//! Both run one launch at a time, under `--cgroups_root=mesos_bench_<pid>`,
//! removed at the end. Before criterion's figures it prints launches/s and
//! the mean latency of each (median over alternating rounds, so background
//! load hits them alike), the ratio, and where a launch of ours spends its
//! time. Needs root and cgroups; skips (successfully) without them.
//!
//! The `cgroups/*` isolators run on the agent's own `RealCgroupControl`.
//! Nothing is logged (no tracing subscriber), whereas the agent logs a few
//! lines per launch, and the executor's user is not switched (no user
//! lookup, `chown` or `setuid`).

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use criterion::Criterion;
use mesos_agent::flags::{Config, Flags};
use mesos_agent::isolators::capabilities::{LinuxCapabilitiesIsolator, LinuxNnpIsolator};
use mesos_agent::isolators::cgroups::{
    launch_limits, CgroupControl, CgroupsIsolator, RealCgroupControl, Subsystem, CGROUPS_CPU,
    CGROUPS_MEM,
};
use mesos_agent::isolators::namespaces::NamespacesIsolator;
use mesos_agent::isolators::ports::{BindRestrictor, NetworkPortsIsolator, PidLister};
use mesos_agent::isolators::seccomp::LinuxSeccompIsolator;
use mesos_agent::isolators::{ContainerConfig, Isolator, Isolators, LINUX_NNP, NETWORK_PORTS};
use mesos_agent::launcher::cgroups::{limit_writes, Cgroups, Layout};
use mesos_agent::launcher::{
    exit_code, LaunchSpec, Launcher, LauncherKind, Limits, DEFAULT_CGROUPS_HIERARCHY,
};
use mesos_agent::sys::{Namespaces, ProcessSecurity, RealSyscalls, SpawnRequest, Syscalls};
use mesos_proto::v1;

/// Alternating rounds of the hand-timed comparison, and launches per variant
/// in each round.
const ROUNDS: usize = 15;
const PER_ROUND: usize = 20;

const TRUE: &str = "/bin/true";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Extra agent flags for the whole run (e.g. another `--isolation`).
const FLAGS_ENV: &str = "LAUNCH_RATE_AGENT_FLAGS";

/// The agent's configuration from its flags, as `mesos-agent` derives it
/// (defaults for everything but what a bench must pin), plus `extra`.
fn agent_config(root: &str, work_dir: &Path, extra: &[String]) -> Result<Config, String> {
    let mut args = vec![
        "mesos-agent".to_string(),
        "--master=127.0.0.1:5050".into(),
        format!("--work_dir={}", work_dir.display()),
        "--insecure".into(),
        "--launcher=linux".into(),
        "--hostname=localhost".into(),
        format!("--cgroups_root={root}"),
    ];
    args.extend(extra.iter().cloned());
    let flags = Flags::try_parse_from(&args).map_err(|e| format!("{args:?}: {e}"))?;
    Config::from_flags(flags).map_err(|e| format!("{args:?}: {e}"))
}

/// The agent's default `--isolation` plus `network/ports`, unless
/// [`FLAGS_ENV`] names an `--isolation`; then [`FLAGS_ENV`]'s flags.
fn bench_config(root: &str, work_dir: &Path) -> Result<Config, String> {
    let extra: Vec<String> = std::env::var(FLAGS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut flags = extra.clone();
    if !extra.iter().any(|f| f.starts_with("--isolation")) {
        let defaults = agent_config(root, work_dir, &extra)?;
        let default = defaults.flags.isolation.unwrap_or_default();
        flags.push(format!("--isolation={default},{NETWORK_PORTS}"));
    }
    agent_config(root, work_dir, &flags)
}

/// The isolators of `config`, in the order and with the settings of the
/// agent's `build_isolators` / `cgroups_isolators`.
fn build_isolators(
    config: &Config,
    launcher: &Arc<dyn Launcher>,
    layout: &Layout,
    root: &str,
) -> Isolators {
    let mut list: Vec<Arc<dyn Isolator>> = Vec::new();
    if let Some(ports) = &config.ports {
        let mut ports = ports.clone();
        if ports.enforce_at_bind {
            if let Err(why) = launcher.bind_filter_support() {
                println!("no bind filters here ({why}): the ports isolator only scans");
                ports.enforce_at_bind = false;
            }
        }
        let lister = Arc::clone(launcher);
        let pids: Arc<PidLister> =
            Arc::new(move |id: &str| lister.pids(id).map_err(|e| io::Error::other(e.to_string())));
        let restricter = Arc::clone(launcher);
        let restrict: Arc<BindRestrictor> = Arc::new(move |id: &str, program: &[_]| {
            restricter
                .restrict_bind(id, program)
                .map_err(|e| io::Error::other(e.to_string()))
        });
        list.push(Arc::new(
            NetworkPortsIsolator::new(Arc::new(RealSyscalls), pids, ports)
                .with_bind_restrictor(restrict),
        ));
    }
    let control: Arc<dyn CgroupControl> = Arc::new(RealCgroupControl(
        Cgroups::new(layout.clone(), root).expect("the bench's cgroups root is valid"),
    ));
    for name in &config.isolation {
        let subsystem = match name.as_str() {
            CGROUPS_CPU => Subsystem::Cpu,
            CGROUPS_MEM => Subsystem::Mem,
            _ => continue,
        };
        list.push(Arc::new(CgroupsIsolator::new(
            subsystem,
            config.flags.cgroups_enable_cfs,
            Arc::clone(&control),
        )));
    }
    if let Some(capabilities) = config.capabilities {
        list.push(Arc::new(LinuxCapabilitiesIsolator::new(capabilities)));
    }
    if config.isolation.iter().any(|n| n == LINUX_NNP) {
        list.push(Arc::new(LinuxNnpIsolator));
    }
    if let Some(seccomp) = &config.seccomp {
        list.push(Arc::new(LinuxSeccompIsolator::new(seccomp.clone())));
    }
    for kind in &config.namespaces {
        list.push(Arc::new(NamespacesIsolator::new(*kind)));
    }
    Isolators::new(list)
}

fn scalar(name: &str, value: f64) -> v1::Resource {
    v1::Resource {
        name: name.into(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(v1::value::Scalar { value }),
        role: Some("*".into()),
        ..Default::default()
    }
}

/// A small task's resources: cpus 0.1, mem 32 (MB), one port.
fn resources() -> Vec<v1::Resource> {
    vec![
        scalar("cpus", 0.1),
        scalar("mem", 32.0),
        v1::Resource {
            name: "ports".into(),
            r#type: v1::value::Type::Ranges as i32,
            ranges: Some(v1::value::Ranges {
                range: vec![v1::value::Range {
                    begin: 31000,
                    end: 31000,
                }],
            }),
            role: Some("*".into()),
            ..Default::default()
        },
    ]
}

/// Time spent in each step, summed over launches.
#[derive(Default, Clone, Copy)]
struct Phases {
    steps: [Duration; 7],
}

impl Phases {
    fn add(&mut self, other: &Phases) {
        for (a, b) in self.steps.iter_mut().zip(other.steps) {
            *a += b;
        }
    }
}

/// Timestamps the steps of one launch.
struct Clock {
    last: Instant,
    phases: Phases,
    next: usize,
}

impl Clock {
    fn start() -> Self {
        Self {
            last: Instant::now(),
            phases: Phases::default(),
            next: 0,
        }
    }

    fn lap(&mut self) {
        let now = Instant::now();
        self.phases.steps[self.next] += now - self.last;
        self.last = now;
        self.next += 1;
    }
}

const OURS_STEPS: [&str; 7] = [
    "Isolators::prepare",
    "security() (seccomp compile)",
    "LinuxLauncher::launch (cgroups, limits, fork, exec)",
    "wait() + isolate + watch",
    "until the exit is reaped",
    "Launcher::destroy (freeze, kill, thaw, rmdir)",
    "Isolators::cleanup",
];

const RAW_STEPS: [&str; 4] = [
    "mkdir (+ limit writes), open cgroup.procs",
    "fork + exec (spawn)",
    "until the exit is reaped",
    "rmdir",
];

/// The agent side: launcher, isolators, and what every container gets.
struct Ours {
    launcher: Arc<dyn Launcher>,
    isolators: Isolators,
    resources: Vec<v1::Resource>,
    limits: Limits,
    sandbox: PathBuf,
}

impl Ours {
    /// One container, from prepare to cleanup.
    async fn launch(&self) -> Phases {
        let id = uuid::Uuid::new_v4().to_string();
        let mut clock = Clock::start();
        let config = ContainerConfig {
            container_id: id.clone(),
            resources: self.resources.clone(),
            container_info: None,
            user: None,
        };
        let info = self.isolators.prepare(&config).expect("prepare");
        clock.lap();
        let security = info.security().expect("compile the seccomp profile");
        clock.lap();
        let mut env = vec![("PATH".to_string(), PATH.to_string())];
        env.extend(info.environment);
        let (bind_filter, namespaces) = (info.bind_filter, info.namespaces);
        let spec = LaunchSpec {
            container_id: id.clone(),
            program: PathBuf::from(TRUE),
            args: Vec::new(),
            env,
            working_dir: self.sandbox.clone(),
            stdout: self.sandbox.join("stdout"),
            stderr: self.sandbox.join("stderr"),
            user: None,
            limits: self.limits,
            security,
            bind_filter,
            mounts: Vec::new(),
            namespaces,
        };
        let pid = self.launcher.launch(&spec).expect("launch");
        clock.lap();
        let exited = self.launcher.wait(&id, pid);
        self.isolators.isolate(&id, pid).expect("isolate");
        for watch in self.isolators.watch(&id) {
            tokio::spawn(async move {
                if let Some(limitation) = watch.await {
                    panic!("unexpected limitation: {}", limitation.message);
                }
            });
        }
        clock.lap();
        let status = exited.await.expect("our child's exit status");
        assert_eq!(exit_code(status), Some(0), "{TRUE} exited with {status:#x}");
        clock.lap();
        self.launcher.destroy(&id).await.expect("destroy");
        clock.lap();
        self.isolators.cleanup(&id);
        clock.lap();
        clock.phases
    }
}

/// What a raw launch does beyond mkdir, fork/exec `/bin/true`, wait, rmdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    /// Nothing: the baseline.
    Plain,
    /// Writes the container's limit files too.
    Limits,
    /// Limits, and spawns through the agent's syscall seam
    /// (`RealSyscalls::spawn`: sandbox output files, `setsid`) without any
    /// security: a diagnostic, not a baseline.
    AgentSpawn,
    /// Limits, and the agent's spawn with the isolators' `ProcessSecurity`
    /// (bounding set, capabilities, `no_new_privs`, seccomp; compiled once).
    AgentSpawnSecured,
    /// The same, in the isolators' namespaces too.
    AgentSpawnSecuredNs,
}

/// The baseline: the same cgroups, by hand.
struct Raw {
    /// Where the containers' cgroups go: one per distinct mount (v1) or one (v2).
    bases: Vec<PathBuf>,
    /// Control files to write, relative to a container's cgroup in that base.
    limit_files: Vec<(usize, &'static str, String)>,
    /// For the diagnostic kinds.
    sandbox: PathBuf,
    security: ProcessSecurity,
    namespaces: Namespaces,
    next: u64,
}

impl Raw {
    /// One raw launch of `kind`.
    fn launch(&mut self, kind: RawKind) -> Phases {
        self.next += 1;
        let name = format!("raw-{}", self.next);
        let mut clock = Clock::start();
        let dirs: Vec<PathBuf> = self.bases.iter().map(|b| b.join(&name)).collect();
        for dir in &dirs {
            std::fs::create_dir(dir).expect("mkdir cgroup");
        }
        if kind != RawKind::Plain {
            for (base, file, value) in &self.limit_files {
                std::fs::write(dirs[*base].join(file), value).expect("write a limit");
            }
        }
        let procs: Vec<(PathBuf, File)> = dirs
            .iter()
            .map(|d| {
                let path = d.join("cgroup.procs");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open cgroup.procs");
                (path, file)
            })
            .collect();
        clock.lap();
        if matches!(kind, RawKind::Plain | RawKind::Limits) {
            let fds: Vec<RawFd> = procs.iter().map(|(_, f)| f.as_raw_fd()).collect();
            let mut cmd = Command::new(TRUE);
            cmd.env_clear()
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            join_cgroups_before_exec(&mut cmd, fds);
            let mut child = cmd.spawn().expect("spawn /bin/true");
            drop(procs);
            clock.lap();
            let status = child.wait().expect("wait");
            assert!(status.success(), "{TRUE}: {status}");
        } else {
            let output = |file: &str| {
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(self.sandbox.join(file))
                    .expect("open an output file")
            };
            let (security, namespaces) = match kind {
                RawKind::AgentSpawnSecured => (self.security.clone(), Namespaces::default()),
                RawKind::AgentSpawnSecuredNs => (self.security.clone(), self.namespaces),
                _ => Default::default(),
            };
            let pid = RealSyscalls
                .spawn(SpawnRequest {
                    program: PathBuf::from(TRUE),
                    args: Vec::new(),
                    env: vec![("PATH".to_string(), PATH.to_string())],
                    working_dir: self.sandbox.clone(),
                    stdout: output("raw-stdout"),
                    stderr: output("raw-stderr"),
                    cgroup_procs: procs,
                    new_session: true,
                    user: None,
                    security,
                    namespaces,
                    mounts: Vec::new(),
                })
                .expect("spawn /bin/true");
            clock.lap();
            let status = RealSyscalls.wait_child(pid).expect("wait");
            assert_eq!(exit_code(status), Some(0), "{TRUE} exited with {status:#x}");
        }
        clock.lap();
        for dir in dirs.iter().rev() {
            std::fs::remove_dir(dir).expect("rmdir cgroup");
        }
        clock.lap();
        clock.phases
    }
}

/// Makes the child write itself ("0") into each of `fds` (open `cgroup.procs`
/// files) between fork and exec, as the launcher's child does.
#[allow(unsafe_code)]
fn join_cgroups_before_exec(cmd: &mut Command, fds: Vec<RawFd>) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // write(2), which is async-signal-safe, on descriptors that stay open in
    // the parent until spawn() returns (the caller drops them after), with a
    // static one-byte buffer; it allocates nothing (an io::Error from errno
    // does not allocate).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Removes `--cgroups_root` (and anything left below it) from every mount.
struct RootGuard {
    dirs: Vec<PathBuf>,
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        for dir in &self.dirs {
            remove_tree(dir);
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The distinct directories holding a container's cgroups under `root`, as
/// the launcher's `Cgroups::bases`: v1, the freezer's mount first, then the
/// other controllers' and, on a hybrid host, the unified mount (a
/// controller-less cgroup for bind filters); v2, the one hierarchy.
fn bases(layout: &Layout, root: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    match layout {
        Layout::V1 {
            mounts, unified, ..
        } => {
            let freezer = mounts.get("freezer");
            for mount in freezer.into_iter().chain(mounts.values()).chain(unified) {
                let base = mount.join(root);
                if !out.contains(&base) {
                    out.push(base);
                }
            }
        }
        Layout::V2 { hierarchy, .. } => out.push(hierarchy.join(root)),
    }
    out
}

/// Which base each limit file goes to (by controller), as `(base, file, value)`.
fn limit_files(
    layout: &Layout,
    root: &str,
    bases: &[PathBuf],
    limits: &Limits,
) -> Vec<(usize, &'static str, String)> {
    limit_writes(layout.version(), limits)
        .into_iter()
        .map(|w| {
            let base = match layout {
                Layout::V1 { mounts, .. } => {
                    let dir = mounts[w.controller].join(root);
                    bases
                        .iter()
                        .position(|b| *b == dir)
                        .expect("controller base")
                }
                Layout::V2 { .. } => 0,
            };
            (base, w.file, w.value)
        })
        .collect()
}

/// Why this host cannot run the bench, if it cannot.
fn unusable(layout: &Result<Layout, String>) -> Option<String> {
    if nix::unistd::geteuid().as_raw() != 0 {
        return Some("not root: the linux launcher and cgroups need root".into());
    }
    if !Path::new(TRUE).exists() {
        return Some(format!("{TRUE} is missing"));
    }
    match layout {
        Err(e) => Some(format!("no usable cgroups: {e}")),
        Ok(Layout::V1 { mounts, .. }) => ["cpu", "memory"]
            .iter()
            .find(|c| !mounts.contains_key(**c))
            .map(|c| format!("the cgroup v1 {c} controller is not mounted")),
        Ok(Layout::V2 { controllers, .. }) => ["cpu", "memory"]
            .iter()
            .find(|c| !controllers.contains(**c))
            .map(|c| format!("the cgroup v2 {c} controller is not available")),
    }
}

/// One thing the bench times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw(RawKind),
    Ours,
}

/// Every variant (long and short label), in the order of each round; ours last.
const VARIANTS: [(Variant, &str, &str); 6] = [
    (
        Variant::Raw(RawKind::Plain),
        "raw: mkdir + fork/exec /bin/true + rmdir",
        "raw",
    ),
    (
        Variant::Raw(RawKind::Limits),
        "raw + limit writes",
        "raw + limits",
    ),
    (
        Variant::Raw(RawKind::AgentSpawn),
        "raw + limits, agent's spawn (diagnostic)",
        "agent spawn",
    ),
    (
        Variant::Raw(RawKind::AgentSpawnSecured),
        "  + security (diagnostic)",
        "agent spawn + security",
    ),
    (
        Variant::Raw(RawKind::AgentSpawnSecuredNs),
        "  + security + namespaces (diagnostic)",
        "agent spawn + sec. + ns",
    ),
    (Variant::Ours, "ours: all isolators + LinuxLauncher", "ours"),
];

/// What the isolators make of a container with `resources`, compiled (for
/// the diagnostic raw kinds, which load it without compiling it each time).
fn compiled_security(
    isolators: &Isolators,
    resources: &[v1::Resource],
) -> (ProcessSecurity, Namespaces) {
    let config = ContainerConfig {
        container_id: "security-probe".into(),
        resources: resources.to_vec(),
        container_info: None,
        user: None,
    };
    let info = isolators.prepare(&config).expect("prepare");
    isolators.cleanup(&config.container_id);
    let security = info.security().expect("compile the seccomp profile");
    (security, info.namespaces)
}

/// Median, min and max.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn print_phases(title: &str, names: &[&str], phases: &Phases, launches: usize) {
    let total: Duration = phases.steps.iter().sum();
    println!("  {title}, mean per launch over {launches} launches:");
    for (name, d) in names.iter().zip(phases.steps) {
        println!(
            "    {name:<52} {:>9.1?}  {:>5.1}%",
            d / launches as u32,
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        );
    }
}

fn main() {
    let hierarchy = Path::new(DEFAULT_CGROUPS_HIERARCHY);
    let layout = Layout::detect_host(hierarchy).map_err(|e| e.to_string());
    if let Some(reason) = unusable(&layout) {
        println!("launch_rate: skipped: {reason}");
        return;
    }
    let layout = layout.expect("checked above");
    let root = format!("mesos_bench_{}", std::process::id());
    let bases = bases(&layout, &root);
    let _guard = RootGuard {
        dirs: bases.clone(),
    };
    let launcher = match mesos_agent::launcher::create(LauncherKind::Linux, hierarchy, &root) {
        Ok(launcher) => launcher,
        Err(e) => {
            println!("launch_rate: skipped: {e}");
            return;
        }
    };
    let sandbox = tempfile::tempdir().expect("sandbox");
    let config = match bench_config(&root, sandbox.path()) {
        Ok(config) => config,
        Err(e) => {
            println!("launch_rate: skipped: the agent refuses its flags: {e}");
            return;
        }
    };
    let isolators = build_isolators(&config, &launcher, &layout, &root);
    let resources = resources();
    let limits = launch_limits(
        &config.isolation,
        config.flags.cgroups_enable_cfs,
        &resources,
    );
    let ours = Ours {
        launcher,
        isolators,
        resources,
        limits,
        sandbox: sandbox.path().to_path_buf(),
    };
    for base in &bases {
        std::fs::create_dir_all(base).expect("create the raw cgroups' parent");
    }
    let (security, namespaces) = compiled_security(&ours.isolators, &ours.resources);
    let mut raw = Raw {
        limit_files: limit_files(&layout, &root, &bases, &limits),
        bases: bases.clone(),
        sandbox: sandbox.path().to_path_buf(),
        security,
        namespaces,
        next: 0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    {
        let _entered = runtime.enter();
        ours.isolators.start();
    }
    println!(
        "cgroup v{}, {} cgroups per container ({}), isolators {:?}, limits {limits:?}, \
         {} seccomp programs ({} BPF instructions) per container",
        layout.version(),
        bases.len(),
        bases
            .iter()
            .map(|b| b.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ours.isolators.names(),
        raw.security.seccomp.len(),
        raw.security.seccomp.iter().map(Vec::len).sum::<usize>(),
    );

    // Without namespaces the last diagnostic would repeat the one before.
    let variants: Vec<(Variant, &str, &str)> = VARIANTS
        .into_iter()
        .filter(|(v, ..)| {
            *v != Variant::Raw(RawKind::AgentSpawnSecuredNs)
                || raw.namespaces != Namespaces::default()
        })
        .collect();
    let mut run = |variant: Variant| match variant {
        Variant::Raw(kind) => raw.launch(kind),
        Variant::Ours => runtime.block_on(ours.launch()),
    };
    // Warm up (page cache, the kernel's cgroup caches, lazy statics).
    for _ in 0..10 {
        for &(variant, ..) in &variants {
            run(variant);
        }
    }
    // Alternating rounds: each variant's rate per round and its steps' times.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut phases: Vec<Phases> = vec![Phases::default(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, &(variant, ..)) in variants.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                phases[i].add(&run(variant));
            }
            rates[i].push(PER_ROUND as f64 / start.elapsed().as_secs_f64());
        }
    }
    let launches = ROUNDS * PER_ROUND;
    println!(
        "launch rate, {ROUNDS} alternating rounds of {PER_ROUND} launches each (median [range]):"
    );
    for ((_, label, _), v) in variants.iter().zip(&rates) {
        let (mid, lo, hi) = spread(v.clone());
        println!(
            "  {label:<46} {mid:>5.0} launches/s [{lo:.0}–{hi:.0}]  mean latency {:.2} ms",
            1000.0 / mid
        );
    }
    let ours_rates = &rates[variants.len() - 1];
    for (i, (_, _, short)) in variants[..variants.len() - 1].iter().enumerate() {
        let (r, lo, hi) = spread(
            ours_rates
                .iter()
                .zip(&rates[i])
                .map(|(o, r)| 100.0 * o / r)
                .collect(),
        );
        let verdict = if i > 0 {
            String::new()
        } else if r >= 50.0 {
            " (per round; target ≥ 50%: met)".to_string()
        } else {
            " (per round; target ≥ 50%: NOT met)".to_string()
        };
        println!("  ours / {short:<24} {r:>3.0}% [{lo:.0}–{hi:.0}%]{verdict}");
    }
    for (i, (variant, label, _)) in variants.iter().enumerate() {
        let names: &[&str] = match variant {
            Variant::Ours => &OURS_STEPS,
            Variant::Raw(_) => &RAW_STEPS,
        };
        print_phases(label, names, &phases[i], launches);
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("launch_rate");
    group.bench_function("raw_cgroups_fork_exec_true", |b| {
        b.iter(|| black_box(raw.launch(RawKind::Plain)))
    });
    group.bench_function("raw_with_limits", |b| {
        b.iter(|| black_box(raw.launch(RawKind::Limits)))
    });
    group.bench_function("ours_all_isolators_linux_launcher", |b| {
        b.iter(|| black_box(runtime.block_on(ours.launch())))
    });
    group.finish();
    c.final_summary();

    // Let the watch tasks see their containers cleaned up before the root goes.
    let linger = mesos_agent::isolators::cgroups::OOM_POLL_INTERVAL + Duration::from_millis(50);
    runtime.block_on(async { tokio::time::sleep(linger).await });
    drop(runtime);
    drop(ours);
}
