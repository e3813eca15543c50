//! The agent's syscall seam: every privileged or raw operating-system call that
//! the launcher (and later the isolators) makes goes through [`Syscalls`], so the
//! logic around it is unit-tested with [`fake::RecordingSyscalls`] and the real
//! calls are tested for real (as root) in the launcher's tests.
//!
//! This is the only module of the agent allowed to use `unsafe` (`lib.rs` says
//! `#[allow(unsafe_code)] pub mod sys;`); every `unsafe` block has a `// SAFETY:`
//! line. It must not hold policy: callers decide what to run, whom to kill and
//! when; this module only does it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use nix::sys::signal::Signal;

/// A resolved user account: what the child needs to drop privileges, looked up
/// in the parent because NSS look-ups are not async-signal-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    /// The account name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its supplementary groups (including the primary one), as `initgroups` would set them.
    pub groups: Vec<u32>,
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Session id.
    pub sid: u32,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Start time in clock ticks after boot: tells a process from a later one that reused its pid.
    pub start_time: u64,
}

impl ProcessInfo {
    /// Whether the process has exited (a zombie waiting for its parent, or dead).
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Whom a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// One process: `kill(pid, sig)`.
    Process(u32),
    /// A whole process group: `kill(-pgid, sig)`.
    Group(u32),
}

/// What [`Syscalls::spawn`] starts. The launcher builds it; the seam runs it.
#[derive(Debug)]
pub struct SpawnRequest {
    /// The program to execute (a path; looked up in the child's `PATH` if it has no `/`).
    pub program: PathBuf,
    /// `argv[1..]`; `argv[0]` is `program`.
    pub args: Vec<String>,
    /// The complete environment of the child; nothing is inherited.
    pub env: Vec<(String, String)>,
    /// The child's working directory.
    pub working_dir: PathBuf,
    /// Where the child's standard output goes; its standard input is `/dev/null`.
    pub stdout: File,
    /// Where the child's standard error goes.
    pub stderr: File,
    /// Already-opened (write-only) `cgroup.procs` files that the child writes itself
    /// into before anything else, so it execs inside them. The paths are for
    /// diagnostics and for the fake.
    pub cgroup_procs: Vec<(PathBuf, File)>,
    /// Whether the child calls `setsid` (its own session and process group).
    pub new_session: bool,
    /// Switch to this user (`setgroups`, `setgid`, `setuid`) after joining the cgroups.
    pub user: Option<UserIds>,
    /// Capabilities, `no_new_privs` and seccomp filters for the child (see
    /// [`privilege_steps`]).
    pub security: ProcessSecurity,
    /// Namespaces the program starts in (`namespaces/user`, `/pid`, `/ipc`).
    pub namespaces: Namespaces,
    /// Bind mounts in a mount namespace of its own (none: it shares the
    /// agent's).
    pub mounts: Vec<BindMount>,
}

/// A directory bind-mounted into the child's own mount namespace before it
/// execs (a persistent volume at its `container_path`). `target` must
/// exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host directory.
    pub source: PathBuf,
    /// Where it appears (an absolute path, inside the sandbox).
    pub target: PathBuf,
    /// Remounted read-only after the bind.
    pub read_only: bool,
}

/// A user namespace's id mapping (`/proc/<pid>/uid_map` and `gid_map`): ids
/// `0..count` inside are `uid_first..` and `gid_first..` on the host, so root
/// inside is an unprivileged id outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// The host uid of uid 0 inside.
    pub uid_first: u32,
    /// The host gid of gid 0 inside.
    pub gid_first: u32,
    /// How many ids are mapped (uids and gids alike).
    pub count: u32,
}

impl IdMap {
    /// The host uid of `uid` inside, if it is mapped.
    pub fn host_uid(&self, uid: u32) -> Option<u32> {
        (uid < self.count)
            .then(|| self.uid_first.checked_add(uid))
            .flatten()
    }

    /// The host gid of `gid` inside, if it is mapped.
    pub fn host_gid(&self, gid: u32) -> Option<u32> {
        (gid < self.count)
            .then(|| self.gid_first.checked_add(gid))
            .flatten()
    }
}

/// The namespaces a child gets of its own. The default shares all of the agent's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// A user namespace with this mapping: the child's user (or root, when
    /// none is switched to) is then an unprivileged id on the host.
    pub user: Option<IdMap>,
    /// A pid namespace in which the program is pid 1, with a mount namespace
    /// of its own where `/proc` shows that pid namespace.
    pub pid: bool,
    /// An IPC namespace (System V IPC and POSIX message queues).
    pub ipc: bool,
}

/// What the child does about its privileges before exec: the capability sets
/// (`linux/capabilities`), `no_new_privs` (`linux/nnp`) and seccomp filters
/// (`linux/seccomp`). Capability sets
/// are bit masks: bit `n` is Linux capability `n` (`CAP_NET_RAW` = 13).
/// The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSecurity {
    /// The bounding set to keep (every other capability is dropped from it);
    /// `None` leaves it alone.
    pub bounding: Option<u64>,
    /// Capabilities granted to the program: its effective, permitted,
    /// inheritable and ambient sets (ambient, so that a non-root program keeps
    /// them across exec). `None`: nothing granted; a root program keeps what
    /// the bounding set allows, any other user none.
    pub effective: Option<u64>,
    /// Sets `PR_SET_NO_NEW_PRIVS`: exec can no longer raise privileges
    /// (set-user-id bits and file capabilities stop working).
    pub no_new_privs: bool,
    /// Seccomp filters to load (`linux/seccomp`), last, after
    /// `no_new_privs` (which a filter implies).
    pub seccomp: Vec<Vec<BpfInstruction>>,
}

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInstruction {
    /// Opcode.
    pub code: u16,
    /// Jump if true.
    pub jt: u8,
    /// Jump if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

// `load_seccomp` hands BpfInstruction slices to the kernel as sock_filter.
const _: () = assert!(
    std::mem::size_of::<BpfInstruction>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<BpfInstruction>() == std::mem::align_of::<libc::sock_filter>()
);

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`: the
/// programs that [`Syscalls::attach_bind_filter`] loads (built by
/// [`crate::isolators::bind_filter`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EbpfInstruction {
    /// Opcode (class, operation, source).
    pub code: u8,
    /// Destination register in the low four bits, source register in the high four.
    pub regs: u8,
    /// Signed offset: of a memory access, or of a jump (in instructions, from the next one).
    pub off: i16,
    /// Signed immediate operand.
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<EbpfInstruction>() == 8);

/// Which cgroup socket hook a bind filter serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindHook {
    /// `BPF_CGROUP_INET4_BIND`: `bind()` of IPv4 sockets.
    Inet4,
    /// `BPF_CGROUP_INET6_BIND`: `bind()` of IPv6 sockets (IPv4-mapped addresses included).
    Inet6,
}

impl BindHook {
    /// Both hooks.
    pub const ALL: [BindHook; 2] = [BindHook::Inet4, BindHook::Inet6];

    fn attach_type(self) -> u32 {
        match self {
            BindHook::Inet4 => bpf::CGROUP_INET4_BIND,
            BindHook::Inet6 => bpf::CGROUP_INET6_BIND,
        }
    }
}

/// One privileged step of the child between fork and exec, in the order
/// [`privilege_steps`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeStep {
    /// `prctl(PR_CAPBSET_DROP, cap)`: needs CAP_SETPCAP, so it comes first.
    DropBounding(u8),
    /// `prctl(PR_SET_KEEPCAPS, 1)`: the permitted set survives `setuid`.
    KeepCaps,
    /// `setgroups`, `setgid`, `setuid` to [`SpawnRequest::user`].
    SwitchUser,
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    ClearAmbient,
    /// `capset` of the three sets.
    SetCapabilities {
        /// Effective set.
        effective: u64,
        /// Permitted set.
        permitted: u64,
        /// Inheritable set.
        inheritable: u64,
    },
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`: needs the
    /// capability in the permitted and inheritable sets.
    RaiseAmbient(u8),
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: once nothing needs privileges.
    NoNewPrivs,
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` of [`ProcessSecurity::seccomp`]`[i]`:
    /// last, so the filter need not allow the steps before it.
    LoadSeccomp(usize),
}

/// The child's privileged steps, in the order that works: the bounding set is
/// cut while still root (CAP_SETPCAP); `PR_SET_KEEPCAPS` before `setuid` when
/// capabilities are granted to another user; after the switch the sets are
/// set (a `setuid` away from root empties effective and, without keepcaps,
/// permitted), then ambient raised, then `no_new_privs`.
///
/// `switch_to` is the uid the child switches to, `euid` the agent's and
/// `last_cap` the highest capability this kernel knows
/// (`/proc/sys/kernel/cap_last_cap`).
pub fn privilege_steps(
    security: &ProcessSecurity,
    switch_to: Option<u32>,
    euid: u32,
    last_cap: u8,
) -> Vec<PrivilegeStep> {
    let all: u64 = if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    };
    let mut steps = Vec::new();
    if let Some(bounding) = security.bounding {
        for cap in 0..=last_cap.min(63) {
            if bounding & (1u64 << cap) == 0 {
                steps.push(PrivilegeStep::DropBounding(cap));
            }
        }
    }
    let managed = security.bounding.is_some() || security.effective.is_some();
    if let Some(_uid) = switch_to {
        if security.effective.is_some() {
            steps.push(PrivilegeStep::KeepCaps);
        }
        steps.push(PrivilegeStep::SwitchUser);
    }
    if managed {
        let bounding = security.bounding.unwrap_or(all) & all;
        let target = switch_to.unwrap_or(euid);
        let granted = match security.effective {
            Some(effective) => effective & bounding,
            None if target == 0 => bounding,
            None => 0,
        };
        steps.push(PrivilegeStep::ClearAmbient);
        steps.push(PrivilegeStep::SetCapabilities {
            effective: granted,
            permitted: granted,
            inheritable: granted,
        });
        if security.effective.is_some() {
            for cap in 0..=last_cap.min(63) {
                if granted & (1u64 << cap) != 0 {
                    steps.push(PrivilegeStep::RaiseAmbient(cap));
                }
            }
        }
    }
    if security.no_new_privs || !security.seccomp.is_empty() {
        steps.push(PrivilegeStep::NoNewPrivs);
    }
    steps.extend((0..security.seccomp.len()).map(PrivilegeStep::LoadSeccomp));
    steps
}

/// The highest capability number this kernel knows (40 when unreadable: the
/// kernel refuses unknown numbers, which the child then reports).
pub fn last_capability() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The privileged and raw operations of the agent. See the module documentation.
pub trait Syscalls: Send + Sync + 'static {
    /// Forks and execs `req` and returns the child's pid. The child is NOT reaped:
    /// the caller must call [`Syscalls::wait_child`] for it.
    fn spawn(&self, req: SpawnRequest) -> io::Result<u32>;
    /// Blocks until the child `pid` exits and reaps it; returns the raw wait status.
    fn wait_child(&self, pid: u32) -> io::Result<i32>;
    /// Sends `signal` to `target`. Refuses pids 0 and 1 and pids that do not fit a
    /// `pid_t`, which would turn into "my group", "everyone" or init.
    fn kill(&self, target: KillTarget, signal: Signal) -> io::Result<()>;
    /// A pidfd for `pid` (readable once the process has exited), for processes
    /// that are not our children.
    fn pidfd_open(&self, pid: u32) -> io::Result<OwnedFd>;
    /// The effective user id of the agent.
    fn geteuid(&self) -> u32;
    /// Looks a user up by name; `Ok(None)` when there is no such user.
    fn lookup_user(&self, name: &str) -> io::Result<Option<UserIds>>;
    /// Changes the owner of `path`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// Removes an empty directory; on a cgroup file system this removes a cgroup.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// One process, or `None` when there is no process with that pid.
    fn process(&self, pid: u32) -> io::Result<Option<ProcessInfo>>;
    /// Every process visible in `/proc`.
    fn processes(&self) -> io::Result<Vec<ProcessInfo>>;
    /// Every TCP socket in LISTEN state in the agent's network namespace,
    /// IPv4 and IPv6, from one netlink sock_diag dump per family.
    fn listening_tcp_sockets(&self) -> io::Result<Vec<ListeningSocket>>;
    /// The inodes of the sockets `pid` holds open (its `/proc/<pid>/fd`
    /// entries that link to `socket:[<inode>]`). `NotFound` when the process is gone.
    fn socket_inodes(&self, pid: u32) -> io::Result<Vec<u64>>;
    /// Loads `program` as a cgroup socket-address program for both bind hooks
    /// and attaches it to the cgroup v2 directory `cgroup`, replacing the
    /// program attached there before. The kernel keeps it attached until the
    /// cgroup is removed, whether or not the agent runs.
    fn attach_bind_filter(&self, cgroup: &Path, program: &[EbpfInstruction]) -> io::Result<()>;
    /// Whether this kernel loads bind filters at all: loads `program` for
    /// both hooks without attaching it.
    fn probe_bind_filter(&self, program: &[EbpfInstruction]) -> io::Result<()>;
}

/// A listening TCP socket as sock_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListeningSocket {
    /// The socket's inode (what `/proc/<pid>/fd/<n>` links to as `socket:[<inode>]`).
    pub inode: u64,
    /// The local address it listens on.
    pub addr: std::net::IpAddr,
    /// The local port.
    pub port: u16,
    /// The cgroup v2 id of the process that created the socket
    /// (`INET_DIAG_CGROUP_ID`, Linux 5.7+), when the kernel says.
    pub cgroup_id: Option<u64>,
}

/// The real system calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSyscalls;

/// The ids `req`'s child switches to: its user's, or inside a user namespace,
/// where the agent's own ids are unmapped, the namespace's root (on the host,
/// the mapping's first id).
fn spawn_ids(req: &SpawnRequest) -> Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)> {
    match &req.user {
        Some(u) => Some((u.uid, u.gid, u.groups.clone())),
        None if req.namespaces.user.is_some() => Some((0, 0, vec![0])),
        None => None,
    }
}

/// The privileged steps of `req`'s child (the user switch among them).
fn spawn_steps(req: &SpawnRequest, euid: u32, last_cap: u8) -> Vec<PrivilegeStep> {
    let switch_to = spawn_ids(req).map(|(uid, _, _)| uid);
    privilege_steps(&req.security, switch_to, euid, last_cap)
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// The agent's half of entering a user namespace: waits for the child's pid,
/// writes its `uid_map` and `gid_map`, and tells it to go on (1) or not (0).
fn write_id_maps(map: IdMap, ready: OwnedFd, go: OwnedFd) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut pid = [0u8; 4];
    // EOF: the child failed before it unshared; nothing to map.
    if File::from(ready).read_exact(&mut pid).is_err() {
        return Ok(());
    }
    let pid = libc::pid_t::from_ne_bytes(pid);
    let written = (|| {
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("0 {} {}\n", map.uid_first, map.count),
        )?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("0 {} {}\n", map.gid_first, map.count),
        )
    })();
    let mut go = File::from(go);
    go.write_all(&[u8::from(written.is_ok())])?;
    written.map_err(|e| io::Error::new(e.kind(), format!("writing the id maps of pid {pid}: {e}")))
}

/// The pid as a `pid_t`, refusing the values that `kill`/`waitpid` give a special,
/// dangerous meaning (0: our group, 1: init, negative: a group or everyone).
fn checked_pid(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 1 => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to act on pid {pid}"),
        )),
    }
}

/// The descriptors a child entering namespaces uses to talk to the agent
/// (all opened, close-on-exec, before the fork).
#[derive(Debug, Clone, Copy)]
struct NamespaceFds {
    /// User namespace: the child writes its pid here once it has unshared...
    user_ready: Option<RawFd>,
    /// ...and reads one byte here once the agent wrote its id maps (1: done).
    user_go: Option<RawFd>,
    /// The parent's ends of those pipes, which the child closes first (so a
    /// dead agent thread is an end of file, not a hang).
    parent_ends: [Option<RawFd>; 2],
    /// Pid namespace: the first child writes the pid of the program's process
    /// (its sibling, created with `CLONE_PARENT`) here, then exits.
    pid_out: Option<RawFd>,
    /// The read end of that pipe, closed by the child.
    pid_in: Option<RawFd>,
    /// `CLONE_NEWIPC` when asked for.
    ipc: bool,
}

/// `write` of all of `bytes`, or an error; async-signal-safe.
fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `bytes` is a live slice for the call, its length is passed, and
    // `fd` is a descriptor the caller owns.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Enters the child's namespaces; in the first child of a pid namespace this
/// does not return (it exits once the program's process exists).
fn enter_namespaces(fds: &NamespaceFds) -> io::Result<()> {
    for fd in fds.parent_ends.iter().chain([&fds.pid_in]).flatten() {
        // SAFETY: closing our copy of a descriptor inherited across fork.
        unsafe { libc::close(*fd) };
    }
    if let (Some(ready), Some(go)) = (fds.user_ready, fds.user_go) {
        // SAFETY: unshare takes a flag word; async-signal-safe.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getpid takes nothing and cannot fail.
        let pid = unsafe { libc::getpid() };
        write_fd(ready, &pid.to_ne_bytes())?;
        let mut done = [0u8; 1];
        // SAFETY: `done` is a writable one-byte buffer for the call.
        let n = unsafe { libc::read(go, done.as_mut_ptr().cast(), 1) };
        if n != 1 || done[0] != 1 {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    let mut flags: libc::c_int = 0;
    if fds.ipc {
        flags |= libc::CLONE_NEWIPC;
    }
    let Some(pid_out) = fds.pid_out else {
        // SAFETY: unshare takes a flag word; async-signal-safe.
        if flags != 0 && unsafe { libc::unshare(flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    };
    // The program must be pid 1 of the new namespace, which only a new
    // process can be: a sibling (CLONE_PARENT: the agent's child, which it
    // waits for), with a mount namespace where /proc is remounted for it.
    flags |= libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_PARENT | libc::SIGCHLD;
    // SAFETY: a fork-like clone (no new stack: the child continues on a copy
    // of ours, as after fork); the pointer arguments are null.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child > 0 {
        let child = child as libc::pid_t;
        let code = match write_fd(pid_out, &child.to_ne_bytes()) {
            Ok(()) => 0,
            Err(_) => 1,
        };
        // SAFETY: _exit ends this process at once; async-signal-safe. The
        // sibling carries on to exec.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the pid pipe; the parent has its own.
    unsafe { libc::close(pid_out) };
    mount_private_proc()
}

/// `unshare(CLONE_NEWNS)` and stops mounts propagating to the host.
/// Async-signal-safe.
fn make_private_mount_namespace() -> io::Result<()> {
    const ROOT: &[u8] = b"/\0";
    // SAFETY: unshare takes a flag word; async-signal-safe.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: static NUL-terminated string; null pointers are allowed for
    // the unused arguments.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            ROOT.as_ptr().cast(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bind-mounts `source` at `target`, then remounts it read-only when asked.
/// Async-signal-safe.
fn bind_mount(source: &std::ffi::CStr, target: &std::ffi::CStr, read_only: bool) -> io::Result<()> {
    // SAFETY: both are NUL-terminated strings made before the fork; null
    // is allowed for the file system type and data.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if read_only {
        // SAFETY: as above.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a new mount namespace: stops mounts propagating to the host, then
/// mounts a `/proc` for the new pid namespace.
fn mount_private_proc() -> io::Result<()> {
    const ROOT: &[u8] = b"/\0";
    const PROC: &[u8] = b"proc\0";
    const PROC_DIR: &[u8] = b"/proc\0";
    // SAFETY: the strings are static and NUL-terminated; null pointers are
    // allowed for the unused arguments; mount is a raw syscall.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            ROOT.as_ptr().cast(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::mount(
            PROC.as_ptr().cast(),
            PROC_DIR.as_ptr().cast(),
            PROC.as_ptr().cast(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What the child runs between fork and exec. Only async-signal-safe calls, on
/// data that was allocated before the fork: no allocation, no locks.
#[allow(clippy::too_many_arguments)]
fn child_setup(
    cgroup_procs: &[RawFd],
    new_session: bool,
    namespaces: Option<&NamespaceFds>,
    mounts: &[(std::ffi::CString, std::ffi::CString, bool)],
    creds: Option<&(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    steps: &[PrivilegeStep],
    filters: &[Vec<BpfInstruction>],
) -> io::Result<()> {
    // Join the cgroups first, while still root: writing "0" moves the writer
    // itself (cgroup v1 and v2 alike), so the program is inside before it runs.
    for &fd in cgroup_procs {
        // SAFETY: `fd` is an open, write-only descriptor that the parent's
        // SpawnRequest owns until spawn() returns (it is inherited across fork);
        // the buffer is a static one-byte string and its length is passed.
        let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        if written != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    // Then the namespaces, still with the agent's privileges (a new pid
    // namespace's process is created here, inside the cgroups).
    if let Some(fds) = namespaces {
        enter_namespaces(fds)?;
    }
    if !mounts.is_empty() {
        // A pid namespace came with a private mount namespace; otherwise
        // make one, so the mounts never show on the host.
        if namespaces.is_none_or(|f| f.pid_out.is_none()) {
            make_private_mount_namespace()?;
        }
        for (source, target, read_only) in mounts {
            bind_mount(source, target, *read_only)?;
        }
    }
    if new_session {
        // SAFETY: setsid takes no arguments and is async-signal-safe.
        if unsafe { libc::setsid() } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for step in steps {
        match *step {
            PrivilegeStep::SwitchUser => {
                if let Some(creds) = creds {
                    switch_user(creds)?;
                }
            }
            PrivilegeStep::DropBounding(cap) => prctl(libc::PR_CAPBSET_DROP, cap.into())?,
            PrivilegeStep::KeepCaps => prctl(libc::PR_SET_KEEPCAPS, 1)?,
            PrivilegeStep::ClearAmbient => prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            )?,
            PrivilegeStep::RaiseAmbient(cap) => {
                // SAFETY: prctl with integer arguments only; async-signal-safe.
                let r = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        libc::c_ulong::from(cap),
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                    )
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            PrivilegeStep::SetCapabilities {
                effective,
                permitted,
                inheritable,
            } => capset(effective, permitted, inheritable)?,
            PrivilegeStep::NoNewPrivs => prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?,
            PrivilegeStep::LoadSeccomp(i) => {
                if let Some(filter) = filters.get(i) {
                    load_seccomp(filter)?;
                }
            }
        }
    }
    Ok(())
}

/// `setgroups`, `setgid`, `setuid`, in that order (setuid drops the right to
/// change groups).
fn switch_user(
    (uid, gid, groups): &(libc::uid_t, libc::gid_t, Vec<libc::gid_t>),
) -> io::Result<()> {
    // SAFETY: `groups` is a live Vec allocated before the fork; we pass its
    // pointer and length, and setgroups only reads them.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setgid takes a plain integer and is async-signal-safe.
    if unsafe { libc::setgid(*gid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setuid takes a plain integer and is async-signal-safe; it comes
    // last because it drops the right to change groups.
    if unsafe { libc::setuid(*uid) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Loads one seccomp filter for the calling thread.
fn load_seccomp(filter: &[BpfInstruction]) -> io::Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let program = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: `program` points at `filter`, a live slice allocated before the
    // fork, of `len` instructions laid out as `struct sock_filter`
    // (BpfInstruction is repr(C) with the same fields); the kernel copies it
    // and keeps no pointer. A raw syscall is async-signal-safe.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &program as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(option, arg, 0, 0, 0)`.
fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only (no pointers); async-signal-safe.
    let r = unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `capset` with the 64-bit (version 3) interface, for the calling thread.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |set: u64, high: bool| (if high { set >> 32 } else { set }) as u32;
    let data = [false, true].map(|high| Data {
        effective: half(effective, high),
        permitted: half(permitted, high),
        inheritable: half(inheritable, high),
    });
    // SAFETY: `header` and `data` are live, properly laid out (repr(C), as the
    // kernel's __user_cap_header_struct and two __user_cap_data_struct for
    // version 3) for the duration of the call; the kernel only reads `data`
    // and may write `header.version`. A raw syscall is async-signal-safe.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Syscalls for RealSyscalls {
    fn attach_bind_filter(&self, cgroup: &Path, program: &[EbpfInstruction]) -> io::Result<()> {
        let dir = File::open(cgroup)?;
        for hook in BindHook::ALL {
            let prog = bpf::load_sock_addr(program, hook)?;
            bpf::attach(&dir, &prog, hook).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "attaching the {hook:?} bind filter to {}: {e}",
                        cgroup.display()
                    ),
                )
            })?;
            // Closing our descriptor is fine: the attachment holds the program.
        }
        Ok(())
    }

    fn probe_bind_filter(&self, program: &[EbpfInstruction]) -> io::Result<()> {
        for hook in BindHook::ALL {
            bpf::load_sock_addr(program, hook)?;
        }
        Ok(())
    }

    fn listening_tcp_sockets(&self) -> io::Result<Vec<ListeningSocket>> {
        let mut out = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            sock_diag::dump_listening(family, &mut out)?;
        }
        Ok(out)
    }

    fn socket_inodes(&self, pid: u32) -> io::Result<Vec<u64>> {
        let path = format!("/proc/{pid}/fd");
        // readlinkat() relative to the open directory, as Mesos does: a path
        // readlink would walk /proc/<pid>/fd again for every descriptor
        // (about half the cost of a scan).
        let dir = File::open(&path)?;
        let mut inodes = Vec::new();
        for entry in std::fs::read_dir(&path)? {
            let Ok(entry) = entry else { continue };
            // An fd closed since readdir: skip it, as Mesos's caller does for the pid.
            if let Some(inode) = socket_inode_at(&dir, entry.file_name().as_encoded_bytes()) {
                inodes.push(inode);
            }
        }
        Ok(inodes)
    }

    fn spawn(&self, req: SpawnRequest) -> io::Result<u32> {
        let steps = spawn_steps(&req, self.geteuid(), last_capability());
        let creds = spawn_ids(&req);
        let mut cmd = Command::new(&req.program);
        cmd.args(&req.args)
            .env_clear()
            .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&req.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(req.stdout))
            .stderr(Stdio::from(req.stderr));
        let procs: Vec<RawFd> = req
            .cgroup_procs
            .iter()
            .map(|(_, f)| f.as_raw_fd())
            .collect();
        let new_session = req.new_session;
        let filters = req.security.seccomp.clone();
        let ns = req.namespaces;
        let mounts = req
            .mounts
            .iter()
            .map(|m| {
                use std::os::unix::ffi::OsStrExt;
                let c = |p: &Path| {
                    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("mount path {} contains a NUL byte", p.display()),
                        )
                    })
                };
                Ok((c(&m.source)?, c(&m.target)?, m.read_only))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let user_pipes = match ns.user {
            Some(_) => Some((pipe()?, pipe()?)),
            None => None,
        };
        let pid_pipe = if ns.pid { Some(pipe()?) } else { None };
        let fds = (ns.user.is_some() || ns.pid || ns.ipc).then(|| NamespaceFds {
            user_ready: user_pipes.as_ref().map(|(ready, _)| ready.1.as_raw_fd()),
            user_go: user_pipes.as_ref().map(|(_, go)| go.0.as_raw_fd()),
            parent_ends: [
                user_pipes.as_ref().map(|(ready, _)| ready.0.as_raw_fd()),
                user_pipes.as_ref().map(|(_, go)| go.1.as_raw_fd()),
            ],
            pid_out: pid_pipe.as_ref().map(|p| p.1.as_raw_fd()),
            pid_in: pid_pipe.as_ref().map(|p| p.0.as_raw_fd()),
            ipc: ns.ipc,
        });
        // The agent's side of the user namespace: writes the id maps once the
        // child has unshared (it cannot map ids other than its own itself).
        let mapper = match (ns.user, user_pipes) {
            (Some(map), Some(((ready_read, ready_write), (go_read, go_write)))) => {
                let thread = std::thread::Builder::new()
                    .name("userns-map".into())
                    .spawn(move || write_id_maps(map, ready_read, go_write))?;
                Some((thread, ready_write, go_read))
            }
            _ => None,
        };
        // Executors and tasks get the file limit the agent started with, not
        // the one it raised for its own connections.
        if let Some((soft, hard)) = mesos_common::connections::inherited_nofile_limit() {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: runs in the forked child before exec; setrlimit is
            // async-signal-safe and `limit` is a plain value moved in.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // SAFETY: the closure runs in the forked child before exec. It only calls
        // async-signal-safe functions (write, read, close, unshare, clone, mount,
        // _exit, setsid, setgroups, setgid, setuid, prctl, capset, seccomp) on
        // data moved into it before the fork, and allocates nothing (an io::Error
        // built from errno does not allocate). The descriptors it uses stay open
        // in the parent until `cmd.spawn()` returns: `req.cgroup_procs`, the
        // pipes and `mapper` live until after it.
        unsafe {
            cmd.pre_exec(move || {
                child_setup(
                    &procs,
                    new_session,
                    fds.as_ref(),
                    &mounts,
                    creds.as_ref(),
                    &steps,
                    &filters,
                )
            });
        }
        let mut spawned = cmd.spawn();
        if let Some((thread, ready_write, go_read)) = mapper {
            // The child has exec'd or failed: an unfinished mapper sees EOF.
            drop((ready_write, go_read));
            if let Ok(Err(e)) = thread.join() {
                // The child stopped for want of its maps: say why.
                if spawned.is_err() {
                    spawned = Err(e);
                } else {
                    tracing::warn!("user namespace id maps: {e}");
                }
            }
        }
        let Some((pid_read, pid_write)) = pid_pipe else {
            // Dropping a std Child neither kills nor reaps it: wait_child does that.
            return Ok(spawned?.id());
        };
        drop(pid_write);
        // The program runs in the first child's sibling: reap the first child,
        // and hand the sibling (our child too, by CLONE_PARENT) to the caller.
        let mut pid = [0u8; 4];
        let sibling = std::io::Read::read_exact(&mut File::from(pid_read), &mut pid)
            .ok()
            .map(|()| libc::pid_t::from_ne_bytes(pid));
        match spawned {
            Ok(first) => {
                let _ = self.wait_child(first.id());
                match sibling.and_then(|p| u32::try_from(p).ok()) {
                    Some(pid) => Ok(pid),
                    None => Err(io::Error::other(
                        "the pid namespace's first process did not report its sibling",
                    )),
                }
            }
            Err(e) => {
                // It failed before exec: reap it, so no zombie is left.
                if let Some(pid) = sibling.and_then(|p| u32::try_from(p).ok()) {
                    let _ = self.wait_child(pid);
                }
                Err(e)
            }
        }
    }

    fn wait_child(&self, pid: u32) -> io::Result<i32> {
        let pid = checked_pid(pid)?;
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: `status` is a valid, writable c_int for the duration of the
            // call and waitpid keeps no pointer to it.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                return Ok(status);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    fn kill(&self, target: KillTarget, signal: Signal) -> io::Result<()> {
        let pid = match target {
            KillTarget::Process(pid) => checked_pid(pid)?,
            KillTarget::Group(pgid) => -checked_pid(pgid)?,
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(io::Error::from)
    }

    fn pidfd_open(&self, pid: u32) -> io::Result<OwnedFd> {
        let pid = checked_pid(pid)?;
        let flags: libc::c_uint = 0;
        // SAFETY: pidfd_open(pid_t, unsigned int) takes no pointers; it returns a
        // new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = RawFd::try_from(fd)
            .map_err(|_| io::Error::other(format!("pidfd_open returned {fd}")))?;
        // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn geteuid(&self) -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn lookup_user(&self, name: &str) -> io::Result<Option<UserIds>> {
        let Some(user) = nix::unistd::User::from_name(name).map_err(io::Error::from)? else {
            return Ok(None);
        };
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid).map_err(io::Error::from)?;
        Ok(Some(UserIds {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(|g| g.as_raw()).collect(),
        }))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn process(&self, pid: u32) -> io::Result<Option<ProcessInfo>> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => Ok(parse_proc_stat(&text)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn processes(&self) -> io::Result<Vec<ProcessInfo>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may exit between readdir and the read: skip it.
            if let Ok(Some(info)) = self.process(pid) {
                out.push(info);
            }
        }
        Ok(out)
    }
}

/// Resolves once `fd` is readable: for a pidfd, once the process has exited.
/// Must be awaited inside a tokio runtime.
pub async fn readable(fd: OwnedFd) -> io::Result<()> {
    // SAFETY: the AsyncFd takes ownership of `fd`, an open descriptor that
    // nothing else can close; OwnedFd::as_raw_fd always returns that same
    // descriptor, so it stays valid and unchanged for the AsyncFd's lifetime.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }?;
    afd.readable().await.map(|_| ())
}

/// The socket inode `<dir>/<name>` links to, if it is a socket; no allocation.
fn socket_inode_at(dir: &File, name: &[u8]) -> Option<u64> {
    // `name` is a descriptor number: a few digits. The array keeps a NUL after it.
    let mut path = [0u8; 32];
    if name.is_empty() || name.len() >= path.len() || name.contains(&0) {
        return None;
    }
    path[..name.len()].copy_from_slice(name);
    // "socket:[" + at most 20 digits + "]" fits; a longer target is no socket.
    let mut target = [0u8; 64];
    // SAFETY: `dir` is an open descriptor for the call's duration; `path` is
    // NUL-terminated inside its array; `target` is writable for the length
    // passed, and readlinkat writes at most that many bytes and keeps no pointer.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            path.as_ptr().cast(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    parse_socket_link(target.get(..n)?)
}

/// The inode of a `/proc/<pid>/fd/<n>` link target `socket:[<inode>]`.
pub fn parse_socket_link(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The `bpf(2)` calls behind [`Syscalls::attach_bind_filter`], with the
/// `union bpf_attr` layouts of `linux/bpf.h` for the two commands used.
mod bpf {
    use super::{BindHook, EbpfInstruction};
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    const PROG_LOAD: libc::c_long = 5;
    const PROG_ATTACH: libc::c_long = 8;
    const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
    pub(super) const CGROUP_INET4_BIND: u32 = 8;
    pub(super) const CGROUP_INET6_BIND: u32 = 9;
    /// The verifier's log on a refused program, for the error message.
    const LOG_SIZE: usize = 16 * 1024;
    static LICENSE: &[u8] = b"Apache-2.0\0";

    /// `union bpf_attr` as `BPF_PROG_LOAD` reads it, up to `expected_attach_type`.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    /// `union bpf_attr` as `BPF_PROG_ATTACH` reads it.
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }

    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
        // SAFETY: `attr` is a live, repr(C) struct laid out as the prefix of
        // `union bpf_attr` that `cmd` reads, and its size is passed; the
        // kernel copies it in (and for PROG_LOAD writes the verifier log into
        // the buffer it points at, which outlives the call).
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                (attr as *mut T).cast::<libc::c_void>(),
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r)
    }

    /// Loads `program` as a `BPF_PROG_TYPE_CGROUP_SOCK_ADDR` program for
    /// `hook`. A refused program's error carries the verifier's last words.
    pub(super) fn load_sock_addr(
        program: &[EbpfInstruction],
        hook: BindHook,
    ) -> io::Result<OwnedFd> {
        let insn_cnt =
            u32::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        let mut name = [0u8; 16];
        name[..10].copy_from_slice(b"mesos_bind");
        let mut log = vec![0u8; LOG_SIZE];
        let mut attr = ProgLoad {
            prog_type: PROG_TYPE_CGROUP_SOCK_ADDR,
            insn_cnt,
            insns: program.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: 0,
            log_size: 0,
            log_buf: 0,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: hook.attach_type(),
        };
        let fd = match bpf(PROG_LOAD, &mut attr) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EACCES)) => {
                // Again with the verifier's log, to say why.
                attr.log_level = 1;
                attr.log_size = LOG_SIZE as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                match bpf(PROG_LOAD, &mut attr) {
                    Ok(fd) => fd,
                    Err(again) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        let text = String::from_utf8_lossy(&log[..end]);
                        let tail: Vec<&str> = text.lines().rev().take(3).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        return Err(io::Error::new(
                            again.kind(),
                            format!(
                                "the kernel refused the {hook:?} bind filter: {again} ({})",
                                tail.join("; ")
                            ),
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("loading the {hook:?} bind filter: {e}"),
                ))
            }
        };
        let fd = RawFd::try_from(fd).map_err(|_| io::Error::other(format!("bpf returned {fd}")))?;
        // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Attaches `prog` to the cgroup `dir` for `hook` in the default
    /// (single-program, not overridable) mode: a program attached before is
    /// replaced, and no cgroup below may attach its own.
    pub(super) fn attach(dir: &File, prog: &OwnedFd, hook: BindHook) -> io::Result<()> {
        let fd =
            |raw: RawFd| u32::try_from(raw).map_err(|_| io::Error::from_raw_os_error(libc::EBADF));
        let mut attr = ProgAttach {
            target_fd: fd(dir.as_raw_fd())?,
            attach_bpf_fd: fd(prog.as_raw_fd())?,
            attach_type: hook.attach_type(),
            attach_flags: 0,
            replace_bpf_fd: 0,
        };
        bpf(PROG_ATTACH, &mut attr).map(|_| ())
    }
}

/// A hand-rolled netlink `SOCK_DIAG_BY_FAMILY` dump of TCP sockets in LISTEN
/// state (the request and reply layouts of `linux/inet_diag.h`): small, and no
/// C library (Mesos uses libnl's idiag).
pub mod sock_diag {
    use super::ListeningSocket;
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::{FromRawFd, OwnedFd};

    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    const TCP_LISTEN: u32 = 10;
    const HEADER: usize = 16;
    /// `struct inet_diag_msg` up to and including `idiag_inode`.
    const DIAG_MSG: usize = 72;
    /// The attribute with the socket's cgroup v2 id (a u64).
    const INET_DIAG_CGROUP_ID: u16 = 21;

    /// The `INET_DIAG_CGROUP_ID` among the attributes (`struct rtattr`s,
    /// 4-byte aligned) that follow an `inet_diag_msg`.
    fn cgroup_id(mut attrs: &[u8]) -> Option<u64> {
        while attrs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
            if len < 4 || len > attrs.len() {
                return None;
            }
            if kind == INET_DIAG_CGROUP_ID && len >= 12 {
                let mut id = [0u8; 8];
                id.copy_from_slice(&attrs[4..12]);
                return Some(u64::from_ne_bytes(id));
            }
            attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
        }
        None
    }

    /// The request: `nlmsghdr` + `inet_diag_req_v2` for `family`, TCP, LISTEN only.
    pub fn request(family: u8, seq: u32) -> [u8; 72] {
        let mut req = [0u8; 72];
        req[0..4].copy_from_slice(&72u32.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        // nlmsg_pid 0: the kernel fills it in.
        req[16] = family;
        req[17] = libc::IPPROTO_TCP as u8;
        // idiag_ext 0, pad 0, then the state mask; the socket id stays zero (all sockets).
        req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        req
    }

    /// What one reply datagram held.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Parsed {
        /// More datagrams follow.
        More,
        /// `NLMSG_DONE` was seen.
        Done,
    }

    /// Parses one reply datagram, appending the sockets it lists.
    pub fn parse(buf: &[u8], out: &mut Vec<ListeningSocket>) -> io::Result<Parsed> {
        let mut off = 0;
        while off + HEADER <= buf.len() {
            let word = |at: usize| -> [u8; 4] {
                let mut w = [0u8; 4];
                w.copy_from_slice(&buf[at..at + 4]);
                w
            };
            let len = u32::from_ne_bytes(word(off)) as usize;
            let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < HEADER || off + len > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("sock_diag: malformed netlink message of length {len}"),
                ));
            }
            match kind {
                NLMSG_DONE => return Ok(Parsed::Done),
                NLMSG_ERROR => {
                    let code = if len >= HEADER + 4 {
                        i32::from_ne_bytes(word(off + HEADER))
                    } else {
                        -libc::EPROTO
                    };
                    return Err(io::Error::from_raw_os_error(-code));
                }
                SOCK_DIAG_BY_FAMILY if len >= HEADER + DIAG_MSG => {
                    let m = &buf[off + HEADER..off + HEADER + DIAG_MSG];
                    let port = u16::from_be_bytes([m[4], m[5]]);
                    let addr = match i32::from(m[0]) {
                        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11])),
                        _ => {
                            let mut a = [0u8; 16];
                            a.copy_from_slice(&m[8..24]);
                            IpAddr::V6(Ipv6Addr::from(a))
                        }
                    };
                    let inode = u32::from_ne_bytes([m[68], m[69], m[70], m[71]]);
                    // Inode 0 would mean the kernel did not say; Mesos skips it too.
                    if inode != 0 {
                        out.push(ListeningSocket {
                            inode: u64::from(inode),
                            addr,
                            port,
                            cgroup_id: cgroup_id(&buf[off + HEADER + DIAG_MSG..off + len]),
                        });
                    }
                }
                _ => {}
            }
            off += (len + 3) & !3;
        }
        Ok(Parsed::More)
    }

    /// Dumps the listening TCP sockets of `family` into `out`.
    pub fn dump_listening(family: libc::c_int, out: &mut Vec<ListeningSocket>) -> io::Result<()> {
        // SAFETY: socket() takes plain integers and returns a new descriptor or -1.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
        let mut sock = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // An unbound, unconnected netlink socket sends to the kernel: write() is send().
        sock.write_all(&request(family as u8, 1))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if parse(&buf[..n], out)? == Parsed::Done {
                return Ok(());
            }
        }
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
/// may itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcessInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcessInfo {
        pid,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgid: field(5)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

pub mod fake {
    //! A recording [`Syscalls`] for unit tests: it starts nothing, remembers every
    //! call, keeps a scripted process table, and behaves like the kernel where the
    //! launcher's logic depends on it (a spawned pid appears in the `cgroup.procs`
    //! files it was asked to join; SIGKILL removes it from them and ends its wait).

    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Condvar, Mutex, MutexGuard};

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        /// `spawn`, with what the child would have been given.
        Spawn {
            /// The pid the fake assigned.
            pid: u32,
            /// The program.
            program: PathBuf,
            /// `argv[1..]`.
            args: Vec<String>,
            /// The complete environment.
            env: Vec<(String, String)>,
            /// The working directory.
            working_dir: PathBuf,
            /// The `cgroup.procs` files the child would join.
            cgroup_procs: Vec<PathBuf>,
            /// Whether it would call setsid.
            new_session: bool,
            /// The user it would switch to.
            user: Option<UserIds>,
            /// Its bind mounts.
            mounts: Vec<BindMount>,
            /// The namespaces it would get.
            namespaces: Namespaces,
        },
        /// The privileged steps the child of `pid` would take before exec
        /// (recorded right after its `Spawn` when it takes any).
        Privileges {
            /// The child.
            pid: u32,
            /// The steps, in order.
            steps: Vec<PrivilegeStep>,
        },
        /// `wait_child(pid)`.
        WaitChild(u32),
        /// `kill(target, signal)`.
        Kill(KillTarget, Signal),
        /// `pidfd_open(pid)`.
        PidfdOpen(u32),
        /// `lookup_user(name)`.
        LookupUser(String),
        /// `chown(path, uid, gid)`.
        Chown(PathBuf, u32, u32),
        /// `rmdir(path)`.
        Rmdir(PathBuf),
        /// `attach_bind_filter(cgroup, program)`.
        AttachBindFilter {
            /// The cgroup v2 directory.
            cgroup: PathBuf,
            /// The program.
            program: Vec<EbpfInstruction>,
        },
    }

    #[derive(Default)]
    struct State {
        calls: Vec<Call>,
        next_pid: u32,
        euid: u32,
        users: HashMap<String, UserIds>,
        processes: BTreeMap<u32, ProcessInfo>,
        exits: HashMap<u32, i32>,
        joined: HashMap<u32, Vec<PathBuf>>,
        spawn_error: Option<io::ErrorKind>,
        listening: Vec<ListeningSocket>,
        sockets: HashMap<u32, Vec<u64>>,
        no_bind_filters: bool,
    }

    /// The recording fake. See the module documentation.
    pub struct RecordingSyscalls {
        state: Mutex<State>,
        exited: Condvar,
    }

    impl Default for RecordingSyscalls {
        fn default() -> Self {
            Self::new()
        }
    }

    impl RecordingSyscalls {
        /// A fake agent running as root, with only the user `root`, and no processes.
        pub fn new() -> Self {
            let mut users = HashMap::new();
            users.insert(
                "root".to_string(),
                UserIds {
                    name: "root".into(),
                    uid: 0,
                    gid: 0,
                    groups: vec![0],
                },
            );
            Self {
                state: Mutex::new(State {
                    next_pid: 1000,
                    users,
                    ..State::default()
                }),
                exited: Condvar::new(),
            }
        }

        fn lock(&self) -> MutexGuard<'_, State> {
            self.state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Pretends the agent runs with effective uid `euid`.
        pub fn set_euid(&self, euid: u32) {
            self.lock().euid = euid;
        }

        /// Adds a user account.
        pub fn add_user(&self, user: UserIds) {
            self.lock().users.insert(user.name.clone(), user);
        }

        /// Adds (or replaces) a process in the fake process table.
        pub fn add_process(&self, info: ProcessInfo) {
            self.lock().processes.insert(info.pid, info);
        }

        /// Sets what `listening_tcp_sockets` reports.
        pub fn set_listening(&self, sockets: Vec<ListeningSocket>) {
            self.lock().listening = sockets;
        }

        /// Sets the socket inodes process `pid` holds (`socket_inodes`).
        pub fn set_sockets(&self, pid: u32, inodes: Vec<u64>) {
            self.lock().sockets.insert(pid, inodes);
        }

        /// Makes this fake kernel refuse bind filters (as one without cgroup BPF would).
        pub fn refuse_bind_filters(&self) {
            self.lock().no_bind_filters = true;
        }

        /// Makes the next spawns fail with `kind`.
        pub fn fail_spawn(&self, kind: io::ErrorKind) {
            self.lock().spawn_error = Some(kind);
        }

        /// Makes process `pid` exit with the raw wait status `status`.
        pub fn exit(&self, pid: u32, status: i32) {
            let mut st = self.lock();
            Self::end(&mut st, pid, status);
            self.exited.notify_all();
        }

        fn end(st: &mut State, pid: u32, status: i32) {
            st.processes.remove(&pid);
            st.exits.entry(pid).or_insert(status);
            for path in st.joined.remove(&pid).unwrap_or_default() {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let kept: String = text
                        .lines()
                        .filter(|l| l.trim() != pid.to_string())
                        .map(|l| format!("{l}\n"))
                        .collect();
                    let _ = std::fs::write(&path, kept);
                }
            }
        }

        /// Every call so far, in order.
        pub fn calls(&self) -> Vec<Call> {
            self.lock().calls.clone()
        }

        /// The signals sent so far, in order.
        pub fn kills(&self) -> Vec<(KillTarget, Signal)> {
            self.calls()
                .into_iter()
                .filter_map(|c| match c {
                    Call::Kill(t, s) => Some((t, s)),
                    _ => None,
                })
                .collect()
        }
    }

    impl Syscalls for RecordingSyscalls {
        fn spawn(&self, req: SpawnRequest) -> io::Result<u32> {
            let mut st = self.lock();
            if let Some(kind) = st.spawn_error {
                return Err(io::Error::new(kind, "fake spawn failure"));
            }
            let pid = st.next_pid;
            st.next_pid += 1;
            let paths: Vec<PathBuf> = req.cgroup_procs.iter().map(|(p, _)| p.clone()).collect();
            for path in &paths {
                // The kernel would list the child in the cgroup it joined.
                let mut text = std::fs::read_to_string(path).unwrap_or_default();
                text.push_str(&format!("{pid}\n"));
                std::fs::write(path, text)?;
            }
            st.joined.insert(pid, paths.clone());
            // The fake kernel knows capabilities 0..=40 (CHECKPOINT_RESTORE).
            let steps = (req.security != ProcessSecurity::default()
                || req.namespaces.user.is_some())
            .then(|| spawn_steps(&req, st.euid, 40));
            let sid = if req.new_session { pid } else { 1 };
            st.processes.insert(
                pid,
                ProcessInfo {
                    pid,
                    ppid: 1,
                    pgid: sid,
                    sid,
                    state: 'S',
                    start_time: u64::from(pid),
                },
            );
            st.calls.push(Call::Spawn {
                pid,
                program: req.program,
                args: req.args,
                env: req.env,
                working_dir: req.working_dir,
                cgroup_procs: paths,
                new_session: req.new_session,
                user: req.user,
                mounts: req.mounts,
                namespaces: req.namespaces,
            });
            if let Some(steps) = steps {
                st.calls.push(Call::Privileges { pid, steps });
            }
            Ok(pid)
        }

        fn wait_child(&self, pid: u32) -> io::Result<i32> {
            let mut st = self.lock();
            st.calls.push(Call::WaitChild(pid));
            loop {
                if let Some(status) = st.exits.get(&pid) {
                    return Ok(*status);
                }
                st = self
                    .exited
                    .wait(st)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }

        fn kill(&self, target: KillTarget, signal: Signal) -> io::Result<()> {
            let mut st = self.lock();
            st.calls.push(Call::Kill(target, signal));
            let victims: Vec<u32> = st
                .processes
                .values()
                .filter(|p| match target {
                    KillTarget::Process(pid) => p.pid == pid,
                    KillTarget::Group(pgid) => p.pgid == pgid,
                })
                .map(|p| p.pid)
                .collect();
            if victims.is_empty() {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if signal == Signal::SIGKILL {
                for pid in victims {
                    Self::end(&mut st, pid, libc::SIGKILL);
                }
                self.exited.notify_all();
            }
            Ok(())
        }

        fn pidfd_open(&self, pid: u32) -> io::Result<OwnedFd> {
            self.lock().calls.push(Call::PidfdOpen(pid));
            // Exercises the /proc polling fallback.
            Err(io::Error::from_raw_os_error(libc::ENOSYS))
        }

        fn geteuid(&self) -> u32 {
            self.lock().euid
        }

        fn lookup_user(&self, name: &str) -> io::Result<Option<UserIds>> {
            let mut st = self.lock();
            st.calls.push(Call::LookupUser(name.to_string()));
            Ok(st.users.get(name).cloned())
        }

        fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
            self.lock()
                .calls
                .push(Call::Chown(path.to_path_buf(), uid, gid));
            Ok(())
        }

        fn rmdir(&self, path: &Path) -> io::Result<()> {
            self.lock().calls.push(Call::Rmdir(path.to_path_buf()));
            // A cgroup directory holds kernel files that vanish with it; a test
            // directory holds plain files, so remove them too.
            std::fs::remove_dir_all(path)
        }

        fn process(&self, pid: u32) -> io::Result<Option<ProcessInfo>> {
            Ok(self.lock().processes.get(&pid).copied())
        }

        fn processes(&self) -> io::Result<Vec<ProcessInfo>> {
            Ok(self.lock().processes.values().copied().collect())
        }

        fn listening_tcp_sockets(&self) -> io::Result<Vec<ListeningSocket>> {
            Ok(self.lock().listening.clone())
        }

        fn socket_inodes(&self, pid: u32) -> io::Result<Vec<u64>> {
            self.lock()
                .sockets
                .get(&pid)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }

        fn attach_bind_filter(&self, cgroup: &Path, program: &[EbpfInstruction]) -> io::Result<()> {
            let mut st = self.lock();
            if st.no_bind_filters {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            st.calls.push(Call::AttachBindFilter {
                cgroup: cgroup.to_path_buf(),
                program: program.to_vec(),
            });
            Ok(())
        }

        fn probe_bind_filter(&self, _program: &[EbpfInstruction]) -> io::Result<()> {
            if self.lock().no_bind_filters {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_RAW: u64 = 1 << 13;
    const CHOWN: u64 = 1;

    #[test]
    fn privileges_are_cut_in_an_order_that_works_for_another_user() {
        use PrivilegeStep::*;
        let security = ProcessSecurity {
            bounding: Some(CHOWN | NET_RAW),
            effective: Some(NET_RAW),
            no_new_privs: true,
            seccomp: Vec::new(),
        };
        let steps = privilege_steps(&security, Some(65534), 0, 40);
        let drops: Vec<u8> = (0..=40).filter(|c| ![0, 13].contains(c)).collect();
        let mut expected: Vec<PrivilegeStep> = drops.into_iter().map(DropBounding).collect();
        expected.extend([
            KeepCaps,
            SwitchUser,
            ClearAmbient,
            SetCapabilities {
                effective: NET_RAW,
                permitted: NET_RAW,
                inheritable: NET_RAW,
            },
            RaiseAmbient(13),
            NoNewPrivs,
        ]);
        assert_eq!(steps, expected);
    }

    #[test]
    fn without_a_grant_root_keeps_the_bounding_set_and_another_user_nothing() {
        use PrivilegeStep::*;
        let security = ProcessSecurity {
            bounding: Some(CHOWN | NET_RAW),
            effective: None,
            no_new_privs: false,
            seccomp: Vec::new(),
        };
        let root = privilege_steps(&security, None, 0, 13);
        assert_eq!(
            &root[root.len() - 2..],
            &[
                ClearAmbient,
                SetCapabilities {
                    effective: CHOWN | NET_RAW,
                    permitted: CHOWN | NET_RAW,
                    inheritable: CHOWN | NET_RAW
                }
            ]
        );
        assert!(!root.contains(&KeepCaps) && !root.contains(&SwitchUser));
        let other = privilege_steps(&security, Some(1000), 0, 13);
        let tail = &other[other.len() - 3..];
        assert_eq!(
            tail,
            &[
                SwitchUser,
                ClearAmbient,
                SetCapabilities {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0
                }
            ],
            "no keepcaps: setuid drops everything"
        );
        // Nothing asked: only the user switch (the spawn of old).
        assert_eq!(
            privilege_steps(&ProcessSecurity::default(), Some(1000), 0, 40),
            vec![SwitchUser]
        );
        assert!(privilege_steps(&ProcessSecurity::default(), None, 0, 40).is_empty());
        let nnp_only = ProcessSecurity {
            no_new_privs: true,
            ..ProcessSecurity::default()
        };
        assert_eq!(privilege_steps(&nnp_only, None, 0, 40), vec![NoNewPrivs]);
        // A seccomp filter implies no_new_privs and comes after it.
        let filtered = ProcessSecurity {
            seccomp: vec![Vec::new(), Vec::new()],
            ..ProcessSecurity::default()
        };
        assert_eq!(
            privilege_steps(&filtered, None, 0, 40),
            vec![NoNewPrivs, LoadSeccomp(0), LoadSeccomp(1)]
        );
    }

    #[test]
    fn the_recording_fake_records_the_privileged_steps_after_the_spawn() {
        let sys = fake::RecordingSyscalls::new();
        let dir = tempfile::tempdir().expect("dir");
        let out = || File::create(dir.path().join("out")).expect("file");
        let pid = sys
            .spawn(SpawnRequest {
                program: PathBuf::from("/bin/true"),
                args: Vec::new(),
                env: Vec::new(),
                working_dir: dir.path().to_path_buf(),
                stdout: out(),
                stderr: out(),
                cgroup_procs: Vec::new(),
                new_session: true,
                user: None,
                security: ProcessSecurity {
                    no_new_privs: true,
                    ..ProcessSecurity::default()
                },
                namespaces: Namespaces::default(),
                mounts: Vec::new(),
            })
            .expect("fake spawn");
        let calls = sys.calls();
        assert!(matches!(calls[0], fake::Call::Spawn { .. }));
        assert_eq!(
            calls[1],
            fake::Call::Privileges {
                pid,
                steps: vec![PrivilegeStep::NoNewPrivs]
            }
        );
    }

    #[test]
    fn proc_stat_with_spaces_and_parentheses_in_the_name_parses() {
        let text =
            "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1 2 3";
        let info = parse_proc_stat(text).expect("a well-formed stat line parses");
        assert_eq!(
            info,
            ProcessInfo {
                pid: 4242,
                ppid: 17,
                pgid: 4242,
                sid: 4242,
                state: 'S',
                start_time: 987654
            }
        );
        assert!(!info.is_exited());
        assert!(
            parse_proc_stat("12 (x) Z 1 2 3").is_none(),
            "truncated line is rejected"
        );
    }

    #[test]
    fn kill_refuses_pids_that_mean_everyone_our_group_or_init() {
        for pid in [0, 1, u32::MAX] {
            let err = RealSyscalls
                .kill(KillTarget::Process(pid), Signal::SIGKILL)
                .expect_err("dangerous pid refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            let err = RealSyscalls
                .kill(KillTarget::Group(pid), Signal::SIGKILL)
                .expect_err("dangerous group refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn our_own_process_is_visible_in_proc() {
        let me = std::process::id();
        let info = RealSyscalls.process(me).expect("reading /proc/self works");
        assert_eq!(info.map(|p| p.pid), Some(me));
        let all = RealSyscalls.processes().expect("listing /proc works");
        assert!(all.iter().any(|p| p.pid == me));
    }

    #[test]
    fn a_listeners_cgroup_id_attribute_is_read_and_malformed_attributes_are_ignored() {
        // One SOCK_DIAG_BY_FAMILY message: header, inet_diag_msg, then attributes.
        let message = |attrs: &[u8]| {
            let len = 16 + 72 + attrs.len();
            let mut m = vec![0u8; len];
            m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
            m[4..6].copy_from_slice(&20u16.to_ne_bytes());
            m[16] = libc::AF_INET as u8;
            m[20..22].copy_from_slice(&31000u16.to_be_bytes());
            m[16 + 68..16 + 72].copy_from_slice(&77u32.to_ne_bytes());
            m[16 + 72..].copy_from_slice(attrs);
            m
        };
        let attr = |kind: u16, data: &[u8]| {
            let mut a = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
            a.extend(kind.to_ne_bytes());
            a.extend(data);
            while !a.len().is_multiple_of(4) {
                a.push(0);
            }
            a
        };
        let mut attrs = attr(5, &[1]);
        attrs.extend(attr(21, &4242u64.to_ne_bytes()));
        let mut out = Vec::new();
        sock_diag::parse(&message(&attrs), &mut out).expect("parsed");
        assert_eq!(out[0].port, 31000);
        assert_eq!(out[0].inode, 77);
        assert_eq!(out[0].cgroup_id, Some(4242));
        for bad in [
            attr(21, &[1, 2, 3]),
            vec![200, 0, 21, 0],
            vec![0, 0, 21, 0, 9],
        ] {
            let mut out = Vec::new();
            sock_diag::parse(&message(&bad), &mut out).expect("the socket is still listed");
            assert_eq!(out[0].cgroup_id, None, "{bad:?}");
        }
    }

    #[test]
    fn socket_links_give_their_inode_and_nothing_else_does() {
        assert_eq!(parse_socket_link(b"socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link(b"pipe:[12345]"), None);
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
    }

    #[test]
    fn a_netlink_error_reply_is_an_os_error_and_done_ends_the_dump() {
        let mut reply = vec![0u8; 36];
        reply[0..4].copy_from_slice(&36u32.to_ne_bytes());
        reply[4..6].copy_from_slice(&2u16.to_ne_bytes());
        reply[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        let err = sock_diag::parse(&reply, &mut Vec::new()).expect_err("error reply");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(
            sock_diag::parse(&done, &mut Vec::new()).expect("done"),
            sock_diag::Parsed::Done
        );
        let mut short = vec![0u8; 16];
        short[0..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(sock_diag::parse(&short, &mut Vec::new()).is_err());
    }

    #[test]
    fn sock_diag_lists_our_own_ipv4_and_ipv6_listeners_with_the_inodes_our_fds_link_to() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind v4");
        let v6 = match std::net::TcpListener::bind("[::1]:0") {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("no IPv6 loopback here ({e}); checking IPv4 only");
                None
            }
        };
        let listening = RealSyscalls
            .listening_tcp_sockets()
            .expect("sock_diag dump");
        let mine = RealSyscalls
            .socket_inodes(std::process::id())
            .expect("our fds");
        let mut wanted = vec![v4.local_addr().expect("addr")];
        if let Some(l) = &v6 {
            wanted.push(l.local_addr().expect("addr"));
        }
        for addr in wanted {
            let found = listening
                .iter()
                .find(|s| s.port == addr.port() && s.addr == addr.ip())
                .unwrap_or_else(|| panic!("{addr} in the dump: {listening:?}"));
            assert!(
                mine.contains(&found.inode),
                "our fds link to socket {}",
                found.inode
            );
        }
        // With a cgroup v2 hierarchy, each socket carries its creator's cgroup id,
        // the inode of that cgroup's directory.
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").expect("our cgroups");
        let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::"));
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|m| std::path::Path::new(m).join("cgroup.controllers").exists());
        if let (Some(path), Some(mount)) = (v2, mount) {
            use std::os::unix::fs::MetadataExt;
            let dir = std::path::Path::new(mount).join(path.trim_start_matches('/'));
            let ino = std::fs::metadata(&dir).expect("our v2 cgroup").ino();
            let port = v4.local_addr().expect("addr").port();
            let ours = listening.iter().find(|s| s.port == port).expect("ours");
            assert_eq!(ours.cgroup_id, Some(ino), "the id of {}", dir.display());
        }
        // A connected (not listening) socket is not reported.
        let client = std::net::TcpStream::connect(v4.local_addr().expect("addr")).expect("connect");
        let port = client.local_addr().expect("addr").port();
        let again = RealSyscalls.listening_tcp_sockets().expect("dump");
        assert!(!again.iter().any(|s| s.port == port));
    }

    /// Root, user namespaces and a writable place for an unprivileged id, or a
    /// printed reason (a failure under CI, which has them).
    fn namespaces_runnable() -> bool {
        let why = if !nix::unistd::geteuid().is_root() {
            Some("namespaces need root")
        } else if std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .is_ok_and(|n| n.trim() == "0")
        {
            Some("user namespaces are disabled (user.max_user_namespaces = 0)")
        } else {
            None
        };
        match why {
            None => true,
            Some(why) if std::env::var_os("CI").is_some() => panic!("CI is set but {why}"),
            Some(why) => {
                eprintln!("skipped: {why}");
                false
            }
        }
    }

    #[test]
    fn a_child_in_its_own_user_pid_and_ipc_namespaces_is_pid_1_and_root_only_inside() {
        use std::os::unix::fs::MetadataExt;
        if !namespaces_runnable() {
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let map = IdMap {
            uid_first: 200_000,
            gid_first: 300_000,
            count: 65_536,
        };
        std::os::unix::fs::chown(dir.path(), Some(map.uid_first), Some(map.gid_first))
            .expect("chown the working dir to the namespace's root");
        let out = || File::create(dir.path().join("out")).expect("file");
        let sys = RealSyscalls;
        let pid = sys
            .spawn(SpawnRequest {
                program: PathBuf::from("/bin/sh"),
                args: vec![
                    "-c".into(),
                    "echo $$ > report; id -u >> report; id -g >> report; \
                     readlink /proc/self/ns/pid /proc/self/ns/ipc /proc/self/ns/user >> report; \
                     ls /proc | grep -c '^[0-9]' >> report; touch made; \
                     echo x >> /etc/hostname 2>/dev/null || echo refused >> report"
                        .into(),
                ],
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                working_dir: dir.path().to_path_buf(),
                stdout: out(),
                stderr: out(),
                cgroup_procs: Vec::new(),
                new_session: true,
                user: None,
                security: ProcessSecurity::default(),
                namespaces: Namespaces {
                    user: Some(map),
                    pid: true,
                    ipc: true,
                },
                mounts: Vec::new(),
            })
            .expect("spawn in namespaces");
        let status = sys.wait_child(pid).expect("our child");
        let output = std::fs::read_to_string(dir.path().join("out")).unwrap_or_default();
        assert_eq!(status, 0, "exit status; output: {output}");
        let report = std::fs::read_to_string(dir.path().join("report")).expect("report");
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(&lines[..3], ["1", "0", "0"], "pid 1, root inside: {report}");
        let ours = |ns: &str| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .expect("our namespace")
                .display()
                .to_string()
        };
        for (line, ns) in lines[3..6].iter().zip(["pid", "ipc", "user"]) {
            assert!(line.starts_with(&format!("{ns}:[")), "{report}");
            assert_ne!(*line, ours(ns), "a {ns} namespace of its own: {report}");
        }
        let visible: u32 = lines[6].parse().expect("a count");
        assert!(
            visible <= 3,
            "its /proc shows only sh, ls and grep: {report}"
        );
        assert_eq!(
            lines[7], "refused",
            "root inside cannot write a root-owned host file"
        );
        let made = std::fs::metadata(dir.path().join("made")).expect("file made inside");
        assert_eq!(
            (made.uid(), made.gid()),
            (map.uid_first, map.gid_first),
            "owned by the mapped ids on the host"
        );
    }
}
