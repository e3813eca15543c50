//! The container cgroups of the linux launcher: finds which layout the host has,
//! and creates, limits, lists, freezes and removes one container's cgroups.
//! It signals nothing itself (the launcher does, through the syscall seam).
//!
//! Layouts (see [`Layout::detect`]):
//! * cgroup v1, chosen whenever the v1 `freezer` controller is mounted under
//!   `--cgroups_hierarchy`: a container is `<mount>/<cgroups_root>/<id>` in each
//!   of the `freezer`, `cpu`, `cpuacct` and `memory` mounts present (co-mounted
//!   controllers share one directory). v1 wins on hybrid hosts because there the
//!   v2 hierarchy usually has no controllers (they are bound to v1), so it could
//!   not enforce limits.
//! * cgroup v2, when `--cgroups_hierarchy` is (inside) a `cgroup2` mount: a
//!   container is `<hierarchy>/<cgroups_root>/<id>`; `cpu` and `memory` are
//!   enabled in the ancestors' `cgroup.subtree_control` when a limit needs them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{validate_name, LauncherError, Limits};
use crate::sys::Syscalls;

/// The smallest memory limit, as in Mesos (`MIN_MEMORY`): 32 MiB.
pub const MIN_MEMORY_BYTES: u64 = 32 * 1024 * 1024;
/// The CFS period (`cpu.cfs_period_us`, the second field of `cpu.max`).
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota, as in Mesos.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;

/// The v1 controllers a container gets a cgroup in, when mounted; `freezer` is required.
const V1_CONTROLLERS: [&str; 4] = ["freezer", "cpu", "cpuacct", "memory"];

/// Which cgroup layout the host has, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Controllers mounted separately (or a few together).
    V1 {
        /// `--cgroups_hierarchy`.
        hierarchy: PathBuf,
        /// Controller name -> its mount point, for the controllers we use that are mounted.
        mounts: BTreeMap<String, PathBuf>,
        /// A cgroup2 mount under the hierarchy (a "hybrid" host, such as
        /// `/sys/fs/cgroup/unified`). Each container gets a cgroup there too,
        /// without controllers: cgroup BPF programs (the bind filter of
        /// `network/ports`) attach to v2 cgroups only.
        unified: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2 {
        /// `--cgroups_hierarchy` (a cgroup2 mount, or a delegated directory inside one).
        hierarchy: PathBuf,
        /// The controllers available at the hierarchy (its `cgroup.controllers`).
        controllers: BTreeSet<String>,
    },
}

/// Undoes the octal escapes (`\040` for a space, ...) of `/proc/self/mounts`.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(digits) = field.get(i + 1..i + 4) {
                if digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    if let Ok(v) = u8::from_str_radix(digits, 8) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Layout {
    /// Reads `/proc/self/mounts` and detects the layout under `hierarchy`.
    pub fn detect_host(hierarchy: &Path) -> Result<Layout, LauncherError> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .map_err(LauncherError::io("reading /proc/self/mounts"))?;
        Layout::detect(hierarchy, &mounts)
    }

    /// Detects the layout under `hierarchy` from the text of `/proc/self/mounts`:
    /// v1 when the v1 freezer is mounted under it, else v2 when it is inside a
    /// cgroup2 mount, else an error that says what was found.
    pub fn detect(hierarchy: &Path, mounts: &str) -> Result<Layout, LauncherError> {
        let mut v1: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut v2_mounts: Vec<PathBuf> = Vec::new();
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(mount_point), Some(fstype), Some(options)) =
                (fields.get(1), fields.get(2), fields.get(3))
            else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mount_field(mount_point));
            match *fstype {
                "cgroup" if mount_point.starts_with(hierarchy) => {
                    for option in options.split(',') {
                        if V1_CONTROLLERS.contains(&option) {
                            v1.entry(option.to_string())
                                .or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                "cgroup2" => v2_mounts.push(mount_point),
                _ => {}
            }
        }
        if v1.contains_key("freezer") {
            let unified = v2_mounts.iter().find(|m| m.starts_with(hierarchy)).cloned();
            return Ok(Layout::V1 {
                hierarchy: hierarchy.to_path_buf(),
                mounts: v1,
                unified,
            });
        }
        if v2_mounts.iter().any(|m| hierarchy.starts_with(m)) {
            let path = hierarchy.join("cgroup.controllers");
            let text = std::fs::read_to_string(&path)
                .map_err(LauncherError::io(format!("reading {}", path.display())))?;
            let controllers = text.split_whitespace().map(str::to_string).collect();
            return Ok(Layout::V2 {
                hierarchy: hierarchy.to_path_buf(),
                controllers,
            });
        }
        let detail = match v2_mounts.first() {
            Some(m) => format!(
                "and it is not a cgroup v2 mount; cgroup v2 is mounted at {}, \
                 which --cgroups_hierarchy could name",
                m.display()
            ),
            None => "and no cgroup v2 hierarchy is mounted".to_string(),
        };
        Err(LauncherError::NoCgroups {
            hierarchy: hierarchy.to_path_buf(),
            detail,
        })
    }

    /// `1` or `2`.
    pub fn version(&self) -> u8 {
        match self {
            Layout::V1 { .. } => 1,
            Layout::V2 { .. } => 2,
        }
    }

    /// `--cgroups_hierarchy`.
    pub fn hierarchy(&self) -> &Path {
        match self {
            Layout::V1 { hierarchy, .. } | Layout::V2 { hierarchy, .. } => hierarchy,
        }
    }
}

/// `cpu.shares` for `cpus`: 1024 per CPU, at least 2 (the kernel's minimum), at
/// most 262144 (its maximum).
pub fn cpu_shares(cpus: f64) -> u64 {
    let shares = (cpus * 1024.0).floor();
    if shares.is_nan() || shares < 2.0 {
        2
    } else {
        (shares as u64).min(262_144)
    }
}

/// The v2 `cpu.weight` matching v1 `shares` (the mapping runc and systemd use):
/// 2 -> 1, 1024 -> 39, 262144 -> 10000.
pub fn cpu_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The CFS quota in microseconds per [`CFS_PERIOD_US`] for `cpus`.
pub fn cfs_quota_us(cpus: f64) -> u64 {
    let quota = (cpus * CFS_PERIOD_US as f64).floor();
    if quota.is_nan() || quota < MIN_CFS_QUOTA_US as f64 {
        MIN_CFS_QUOTA_US
    } else if quota >= u64::MAX as f64 {
        u64::MAX
    } else {
        quota as u64
    }
}

/// The memory limit for a request of `bytes`: at least [`MIN_MEMORY_BYTES`].
pub fn memory_limit(bytes: u64) -> u64 {
    bytes.max(MIN_MEMORY_BYTES)
}

/// One control file value that a limit stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitWrite {
    /// `cpu` or `memory`.
    pub controller: &'static str,
    /// The control file (`cpu.shares`, `memory.max`, ...).
    pub file: &'static str,
    /// What is written to it.
    pub value: String,
}

/// What `limits` mean in cgroup `version`'s control files, in the order they
/// are written. The one place that decides it: the launcher writes these when
/// it creates a container's cgroups, the `cgroups/cpu` and `cgroups/mem`
/// isolators when its resources change (Mesos's `update`).
///
/// * cpus: v1 `cpu.shares` = 1024 × cpus (min 2), and with a CFS quota
///   `cpu.cfs_period_us` = 100 ms, `cpu.cfs_quota_us` = cpus × period (min
///   1 ms); v2 the matching `cpu.weight` and `cpu.max` = `"<quota> <period>"`.
/// * mem: v1 `memory.limit_in_bytes` then `memory.soft_limit_in_bytes`, both
///   the request (min 32 MiB), as Mesos; v2 `memory.max` only (v2 has no soft
///   limit: `memory.high` throttles, which Mesos's v1 soft limit does not).
pub fn limit_writes(version: u8, limits: &Limits) -> Vec<LimitWrite> {
    let w = |controller, file, value: String| LimitWrite {
        controller,
        file,
        value,
    };
    let mut out = Vec::new();
    if let Some(cpus) = limits.cpus {
        let shares = cpu_shares(cpus);
        if version == 2 {
            out.push(w("cpu", "cpu.weight", cpu_weight(shares).to_string()));
            if limits.cfs_quota {
                out.push(w(
                    "cpu",
                    "cpu.max",
                    format!("{} {CFS_PERIOD_US}", cfs_quota_us(cpus)),
                ));
            }
        } else {
            out.push(w("cpu", "cpu.shares", shares.to_string()));
            if limits.cfs_quota {
                out.push(w("cpu", "cpu.cfs_period_us", CFS_PERIOD_US.to_string()));
                out.push(w("cpu", "cpu.cfs_quota_us", cfs_quota_us(cpus).to_string()));
            }
        }
    }
    if let Some(bytes) = limits.mem_bytes {
        let limit = memory_limit(bytes).to_string();
        if version == 2 {
            out.push(w("memory", "memory.max", limit));
        } else {
            out.push(w("memory", "memory.limit_in_bytes", limit.clone()));
            out.push(w("memory", "memory.soft_limit_in_bytes", limit));
        }
    }
    out
}

/// Checks `--cgroups_root`: relative, `/`-separated names, nothing like `..`.
pub(crate) fn validate_root(root: &str) -> Result<(), LauncherError> {
    let bad = |reason| {
        Err(LauncherError::InvalidCgroupsRoot {
            root: root.to_string(),
            reason,
        })
    };
    if root.starts_with('/') {
        return bad("it must be relative to --cgroups_hierarchy");
    }
    for segment in root.split('/') {
        if let Some(reason) = validate_name(segment) {
            return bad(reason);
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Option<String>, LauncherError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LauncherError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), LauncherError> {
    std::fs::write(path, value).map_err(LauncherError::io(format!(
        "writing {value:?} to {}",
        path.display()
    )))
}

/// `dir` and every cgroup below it, children after their parents.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            let mut children: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}

/// One agent's container cgroups: a layout plus `--cgroups_root`.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    root: String,
    use_cgroup_kill: bool,
}

impl Cgroups {
    /// Container cgroups under `root` in `layout`; an unusable `root` is an error.
    pub fn new(layout: Layout, root: &str) -> Result<Self, LauncherError> {
        validate_root(root)?;
        Ok(Self {
            layout,
            root: root.to_string(),
            use_cgroup_kill: true,
        })
    }

    /// Never use v2 `cgroup.kill` (tests the freeze-kill-thaw path on v2).
    #[cfg(test)]
    pub(crate) fn without_cgroup_kill(mut self) -> Self {
        self.use_cgroup_kill = false;
        self
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The directories holding container cgroups: one per distinct v1 mount (the
    /// freezer's first), or the single v2 one.
    pub fn bases(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 {
                mounts, unified, ..
            } => {
                let mut out: Vec<PathBuf> = Vec::new();
                let freezer = mounts.get("freezer");
                for mount in freezer.into_iter().chain(mounts.values()).chain(unified) {
                    let base = mount.join(&self.root);
                    if !out.contains(&base) {
                        out.push(base);
                    }
                }
                out
            }
            Layout::V2 { hierarchy, .. } => vec![hierarchy.join(&self.root)],
        }
    }

    /// The container's cgroup directories (the freezer's, or the v2 one, first).
    pub fn dirs(&self, container_id: &str) -> Vec<PathBuf> {
        self.bases()
            .into_iter()
            .map(|b| b.join(container_id))
            .collect()
    }

    /// The cgroup that decides membership: the freezer's (v1) or the only one (v2).
    pub fn primary_dir(&self, container_id: &str) -> PathBuf {
        let base = match &self.layout {
            Layout::V1 {
                mounts, hierarchy, ..
            } => mounts
                .get("freezer")
                .cloned()
                .unwrap_or_else(|| hierarchy.join("freezer")),
            Layout::V2 { hierarchy, .. } => hierarchy.clone(),
        };
        base.join(&self.root).join(container_id)
    }

    fn controller_dir(&self, controller: &str, container_id: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { mounts, .. } => mounts
                .get(controller)
                .map(|m| m.join(&self.root).join(container_id)),
            Layout::V2 {
                controllers,
                hierarchy,
            } => controllers
                .contains(controller)
                .then(|| hierarchy.join(&self.root).join(container_id)),
        }
    }

    /// The container's cgroup in a v2 hierarchy, where cgroup BPF programs
    /// attach: its only cgroup (v2), its controller-less one in the unified
    /// mount (hybrid v1), or none (v1 alone).
    pub fn v2_dir(&self, container_id: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { unified, .. } => unified
                .as_ref()
                .map(|u| u.join(&self.root).join(container_id)),
            Layout::V2 { .. } => Some(self.primary_dir(container_id)),
        }
    }

    /// The ids of the container's v2 cgroup and those below it (a cgroup's id
    /// is its directory's inode number).
    pub fn v2_ids(&self, container_id: &str) -> Result<Vec<u64>, LauncherError> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.v2_dir(container_id).ok_or_else(|| LauncherError::Io {
            context: format!("listing the cgroup ids of container {container_id}"),
            source: io::Error::new(io::ErrorKind::Unsupported, "no cgroup v2 hierarchy"),
        })?;
        let root = std::fs::metadata(&dir)
            .map_err(LauncherError::io(format!("reading {}", dir.display())))?;
        let mut ids = vec![root.ino()];
        for cgroup in tree(&dir).into_iter().skip(1) {
            // A cgroup removed meanwhile holds nothing.
            if let Ok(m) = std::fs::metadata(&cgroup) {
                ids.push(m.ino());
            }
        }
        Ok(ids)
    }

    /// Whether any of the container's cgroups exists.
    pub fn exists(&self, container_id: &str) -> bool {
        self.dirs(container_id).iter().any(|d| d.is_dir())
    }

    /// Creates the container's cgroups, applies `limits`, and opens the
    /// `cgroup.procs` files the executor writes itself into before it execs.
    /// On error nothing is left behind.
    pub(crate) fn create(
        &self,
        sys: &dyn Syscalls,
        container_id: &str,
        limits: &Limits,
    ) -> Result<Vec<(PathBuf, File)>, LauncherError> {
        if self.exists(container_id) {
            return Err(LauncherError::ContainerExists(container_id.to_string()));
        }
        let unavailable = |resource, controller| LauncherError::ControllerUnavailable {
            container_id: container_id.to_string(),
            resource,
            controller,
            hierarchy: self.layout.hierarchy().to_path_buf(),
        };
        let cpu_dir = match limits.cpus {
            Some(_) => Some(
                self.controller_dir("cpu", container_id)
                    .ok_or_else(|| unavailable("cpus", "cpu"))?,
            ),
            None => None,
        };
        let memory_dir = match limits.mem_bytes {
            Some(_) => Some(
                self.controller_dir("memory", container_id)
                    .ok_or_else(|| unavailable("mem", "memory"))?,
            ),
            None => None,
        };
        let mut created = Vec::new();
        let result = self
            .create_dirs(container_id, limits, &mut created)
            .and_then(|()| {
                self.apply_limits(limits, cpu_dir.as_deref(), memory_dir.as_deref())?;
                self.dirs(container_id)
                    .into_iter()
                    .map(|dir| {
                        let path = dir.join("cgroup.procs");
                        let file = OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .open(&path)
                            .map_err(LauncherError::io(format!("opening {}", path.display())))?;
                        Ok((path, file))
                    })
                    .collect::<Result<Vec<_>, LauncherError>>()
            });
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = sys.rmdir(dir);
            }
        }
        result
    }

    fn create_dirs(
        &self,
        container_id: &str,
        limits: &Limits,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), LauncherError> {
        if let Layout::V2 { hierarchy, .. } = &self.layout {
            let mut wanted = Vec::new();
            if limits.cpus.is_some() {
                wanted.push("+cpu");
            }
            if limits.mem_bytes.is_some() {
                wanted.push("+memory");
            }
            let base = hierarchy.join(&self.root);
            std::fs::create_dir_all(&base)
                .map_err(LauncherError::io(format!("creating {}", base.display())))?;
            if !wanted.is_empty() {
                // Enable the controllers on the way down, from the hierarchy to
                // the container's parent (which holds no processes itself).
                let mut dir = hierarchy.clone();
                let mut ancestors = vec![dir.clone()];
                for part in Path::new(&self.root).components() {
                    if let Component::Normal(p) = part {
                        dir = dir.join(p);
                        ancestors.push(dir.clone());
                    }
                }
                for ancestor in ancestors {
                    write_file(&ancestor.join("cgroup.subtree_control"), &wanted.join(" "))?;
                }
            }
        }
        for dir in self.dirs(container_id) {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(LauncherError::io(format!("creating {}", parent.display())))?;
            }
            std::fs::create_dir(&dir)
                .map_err(LauncherError::io(format!("creating {}", dir.display())))?;
            created.push(dir);
        }
        Ok(())
    }

    fn apply_limits(
        &self,
        limits: &Limits,
        cpu_dir: Option<&Path>,
        memory_dir: Option<&Path>,
    ) -> Result<(), LauncherError> {
        if let Some(bytes) = limits.mem_bytes {
            let limit = memory_limit(bytes);
            if limit != bytes {
                tracing::warn!(
                    requested = bytes,
                    limit,
                    "memory limit raised to the 32 MiB minimum"
                );
            }
        }
        for write in limit_writes(self.layout.version(), limits) {
            let dir = match write.controller {
                "cpu" => cpu_dir,
                _ => memory_dir,
            };
            if let Some(dir) = dir {
                write_file(&dir.join(write.file), &write.value)?;
            }
        }
        Ok(())
    }

    /// The container's control file `file` of `controller` (`cpu`, `memory`),
    /// when that controller is available.
    pub(crate) fn control_file(
        &self,
        controller: &str,
        container_id: &str,
        file: &str,
    ) -> Option<PathBuf> {
        self.controller_dir(controller, container_id)
            .map(|d| d.join(file))
    }

    /// Every process in the container's cgroups (nested cgroups included), sorted.
    pub fn pids(&self, container_id: &str) -> Result<Vec<u32>, LauncherError> {
        let mut pids = BTreeSet::new();
        for dir in self.dirs(container_id) {
            for cgroup in tree(&dir) {
                if let Some(text) = read_file(&cgroup.join("cgroup.procs"))? {
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
                }
            }
        }
        Ok(pids.into_iter().collect())
    }

    /// The ids of every container with a cgroup under the root.
    pub fn containers(&self) -> Result<BTreeSet<String>, LauncherError> {
        let mut ids = BTreeSet::new();
        for base in self.bases() {
            let entries = match std::fs::read_dir(&base) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(LauncherError::Io {
                        context: format!("listing {}", base.display()),
                        source: e,
                    })
                }
            };
            for entry in entries {
                let entry =
                    entry.map_err(LauncherError::io(format!("listing {}", base.display())))?;
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                if let Some(name) = entry.file_name().to_str() {
                    if validate_name(name).is_none() {
                        ids.insert(name.to_string());
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Kills every process of the container at once with v2 `cgroup.kill`, when
    /// the kernel has it (5.14+). Returns whether it did.
    pub(crate) fn kill_all(&self, container_id: &str) -> Result<bool, LauncherError> {
        if self.layout.version() != 2 || !self.use_cgroup_kill {
            return Ok(false);
        }
        let path = self.primary_dir(container_id).join("cgroup.kill");
        if !path.exists() {
            return Ok(false);
        }
        write_file(&path, "1")?;
        Ok(true)
    }

    /// Asks the kernel to freeze (or thaw) the container.
    pub(crate) fn set_frozen(&self, container_id: &str, frozen: bool) -> Result<(), LauncherError> {
        let dir = self.primary_dir(container_id);
        match self.layout.version() {
            1 => write_file(
                &dir.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            _ => write_file(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
        }
    }

    /// Whether the container is completely frozen.
    pub(crate) fn is_frozen(&self, container_id: &str) -> Result<bool, LauncherError> {
        let dir = self.primary_dir(container_id);
        Ok(match self.layout.version() {
            1 => read_file(&dir.join("freezer.state"))?.is_some_and(|s| s.trim() == "FROZEN"),
            _ => read_file(&dir.join("cgroup.events"))?
                .is_some_and(|s| s.lines().any(|l| l.trim() == "frozen 1")),
        })
    }

    /// Removes the container's (empty) cgroups, nested ones first. A cgroup that
    /// is already gone is fine.
    pub(crate) fn remove(
        &self,
        sys: &dyn Syscalls,
        container_id: &str,
    ) -> Result<(), LauncherError> {
        for dir in self.dirs(container_id) {
            if !dir.exists() {
                continue;
            }
            for cgroup in tree(&dir).iter().rev() {
                match sys.rmdir(cgroup) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(LauncherError::Io {
                            context: format!("removing cgroup {}", cgroup.display()),
                            source: e,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn a_hybrid_host_uses_the_v1_controllers() {
        let layout = Layout::detect(Path::new("/sys/fs/cgroup"), HYBRID_MOUNTS).expect("v1 found");
        let Layout::V1 { mounts, .. } = &layout else {
            panic!("expected v1, got {layout:?}")
        };
        assert_eq!(
            mounts.get("freezer"),
            Some(&PathBuf::from("/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            mounts.get("memory"),
            Some(&PathBuf::from("/sys/fs/cgroup/memory"))
        );
        let cg = Cgroups::new(layout, "mesos").expect("valid root");
        assert_eq!(
            cg.dirs("c1"),
            ["freezer", "cpu", "cpuacct", "memory", "unified"]
                .map(|c| PathBuf::from(format!("/sys/fs/cgroup/{c}/mesos/c1")))
                .to_vec(),
            "freezer first, one directory per controller, the unified one last"
        );
        assert_eq!(
            cg.v2_dir("c1"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/mesos/c1")),
            "bind filters attach to the unified cgroup"
        );
    }

    #[test]
    fn a_v1_host_without_a_unified_mount_has_no_v2_cgroup() {
        let mounts = "cgroup /sys/fs/cgroup/freezer cgroup rw,freezer 0 0\n\
                      cgroup2 /elsewhere cgroup2 rw 0 0\n";
        let layout = Layout::detect(Path::new("/sys/fs/cgroup"), mounts).expect("v1 found");
        let cg = Cgroups::new(layout, "mesos").expect("valid root");
        assert_eq!(cg.v2_dir("c1"), None);
        assert_eq!(
            cg.dirs("c1"),
            vec![PathBuf::from("/sys/fs/cgroup/freezer/mesos/c1")]
        );
    }

    #[test]
    fn co_mounted_controllers_share_one_directory() {
        let mounts = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/freezer cgroup rw,freezer 0 0\n";
        let layout = Layout::detect(Path::new("/sys/fs/cgroup"), mounts).expect("v1");
        let cg = Cgroups::new(layout, "mesos").expect("valid root");
        assert_eq!(cg.dirs("c").len(), 2);
        assert_eq!(cg.controller_dir("memory", "c"), None, "memory not mounted");
    }

    #[test]
    fn a_pure_v2_host_or_a_v2_hierarchy_flag_uses_v2() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("write controllers");
        let mounts = format!("cgroup2 {} cgroup2 rw,nosuid 0 0\n", dir.path().display());
        let layout = Layout::detect(dir.path(), &mounts).expect("v2");
        assert_eq!(layout.version(), 2);
        let Layout::V2 { controllers, .. } = &layout else {
            panic!("v2")
        };
        assert!(controllers.contains("memory") && controllers.contains("cpu"));
    }

    #[test]
    fn no_freezer_and_no_v2_is_a_clear_error_naming_the_fix() {
        let mounts = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        let err = Layout::detect(Path::new("/sys/fs/cgroup"), mounts).expect_err("unusable");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cgroup freezer controller not found under /sys/fs/cgroup"),
            "{msg}"
        );
        assert!(msg.contains("/sys/fs/cgroup/unified"), "{msg}");
        assert!(msg.ends_with("use --launcher=posix"), "{msg}");
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        assert_eq!(unescape_mount_field(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_field(r"/plain"), "/plain");
        assert_eq!(unescape_mount_field(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn limits_follow_mesos_minimums_and_the_v2_mapping() {
        assert_eq!(cpu_shares(1.0), 1024);
        assert_eq!(cpu_shares(0.5), 512);
        assert_eq!(cpu_shares(0.001), 2);
        assert_eq!(cpu_shares(f64::NAN), 2);
        assert_eq!(cpu_shares(1e9), 262_144);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cfs_quota_us(1.5), 150_000);
        assert_eq!(cfs_quota_us(0.001), MIN_CFS_QUOTA_US);
        assert_eq!(memory_limit(1), MIN_MEMORY_BYTES);
        assert_eq!(memory_limit(1 << 30), 1 << 30);
    }

    #[test]
    fn cgroups_root_must_be_relative_and_plain() {
        assert!(validate_root("mesos").is_ok());
        assert!(validate_root("agents/mesos").is_ok());
        for bad in ["", "/mesos", "../x", "a//b", "a/../b", "a b"] {
            assert!(validate_root(bad).is_err(), "{bad:?} refused");
        }
    }

    /// A v2 tree in a temporary directory standing in for the kernel's.
    fn fake_v2(controllers: &str) -> (tempfile::TempDir, Cgroups) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cgroup.controllers"), controllers).expect("controllers");
        let layout = Layout::V2 {
            hierarchy: dir.path().to_path_buf(),
            controllers: controllers.split_whitespace().map(str::to_string).collect(),
        };
        let cg = Cgroups::new(layout, "mesos").expect("root");
        (dir, cg)
    }

    #[test]
    fn v2_create_enables_controllers_and_writes_limits() {
        let sys = crate::sys::fake::RecordingSyscalls::new();
        let (dir, cg) = fake_v2("cpu memory pids");
        let limits = Limits {
            cpus: Some(2.0),
            mem_bytes: Some(256 << 20),
            cfs_quota: true,
        };
        let procs = cg.create(&sys, "c1", &limits).expect("create");
        let leaf = dir.path().join("mesos/c1");
        assert_eq!(
            procs.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            vec![leaf.join("cgroup.procs")]
        );
        let read = |p: &Path| std::fs::read_to_string(p).expect("file written");
        assert_eq!(
            read(&dir.path().join("cgroup.subtree_control")),
            "+cpu +memory"
        );
        assert_eq!(
            read(&dir.path().join("mesos/cgroup.subtree_control")),
            "+cpu +memory"
        );
        assert_eq!(read(&leaf.join("cpu.weight")), cpu_weight(2048).to_string());
        assert_eq!(read(&leaf.join("cpu.max")), "200000 100000");
        assert_eq!(read(&leaf.join("memory.max")), (256u64 << 20).to_string());
        assert!(matches!(
            cg.create(&sys, "c1", &limits),
            Err(LauncherError::ContainerExists(_))
        ));
    }

    #[test]
    fn a_limit_without_its_controller_is_refused_and_leaves_nothing() {
        let sys = crate::sys::fake::RecordingSyscalls::new();
        let (dir, cg) = fake_v2("pids");
        let limits = Limits {
            mem_bytes: Some(64 << 20),
            ..Limits::default()
        };
        let err = cg
            .create(&sys, "c1", &limits)
            .expect_err("no memory controller");
        assert!(
            err.to_string()
                .contains("memory controller is not available"),
            "{err}"
        );
        assert!(!dir.path().join("mesos/c1").exists());
    }

    #[test]
    fn containers_lists_cgroup_directories_under_the_root_only() {
        let (dir, cg) = fake_v2("");
        for d in ["mesos/a", "mesos/b", "mesos/b/nested", "other/c"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("mesos/cgroup.procs"), "").expect("file");
        let ids: Vec<String> = cg.containers().expect("list").into_iter().collect();
        assert_eq!(ids, vec!["a".to_string(), "b".to_string()]);
        std::fs::write(dir.path().join("mesos/b/cgroup.procs"), "12\n13\n").expect("procs");
        std::fs::write(dir.path().join("mesos/b/nested/cgroup.procs"), "14\n12\n").expect("procs");
        assert_eq!(
            cg.pids("b").expect("pids"),
            vec![12, 13, 14],
            "nested cgroups count"
        );
    }
}
