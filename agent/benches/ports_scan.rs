//! One `network/ports` scan over 1,000 "containers" of one process each, every
//! process holding 20 descriptors (16 on `/dev/null`, its 3 standard streams,
//! and one connected TCP socket), while 1,000 sockets listen on the host: the
//! real sock_diag dump and the real `/proc/<pid>/fd` readlinks, measured beside
//! the raw cost of those two in the same run. The containers are pid sets, not
//! cgroups (a cgroup listing adds one `cgroup.procs` read per container and
//! controller; see `launcher::cgroups`).
//!
//! As root with a cgroup v2 hierarchy (the unified mount of a hybrid host, or
//! a v2 host), each process also starts in a v2 cgroup of its own, as the
//! linux launcher puts containers, and the scan is measured a second time
//! finding listeners by the cgroup sock_diag reports for them (what the agent
//! does there) instead of reading every descriptor.
//!
//! Besides criterion's wall-clock figures, it prints the CPU time per scan
//! (the thread's own on-CPU time from `/proc/thread-self/schedstat`, kernel
//! time included), which is what the agent pays every watch interval.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use mesos_agent::isolators::ports::{
    collect_listeners, CgroupIdLister, CgroupOwners, PidLister, PortsState,
};
use mesos_agent::launcher::cgroups::{Cgroups, Layout};
use mesos_agent::sys::{RealSyscalls, Syscalls};

const CONTAINERS: usize = 1_000;

/// The 1,000 processes and listeners; the processes are killed when dropped.
struct Fixture {
    children: Vec<Child>,
    _listeners: Vec<TcpListener>,
    containers: Vec<String>,
    pids: Arc<PidLister>,
    pid_list: Vec<u32>,
    /// The containers' v2 cgroups, when the host has them.
    cgroups: Option<(Cgroups, std::path::PathBuf)>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((cgroups, base)) = &self.cgroups {
            for id in &self.containers {
                if let Some(dir) = cgroups.v2_dir(id) {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            let _ = std::fs::remove_dir(base);
        }
    }
}

/// One v2 cgroup per container under a root of the bench's own, when this
/// host has a v2 hierarchy and we are root.
fn v2_cgroups() -> Option<(Cgroups, std::path::PathBuf)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let layout = Layout::detect_host(std::path::Path::new("/sys/fs/cgroup")).ok()?;
    let root = format!("mesos_bench_scan_{}", std::process::id());
    let cgroups = Cgroups::new(layout, &root).ok()?;
    let base = cgroups.v2_dir("x")?.parent()?.to_path_buf();
    std::fs::create_dir_all(&base).ok()?;
    Some((cgroups, base))
}

fn fixture() -> Fixture {
    let listeners: Vec<TcpListener> = (0..CONTAINERS)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("listen"))
        .collect();
    // 16 fds on /dev/null and fd 19 a TCP connection; `exec sleep` keeps them.
    // (bash drops some redirections of even fds from 12 to 18, hence the list.)
    let nulls: String = (3..=11)
        .chain([13, 15, 17])
        .chain(20..=23)
        .map(|fd| format!(" {fd}</dev/null"))
        .collect();
    let containers: Vec<String> = (0..CONTAINERS).map(|i| format!("container-{i}")).collect();
    let cgroups = v2_cgroups();
    let mut children = Vec::with_capacity(CONTAINERS);
    for (listener, id) in listeners.iter().zip(&containers) {
        let port = listener.local_addr().expect("addr").port();
        // Into its cgroup first, as the launcher's child does before exec.
        let join = match cgroups.as_ref().and_then(|(c, _)| c.v2_dir(id)) {
            Some(dir) => {
                std::fs::create_dir(&dir).expect("create a container cgroup");
                format!("echo $$ > {}/cgroup.procs; ", dir.display())
            }
            None => String::new(),
        };
        let script = format!("{join}exec{nulls} 19<>/dev/tcp/127.0.0.1/{port}; exec sleep 600");
        let child = Command::new("/bin/bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a container process");
        children.push(child);
    }
    let pid_list: Vec<u32> = children.iter().map(Child::id).collect();
    // Wait until every process has its 20 descriptors.
    let deadline = Instant::now() + Duration::from_secs(60);
    for &pid in &pid_list {
        loop {
            let n = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if n >= 20 && exe.to_string_lossy().ends_with("sleep") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process {pid} never got its fds: {n} fds, exe {}",
                exe.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let map: HashMap<String, Vec<u32>> = containers
        .iter()
        .cloned()
        .zip(pid_list.iter().map(|&p| vec![p]))
        .collect();
    let pids: Arc<PidLister> =
        Arc::new(move |id: &str| Ok(map.get(id).cloned().unwrap_or_default()));
    Fixture {
        children,
        _listeners: listeners,
        containers,
        pids,
        pid_list,
        cgroups,
    }
}

/// The raw baseline: list each process's fd directory and readlink every
/// entry by its path (what a straightforward implementation does).
fn raw_readlinks(pids: &[u32]) -> usize {
    let mut total = 0;
    for pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for entry in dir.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                total += target.as_os_str().len();
            }
        }
    }
    total
}

/// The same descriptors stat()ed through their links (st_ino of a socket is
/// its inode): a comparison, to show the per-descriptor cost is the lookup.
fn raw_fstatat(pids: &[u32]) -> usize {
    use nix::sys::stat::{fstatat, SFlag};
    let mut sockets = 0;
    for pid in pids {
        let path = format!("/proc/{pid}/fd");
        let (Ok(dir), Ok(entries)) = (std::fs::File::open(&path), std::fs::read_dir(&path)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(st) = fstatat(
                &dir,
                entry.file_name().as_os_str(),
                nix::fcntl::AtFlags::empty(),
            ) {
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK {
                    sockets += st.st_ino as usize;
                }
            }
        }
    }
    sockets
}

/// One full scan: collect (dump + readlinks + mapping, or dump + cgroup ids
/// + mapping) and check.
fn scan(f: &Fixture, owners: Option<&mut CgroupOwners>, state: &mut PortsState) -> usize {
    let listeners = collect_listeners(&RealSyscalls, f.pids.as_ref(), owners, None, &f.containers)
        .expect("collect listeners");
    state.check(&listeners).len()
}

/// This thread's on-CPU time (user + kernel), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Mean wall and CPU time of `op` over `n` runs.
fn measure(n: u32, mut op: impl FnMut()) -> (Duration, Duration) {
    op();
    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
    for _ in 0..n {
        op();
    }
    let wall = wall0.elapsed() / n;
    let cpu = Duration::from_nanos((thread_cpu_ns() - cpu0) / u64::from(n));
    (wall, cpu)
}

fn main() {
    let f = fixture();
    let mut state = PortsState::default();
    for id in &f.containers {
        state.track(id).expect("track");
        state.update(id, &[]);
    }
    let dumped = RealSyscalls
        .listening_tcp_sockets()
        .expect("sock_diag")
        .len();
    let sockets: usize = f
        .pid_list
        .iter()
        .map(|&p| RealSyscalls.socket_inodes(p).map_or(0, |s| s.len()))
        .sum();
    println!(
        "fixture: {CONTAINERS} containers, {} fds each, {sockets} socket fds in them, \
         {dumped} listening sockets on the host",
        std::fs::read_dir(format!("/proc/{}/fd", f.pid_list[0])).map_or(0, |d| d.count())
    );

    let runs = 30;
    let (dump_wall, dump_cpu) = measure(runs, || {
        black_box(RealSyscalls.listening_tcp_sockets().expect("dump"));
    });
    let (links_wall, links_cpu) = measure(runs, || {
        black_box(raw_readlinks(&f.pid_list));
    });
    let (stat_wall, stat_cpu) = measure(runs, || {
        black_box(raw_fstatat(&f.pid_list));
    });
    let (scan_wall, scan_cpu) = measure(runs, || {
        black_box(scan(&f, None, &mut state));
    });
    let ids: Option<Arc<CgroupIdLister>> = f.cgroups.as_ref().map(|(cgroups, _)| {
        let cgroups = cgroups.clone();
        Arc::new(move |id: &str| {
            cgroups
                .v2_ids(id)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }) as Arc<CgroupIdLister>
    });
    let by_cgroup = ids.as_ref().map(|ids| {
        // Both ways find the same listeners.
        let walked = collect_listeners(&RealSyscalls, f.pids.as_ref(), None, None, &f.containers);
        let found = collect_listeners(
            &RealSyscalls,
            f.pids.as_ref(),
            Some(&mut CgroupOwners::new(Arc::clone(ids))),
            None,
            &f.containers,
        );
        assert_eq!(found.expect("by cgroup"), walked.expect("walked"));
        // The first scan lists every container's cgroups; later ones reuse that.
        let first = measure(1, || {
            let mut fresh = CgroupOwners::new(Arc::clone(ids));
            black_box(scan(&f, Some(&mut fresh), &mut state));
        });
        let mut owners = CgroupOwners::new(Arc::clone(ids));
        let steady = measure(runs, || {
            black_box(scan(&f, Some(&mut owners), &mut state));
        });
        (first, steady)
    });
    let raw_cpu = dump_cpu + links_cpu;
    let raw_wall = dump_wall + links_wall;
    println!("per scan, mean of {runs}:");
    println!("  raw sock_diag dump (v4+v6)      wall {dump_wall:>10.2?}  cpu {dump_cpu:>10.2?}");
    println!("  raw readdir+readlink, 1000 pids wall {links_wall:>10.2?}  cpu {links_cpu:>10.2?}");
    println!("  (fstatat instead, 1000 pids     wall {stat_wall:>10.2?}  cpu {stat_cpu:>10.2?})");
    println!("  raw total                       wall {raw_wall:>10.2?}  cpu {raw_cpu:>10.2?}");
    println!("  ports scan (collect + check)    wall {scan_wall:>10.2?}  cpu {scan_cpu:>10.2?}");
    println!(
        "  scan / raw: wall {:.2}x, cpu {:.2}x",
        scan_wall.as_secs_f64() / raw_wall.as_secs_f64(),
        scan_cpu.as_secs_f64() / raw_cpu.as_secs_f64()
    );
    match by_cgroup {
        Some(((first_wall, first_cpu), (wall, cpu))) => {
            println!(
                "  by socket cgroup, first scan    wall {first_wall:>10.2?}  cpu {first_cpu:>10.2?}"
            );
            println!("  ports scan by socket cgroup     wall {wall:>10.2?}  cpu {cpu:>10.2?}");
            println!(
                "  by cgroup / raw: wall {:.2}x, cpu {:.2}x",
                wall.as_secs_f64() / raw_wall.as_secs_f64(),
                cpu.as_secs_f64() / raw_cpu.as_secs_f64()
            );
        }
        None => {
            println!("  (no cgroup v2 hierarchy or not root: the by-cgroup scan is not measured)")
        }
    }

    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("ports_scan");
    group.bench_function("raw_sock_diag_dump", |b| {
        b.iter(|| black_box(RealSyscalls.listening_tcp_sockets().expect("dump")))
    });
    group.bench_function("raw_readlinks_1000_pids", |b| {
        b.iter(|| black_box(raw_readlinks(&f.pid_list)))
    });
    group.bench_function("scan_1000_containers", |b| {
        b.iter(|| black_box(scan(&f, None, &mut state)))
    });
    if let Some(ids) = &ids {
        let mut owners = CgroupOwners::new(Arc::clone(ids));
        group.bench_function("scan_1000_containers_by_cgroup", |b| {
            b.iter(|| black_box(scan(&f, Some(&mut owners), &mut state)))
        });
    }
    group.finish();
    c.final_summary();
}
