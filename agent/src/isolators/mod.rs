//! Isolators (Mesos's `--isolation`): pieces of the containerizer that prepare a
//! container before its executor starts, isolate it once it runs, watch it for
//! a limitation, follow its resources as tasks come and go, and clean up after
//! it. The agent calls them through [`Isolators`] in one order for every
//! container: `prepare` → launch → `isolate` → `watch` (and `update`) →
//! destroy → `cleanup`; after a restart, `recover` first.
//!
//! They decide nothing about tasks: a limitation is reported to the agent,
//! which destroys the container and sends the status updates. Every privileged
//! call goes through [`crate::sys::Syscalls`].
//!
//! Implemented: [`ports::NetworkPortsIsolator`] (`network/ports`),
//! [`cgroups::CgroupsIsolator`] (`cgroups/cpu`, `cgroups/mem`; alias
//! `cgroups`), [`capabilities::LinuxCapabilitiesIsolator`]
//! (`linux/capabilities`), [`capabilities::LinuxNnpIsolator`] (`linux/nnp`),
//! [`seccomp::LinuxSeccompIsolator`] (`linux/seccomp`),
//! [`namespaces::NamespacesIsolator`] (`namespaces/user`, `namespaces/pid`,
//! `namespaces/ipc`). Accepted as nothing to do: `posix/cpu`, `posix/mem` (Mesos's
//! only report usage; they enforce nothing), `filesystem/posix` (alias
//! `process`). Every other Mesos isolator is refused by name
//! rather than silently ignored: an operator who asks for `linux/devices` must
//! not get a container without it.

pub mod bind_filter;
pub mod capabilities;
pub mod cgroups;
pub mod namespaces;
pub mod ports;
pub mod seccomp;
mod seccomp_syscalls;

use std::sync::Arc;

use futures::future::BoxFuture;
use mesos_proto::v1;

/// What an isolator is told about a container before it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    /// The container (one executor run).
    pub container_id: String,
    /// The container's resources: the executor's plus its tasks'.
    pub resources: Vec<v1::Resource>,
    /// The executor's `ContainerInfo`, when it has one.
    pub container_info: Option<v1::ContainerInfo>,
    /// The user the executor runs as, when switched.
    pub user: Option<String>,
}

/// A container that survived an agent restart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerState {
    /// The container.
    pub container_id: String,
    /// Its executor's pid.
    pub pid: u32,
    /// Its resources as checkpointed (the executor's plus its live tasks').
    pub resources: Vec<v1::Resource>,
    /// The executor's `ContainerInfo`, when it has one.
    pub container_info: Option<v1::ContainerInfo>,
}

/// What an isolator asks the launcher to do for a container between fork and
/// exec: environment variables, capability sets, `no_new_privs` and a seccomp
/// profile ([`ContainerLaunchInfo::security`] turns the last three into what
/// the launcher's child applies through the syscall seam). Isolators that need
/// more (namespaces to unshare) add a field here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLaunchInfo {
    /// Variables added to the executor's environment.
    pub environment: Vec<(String, String)>,
    /// The bounding capability set (`linux/capabilities`): a bit mask, bit
    /// `n` = Linux capability `n`.
    pub bounding_capabilities: Option<u64>,
    /// The capabilities granted to the executor (`linux/capabilities`).
    pub effective_capabilities: Option<u64>,
    /// Set `no_new_privs` (`linux/nnp`).
    pub no_new_privileges: bool,
    /// The seccomp profile to compile and load (`linux/seccomp`).
    pub seccomp_profile: Option<Arc<seccomp::SeccompProfile>>,
    /// A bind filter for the container's cgroup, attached before the executor
    /// starts (`network/ports` with `--container_ports_enforce_at_bind`).
    pub bind_filter: Option<Vec<crate::sys::EbpfInstruction>>,
    /// Namespaces of its own (`namespaces/user`, `namespaces/pid`, `namespaces/ipc`).
    pub namespaces: crate::sys::Namespaces,
}

impl ContainerLaunchInfo {
    /// Adds what another isolator asks for.
    pub fn merge(&mut self, other: ContainerLaunchInfo) {
        self.environment.extend(other.environment);
        self.bounding_capabilities = other.bounding_capabilities.or(self.bounding_capabilities);
        self.effective_capabilities = other.effective_capabilities.or(self.effective_capabilities);
        self.no_new_privileges |= other.no_new_privileges;
        self.seccomp_profile = other.seccomp_profile.or(self.seccomp_profile.take());
        self.bind_filter = other.bind_filter.or(self.bind_filter.take());
        self.namespaces.user = other.namespaces.user.or(self.namespaces.user);
        self.namespaces.pid |= other.namespaces.pid;
        self.namespaces.ipc |= other.namespaces.ipc;
    }

    /// What the launcher's child applies before exec; compiles the seccomp
    /// profile for the container's capabilities.
    pub fn security(&self) -> Result<crate::sys::ProcessSecurity, String> {
        let caps = self
            .effective_capabilities
            .or(self.bounding_capabilities)
            .unwrap_or(u64::MAX);
        let seccomp = match &self.seccomp_profile {
            Some(profile) => profile.compile(caps)?,
            None => Vec::new(),
        };
        Ok(crate::sys::ProcessSecurity {
            bounding: self.bounding_capabilities,
            effective: self.effective_capabilities,
            no_new_privs: self.no_new_privileges,
            seccomp,
        })
    }
}

/// A container used more than it was given (Mesos's `ContainerLimitation`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLimitation {
    /// What was exceeded (for `network/ports`, the unallocated `ports` ranges).
    pub resources: Vec<v1::Resource>,
    /// For the tasks' status updates.
    pub message: String,
    /// `REASON_CONTAINER_LIMITATION` (or `_MEMORY`, `_DISK`).
    pub reason: v1::task_status::Reason,
}

/// What can go wrong in an isolator; each message names the container or flag.
#[derive(Debug, thiserror::Error)]
pub enum IsolatorError {
    /// `--isolation` or an isolator's flags are unusable (reported before the
    /// agent binds any socket).
    #[error("{0}")]
    Config(String),
    /// The container asks for something the agent does not allow (the
    /// message is Mesos's, e.g. "Requested capabilities '...', but only
    /// '...' are allowed"): its launch fails.
    #[error("{0}")]
    Refused(String),
    /// `prepare` was called twice for one container.
    #[error("container {0} has already been prepared")]
    AlreadyPrepared(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the container or file.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One isolator. Calls for one container come in the order the module
/// documentation gives; calls for different containers interleave.
pub trait Isolator: Send + Sync + 'static {
    /// The `--isolation` name (`network/ports`).
    fn name(&self) -> &'static str;

    /// Starts background work (a watch loop). Called once, inside the tokio
    /// runtime, before any other call.
    fn start(&self) {}

    /// Re-adopts containers that survived a restart. `orphans` are about to be
    /// destroyed and need no isolation. (The defaults of this and the
    /// per-container methods below suit isolators that keep no
    /// per-container state.)
    fn recover(
        &self,
        _states: &[ContainerState],
        _orphans: &[String],
    ) -> Result<(), IsolatorError> {
        Ok(())
    }

    /// Before the executor starts.
    fn prepare(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError>;

    /// Once the executor runs as `pid` (inside its cgroups).
    fn isolate(&self, _container_id: &str, _pid: u32) -> Result<(), IsolatorError> {
        Ok(())
    }

    /// Resolves with the container's limitation when one is raised, or with
    /// `None` once the container is cleaned up (or is not watched at all).
    fn watch(&self, _container_id: &str) -> BoxFuture<'static, Option<ContainerLimitation>> {
        Box::pin(async { None })
    }

    /// The container's limitation, checked now rather than at the next
    /// `watch` poll (the agent asks when an executor reports a failed task,
    /// which may be the effect of the limitation). `watch` raises a
    /// limitation once; `check` answers with it for as long as the
    /// container is tracked, whoever found it first.
    fn check(&self, _container_id: &str) -> Option<ContainerLimitation> {
        None
    }

    /// The container's resources changed (a task was added or finished).
    fn update(
        &self,
        _container_id: &str,
        _resources: &[v1::Resource],
    ) -> Result<(), IsolatorError> {
        Ok(())
    }

    /// The container is destroyed; forget it. Unknown containers are fine.
    fn cleanup(&self, _container_id: &str) -> Result<(), IsolatorError> {
        Ok(())
    }
}

/// The `--isolation` names this agent accepts because its launcher already
/// does what they stand for.
const PROVIDED_BY_LAUNCHER: &[&str] = &["posix/cpu", "posix/mem", "filesystem/posix"];

/// Mesos's isolator names that this agent does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "filesystem/linux",
    "filesystem/shared",
    "filesystem/windows",
    "posix/rlimits",
    "cgroups/all",
    "cgroups/blkio",
    "cgroups/cpuset",
    "cgroups/devices",
    "cgroups/hugetlb",
    "cgroups/net_cls",
    "cgroups/net_prio",
    "cgroups/perf_event",
    "cgroups/pids",
    "appc/runtime",
    "docker/runtime",
    "docker/volume",
    "linux/devices",
    "volume/sandbox_path",
    "volume/host_path",
    "volume/image",
    "volume/secret",
    "volume/csi",
    "disk/du",
    "disk/xfs",
    "gpu/nvidia",
    "network/cni",
    "network/port_mapping",
    "environment_secret",
    "windows/cpu",
    "windows/mem",
];

/// The `network/ports` isolator's name.
pub const NETWORK_PORTS: &str = "network/ports";
/// The `linux/capabilities` isolator's name.
pub const LINUX_CAPABILITIES: &str = "linux/capabilities";
/// The `linux/nnp` isolator's name.
pub const LINUX_NNP: &str = "linux/nnp";
/// The `linux/seccomp` isolator's name.
pub const LINUX_SECCOMP: &str = "linux/seccomp";

/// What `--isolation`'s default adds, secure by default, to the resource
/// isolators: `linux/capabilities` (a minimal bounding set; only when the
/// agent is root, as it needs CAP_SETPCAP), `linux/nnp` and `linux/seccomp`
/// (the built-in profile). `network/ports`
/// stays opt-in, as in Mesos.
pub fn default_security_isolators(root: bool) -> &'static str {
    match (root, cfg!(target_arch = "x86_64")) {
        (true, true) => "linux/capabilities,linux/nnp,linux/seccomp",
        (true, false) => "linux/capabilities,linux/nnp",
        (false, true) => "linux/nnp,linux/seccomp",
        (false, false) => "linux/nnp",
    }
}

/// Parses `--isolation`: comma-separated names, legacy aliases expanded
/// (`process` → `posix/cpu,posix/mem`; `cgroups` → `cgroups/cpu,cgroups/mem`;
/// `posix/disk` → `disk/du`), duplicates dropped. Unknown and unimplemented
/// names are refused, naming the isolator.
pub fn parse_isolation(text: &str) -> Result<Vec<String>, IsolatorError> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let expanded: &[&str] = match name {
            "process" => &["posix/cpu", "posix/mem"],
            "cgroups" => &["cgroups/cpu", "cgroups/mem"],
            "posix/disk" => &["disk/du"],
            other => {
                std::slice::from_ref(match PROVIDED_BY_LAUNCHER.iter().find(|n| **n == other) {
                    Some(known) => known,
                    None if other == NETWORK_PORTS => &NETWORK_PORTS,
                    None if other == LINUX_CAPABILITIES => &LINUX_CAPABILITIES,
                    None if other == LINUX_NNP => &LINUX_NNP,
                    None if other == LINUX_SECCOMP => &LINUX_SECCOMP,
                    None if other == cgroups::CGROUPS_CPU => &cgroups::CGROUPS_CPU,
                    None if other == cgroups::CGROUPS_MEM => &cgroups::CGROUPS_MEM,
                    None if other == namespaces::NAMESPACES_USER => &namespaces::NAMESPACES_USER,
                    None if other == namespaces::NAMESPACES_PID => &namespaces::NAMESPACES_PID,
                    None if other == namespaces::NAMESPACES_IPC => &namespaces::NAMESPACES_IPC,
                    None if NOT_IMPLEMENTED.contains(&other) => {
                        return Err(IsolatorError::Config(format!(
                        "invalid --isolation: the '{other}' isolator is not implemented by this \
                         agent (implemented: {NETWORK_PORTS}, cgroups/cpu, cgroups/mem, {LINUX_CAPABILITIES}, {LINUX_NNP}, {LINUX_SECCOMP}, namespaces/user, namespaces/pid, namespaces/ipc; accepted as provided by the \
                         launcher: {})",
                        PROVIDED_BY_LAUNCHER.join(", ")
                    )))
                    }
                    None => {
                        return Err(IsolatorError::Config(format!(
                            "invalid --isolation: unknown or unsupported isolator '{other}'"
                        )))
                    }
                })
            }
        };
        for n in expanded {
            if NOT_IMPLEMENTED.contains(n) {
                return Err(IsolatorError::Config(format!(
                    "invalid --isolation: the '{n}' isolator (from '{name}') is not implemented by this agent"
                )));
            }
            if !names.iter().any(|have| have == n) {
                names.push((*n).to_string());
            }
        }
    }
    Ok(names)
}

/// The isolators of one agent, called in `--isolation` order.
#[derive(Clone, Default)]
pub struct Isolators {
    list: Vec<Arc<dyn Isolator>>,
}

impl std::fmt::Debug for Isolators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|i| i.name()))
            .finish()
    }
}

impl Isolators {
    /// These isolators.
    pub fn new(list: Vec<Arc<dyn Isolator>>) -> Self {
        Self { list }
    }

    /// No isolators.
    pub fn none() -> Self {
        Self::default()
    }

    /// Their names.
    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|i| i.name()).collect()
    }

    /// Starts every isolator's background work (inside the runtime).
    pub fn start(&self) {
        for isolator in &self.list {
            isolator.start();
        }
    }

    /// Recovers every isolator; the first failure stops.
    pub fn recover(
        &self,
        states: &[ContainerState],
        orphans: &[String],
    ) -> Result<(), IsolatorError> {
        for isolator in &self.list {
            isolator.recover(states, orphans)?;
        }
        Ok(())
    }

    /// Prepares the container with every isolator and merges what they ask
    /// of the launcher. On a failure the ones already prepared are cleaned up.
    pub fn prepare(&self, config: &ContainerConfig) -> Result<ContainerLaunchInfo, IsolatorError> {
        let mut merged = ContainerLaunchInfo::default();
        for (i, isolator) in self.list.iter().enumerate() {
            match isolator.prepare(config) {
                Ok(Some(info)) => merged.merge(info),
                Ok(None) => {}
                Err(e) => {
                    for done in &self.list[..i] {
                        let _ = done.cleanup(&config.container_id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(merged)
    }

    /// Tells every isolator the executor runs as `pid`.
    pub fn isolate(&self, container_id: &str, pid: u32) -> Result<(), IsolatorError> {
        for isolator in &self.list {
            isolator.isolate(container_id, pid)?;
        }
        Ok(())
    }

    /// One future per isolator; each resolves with that isolator's limitation.
    pub fn watch(
        &self,
        container_id: &str,
    ) -> Vec<BoxFuture<'static, Option<ContainerLimitation>>> {
        self.list.iter().map(|i| i.watch(container_id)).collect()
    }

    /// The first limitation any isolator finds on the container now.
    pub fn check(&self, container_id: &str) -> Option<ContainerLimitation> {
        self.list.iter().find_map(|i| i.check(container_id))
    }

    /// Tells every isolator the container's resources changed. Failures are
    /// logged: the container keeps running with its previous isolation.
    pub fn update(&self, container_id: &str, resources: &[v1::Resource]) {
        for isolator in &self.list {
            if let Err(e) = isolator.update(container_id, resources) {
                tracing::warn!(%container_id, isolator = isolator.name(), "update failed: {e}");
            }
        }
    }

    /// Cleans up every isolator (all of them, even after a failure).
    pub fn cleanup(&self, container_id: &str) {
        for isolator in &self.list {
            if let Err(e) = isolator.cleanup(container_id) {
                tracing::warn!(%container_id, isolator = isolator.name(), "cleanup failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_names_expand_aliases_and_drop_duplicates() {
        assert_eq!(
            parse_isolation("posix/cpu,posix/mem").expect("default"),
            vec!["posix/cpu", "posix/mem"]
        );
        assert_eq!(
            parse_isolation(" process , cgroups,network/ports,posix/cpu").expect("aliases"),
            vec![
                "posix/cpu",
                "posix/mem",
                "cgroups/cpu",
                "cgroups/mem",
                "network/ports"
            ]
        );
        assert!(parse_isolation("").expect("empty").is_empty());
    }

    #[test]
    fn unimplemented_and_unknown_isolators_are_refused_by_name() {
        let err = parse_isolation("posix/cpu,linux/devices").expect_err("not implemented");
        assert!(
            err.to_string()
                .contains("the 'linux/devices' isolator is not implemented"),
            "{err}"
        );
        let err = parse_isolation("posix/disk").expect_err("alias of disk/du");
        assert!(err.to_string().contains("'disk/du'"), "{err}");
        let err = parse_isolation("network/portz").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "invalid --isolation: unknown or unsupported isolator 'network/portz'"
        );
    }
}
