//! The `network/ports` isolator (Mesos's `NetworkPortsIsolatorProcess`): every
//! `--container_ports_watch_interval` it lists the TCP sockets in LISTEN state
//! (sock_diag, IPv4 **and IPv6**; Mesos looks at IPv4 only), maps their inodes
//! to the processes of each container through `/proc/<pid>/fd`, and compares
//! each container's listening ports with the `ports` resources allocated to it.
//! A container listening on an unallocated port is logged once per change and,
//! with `--enforce_container_ports`, limited (the agent then kills it).
//!
//! It owns only the allocated and last-seen ports of each container. It kills
//! nothing itself; it must not read anything but through the syscall seam and
//! the launcher's process listing. Like Mesos's, it polls: a task can listen on
//! an unallocated port between two scans, so the scan alone is not a security
//! boundary. With `--container_ports_enforce_at_bind` (ours; on with
//! `--enforce_container_ports`) each container also gets a bind filter
//! ([`super::bind_filter`]) from before its executor starts, and the kernel
//! refuses the `bind()` itself; the scan stays as a second line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use mesos_proto::v1;
use tokio::sync::oneshot;

use super::{
    ContainerConfig, ContainerLaunchInfo, ContainerLimitation, ContainerState, Isolator,
    IsolatorError, NETWORK_PORTS,
};
use crate::sys::Syscalls;

/// A sorted set of disjoint, non-adjacent port ranges (Mesos's `IntervalSet<uint16_t>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// The union of `ranges` (inclusive bounds, in any order, overlapping or
    /// not). Ports above 65535 cannot be listened on and are dropped.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut v: Vec<(u16, u16)> = ranges
            .into_iter()
            .filter(|(b, e)| b <= e && *b <= u64::from(u16::MAX))
            .map(|(b, e)| (b as u16, e.min(u64::from(u16::MAX)) as u16))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
        for (b, e) in v {
            match out.last_mut() {
                Some(last) if u32::from(b) <= u32::from(last.1) + 1 => last.1 = last.1.max(e),
                _ => out.push((b, e)),
            }
        }
        Self(out)
    }

    /// The ports of `set` as ranges.
    pub fn from_ports(set: &BTreeSet<u16>) -> Self {
        Self::from_ranges(set.iter().map(|&p| (u64::from(p), u64::from(p))))
    }

    /// The `ports` ranges in `resources` (none: the empty set).
    pub fn of_resources(resources: &[v1::Resource]) -> Self {
        Self::from_ranges(
            resources
                .iter()
                .filter(|r| r.name == "ports")
                .filter_map(|r| r.ranges.as_ref())
                .flat_map(|r| r.range.iter().map(|r| (r.begin, r.end))),
        )
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < port);
        self.0.get(i).is_some_and(|&(begin, _)| begin <= port)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// As one unreserved `ports` RANGES resource, as Mesos puts it in a limitation.
    pub fn to_resource(&self) -> v1::Resource {
        v1::Resource {
            name: "ports".into(),
            r#type: v1::value::Type::Ranges as i32,
            ranges: Some(v1::value::Ranges {
                range: self
                    .0
                    .iter()
                    .map(|&(b, e)| v1::value::Range {
                        begin: u64::from(b),
                        end: u64::from(e),
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }
}

/// As Mesos prints `Value::Ranges`: `[31000-31000, 31005-31010]`.
impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (b, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}-{e}")?;
        }
        f.write_str("]")
    }
}

/// The isolator's settings, from the agent's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PortsConfig {
    /// `--container_ports_watch_interval`.
    pub watch_interval: Duration,
    /// `--enforce_container_ports`.
    pub enforce: bool,
    /// `--container_ports_enforce_at_bind`: refuse `bind()` to unallocated
    /// isolated ports with a cgroup BPF program (see [`super::bind_filter`]).
    pub enforce_at_bind: bool,
    /// The ports that are checked: `--container_ports_isolated_range`, or with
    /// `--check_agent_port_range_only` the agent's `ports` resource; `None`: all.
    pub isolated: Option<PortRanges>,
    /// Whether `network/cni` is enabled too (then containers joined to a named
    /// network have their own network namespace and are not watched).
    pub cni_enabled: bool,
}

/// What the isolator knows of one container.
#[derive(Default)]
struct Info {
    /// Set by `prepare`/`update`; `None` until then (not checked, as in Mesos).
    allocated: Option<PortRanges>,
    /// The listening ports of the last violation reported, so one is logged once.
    active: Option<BTreeSet<u16>>,
    /// The limitation raised, kept for a `watch` that comes after it.
    limitation: Option<ContainerLimitation>,
    watchers: Vec<oneshot::Sender<ContainerLimitation>>,
}

/// One container listening outside its allocation, as one check found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The container.
    pub container_id: String,
    /// The listening ports that are not allocated to it.
    pub unallocated: PortRanges,
    /// `Container <id> is listening on unallocated port(s): [..]`.
    pub message: String,
}

/// The decisions of the isolator, without IO: which containers are watched,
/// what they were given, and which listeners are violations worth reporting.
#[derive(Default)]
pub struct PortsState {
    infos: BTreeMap<String, Info>,
}

impl PortsState {
    /// Starts watching a container (no allocation known yet).
    pub fn track(&mut self, container_id: &str) -> Result<(), IsolatorError> {
        if self.infos.contains_key(container_id) {
            return Err(IsolatorError::AlreadyPrepared(container_id.to_string()));
        }
        self.infos.insert(container_id.to_string(), Info::default());
        Ok(())
    }

    /// Records the container's `ports` resources. Unknown containers are ignored.
    pub fn update(&mut self, container_id: &str, resources: &[v1::Resource]) {
        let Some(info) = self.infos.get_mut(container_id) else {
            tracing::debug!(%container_id, "ignoring ports update for an unwatched container");
            return;
        };
        let ports = PortRanges::of_resources(resources);
        tracing::info!(%container_id, "Updated ports to {ports} for container {container_id}");
        info.allocated = Some(ports);
    }

    /// Forgets the container.
    pub fn forget(&mut self, container_id: &str) {
        self.infos.remove(container_id);
    }

    /// The watched containers.
    pub fn containers(&self) -> Vec<String> {
        self.infos.keys().cloned().collect()
    }

    /// Mesos's `check`: for each container listening on ports it was not
    /// allocated, a violation, unless it listens on exactly the ports it did
    /// at the last violation (so each change is reported once).
    pub fn check(&mut self, listeners: &BTreeMap<String, BTreeSet<u16>>) -> Vec<Violation> {
        let mut out = Vec::new();
        for (container_id, ports) in listeners {
            let Some(info) = self.infos.get_mut(container_id) else {
                continue;
            };
            let Some(allocated) = &info.allocated else {
                continue;
            };
            let unallocated: BTreeSet<u16> = ports
                .iter()
                .copied()
                .filter(|&p| !allocated.contains(p))
                .collect();
            if unallocated.is_empty() || info.active.as_ref() == Some(ports) {
                continue;
            }
            info.active = Some(ports.clone());
            let unallocated = PortRanges::from_ports(&unallocated);
            let message = format!(
                "Container {container_id} is listening on unallocated port(s): {unallocated}"
            );
            out.push(Violation {
                container_id: container_id.clone(),
                unallocated,
                message,
            });
        }
        out
    }

    /// Raises the limitation of a violation: wakes the container's watchers
    /// (once; later violations of a limited container change nothing).
    pub fn limit(&mut self, violation: &Violation) {
        let Some(info) = self.infos.get_mut(&violation.container_id) else {
            return;
        };
        if info.limitation.is_some() {
            return;
        }
        let limitation = ContainerLimitation {
            resources: vec![violation.unallocated.to_resource()],
            message: violation.message.clone(),
            reason: v1::task_status::Reason::ContainerLimitation,
        };
        for watcher in info.watchers.drain(..) {
            let _ = watcher.send(limitation.clone());
        }
        info.limitation = Some(limitation);
    }

    /// A receiver for the container's limitation: resolved at once if it was
    /// already raised, dropped (an error) once the container is forgotten.
    fn watch(&mut self, container_id: &str) -> Option<oneshot::Receiver<ContainerLimitation>> {
        let info = self.infos.get_mut(container_id)?;
        let (tx, rx) = oneshot::channel();
        match &info.limitation {
            Some(l) => {
                let _ = tx.send(l.clone());
            }
            None => info.watchers.push(tx),
        }
        Some(rx)
    }
}

/// Lists a container's processes (the launcher's cgroup listing in the agent).
pub type PidLister = dyn Fn(&str) -> std::io::Result<Vec<u32>> + Send + Sync;

/// Replaces a running container's bind filter (the launcher's
/// `restrict_bind` in the agent).
pub type BindRestrictor =
    dyn Fn(&str, &[crate::sys::EbpfInstruction]) -> std::io::Result<()> + Send + Sync;

/// Lists the cgroup v2 ids of a container's cgroup and of those below it
/// (the launcher's in the agent).
pub type CgroupIdLister = dyn Fn(&str) -> std::io::Result<Vec<u64>> + Send + Sync;

/// Which container each socket cgroup belongs to, kept between scans: cgroup
/// ids are never reused, so a cgroup id once known to be a container's (or
/// nobody's) stays so. A container's cgroups are listed when it is first
/// seen, and every container's again only when a listener comes from a
/// cgroup not known yet (a new container's, or one a task made below its
/// own); a scan of unchanged containers makes no system call beyond the dump.
pub struct CgroupOwners {
    lister: Arc<CgroupIdLister>,
    /// Container -> the ids of its cgroup and those below it.
    ids: HashMap<String, Vec<u64>>,
    /// Cgroup id -> its container.
    owner: HashMap<u64, String>,
    /// Ids known to be no container's (the host's), as of the last listing.
    foreign: HashSet<u64>,
}

impl CgroupOwners {
    /// Owners found with `lister`.
    pub fn new(lister: Arc<CgroupIdLister>) -> Self {
        Self {
            lister,
            ids: HashMap::new(),
            owner: HashMap::new(),
            foreign: HashSet::new(),
        }
    }

    /// Lists the container's cgroups again (those gone since are forgotten).
    fn refresh(&mut self, container_id: &str) -> std::io::Result<()> {
        let ids = (self.lister)(container_id)?;
        self.forget(container_id);
        for id in &ids {
            self.owner.insert(*id, container_id.to_string());
        }
        self.ids.insert(container_id.to_string(), ids);
        Ok(())
    }

    /// Forgets the container and its cgroups.
    fn forget(&mut self, container_id: &str) {
        for id in self.ids.remove(container_id).unwrap_or_default() {
            self.owner.remove(&id);
        }
    }

    /// Brings the owners up to date for `containers` and the cgroups of
    /// `sockets`; returns the containers whose cgroups cannot be listed.
    fn update<'a>(
        &mut self,
        containers: &'a [String],
        sockets: &[crate::sys::ListeningSocket],
    ) -> Vec<&'a String> {
        let wanted: HashSet<&str> = containers.iter().map(String::as_str).collect();
        let gone: Vec<String> = self
            .ids
            .keys()
            .filter(|c| !wanted.contains(c.as_str()))
            .cloned()
            .collect();
        for container_id in gone {
            self.forget(&container_id);
        }
        let mut unlisted = Vec::new();
        for container_id in containers {
            if !self.ids.contains_key(container_id) {
                if let Err(e) = self.refresh(container_id) {
                    tracing::debug!(%container_id, "no cgroup ids ({e}); reading /proc instead");
                    unlisted.push(container_id);
                }
            }
        }
        let unknown = |owners: &Self| -> Vec<u64> {
            sockets
                .iter()
                .filter_map(|s| s.cgroup_id)
                .filter(|id| !owners.owner.contains_key(id) && !owners.foreign.contains(id))
                .collect()
        };
        if !unknown(self).is_empty() {
            let listed: Vec<String> = self.ids.keys().cloned().collect();
            for container_id in listed {
                if self.refresh(&container_id).is_err() {
                    // Its cgroup is gone: it holds nothing any more.
                    self.forget(&container_id);
                }
            }
            let still = unknown(self);
            self.foreign.extend(still);
        }
        unlisted
    }
}

/// Mesos's `collectContainerListeners`: the listening ports (inside
/// `isolated`, when given) of each container's processes.
///
/// With `owners` (a cgroup v2 hierarchy, Linux 5.7+), a listener belongs to
/// the container whose cgroup created it, as sock_diag reports: the cost
/// follows the listening sockets, not every descriptor of every process. A
/// container whose cgroups cannot be listed, and every container when the
/// kernel gives no socket cgroups, is looked up as Mesos does: its
/// processes' `/proc/<pid>/fd` links. (The two differ only for a listening
/// socket handed into a container from outside, which the walk counts and
/// the cgroup does not: the agent hands none.) Processes and fds that vanish
/// meanwhile are skipped; a container whose processes cannot be listed is
/// logged and skipped.
pub fn collect_listeners(
    sys: &dyn Syscalls,
    pids: &PidLister,
    owners: Option<&mut CgroupOwners>,
    isolated: Option<&PortRanges>,
    containers: &[String],
) -> std::io::Result<BTreeMap<String, BTreeSet<u16>>> {
    let mut listeners = BTreeMap::new();
    let sockets = sys.listening_tcp_sockets()?;
    if sockets.is_empty() {
        return Ok(listeners);
    }
    let mut walk: Vec<&String> = Vec::new();
    match owners.filter(|_| sockets.iter().all(|s| s.cgroup_id.is_some())) {
        Some(owners) => {
            walk = owners.update(containers, &sockets);
            for socket in &sockets {
                let Some(container_id) = socket.cgroup_id.and_then(|id| owners.owner.get(&id))
                else {
                    continue;
                };
                tracing::debug!(%container_id, port = socket.port, "container {container_id} is listening on port {}", socket.port);
                if isolated.is_none_or(|r| r.contains(socket.port)) {
                    listeners
                        .entry(container_id.clone())
                        .or_insert_with(BTreeSet::new)
                        .insert(socket.port);
                }
            }
        }
        None => walk.extend(containers),
    }
    if walk.is_empty() {
        return Ok(listeners);
    }
    let by_inode: HashMap<u64, u16> = sockets.iter().map(|s| (s.inode, s.port)).collect();
    for container_id in walk {
        let pids = match pids(container_id) {
            Ok(pids) => pids,
            Err(e) => {
                tracing::warn!(%container_id, "Failed to list processes for container {container_id}: {e}");
                continue;
            }
        };
        for pid in pids {
            // The process may have exited since the listing.
            let Ok(inodes) = sys.socket_inodes(pid) else {
                continue;
            };
            for inode in inodes {
                let Some(&port) = by_inode.get(&inode) else {
                    continue;
                };
                tracing::debug!(%container_id, pid, port, "PID {pid} in container {container_id} is listening on port {port}");
                if isolated.is_none_or(|r| r.contains(port)) {
                    listeners
                        .entry(container_id.clone())
                        .or_insert_with(BTreeSet::new)
                        .insert(port);
                }
            }
        }
    }
    Ok(listeners)
}

struct Shared {
    sys: Arc<dyn Syscalls>,
    pids: Arc<PidLister>,
    /// Set where containers have v2 cgroups (see [`collect_listeners`]).
    owners: Option<Mutex<CgroupOwners>>,
    /// Set when bind filters are enforced.
    restrict_bind: Option<Arc<BindRestrictor>>,
    config: PortsConfig,
    state: Mutex<PortsState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, PortsState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One scan: collect (blocking reads of /proc and netlink), then check.
    fn scan(&self) {
        let containers = self.state().containers();
        if containers.is_empty() {
            return;
        }
        let mut owners = self
            .owners
            .as_ref()
            .map(|o| o.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let listeners = match collect_listeners(
            self.sys.as_ref(),
            self.pids.as_ref(),
            owners.as_deref_mut(),
            self.config.isolated.as_ref(),
            &containers,
        ) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("Failed to query listening sockets: {e}");
                return;
            }
        };
        let mut state = self.state();
        for violation in state.check(&listeners) {
            if self.config.enforce {
                tracing::warn!(container_id = %violation.container_id, "{}", violation.message);
                state.limit(&violation);
            } else {
                tracing::warn!(container_id = %violation.container_id,
                    "{} (not enforced: --enforce_container_ports=false)", violation.message);
            }
        }
    }
}

/// See the module documentation.
pub struct NetworkPortsIsolator {
    shared: Arc<Shared>,
    started: std::sync::Once,
}

impl NetworkPortsIsolator {
    /// An isolator reading sockets through `sys` and listing a container's
    /// processes with `pids`.
    pub fn new(sys: Arc<dyn Syscalls>, pids: Arc<PidLister>, config: PortsConfig) -> Self {
        if let Some(range) = &config.isolated {
            tracing::info!("Isolating port range {range}");
        }
        Self {
            shared: Arc::new(Shared {
                sys,
                pids,
                owners: None,
                restrict_bind: None,
                config,
                state: Mutex::new(PortsState::default()),
            }),
            started: std::sync::Once::new(),
        }
    }

    /// Enforces `--container_ports_enforce_at_bind` (when the config asks
    /// for it): new containers get their bind filter at launch, and
    /// `restrict_bind` replaces it when their ports change. Call before the
    /// isolator is shared.
    pub fn with_bind_restrictor(mut self, restrict_bind: Arc<BindRestrictor>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            if shared.config.enforce_at_bind {
                shared.restrict_bind = Some(restrict_bind);
            }
        }
        self
    }

    /// Finds each listener's container by the cgroup that created it (see
    /// [`collect_listeners`]). Call before the isolator is shared.
    pub fn with_cgroup_ids(mut self, cgroup_ids: Arc<CgroupIdLister>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.owners = Some(Mutex::new(CgroupOwners::new(cgroup_ids)));
        }
        self
    }

    /// The container's bind filter for `resources`, when filters are enforced.
    fn bind_filter(
        &self,
        container_id: &str,
        resources: &[v1::Resource],
    ) -> Result<Option<Vec<crate::sys::EbpfInstruction>>, IsolatorError> {
        if self.shared.restrict_bind.is_none() {
            return Ok(None);
        }
        super::bind_filter::program(
            &PortRanges::of_resources(resources),
            self.shared.config.isolated.as_ref(),
        )
        .map(Some)
        .map_err(|e| IsolatorError::Refused(format!("container {container_id}: {e}")))
    }

    /// Replaces the container's bind filter with one for `resources`.
    fn restrict(
        &self,
        container_id: &str,
        resources: &[v1::Resource],
    ) -> Result<(), IsolatorError> {
        let (Some(restrict), Some(program)) = (
            &self.shared.restrict_bind,
            self.bind_filter(container_id, resources)?,
        ) else {
            return Ok(());
        };
        restrict(container_id, &program).map_err(|source| IsolatorError::Io {
            context: format!("replacing the bind filter of container {container_id}"),
            source,
        })?;
        tracing::info!(%container_id, ports = %PortRanges::of_resources(resources),
            "bind filter of container {container_id} allows its ports");
        Ok(())
    }

    /// Runs one scan now (what the watch loop does every interval).
    pub fn scan_now(&self) {
        self.shared.scan();
    }
}

/// Whether a `ContainerInfo` joins a named (CNI) network.
fn has_named_network(info: Option<&v1::ContainerInfo>) -> bool {
    info.is_some_and(|c| c.network_infos.iter().any(|n| n.name.is_some()))
}

impl Isolator for NetworkPortsIsolator {
    fn name(&self) -> &'static str {
        NETWORK_PORTS
    }

    fn start(&self) {
        self.started.call_once(|| {
            let shared = Arc::clone(&self.shared);
            let interval = shared.config.watch_interval;
            tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let shared = Arc::clone(&shared);
                    if let Err(e) = tokio::task::spawn_blocking(move || shared.scan()).await {
                        tracing::error!("ports scan failed: {e}");
                    }
                }
            });
        });
    }

    fn recover(&self, states: &[ContainerState], _orphans: &[String]) -> Result<(), IsolatorError> {
        let mut state = self.shared.state();
        for s in states {
            if self.shared.config.cni_enabled && has_named_network(s.container_info.as_ref()) {
                continue;
            }
            state.track(&s.container_id)?;
            // Unlike Mesos (which waits for the next update), the agent knows
            // the recovered container's tasks, so it gives their resources now.
            state.update(&s.container_id, &s.resources);
        }
        let watched: Vec<&ContainerState> = states
            .iter()
            .filter(|s| state.infos.contains_key(&s.container_id))
            .collect();
        drop(state);
        // The kernel kept the filters attached while the agent was away; they
        // are replaced in case the ports changed meanwhile.
        for s in watched {
            if let Err(e) = self.restrict(&s.container_id, &s.resources) {
                tracing::warn!(container_id = %s.container_id, "{e}");
            }
        }
        Ok(())
    }

    fn prepare(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        if self.shared.config.cni_enabled && has_named_network(config.container_info.as_ref()) {
            return Ok(None);
        }
        let mut state = self.shared.state();
        state.track(&config.container_id)?;
        state.update(&config.container_id, &config.resources);
        let program = self.bind_filter(&config.container_id, &config.resources);
        let program = match program {
            Ok(program) => program,
            Err(e) => {
                state.forget(&config.container_id);
                return Err(e);
            }
        };
        Ok(program.map(|program| ContainerLaunchInfo {
            bind_filter: Some(program),
            ..ContainerLaunchInfo::default()
        }))
    }

    fn watch(&self, container_id: &str) -> BoxFuture<'static, Option<ContainerLimitation>> {
        let rx = self.shared.state().watch(container_id);
        async move {
            match rx {
                Some(rx) => rx.await.ok(),
                None => None,
            }
        }
        .boxed()
    }

    fn update(&self, container_id: &str, resources: &[v1::Resource]) -> Result<(), IsolatorError> {
        let watched = {
            let mut state = self.shared.state();
            state.update(container_id, resources);
            state.infos.contains_key(container_id)
        };
        if watched {
            self.restrict(container_id, resources)?;
        }
        Ok(())
    }

    fn cleanup(&self, container_id: &str) -> Result<(), IsolatorError> {
        self.shared.state().forget(container_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::RecordingSyscalls;
    use crate::sys::ListeningSocket;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn ports(ranges: &[(u64, u64)]) -> Vec<v1::Resource> {
        vec![PortRanges::from_ranges(ranges.iter().copied()).to_resource()]
    }

    fn set(p: &[u16]) -> BTreeSet<u16> {
        p.iter().copied().collect()
    }

    #[test]
    fn port_ranges_coalesce_and_print_like_mesos() {
        let r = PortRanges::from_ranges([
            (31005, 31010),
            (31000, 31000),
            (31001, 31002),
            (70000, 70001),
        ]);
        assert_eq!(r.ranges(), &[(31000, 31002), (31005, 31010)]);
        assert_eq!(r.to_string(), "[31000-31002, 31005-31010]");
        assert!(r.contains(31000) && r.contains(31002) && r.contains(31007));
        assert!(!r.contains(31003) && !r.contains(30999) && !r.contains(31011));
        assert_eq!(PortRanges::default().to_string(), "[]");
        assert_eq!(
            PortRanges::from_ranges([(65535, 70000)]).ranges(),
            &[(65535, 65535)]
        );
    }

    #[test]
    fn a_container_on_its_allocated_ports_is_fine_and_one_outside_is_reported_once_per_change() {
        let mut state = PortsState::default();
        state.track("c1").expect("track");
        state.update("c1", &ports(&[(31000, 31001)]));
        let mut seen = BTreeMap::new();
        seen.insert("c1".to_string(), set(&[31000]));
        assert!(state.check(&seen).is_empty(), "allocated port");

        seen.insert("c1".to_string(), set(&[31000, 8080, 8081, 9000]));
        let v = state.check(&seen);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].message,
            "Container c1 is listening on unallocated port(s): [8080-8081, 9000-9000]"
        );
        assert!(
            state.check(&seen).is_empty(),
            "same listeners: reported once"
        );
        seen.insert("c1".to_string(), set(&[31000, 8080]));
        assert_eq!(state.check(&seen).len(), 1, "a change is reported again");
    }

    #[test]
    fn containers_without_an_allocation_yet_or_unwatched_are_not_checked() {
        let mut state = PortsState::default();
        state.track("c1").expect("track");
        let mut seen = BTreeMap::new();
        seen.insert("c1".to_string(), set(&[80]));
        seen.insert("other".to_string(), set(&[80]));
        assert!(state.check(&seen).is_empty());
        // No ports resource at all: every listener is unallocated.
        state.update("c1", &[]);
        assert_eq!(state.check(&seen).len(), 1);
        assert!(matches!(
            state.track("c1"),
            Err(IsolatorError::AlreadyPrepared(_))
        ));
    }

    fn isolator(
        sys: Arc<RecordingSyscalls>,
        pids: BTreeMap<String, Vec<u32>>,
        enforce: bool,
        isolated: Option<PortRanges>,
    ) -> NetworkPortsIsolator {
        let lister: Arc<PidLister> = Arc::new(move |id: &str| {
            pids.get(id)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        });
        NetworkPortsIsolator::new(
            sys,
            lister,
            PortsConfig {
                watch_interval: Duration::from_secs(1),
                enforce,
                enforce_at_bind: false,
                isolated,
                cni_enabled: false,
            },
        )
    }

    fn listening(inode: u64, addr: IpAddr, port: u16) -> ListeningSocket {
        ListeningSocket {
            inode,
            addr,
            port,
            cgroup_id: None,
        }
    }

    fn scripted() -> Arc<RecordingSyscalls> {
        let sys = Arc::new(RecordingSyscalls::new());
        sys.set_listening(vec![
            listening(11, IpAddr::V4(Ipv4Addr::LOCALHOST), 31000),
            listening(12, IpAddr::V6(Ipv6Addr::LOCALHOST), 8080),
            listening(13, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5051),
        ]);
        // pid 100 (c1) holds the allocated listener and a non-listening socket;
        // pid 101 (c1) an IPv6 listener on 8080; pid 200 (c2) nothing listening;
        // pid 300 is gone.
        sys.set_sockets(100, vec![11, 99]);
        sys.set_sockets(101, vec![12]);
        sys.set_sockets(200, vec![98]);
        sys
    }

    fn pids() -> BTreeMap<String, Vec<u32>> {
        [("c1", vec![100, 101, 300]), ("c2", vec![200])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn listeners_are_mapped_to_containers_through_their_processes_sockets_v4_and_v6() {
        let sys = scripted();
        let lister: Arc<PidLister> = {
            let pids = pids();
            Arc::new(move |id: &str| Ok(pids.get(id).cloned().unwrap_or_default()))
        };
        let containers = vec!["c1".to_string(), "c2".to_string(), "gone".to_string()];
        let all = collect_listeners(sys.as_ref(), lister.as_ref(), None, None, &containers)
            .expect("collect");
        assert_eq!(all.len(), 1, "only c1 listens: {all:?}");
        assert_eq!(all["c1"], set(&[8080, 31000]));
        let only = PortRanges::from_ranges([(31000, 32000)]);
        let some = collect_listeners(
            sys.as_ref(),
            lister.as_ref(),
            None,
            Some(&only),
            &containers,
        )
        .expect("collect");
        assert_eq!(
            some["c1"],
            set(&[31000]),
            "outside the isolated range: ignored"
        );
    }

    #[test]
    fn with_socket_cgroups_listeners_belong_to_the_container_whose_cgroup_made_them() {
        let sys = Arc::new(RecordingSyscalls::new());
        let with_cgroup = |inode, port, cgroup| ListeningSocket {
            cgroup_id: Some(cgroup),
            ..listening(inode, IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        };
        sys.set_listening(vec![
            with_cgroup(11, 31000, 500),
            // c1's nested cgroup.
            with_cgroup(12, 8080, 501),
            // The host's.
            with_cgroup(13, 5051, 1),
            // c3's: its ids cannot be listed, so its processes' fds are read.
            with_cgroup(14, 9000, 700),
        ]);
        sys.set_sockets(300, vec![14]);
        let walked: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&walked);
        let lister: Arc<PidLister> = Arc::new(move |id: &str| {
            seen.lock().expect("lock").push(id.to_string());
            Ok(if id == "c3" { vec![300] } else { vec![] })
        });
        let ids: Arc<CgroupIdLister> = Arc::new(|id: &str| match id {
            "c1" => Ok(vec![500, 501]),
            "c2" => Ok(vec![600]),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        });
        let containers = vec!["c1".to_string(), "c2".to_string(), "c3".to_string()];
        let mut owners = CgroupOwners::new(ids);
        let all = collect_listeners(
            sys.as_ref(),
            lister.as_ref(),
            Some(&mut owners),
            None,
            &containers,
        )
        .expect("collect");
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all["c1"], set(&[8080, 31000]));
        assert_eq!(all["c3"], set(&[9000]));
        assert_eq!(
            *walked.lock().expect("lock"),
            vec!["c3".to_string()],
            "only c3's /proc is read"
        );

        // A kernel that gives no socket cgroups: every container is walked.
        sys.set_listening(vec![listening(14, IpAddr::V4(Ipv4Addr::LOCALHOST), 9000)]);
        walked.lock().expect("lock").clear();
        let all = collect_listeners(
            sys.as_ref(),
            lister.as_ref(),
            Some(&mut owners),
            None,
            &containers,
        )
        .expect("collect");
        assert_eq!(all["c3"], set(&[9000]));
        assert_eq!(walked.lock().expect("lock").len(), 3);
    }

    #[test]
    fn cgroups_are_listed_once_per_container_and_again_only_for_a_cgroup_not_known_yet() {
        let sys = Arc::new(RecordingSyscalls::new());
        let socket = |inode, port, cgroup| ListeningSocket {
            cgroup_id: Some(cgroup),
            ..listening(inode, IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        };
        let tree: Arc<Mutex<BTreeMap<String, Vec<u64>>>> = Arc::new(Mutex::new(
            [("c1".to_string(), vec![500]), ("c2".to_string(), vec![600])].into(),
        ));
        let listed: Arc<Mutex<Vec<String>>> = Arc::default();
        let (t, l) = (Arc::clone(&tree), Arc::clone(&listed));
        let ids: Arc<CgroupIdLister> = Arc::new(move |id: &str| {
            l.lock().expect("lock").push(id.to_string());
            t.lock()
                .expect("lock")
                .get(id)
                .cloned()
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        });
        let lister: Arc<PidLister> = Arc::new(|_: &str| Ok(vec![]));
        let containers = vec!["c1".to_string(), "c2".to_string()];
        let mut owners = CgroupOwners::new(ids);
        let mut scan = |sockets: Vec<ListeningSocket>| {
            sys.set_listening(sockets);
            collect_listeners(
                sys.as_ref(),
                lister.as_ref(),
                Some(&mut owners),
                None,
                &containers,
            )
            .expect("collect")
        };
        // The host's listener (cgroup 1) is unknown at first: one more listing.
        let found = scan(vec![socket(1, 31000, 500), socket(2, 22, 1)]);
        assert_eq!(found["c1"], set(&[31000]));
        assert_eq!(
            listed.lock().expect("lock").len(),
            4,
            "each container, then all again for cgroup 1"
        );
        listed.lock().expect("lock").clear();
        let found = scan(vec![socket(1, 31000, 500), socket(2, 22, 1)]);
        assert_eq!(found.len(), 1);
        assert!(
            listed.lock().expect("lock").is_empty(),
            "nothing new: no listing at all"
        );
        // c2's task makes a cgroup below its own and listens from there.
        tree.lock()
            .expect("lock")
            .insert("c2".into(), vec![600, 601]);
        let found = scan(vec![socket(1, 31000, 500), socket(3, 8080, 601)]);
        assert_eq!(found["c2"], set(&[8080]), "found after listing again");
        assert_eq!(listed.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn with_enforcement_the_watch_resolves_with_the_unallocated_ports_as_a_ranges_resource() {
        let iso = isolator(scripted(), pids(), true, None);
        let config = ContainerConfig {
            container_id: "c1".into(),
            resources: ports(&[(31000, 31000)]),
            ..Default::default()
        };
        assert_eq!(iso.prepare(&config).expect("prepare"), None);
        let watch = iso.watch("c1");
        iso.scan_now();
        let limitation = tokio::time::timeout(Duration::from_secs(1), watch)
            .await
            .expect("resolved")
            .expect("a limitation");
        assert_eq!(
            limitation.reason,
            v1::task_status::Reason::ContainerLimitation
        );
        assert_eq!(
            limitation.message,
            "Container c1 is listening on unallocated port(s): [8080-8080]"
        );
        assert_eq!(limitation.resources, ports(&[(8080, 8080)]));
        // A later watch sees it too; cleanup ends the others.
        assert!(iso.watch("c1").await.is_some());
        assert!(matches!(
            iso.prepare(&config),
            Err(IsolatorError::AlreadyPrepared(_))
        ));
        iso.cleanup("c1").expect("cleanup");
        assert!(iso.watch("c1").await.is_none(), "unknown container");
    }

    #[tokio::test]
    async fn without_enforcement_nothing_is_limited_and_cleanup_ends_the_watch() {
        let iso = isolator(scripted(), pids(), false, None);
        iso.prepare(&ContainerConfig {
            container_id: "c1".into(),
            resources: ports(&[(31000, 31000)]),
            ..Default::default()
        })
        .expect("prepare");
        let watch = iso.watch("c1");
        iso.scan_now();
        iso.cleanup("c1").expect("cleanup");
        assert_eq!(watch.await, None);
    }

    #[tokio::test]
    async fn an_update_that_allocates_the_port_prevents_the_limitation() {
        let iso = isolator(scripted(), pids(), true, None);
        iso.prepare(&ContainerConfig {
            container_id: "c1".into(),
            resources: ports(&[(31000, 31000)]),
            ..Default::default()
        })
        .expect("prepare");
        iso.update("c1", &ports(&[(8080, 8080), (31000, 31000)]))
            .expect("update");
        let watch = iso.watch("c1");
        iso.scan_now();
        iso.cleanup("c1").expect("cleanup");
        assert_eq!(watch.await, None);
    }

    #[tokio::test]
    async fn containers_on_a_named_cni_network_are_ignored_when_cni_is_enabled() {
        let sys = scripted();
        let lister: Arc<PidLister> = Arc::new(|_: &str| Ok(vec![101]));
        let iso = NetworkPortsIsolator::new(
            sys,
            lister,
            PortsConfig {
                watch_interval: Duration::from_secs(1),
                enforce: true,
                enforce_at_bind: false,
                isolated: None,
                cni_enabled: true,
            },
        );
        let info = v1::ContainerInfo {
            network_infos: vec![v1::NetworkInfo {
                name: Some("net1".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        iso.prepare(&ContainerConfig {
            container_id: "c1".into(),
            container_info: Some(info),
            ..Default::default()
        })
        .expect("prepare");
        iso.scan_now();
        assert_eq!(iso.watch("c1").await, None, "not watched");
    }

    #[test]
    fn with_enforce_at_bind_prepare_asks_for_a_filter_and_update_replaces_it() {
        let sys = scripted();
        let restricted: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let seen = Arc::clone(&restricted);
        let restrict: Arc<BindRestrictor> =
            Arc::new(move |id: &str, program: &[crate::sys::EbpfInstruction]| {
                seen.lock()
                    .expect("lock")
                    .push((id.to_string(), program.len()));
                Ok(())
            });
        let lister: Arc<PidLister> = Arc::new(|_: &str| Ok(vec![]));
        let config = PortsConfig {
            watch_interval: Duration::from_secs(1),
            enforce: true,
            enforce_at_bind: true,
            isolated: Some(PortRanges::from_ranges([(31000, 32000)])),
            cni_enabled: false,
        };
        let iso = NetworkPortsIsolator::new(sys.clone(), lister.clone(), config.clone())
            .with_bind_restrictor(Arc::clone(&restrict));
        let info = iso
            .prepare(&ContainerConfig {
                container_id: "c1".into(),
                resources: ports(&[(31000, 31000)]),
                ..ContainerConfig::default()
            })
            .expect("prepared")
            .expect("launch info");
        let expected = super::super::bind_filter::program(
            &PortRanges::from_ranges([(31000, 31000)]),
            config.isolated.as_ref(),
        )
        .expect("program");
        assert_eq!(info.bind_filter.as_ref(), Some(&expected));
        assert!(
            restricted.lock().expect("lock").is_empty(),
            "attached by the launcher at launch"
        );

        iso.update("c1", &ports(&[(31000, 31001), (31005, 31005)]))
            .expect("updated");
        let grown = super::super::bind_filter::program(
            &PortRanges::from_ranges([(31000, 31001), (31005, 31005)]),
            config.isolated.as_ref(),
        )
        .expect("program");
        assert_eq!(
            *restricted.lock().expect("lock"),
            vec![("c1".to_string(), grown.len())]
        );
        iso.update("unknown", &ports(&[(1, 2)])).expect("ignored");
        assert_eq!(
            restricted.lock().expect("lock").len(),
            1,
            "unwatched containers get no filter"
        );

        let failing: Arc<BindRestrictor> =
            Arc::new(|_: &str, _: &[crate::sys::EbpfInstruction]| {
                Err(std::io::Error::from_raw_os_error(libc::EPERM))
            });
        let iso = NetworkPortsIsolator::new(sys.clone(), lister.clone(), config.clone())
            .with_bind_restrictor(failing);
        iso.prepare(&ContainerConfig {
            container_id: "c2".into(),
            ..ContainerConfig::default()
        })
        .expect("prepared");
        let err = iso
            .update("c2", &ports(&[(31000, 31000)]))
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("replacing the bind filter of container c2"),
            "{err}"
        );

        let off = NetworkPortsIsolator::new(
            sys,
            lister,
            PortsConfig {
                enforce_at_bind: false,
                ..config
            },
        )
        .with_bind_restrictor(restrict);
        let info = off
            .prepare(&ContainerConfig {
                container_id: "c3".into(),
                ..ContainerConfig::default()
            })
            .expect("prepared");
        assert_eq!(
            info, None,
            "no filter without --container_ports_enforce_at_bind"
        );
    }
}
