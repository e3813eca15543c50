//! The `cgroups/cpu` and `cgroups/mem` isolators (Mesos's cgroups isolator
//! with its `cpu` and `memory` subsystems): they follow a container's `cpus`
//! and `mem` as its tasks come and go, and `cgroups/mem` reports an OOM kill
//! in the container as a `REASON_CONTAINER_LIMITATION_MEMORY` limitation.
//!
//! They do not create or remove cgroups: the linux launcher does, and writes
//! the first limits (from [`launch_limits`]) before the executor execs, so a
//! container is never unlimited. Which control file gets which value is
//! decided once, in [`crate::launcher::cgroups::limit_writes`]. Control files
//! are read and written through [`CgroupControl`], so the logic is tested with
//! a recording fake and the real files in the integration tests.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use mesos_proto::v1;

use super::{ContainerConfig, ContainerLaunchInfo, ContainerLimitation, ContainerState};
use super::{Isolator, IsolatorError};
use crate::launcher::cgroups::{limit_writes, memory_limit, Cgroups};
use crate::launcher::Limits;

/// `cgroups/cpu`.
pub const CGROUPS_CPU: &str = "cgroups/cpu";
/// `cgroups/mem`.
pub const CGROUPS_MEM: &str = "cgroups/mem";

/// How often `cgroups/mem` reads a container's OOM-kill counter. The agent
/// also checks it at once when an executor reports a failed task, so a task
/// killed by the OOM killer is not reported as an ordinary failure.
pub const OOM_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Reads and writes a container's cgroup control files.
pub trait CgroupControl: Send + Sync + 'static {
    /// `1` or `2`.
    fn version(&self) -> u8;
    /// Writes `value` to `file` of the container's `controller` cgroup.
    fn write(
        &self,
        container_id: &str,
        controller: &str,
        file: &str,
        value: &str,
    ) -> io::Result<()>;
    /// Reads `file` of the container's `controller` cgroup.
    fn read(&self, container_id: &str, controller: &str, file: &str) -> io::Result<String>;
}

/// The real control files, under the launcher's cgroups.
#[derive(Debug)]
pub struct RealCgroupControl(pub Cgroups);

impl RealCgroupControl {
    fn path(
        &self,
        container_id: &str,
        controller: &str,
        file: &str,
    ) -> io::Result<std::path::PathBuf> {
        self.0
            .control_file(controller, container_id, file)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the cgroup {controller} controller is not available"),
                )
            })
    }
}

impl CgroupControl for RealCgroupControl {
    fn version(&self) -> u8 {
        self.0.layout().version()
    }

    fn write(
        &self,
        container_id: &str,
        controller: &str,
        file: &str,
        value: &str,
    ) -> io::Result<()> {
        std::fs::write(self.path(container_id, controller, file)?, value)
    }

    fn read(&self, container_id: &str, controller: &str, file: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(container_id, controller, file)?)
    }
}

/// Sum of the scalar resource `name`, when any is present.
fn scalar(resources: &[v1::Resource], name: &str) -> Option<f64> {
    let mut found = None;
    for r in resources.iter().filter(|r| r.name == name) {
        if let Some(s) = &r.scalar {
            *found.get_or_insert(0.0) += s.value;
        }
    }
    found
}

/// The limits the launcher applies when it creates a container's cgroups:
/// `cpus` only with `cgroups/cpu`, `mem` only with `cgroups/mem` (as Mesos:
/// the `posix/*` isolators enforce nothing), the CFS quota only with
/// `--cgroups_enable_cfs`.
pub fn launch_limits(isolation: &[String], enable_cfs: bool, resources: &[v1::Resource]) -> Limits {
    let on = |name: &str| isolation.iter().any(|n| n == name);
    Limits {
        cpus: if on(CGROUPS_CPU) {
            scalar(resources, "cpus")
        } else {
            None
        },
        mem_bytes: if on(CGROUPS_MEM) {
            scalar(resources, "mem").map(|mb| (mb.max(0.0) * 1024.0 * 1024.0) as u64)
        } else {
            None
        },
        cfs_quota: enable_cfs,
    }
}

/// Which subsystem an isolator drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// `cgroups/cpu`.
    Cpu,
    /// `cgroups/mem`.
    Mem,
}

#[derive(Debug, Default)]
struct Tracked {
    /// OOM kills counted before we watched (a recovered container's old ones).
    oom_baseline: u64,
    /// The limitation, once found. `watch` raises it once; `check` keeps
    /// answering with it, so an executor's failed update that arrives while
    /// the watcher's report is still on its way to the agent is still
    /// recognised as the limitation's effect.
    found: Option<ContainerLimitation>,
}

/// `cgroups/cpu` or `cgroups/mem`.
pub struct CgroupsIsolator {
    subsystem: Subsystem,
    enable_cfs: bool,
    control: Arc<dyn CgroupControl>,
    containers: Arc<Mutex<HashMap<String, Tracked>>>,
}

impl CgroupsIsolator {
    /// The isolator for `subsystem`; `enable_cfs` is `--cgroups_enable_cfs`.
    pub fn new(subsystem: Subsystem, enable_cfs: bool, control: Arc<dyn CgroupControl>) -> Self {
        Self {
            subsystem,
            enable_cfs,
            control,
            containers: Arc::default(),
        }
    }

    fn containers(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(context: String) -> impl FnOnce(io::Error) -> IsolatorError {
        move |source| IsolatorError::Io { context, source }
    }

    /// The container's OOM-kill count: v2 `memory.events` `oom_kill`; v1
    /// `memory.oom_control` `oom_kill` (kernel 4.13+), else `under_oom`.
    fn oom_kills(control: &dyn CgroupControl, container_id: &str) -> io::Result<u64> {
        let file = if control.version() == 2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = control.read(container_id, "memory", file)?;
        let field = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        Ok(field("oom_kill")
            .or_else(|| field("under_oom"))
            .unwrap_or(0))
    }

    /// Mesos's `oomWaited` message and limitation (`mem` = the maximum used, in MB).
    fn oom_limitation(control: &dyn CgroupControl, container_id: &str) -> ContainerLimitation {
        let v2 = control.version() == 2;
        let read_bytes = |file: &str| {
            control
                .read(container_id, "memory", file)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        let mut message = String::from("Memory limit exceeded: ");
        let limit = read_bytes(if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        });
        if let Some(limit) = limit {
            message.push_str(&format!("Requested: {} ", format_bytes(limit)));
        }
        let used = if v2 {
            read_bytes("memory.peak").or_else(|| read_bytes("memory.current"))
        } else {
            read_bytes("memory.max_usage_in_bytes")
        };
        if let Some(used) = used {
            message.push_str(&format!("Maximum Used: {}\n", format_bytes(used)));
        }
        if let Ok(stat) = control.read(container_id, "memory", "memory.stat") {
            message.push_str(&format!("\nMEMORY STATISTICS: \n{stat}\n"));
        }
        let mb = used.map(|u| u as f64 / (1024.0 * 1024.0)).unwrap_or(0.0);
        ContainerLimitation {
            resources: vec![v1::Resource {
                name: "mem".into(),
                r#type: v1::value::Type::Scalar as i32,
                scalar: Some(v1::value::Scalar { value: mb }),
                role: Some("*".into()),
                ..Default::default()
            }],
            message,
            reason: v1::task_status::Reason::ContainerLimitationMemory,
        }
    }

    /// The container's limitation if an OOM kill happened since it was
    /// watched: for the watcher (`again` false) only the first time it is
    /// seen, for `check` (`again` true) every time.
    fn poll(
        containers: &Mutex<HashMap<String, Tracked>>,
        control: &dyn CgroupControl,
        container_id: &str,
        again: bool,
    ) -> Option<ContainerLimitation> {
        let mut map = containers.lock().unwrap_or_else(|p| p.into_inner());
        let tracked = map.get_mut(container_id)?;
        if let Some(found) = &tracked.found {
            return again.then(|| found.clone());
        }
        let kills = Self::oom_kills(control, container_id).ok()?;
        if kills <= tracked.oom_baseline {
            return None;
        }
        tracing::info!(%container_id, "OOM detected for container");
        let limitation = Self::oom_limitation(control, container_id);
        tracked.found = Some(limitation.clone());
        Some(limitation)
    }

    fn track(&self, container_id: &str) {
        let oom_baseline = match self.subsystem {
            Subsystem::Mem => Self::oom_kills(self.control.as_ref(), container_id).unwrap_or(0),
            Subsystem::Cpu => 0,
        };
        self.containers()
            .entry(container_id.to_string())
            .or_insert(Tracked {
                oom_baseline,
                found: None,
            });
    }
}

/// Bytes as stout prints them: the largest unit that loses nothing.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let (mut value, mut unit) = (bytes, 0);
    while value != 0 && value % 1024 == 0 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

impl Isolator for CgroupsIsolator {
    fn name(&self) -> &'static str {
        match self.subsystem {
            Subsystem::Cpu => CGROUPS_CPU,
            Subsystem::Mem => CGROUPS_MEM,
        }
    }

    fn recover(&self, states: &[ContainerState], _orphans: &[String]) -> Result<(), IsolatorError> {
        for state in states {
            self.track(&state.container_id);
        }
        Ok(())
    }

    fn prepare(
        &self,
        _config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        // The launcher creates the cgroups and applies launch_limits().
        Ok(None)
    }

    fn isolate(&self, container_id: &str, _pid: u32) -> Result<(), IsolatorError> {
        self.track(container_id);
        Ok(())
    }

    fn watch(&self, container_id: &str) -> BoxFuture<'static, Option<ContainerLimitation>> {
        if self.subsystem != Subsystem::Mem {
            return Box::pin(async { None });
        }
        let containers = Arc::clone(&self.containers);
        let control = Arc::clone(&self.control);
        let container_id = container_id.to_string();
        Box::pin(async move {
            loop {
                tokio::time::sleep(OOM_POLL_INTERVAL).await;
                let tracked = containers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(&container_id);
                if !tracked {
                    return None;
                }
                if let Some(limitation) =
                    Self::poll(&containers, control.as_ref(), &container_id, false)
                {
                    return Some(limitation);
                }
            }
        })
    }

    fn check(&self, container_id: &str) -> Option<ContainerLimitation> {
        match self.subsystem {
            Subsystem::Mem => {
                Self::poll(&self.containers, self.control.as_ref(), container_id, true)
            }
            Subsystem::Cpu => None,
        }
    }

    fn update(&self, container_id: &str, resources: &[v1::Resource]) -> Result<(), IsolatorError> {
        if !self.containers().contains_key(container_id) {
            return Ok(());
        }
        let control = self.control.as_ref();
        let limits = match self.subsystem {
            Subsystem::Cpu => Limits {
                cpus: scalar(resources, "cpus"),
                cfs_quota: self.enable_cfs,
                ..Limits::default()
            },
            Subsystem::Mem => Limits {
                mem_bytes: scalar(resources, "mem").map(|mb| (mb.max(0.0) * 1048576.0) as u64),
                ..Limits::default()
            },
        };
        let hard = if control.version() == 2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        for write in limit_writes(control.version(), &limits) {
            if write.file == hard {
                // As Mesos: never lower the hard limit of a running container
                // (that could OOM it); the soft limit follows the request.
                let current = control
                    .read(container_id, write.controller, write.file)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok());
                let new = limits.mem_bytes.map(memory_limit).unwrap_or(0);
                if current.is_some_and(|c| new <= c) {
                    continue;
                }
            }
            control
                .write(container_id, write.controller, write.file, &write.value)
                .map_err(Self::io(format!(
                    "writing {:?} to {} of container {container_id}",
                    write.value, write.file
                )))?;
            tracing::info!(%container_id, file = write.file, value = %write.value, "updated cgroup limit");
        }
        Ok(())
    }

    fn cleanup(&self, container_id: &str) -> Result<(), IsolatorError> {
        self.containers().remove(container_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Control files in memory; every write recorded.
    #[derive(Default)]
    struct Recording {
        version: u8,
        files: Mutex<HashMap<(String, String), String>>,
        writes: Mutex<Vec<(String, String, String)>>,
    }

    impl Recording {
        fn new(version: u8) -> Arc<Self> {
            Arc::new(Self {
                version,
                ..Self::default()
            })
        }
        fn set(&self, container: &str, file: &str, value: &str) {
            self.files
                .lock()
                .expect("lock")
                .insert((container.into(), file.into()), value.into());
        }
        fn writes(&self) -> Vec<(String, String, String)> {
            std::mem::take(&mut *self.writes.lock().expect("lock"))
        }
    }

    impl CgroupControl for Recording {
        fn version(&self) -> u8 {
            self.version
        }
        fn write(&self, c: &str, _controller: &str, file: &str, value: &str) -> io::Result<()> {
            self.writes
                .lock()
                .expect("lock")
                .push((c.into(), file.into(), value.into()));
            self.set(c, file, value);
            Ok(())
        }
        fn read(&self, c: &str, _controller: &str, file: &str) -> io::Result<String> {
            self.files
                .lock()
                .expect("lock")
                .get(&(c.to_string(), file.to_string()))
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    fn res(cpus: f64, mem: f64) -> Vec<v1::Resource> {
        let s = |name: &str, value: f64| v1::Resource {
            name: name.into(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(v1::value::Scalar { value }),
            ..Default::default()
        };
        vec![
            s("cpus", cpus),
            s("mem", mem),
            s("cpus", 0.1),
            s("mem", 32.0),
        ]
    }

    fn w(file: &str, value: &str) -> (String, String, String) {
        ("c1".into(), file.into(), value.into())
    }

    #[test]
    fn launch_limits_follow_the_isolators_and_the_cfs_flag() {
        let all = vec![CGROUPS_CPU.to_string(), CGROUPS_MEM.to_string()];
        let limits = launch_limits(&all, true, &res(0.5, 128.0));
        assert_eq!(limits.cpus, Some(0.6));
        assert_eq!(limits.mem_bytes, Some(160 << 20));
        assert!(limits.cfs_quota);
        let posix = vec!["posix/cpu".to_string(), "posix/mem".to_string()];
        assert_eq!(
            launch_limits(&posix, false, &res(0.5, 128.0)),
            Limits::default(),
            "posix/* enforce nothing"
        );
    }

    #[test]
    fn cpu_update_writes_shares_and_the_cfs_quota_on_v1() {
        let rec = Recording::new(1);
        let iso = CgroupsIsolator::new(Subsystem::Cpu, true, rec.clone());
        iso.isolate("c1", 42).expect("isolate");
        iso.update("c1", &res(0.5, 128.0)).expect("update");
        assert_eq!(
            rec.writes(),
            vec![
                w("cpu.shares", "614"),
                w("cpu.cfs_period_us", "100000"),
                w("cpu.cfs_quota_us", "60000"),
            ]
        );
        let tiny = CgroupsIsolator::new(Subsystem::Cpu, false, rec.clone());
        tiny.isolate("c1", 42).expect("isolate");
        tiny.update("c1", &res(0.0, 0.0)[..1]).expect("update");
        assert_eq!(rec.writes(), vec![w("cpu.shares", "2")], "min 2, no CFS");
    }

    #[test]
    fn cpu_update_writes_weight_and_max_on_v2() {
        let rec = Recording::new(2);
        let iso = CgroupsIsolator::new(Subsystem::Cpu, true, rec.clone());
        iso.isolate("c1", 42).expect("isolate");
        iso.update("c1", &res(0.9, 1.0)).expect("update");
        assert_eq!(
            rec.writes(),
            vec![w("cpu.weight", "39"), w("cpu.max", "100000 100000")]
        );
    }

    #[test]
    fn mem_update_raises_but_never_lowers_the_hard_limit() {
        let rec = Recording::new(1);
        let iso = CgroupsIsolator::new(Subsystem::Mem, false, rec.clone());
        rec.set("c1", "memory.limit_in_bytes", &(160u64 << 20).to_string());
        iso.isolate("c1", 42).expect("isolate");
        iso.update("c1", &res(0.1, 256.0)).expect("raise");
        let raised = (288u64 << 20).to_string();
        assert_eq!(
            rec.writes(),
            vec![
                w("memory.limit_in_bytes", &raised),
                w("memory.soft_limit_in_bytes", &raised)
            ]
        );
        iso.update("c1", &res(0.1, 0.0)[..2]).expect("lower");
        assert_eq!(
            rec.writes(),
            vec![w("memory.soft_limit_in_bytes", &(32u64 << 20).to_string())],
            "only the soft limit goes down (to the 32 MB minimum)"
        );
        iso.update("unknown", &res(1.0, 1.0))
            .expect("unknown is fine");
        assert!(rec.writes().is_empty());
    }

    #[tokio::test]
    async fn an_oom_kill_is_raised_once_by_the_watcher_and_kept_for_check() {
        let rec = Recording::new(1);
        let iso = CgroupsIsolator::new(Subsystem::Mem, false, rec.clone());
        rec.set(
            "c1",
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        );
        iso.isolate("c1", 42).expect("isolate");
        assert_eq!(iso.check("c1"), None);
        rec.set(
            "c1",
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        rec.set("c1", "memory.limit_in_bytes", &(64u64 << 20).to_string());
        rec.set(
            "c1",
            "memory.max_usage_in_bytes",
            &(64u64 << 20).to_string(),
        );
        rec.set("c1", "memory.stat", "cache 0\nrss 67108864\n");
        let limitation = iso.watch("c1").await.expect("limitation");
        assert_eq!(
            limitation.message,
            "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB\n\n\
             MEMORY STATISTICS: \ncache 0\nrss 67108864\n\n"
        );
        assert_eq!(
            limitation.reason,
            v1::task_status::Reason::ContainerLimitationMemory
        );
        assert_eq!(limitation.resources.len(), 1);
        assert_eq!(limitation.resources[0].name, "mem");
        assert_eq!(
            limitation.resources[0].scalar.as_ref().map(|s| s.value),
            Some(64.0)
        );
        // The watcher raises it once; `check` still answers with it (the
        // agent asks when the executor's failed update beats the watcher's
        // report to it).
        assert!(
            tokio::time::timeout(3 * OOM_POLL_INTERVAL, iso.watch("c1"))
                .await
                .is_err(),
            "raised once by the watcher"
        );
        assert_eq!(iso.check("c1"), Some(limitation.clone()));
        iso.cleanup("c1").expect("cleanup");
        assert_eq!(iso.check("c1"), None, "forgotten with the container");
        assert_eq!(
            iso.watch("c1").await,
            None,
            "a forgotten container ends its watch"
        );
    }

    #[test]
    fn v2_oom_kills_are_read_from_memory_events() {
        let rec = Recording::new(2);
        rec.set(
            "c1",
            "memory.events",
            "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n",
        );
        assert_eq!(
            CgroupsIsolator::oom_kills(rec.as_ref(), "c1").expect("read"),
            1
        );
        let iso = CgroupsIsolator::new(Subsystem::Mem, false, rec.clone());
        iso.isolate("c1", 1).expect("isolate");
        assert_eq!(
            iso.check("c1"),
            None,
            "kills before isolate are the baseline"
        );
    }

    #[test]
    fn bytes_print_like_stout() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(1000), "1000B");
        assert_eq!(format_bytes(64 << 20), "64MB");
        assert_eq!(format_bytes(3 << 30), "3GB");
        assert_eq!(format_bytes((64 << 20) + 4096), "65540KB");
    }
}
