//! The agent's command line: Mesos's flag names, `MESOS_<NAME>` environment
//! forms and defaults, and the validation that happens before any socket is
//! bound. Values that clap cannot check (the master address, attributes,
//! resources) are parsed here into typed values once.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use mesos_common::auth::credentials::{
    load_credential, load_credentials, Credential, CredentialStore, Secret,
};
use mesos_common::auth::sasl::Mechanism;
use mesos_common::flags::{bool_arg, duration_arg, format_duration};
use mesos_common::Upid;
use mesos_proto::v1;

/// `mesos-agent` flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "mesos-agent", rename_all = "snake_case", version = mesos_common::MESOS_VERSION, about = "Mesos agent")]
pub struct Flags {
    /// The master to register with: `host:port`, `master@host:port`, or
    /// `file:///path` to a file containing one of those.
    #[arg(long, env = "MESOS_MASTER")]
    pub master: String,

    /// Inbound connection limits.
    #[command(flatten)]
    pub connections: mesos_common::connections::ConnectionFlags,

    /// IP address to listen on. Mesos binds 0.0.0.0 by default; we bind
    /// loopback unless told otherwise, like the master: the agent's
    /// endpoints (sandboxes, the executor API) are not for every network
    /// it happens to be on. The address advertised to the master (and to executors) is
    /// `--advertise_ip`, else this one when it is not a wildcard, else the
    /// first non-loopback IPv4 address of the host's name, else 127.0.0.1.
    #[arg(long, env = "MESOS_IP", default_value = "127.0.0.1")]
    pub ip: IpAddr,

    /// IP address advertised to the master and executors.
    #[arg(long, env = "MESOS_ADVERTISE_IP")]
    pub advertise_ip: Option<IpAddr>,

    /// Port to listen on.
    #[arg(long, env = "MESOS_PORT", default_value_t = 5051)]
    pub port: u16,

    /// Host name reported to the master (default: the system's host name).
    #[arg(long, env = "MESOS_HOSTNAME")]
    pub hostname: Option<String>,

    /// Directory for sandboxes and checkpointed state.
    #[arg(long, env = "MESOS_WORK_DIR")]
    pub work_dir: PathBuf,

    /// Total consumable resources, e.g. `cpus:2;mem:1024;ports:[31000-32000]`
    /// (or a JSON array of Resource objects). Missing cpus, mem, disk and
    /// ports are detected from the machine.
    #[arg(long, env = "MESOS_RESOURCES")]
    pub resources: Option<String>,

    /// Attributes of the machine, e.g. `rack:a;zone:b;level:3`.
    #[arg(long, env = "MESOS_ATTRIBUTES")]
    pub attributes: Option<String>,

    /// How executors are launched: `posix` (sessions and process groups) or
    /// `linux` (cgroups; needs root). Default: `linux` when running as root
    /// with usable cgroups, else `posix`.
    #[arg(long, env = "MESOS_LAUNCHER")]
    pub launcher: Option<String>,

    /// Base of the cgroups hierarchy.
    #[arg(
        long,
        env = "MESOS_CGROUPS_HIERARCHY",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroups_hierarchy: PathBuf,

    /// Name of the root cgroup the agent puts containers under.
    #[arg(long, env = "MESOS_CGROUPS_ROOT", default_value = "mesos")]
    pub cgroups_root: String,

    /// `reconnect`: reconnect with executors that survived an agent restart;
    /// `cleanup`: kill them and register as a new agent.
    #[arg(long, env = "MESOS_RECOVER", default_value = "reconnect", value_parser = ["reconnect", "cleanup"])]
    pub recover: String,

    /// How long an executor may take to subscribe before its container is
    /// destroyed.
    #[arg(long, env = "MESOS_EXECUTOR_REGISTRATION_TIMEOUT", default_value = "1mins", value_parser = duration_arg)]
    pub executor_registration_timeout: Duration,

    /// How long executors that survived an agent restart may take to
    /// re-subscribe before they are destroyed.
    #[arg(long, env = "MESOS_EXECUTOR_REREGISTRATION_TIMEOUT", default_value = "2secs", value_parser = duration_arg)]
    pub executor_reregistration_timeout: Duration,

    /// Time between a SHUTDOWN sent to an executor and its container being
    /// destroyed.
    #[arg(long, env = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", default_value = "5secs", value_parser = duration_arg)]
    pub executor_shutdown_grace_period: Duration,

    /// Upper bound of the first (randomized) registration delay; later
    /// retries double it, up to one minute.
    #[arg(long, env = "MESOS_REGISTRATION_BACKOFF_FACTOR", default_value = "1secs", value_parser = duration_arg)]
    pub registration_backoff_factor: Duration,

    /// How long checkpointing executors keep retrying to reach a restarting
    /// agent before they give up.
    #[arg(long, env = "MESOS_RECOVERY_TIMEOUT", default_value = "15mins", value_parser = duration_arg)]
    pub recovery_timeout: Duration,

    /// Run tasks as the user named in CommandInfo or FrameworkInfo (needs
    /// root).
    #[arg(long, env = "MESOS_SWITCH_USER", default_value_t = true, action = clap::ArgAction::Set)]
    pub switch_user: bool,

    /// Directory holding `mesos-executor` (default: the directory of this
    /// binary).
    #[arg(long, env = "MESOS_LAUNCHER_DIR")]
    pub launcher_dir: Option<PathBuf>,

    /// Isolators, comma separated. `cgroups/cpu` and `cgroups/mem` (alias
    /// `cgroups`; linux launcher only) enforce the containers' `cpus` and
    /// `mem` and fail tasks killed for lack of memory with
    /// REASON_CONTAINER_LIMITATION_MEMORY; `network/ports` watches the ports
    /// containers listen on; `posix/cpu`, `posix/mem` and `filesystem/posix`
    /// enforce nothing (as in Mesos); other Mesos isolators are refused by
    /// name (not implemented). `linux/capabilities` limits the tasks'
    /// capabilities (see `--bounding_capabilities`) and `linux/nnp` sets
    /// `no_new_privs`. Default: `cgroups/cpu,cgroups/mem` with the linux
    /// launcher, else `posix/cpu,posix/mem` (Mesos's default), plus
    /// `linux/capabilities` (when root) and `linux/nnp`.
    #[arg(long, env = "MESOS_ISOLATION")]
    pub isolation: Option<String>,

    /// `linux/capabilities`: the capabilities tasks get when they ask for
    /// none, as JSON `{"capabilities":["NET_BIND_SERVICE",...]}` (Mesos's
    /// names) or `file:///path` to it; non-root tasks get them as ambient
    /// capabilities. Unset: none granted (root tasks keep the bounding set).
    /// Alias `--allowed_capabilities`.
    #[arg(
        long,
        env = "MESOS_EFFECTIVE_CAPABILITIES",
        alias = "allowed_capabilities"
    )]
    pub effective_capabilities: Option<String>,

    /// `linux/capabilities`: the most capabilities any task may have (same
    /// format). Unset: `--effective_capabilities` if given, else a minimal
    /// set (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID,
    /// NET_BIND_SERVICE, SYS_CHROOT, AUDIT_WRITE; no NET_RAW, no SYS_ADMIN)
    /// where Mesos allows all.
    #[arg(long, env = "MESOS_BOUNDING_CAPABILITIES")]
    pub bounding_capabilities: Option<String>,

    /// `linux/seccomp`: the directory of seccomp profiles (Docker's JSON
    /// format) that `--seccomp_profile_name` and tasks'
    /// `LinuxInfo.seccomp.profile_name` name.
    #[arg(long, env = "MESOS_SECCOMP_CONFIG_DIR")]
    pub seccomp_config_dir: Option<PathBuf>,

    /// `linux/seccomp`: the profile (in `--seccomp_config_dir`) of containers
    /// that name none. Unset: the built-in profile, which refuses `keyctl`,
    /// `mount`, `unshare`, `setns`, `ptrace`, `bpf`, `kexec_load`, ... with
    /// EPERM (Mesos: no filter).
    #[arg(long, env = "MESOS_SECCOMP_PROFILE_NAME")]
    pub seccomp_profile_name: Option<String>,

    /// `namespaces/user`: the host ids the containers' user namespaces map
    /// ids `0..n` to, as `[first-last]` (uids and gids alike), e.g.
    /// `[100000-165535]`. Unset: the agent user's entries in `/etc/subuid`
    /// and `/etc/subgid`.
    #[arg(long, env = "MESOS_USER_NAMESPACE_RANGE")]
    pub user_namespace_range: Option<String>,

    /// `namespaces/pid`: refuse tasks whose `LinuxInfo.share_pid_namespace`
    /// asks for the agent's pid namespace.
    #[arg(long, env = "MESOS_DISALLOW_SHARING_AGENT_PID_NAMESPACE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub disallow_sharing_agent_pid_namespace: bool,

    /// `namespaces/ipc`: refuse tasks whose `LinuxInfo.ipc_mode` is
    /// `SHARE_PARENT` (the agent's IPC namespace).
    #[arg(long, env = "MESOS_DISALLOW_SHARING_AGENT_IPC_NAMESPACE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub disallow_sharing_agent_ipc_namespace: bool,

    /// `cgroups/cpu`: also cap each container's CPU time at its `cpus` with a
    /// CFS quota (period 100ms, quota `cpus` × period, at least 1ms). Off by
    /// default as in Mesos: `cpu.shares` already protects containers from
    /// each other under contention; a quota also stops them using idle CPUs.
    #[arg(long, env = "MESOS_CGROUPS_ENABLE_CFS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub cgroups_enable_cfs: bool,

    /// `network/ports`: kill a container that listens on a port it was not
    /// allocated (its tasks fail with REASON_CONTAINER_LIMITATION). When
    /// false, violations are only logged.
    #[arg(long, env = "MESOS_ENFORCE_CONTAINER_PORTS", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub enforce_container_ports: bool,

    /// `network/ports` (ours, beyond Mesos): a cgroup BPF program on each
    /// container refuses `bind()` (EPERM) to any port in the isolated range
    /// that is not allocated to it, so a task never listens there, not even
    /// between two scans or while the agent is down; the scan stays as a
    /// second line. Default: the value of `--enforce_container_ports`. If the
    /// kernel or cgroup layout cannot do it, the agent says so at startup and
    /// only scans.
    #[arg(long, env = "MESOS_CONTAINER_PORTS_ENFORCE_AT_BIND", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub container_ports_enforce_at_bind: Option<bool>,

    /// `network/ports`: time between two scans of the containers' listening
    /// ports (Mesos: 30secs).
    #[arg(long, env = "MESOS_CONTAINER_PORTS_WATCH_INTERVAL", default_value = "5secs", value_parser = duration_arg)]
    pub container_ports_watch_interval: Duration,

    /// `network/ports`: only check ports inside the agent's `ports` resource
    /// (`[31000-32000]` when `--resources` has none). Needed with executors
    /// that listen on a port of their own.
    #[arg(long, env = "MESOS_CHECK_AGENT_PORT_RANGE_ONLY", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub check_agent_port_range_only: bool,

    /// `network/ports`: only check ports in this range, e.g. `[0-1023,31000-32000]`.
    #[arg(long, env = "MESOS_CONTAINER_PORTS_ISOLATED_RANGE")]
    pub container_ports_isolated_range: Option<String>,

    /// Role of resources given without one.
    #[arg(long, env = "MESOS_DEFAULT_ROLE", default_value = "*")]
    pub default_role: String,

    /// This agent's credential for authenticating with the master: a path
    /// or `file:///path` to `{"principal":"…","secret":"…"}` or to one
    /// `principal secret` line. Without it the agent registers
    /// unauthenticated, which a master with `--authenticate_agents` refuses.
    #[arg(long, env = "MESOS_CREDENTIAL")]
    pub credential: Option<String>,

    /// How to authenticate with the master: `scram_sha256` (SCRAM-SHA-256
    /// only: the master proves it knows the secret too, and a peer that
    /// offers only CRAM-MD5 cannot downgrade us) or `crammd5` (CRAM-MD5,
    /// Mesos's only mechanism: use it with a Mesos master).
    #[arg(long, env = "MESOS_AUTHENTICATEE", default_value = "scram_sha256", value_parser = ["scram_sha256", "crammd5"])]
    pub authenticatee: String,

    /// Growth of the authentication timeout range: the first attempt times
    /// out at random within `[min, min + 2 × factor]`, and every retry
    /// doubles the width of that range, up to `--authentication_timeout_max`.
    #[arg(long, env = "MESOS_AUTHENTICATION_BACKOFF_FACTOR", default_value = "1secs", value_parser = duration_arg)]
    pub authentication_backoff_factor: Duration,

    /// Shortest time an authentication attempt may take before it is
    /// abandoned and retried.
    #[arg(long, env = "MESOS_AUTHENTICATION_TIMEOUT_MIN", default_value = "5secs", value_parser = duration_arg)]
    pub authentication_timeout_min: Duration,

    /// Longest time an authentication attempt may take before it is
    /// abandoned and retried.
    #[arg(long, env = "MESOS_AUTHENTICATION_TIMEOUT_MAX", default_value = "1mins", value_parser = duration_arg)]
    pub authentication_timeout_max: Duration,

    /// Principals and secrets accepted on the agent's HTTP endpoints: a
    /// path or `file:///path` to `{"credentials":[{"principal":…,"secret":…}]}`
    /// or to `principal secret` lines.
    #[arg(long, env = "MESOS_HTTP_CREDENTIALS")]
    pub http_credentials: Option<String>,

    /// Require HTTP authentication on read-only endpoints (`/state`,
    /// `/flags`, `/metrics/snapshot`, `/files/*`; realm
    /// `mesos-agent-readonly`). Mesos's default is false; ours is true.
    #[arg(long, env = "MESOS_AUTHENTICATE_HTTP_READONLY", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_readonly: bool,

    /// Require HTTP authentication on endpoints that change state (realm
    /// `mesos-agent-readwrite`). Mesos's default is false; ours is true.
    #[arg(long, env = "MESOS_AUTHENTICATE_HTTP_READWRITE", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_readwrite: bool,

    /// Require executors to present the token the agent gave them
    /// (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`) on `/api/v1/executor` (realm
    /// `mesos-agent-executor`). Mesos's default is false; ours is true.
    #[arg(long, env = "MESOS_AUTHENTICATE_HTTP_EXECUTORS", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_executors: bool,

    /// HTTP authenticators, comma separated: `basic` for the read-only and
    /// read-write realms; `jwt` (the executor realm's, always used when
    /// `--authenticate_http_executors` is on) is accepted too.
    #[arg(long, env = "MESOS_HTTP_AUTHENTICATORS", default_value = "basic")]
    pub http_authenticators: String,

    /// File holding the HMAC key that signs executor tokens. Without it
    /// the agent generates a random key once and keeps it in
    /// `<work_dir>/meta/jwt_secret_key` (readable by the agent only), so
    /// executors that survive an agent restart keep working.
    #[arg(long, alias = "executor_secret_key", env = "MESOS_JWT_SECRET_KEY")]
    pub jwt_secret_key: Option<PathBuf>,

    /// Append a JSON line per HTTP authentication success and failure to
    /// this file.
    #[arg(long, env = "MESOS_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// ACLs (Mesos's JSON, or a path or `file:///path` to it) deciding
    /// `access_sandboxes` on `/files/*`. Without it, and with the read-only
    /// realm authenticated, no principal may read sandboxes (the denial
    /// names the ACL to add); Mesos's agent then allows everything.
    #[arg(long, env = "MESOS_ACLS")]
    pub acls: Option<String>,

    /// Turn every `--authenticate_http_*` flag off: anyone who can reach
    /// the agent may read its state and sandboxes and act as any executor.
    /// For reproducing Mesos's defaults, never for a real cluster.
    #[arg(long, env = "MESOS_INSECURE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub insecure: bool,
}

/// Why a flag value was refused (reported as one line, exit 1).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// `--master` is not `host:port` or `master@host:port`.
    #[error("invalid --master '{0}': expected host:port, master@host:port or file:///path")]
    Master(String),
    /// `--master=file://` could not be read.
    #[error("cannot read --master file '{path}': {reason}")]
    MasterFile {
        /// File path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// `--master` host does not resolve.
    #[error("cannot resolve the master's host '{0}'")]
    Resolve(String),
    /// An attribute is malformed.
    #[error("invalid --attributes: {0}")]
    Attribute(String),
    /// `--launcher` is unknown.
    #[error("invalid --launcher '{0}': expected 'posix' or 'linux'")]
    Launcher(String),
    /// `--hostname` is unusable.
    #[error("invalid --hostname '{0}'")]
    Hostname(String),
    /// `--registration_backoff_factor` and friends out of range.
    #[error("{0}")]
    Range(String),
    /// An authentication flag is unusable (a credentials file, an
    /// authenticator name, a missing `--http_credentials`).
    #[error("{0}")]
    Auth(String),
    /// `--isolation` or an isolator's flags are unusable.
    #[error("{0}")]
    Isolation(String),
}

/// The `linux/capabilities` settings (Mesos's
/// `LinuxCapabilitiesIsolatorProcess::create`), or `None` when it is off.
fn capabilities_config(
    flags: &Flags,
    isolation: &[String],
    root: bool,
) -> Result<Option<crate::isolators::capabilities::CapabilitiesConfig>, FlagError> {
    use crate::isolators::{capabilities::CapabilitiesConfig, LINUX_CAPABILITIES};
    if !isolation.iter().any(|n| n == LINUX_CAPABILITIES) {
        return Ok(None);
    }
    if !root {
        return Err(FlagError::Isolation(
            "Linux capabilities isolator requires root permissions".into(),
        ));
    }
    CapabilitiesConfig::from_flags(
        flags.effective_capabilities.as_deref(),
        flags.bounding_capabilities.as_deref(),
    )
    .map(Some)
    .map_err(FlagError::Isolation)
}

/// The namespace isolators in `isolation`, with Mesos's creation checks
/// (root, the linux launcher) and, for `namespaces/user`, the id mapping and
/// an executor that the mapped (unprivileged) ids can reach.
fn namespaces_config(
    flags: &Flags,
    isolation: &[String],
    root: bool,
    launcher_dir: &Path,
) -> Result<Vec<crate::isolators::namespaces::Kind>, FlagError> {
    use crate::isolators::namespaces::{self as ns, Kind};
    let mut out = Vec::new();
    for name in isolation {
        let (what, kind) = match name.as_str() {
            ns::NAMESPACES_PID => (
                "pid",
                Kind::Pid {
                    disallow_sharing: flags.disallow_sharing_agent_pid_namespace,
                },
            ),
            ns::NAMESPACES_IPC => (
                "IPC",
                Kind::Ipc {
                    disallow_sharing: flags.disallow_sharing_agent_ipc_namespace,
                },
            ),
            ns::NAMESPACES_USER => {
                let read = |path: &str| std::fs::read_to_string(path).ok();
                let euid = nix::unistd::geteuid();
                let user = nix::unistd::User::from_uid(euid)
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_else(|| "root".into());
                let uid = euid.as_raw().to_string();
                let map = ns::id_map(
                    flags.user_namespace_range.as_deref(),
                    read("/etc/subuid").as_deref(),
                    read("/etc/subgid").as_deref(),
                    &[user.as_str(), uid.as_str()],
                )
                .map_err(FlagError::Isolation)?;
                ("user", Kind::User(map))
            }
            _ => continue,
        };
        if !root {
            return Err(FlagError::Isolation(format!(
                "The {what} namespace isolator requires root permissions"
            )));
        }
        if flags.launcher.as_deref() != Some("linux") {
            return Err(FlagError::Isolation(format!(
                "'linux' launcher must be used to enable {what} namespace"
            )));
        }
        if let Kind::User(_) = kind {
            ns::check_reachable(&launcher_dir.join("mesos-executor"))
                .map_err(FlagError::Isolation)?;
        }
        out.push(kind);
    }
    Ok(out)
}

/// The `network/ports` settings (Mesos's `NetworkPortsIsolatorProcess::create`),
/// or `None` when the isolator is off.
fn ports_config(
    flags: &Flags,
    isolation: &[String],
) -> Result<Option<crate::isolators::ports::PortsConfig>, FlagError> {
    use crate::isolators::ports::{PortRanges, PortsConfig};
    use mesos_common::resources::Resources;
    if !isolation
        .iter()
        .any(|n| n == crate::isolators::NETWORK_PORTS)
    {
        return Ok(None);
    }
    if flags.launcher.as_deref() != Some("linux") {
        return Err(FlagError::Isolation(
            "The 'network/ports' isolator requires the 'linux' launcher".into(),
        ));
    }
    if flags.check_agent_port_range_only && flags.container_ports_isolated_range.is_some() {
        return Err(FlagError::Isolation(
            "Only one of `--check_agent_port_range_only` or \
             '--container_ports_isolated_range` should be specified"
                .into(),
        ));
    }
    if flags.container_ports_watch_interval.is_zero() {
        return Err(FlagError::Range(
            "--container_ports_watch_interval must be more than 0secs".into(),
        ));
    }
    let mut isolated = None;
    if flags.check_agent_port_range_only {
        let text = flags.resources.as_deref().unwrap_or("");
        let resources = Resources::parse_with_default_role(text, &flags.default_role)
            .map_err(|e| FlagError::Isolation(format!("Failed to parse agent resources: {e}")))?;
        isolated = Some(if resources.names().contains(&"ports") {
            PortRanges::from_ranges(resources.ports())
        } else {
            PortRanges::from_ranges([(31000, 32000)])
        });
    }
    if let Some(range) = &flags.container_ports_isolated_range {
        let bad =
            || FlagError::Isolation(format!("Failed to parse isolated ports range '{range}'"));
        let inner = range
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(bad)?;
        let ranges = parse_ranges(inner).map_err(|_| bad())?;
        if ranges.range.iter().any(|r| r.end > u64::from(u16::MAX)) {
            return Err(bad());
        }
        isolated = Some(PortRanges::from_ranges(
            ranges.range.iter().map(|r| (r.begin, r.end)),
        ));
    }
    Ok(Some(PortsConfig {
        watch_interval: flags.container_ports_watch_interval,
        enforce: flags.enforce_container_ports,
        enforce_at_bind: flags
            .container_ports_enforce_at_bind
            .unwrap_or(flags.enforce_container_ports),
        isolated,
        cni_enabled: isolation.iter().any(|n| n == "network/cni"),
    }))
}

/// The one line an agent started with HTTP authentication on (the
/// default) but no principals to accept prints before exiting.
pub const MISSING_HTTP_CREDENTIALS: &str =
    "HTTP authentication of the agent's endpoints is on by default \
     and needs the principals it accepts: pass --http_credentials=/path/to/credentials.json \
     (a file holding {\"credentials\":[{\"principal\":\"…\",\"secret\":\"…\"}]}), \
     or --insecure to run without authentication (never in production)";

/// Parses `--master`: `host:port`, `master@host:port` or `file:///path`
/// holding one of those. The host is resolved to an IPv4 address when it
/// is a name, because libprocess identifies the master by `ip:port` and
/// messages from it must match.
pub fn parse_master(value: &str) -> Result<Upid, FlagError> {
    let text = match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| FlagError::MasterFile {
                path: path.to_string(),
                reason: e.to_string(),
            })?
            .trim()
            .to_string(),
        None => value.trim().to_string(),
    };
    if text.starts_with("zk://") {
        return Err(FlagError::Master(format!(
            "{text} (ZooKeeper master detection is not supported by this agent)"
        )));
    }
    let with_id = if text.contains('@') {
        text.clone()
    } else {
        format!("master@{text}")
    };
    let upid: Upid = with_id
        .parse()
        .map_err(|_| FlagError::Master(text.clone()))?;
    if upid.port == 0 {
        return Err(FlagError::Master(text));
    }
    if upid.host.parse::<IpAddr>().is_ok() {
        return Ok(upid);
    }
    let resolved = (upid.host.as_str(), upid.port)
        .to_socket_addrs()
        .map_err(|_| FlagError::Resolve(upid.host.clone()))?
        .map(|a| a.ip())
        .min_by_key(|ip| !ip.is_ipv4())
        .ok_or_else(|| FlagError::Resolve(upid.host.clone()))?;
    Ok(Upid::new(upid.id, resolved.to_string(), upid.port))
}

/// Parses Mesos attributes `name:value;name:value`. A value is a scalar
/// (`3`, `2.5`), ranges (`[1-10,20-30]`), a set (`{a,b}`) or text.
pub fn parse_attributes(text: &str) -> Result<Vec<v1::Attribute>, FlagError> {
    let mut out = Vec::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once(':')
            .ok_or_else(|| FlagError::Attribute(format!("'{item}' is not name:value")))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            return Err(FlagError::Attribute(format!(
                "'{item}' has an empty name or value"
            )));
        }
        let mut attribute = v1::Attribute {
            name: name.to_string(),
            ..Default::default()
        };
        if let Ok(number) = value.parse::<f64>() {
            if !number.is_finite() {
                return Err(FlagError::Attribute(format!(
                    "'{item}' is not a finite number"
                )));
            }
            attribute.set_type(v1::value::Type::Scalar);
            attribute.scalar = Some(v1::value::Scalar { value: number });
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            attribute.set_type(v1::value::Type::Ranges);
            attribute.ranges = Some(
                parse_ranges(inner).map_err(|e| FlagError::Attribute(format!("'{item}': {e}")))?,
            );
        } else if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            attribute.set_type(v1::value::Type::Set);
            attribute.set = Some(v1::value::Set {
                item: inner
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            });
        } else {
            if value.contains(['[', ']', '{', '}']) {
                return Err(FlagError::Attribute(format!(
                    "'{item}' has unbalanced brackets"
                )));
            }
            attribute.set_type(v1::value::Type::Text);
            attribute.text = Some(v1::value::Text {
                value: value.to_string(),
            });
        }
        out.push(attribute);
    }
    Ok(out)
}

fn parse_ranges(inner: &str) -> Result<v1::value::Ranges, String> {
    let mut range = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (begin, end) = part.split_once('-').unwrap_or((part, part));
        let begin: u64 = begin
            .trim()
            .parse()
            .map_err(|_| format!("bad range '{part}'"))?;
        let end: u64 = end
            .trim()
            .parse()
            .map_err(|_| format!("bad range '{part}'"))?;
        if begin > end {
            return Err(format!("range '{part}' ends before it begins"));
        }
        range.push(v1::value::Range { begin, end });
    }
    Ok(v1::value::Ranges { range })
}

/// Attributes as Mesos's `/state` shows them: `{name: value}` with scalars
/// as numbers and the rest as text.
pub fn attributes_json(attributes: &[v1::Attribute]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for a in attributes {
        let value = match a.r#type() {
            v1::value::Type::Scalar => {
                serde_json::json!(a.scalar.as_ref().map_or(0.0, |s| s.value))
            }
            v1::value::Type::Ranges => serde_json::json!(format!(
                "[{}]",
                a.ranges
                    .as_ref()
                    .map(|r| r
                        .range
                        .iter()
                        .map(|r| format!("{}-{}", r.begin, r.end))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            )),
            v1::value::Type::Set => serde_json::json!(format!(
                "{{{}}}",
                a.set.as_ref().map(|s| s.item.join(",")).unwrap_or_default()
            )),
            v1::value::Type::Text => {
                serde_json::json!(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default())
            }
        };
        map.insert(a.name.clone(), value);
    }
    serde_json::Value::Object(map)
}

/// Everything derived from the flags that the agent needs, checked before
/// any socket is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// The flags as given.
    pub flags: Flags,
    /// The master's UPID (`master@ip:port`).
    pub master: Upid,
    /// The address advertised to the master and executors.
    pub advertise_ip: IpAddr,
    /// Host name reported in AgentInfo.
    pub hostname: String,
    /// Parsed attributes.
    pub attributes: Vec<v1::Attribute>,
    /// Directory holding `mesos-executor`.
    pub launcher_dir: PathBuf,
    /// `--credential`, loaded.
    pub credential: Option<Credential>,
    /// SASL mechanisms the authenticatee may use (`--authenticatee`).
    pub mechanisms: Vec<Mechanism>,
    /// `--http_credentials`, loaded (required when the read-only or
    /// read-write realm is authenticated).
    pub http_credentials: Option<CredentialStore>,
    /// The key executor tokens are signed with: `--jwt_secret_key`, or the
    /// generated one `main` installs (see [`crate::auth::executor_key`]).
    /// `None` when executor authentication is off.
    pub jwt_key: Option<Secret>,
    /// `--isolation`, parsed (aliases expanded).
    pub isolation: Vec<String>,
    /// The `network/ports` settings, when that isolator is on.
    pub ports: Option<crate::isolators::ports::PortsConfig>,
    /// The `linux/capabilities` settings, when that isolator is on.
    pub capabilities: Option<crate::isolators::capabilities::CapabilitiesConfig>,
    /// The `linux/seccomp` settings, when that isolator is on.
    pub seccomp: Option<crate::isolators::seccomp::SeccompConfig>,
    /// The namespace isolators that are on (`namespaces/user`, `/pid`, `/ipc`).
    pub namespaces: Vec<crate::isolators::namespaces::Kind>,
    /// Whether `--isolation` was not given, so the namespace isolators are
    /// our default (and are dropped, with a warning, where the host cannot
    /// create the namespaces) rather than the operator's demand.
    pub isolation_defaulted: bool,
}

impl Config {
    /// Validates `flags` and derives the configuration.
    pub fn from_flags(flags: Flags) -> Result<Self, FlagError> {
        let master = parse_master(&flags.master)?;
        let attributes = parse_attributes(flags.attributes.as_deref().unwrap_or(""))?;
        let mut flags = flags;
        match &flags.launcher {
            Some(launcher) if launcher != "posix" && launcher != "linux" => {
                return Err(FlagError::Launcher(launcher.clone()));
            }
            Some(_) => {}
            None => flags.launcher = Some(crate::launcher::default_kind().as_str().to_string()),
        }
        flags.connections.validate().map_err(FlagError::Range)?;
        if flags.registration_backoff_factor > Duration::from_secs(60) {
            return Err(FlagError::Range(
                "--registration_backoff_factor must be at most 1mins".into(),
            ));
        }
        let hostname = match &flags.hostname {
            Some(h) => h.clone(),
            None => system_hostname(),
        };
        if hostname.is_empty()
            || hostname
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(FlagError::Hostname(hostname));
        }
        let advertise_ip = flags.advertise_ip.unwrap_or_else(|| {
            if flags.ip.is_unspecified() {
                detect_advertise_ip(&hostname)
            } else {
                flags.ip
            }
        });
        let launcher_dir = match &flags.launcher_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let auth = AuthConfig::from_flags(&mut flags)?;
        let linux = flags.launcher.as_deref() == Some("linux");
        let root = nix::unistd::geteuid().is_root();
        let isolation_defaulted = flags.isolation.is_none();
        let isolation_text = flags.isolation.get_or_insert_with(|| {
            let resources = if linux {
                "cgroups/cpu,cgroups/mem"
            } else {
                "posix/cpu,posix/mem"
            };
            let namespaces = if linux && root {
                ",namespaces/pid,namespaces/ipc"
            } else {
                ""
            };
            format!(
                "{resources},{}{namespaces}",
                crate::isolators::default_security_isolators(root)
            )
        });
        let isolation = crate::isolators::parse_isolation(isolation_text)
            .map_err(|e| FlagError::Isolation(e.to_string()))?;
        if let Some(cgroups) = isolation.iter().find(|n| n.starts_with("cgroups/")) {
            if !linux {
                return Err(FlagError::Isolation(format!(
                    "The '{cgroups}' isolator requires the 'linux' launcher"
                )));
            }
        }
        let ports = ports_config(&flags, &isolation)?;
        let capabilities = capabilities_config(&flags, &isolation, root)?;
        let seccomp = if isolation
            .iter()
            .any(|n| n == crate::isolators::LINUX_SECCOMP)
        {
            Some(
                crate::isolators::seccomp::SeccompConfig::from_flags(
                    flags.seccomp_config_dir.as_deref(),
                    flags.seccomp_profile_name.as_deref(),
                )
                .map_err(FlagError::Isolation)?,
            )
        } else {
            None
        };
        let namespaces = namespaces_config(&flags, &isolation, root, &launcher_dir)?;
        Ok(Self {
            flags,
            master,
            advertise_ip,
            hostname,
            attributes,
            launcher_dir,
            credential: auth.credential,
            mechanisms: auth.mechanisms,
            http_credentials: auth.http_credentials,
            jwt_key: auth.jwt_key,
            isolation,
            ports,
            capabilities,
            seccomp,
            namespaces,
            isolation_defaulted,
        })
    }

    /// Security warnings an operator must see at startup.
    pub fn security_warnings(&self) -> Vec<String> {
        let f = &self.flags;
        if f.insecure {
            return vec![
                "--insecure: HTTP authentication is off: anyone who can reach this agent may read \
                 its state and sandboxes and act as any of its executors"
                    .to_string(),
            ];
        }
        let mut warnings = Vec::new();
        for (on, what) in [
            (
                f.authenticate_http_readonly,
                "--authenticate_http_readonly=false: /state, /flags and sandboxes (/files) are open",
            ),
            (
                f.authenticate_http_readwrite,
                "--authenticate_http_readwrite=false: endpoints that change state are open",
            ),
            (
                f.authenticate_http_executors,
                "--authenticate_http_executors=false: anyone may act as any executor on /api/v1/executor",
            ),
        ] {
            if !on {
                warnings.push(what.to_string());
            }
        }
        warnings
    }

    /// `/flags` content: every flag as a string, as Mesos shows them.
    pub fn flags_json(&self) -> serde_json::Value {
        let f = &self.flags;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), serde_json::Value::String(v));
        };
        put("master", f.master.clone());
        for (name, value) in f.connections.flags_json() {
            put(name, value);
        }
        put("ip", f.ip.to_string());
        if let Some(ip) = f.advertise_ip {
            put("advertise_ip", ip.to_string());
        }
        put("port", f.port.to_string());
        put("hostname", self.hostname.clone());
        put("work_dir", f.work_dir.display().to_string());
        if let Some(r) = &f.resources {
            put("resources", r.clone());
        }
        if let Some(a) = &f.attributes {
            put("attributes", a.clone());
        }
        if let Some(l) = &f.launcher {
            put("launcher", l.clone());
        }
        put(
            "cgroups_hierarchy",
            f.cgroups_hierarchy.display().to_string(),
        );
        put("cgroups_root", f.cgroups_root.clone());
        put("recover", f.recover.clone());
        put(
            "executor_registration_timeout",
            format_duration(f.executor_registration_timeout),
        );
        put(
            "executor_reregistration_timeout",
            format_duration(f.executor_reregistration_timeout),
        );
        put(
            "executor_shutdown_grace_period",
            format_duration(f.executor_shutdown_grace_period),
        );
        put(
            "registration_backoff_factor",
            format_duration(f.registration_backoff_factor),
        );
        put("recovery_timeout", format_duration(f.recovery_timeout));
        put("switch_user", f.switch_user.to_string());
        put("launcher_dir", self.launcher_dir.display().to_string());
        put("isolation", f.isolation.clone().unwrap_or_default());
        put("cgroups_enable_cfs", f.cgroups_enable_cfs.to_string());
        if let Some(range) = &f.user_namespace_range {
            put("user_namespace_range", range.clone());
        }
        put(
            "disallow_sharing_agent_pid_namespace",
            f.disallow_sharing_agent_pid_namespace.to_string(),
        );
        put(
            "disallow_sharing_agent_ipc_namespace",
            f.disallow_sharing_agent_ipc_namespace.to_string(),
        );
        put(
            "enforce_container_ports",
            f.enforce_container_ports.to_string(),
        );
        put(
            "container_ports_enforce_at_bind",
            f.container_ports_enforce_at_bind
                .unwrap_or(f.enforce_container_ports)
                .to_string(),
        );
        put(
            "container_ports_watch_interval",
            format_duration(f.container_ports_watch_interval),
        );
        put(
            "check_agent_port_range_only",
            f.check_agent_port_range_only.to_string(),
        );
        if let Some(range) = &f.container_ports_isolated_range {
            put("container_ports_isolated_range", range.clone());
        }
        if let Some(caps) = &f.effective_capabilities {
            put("effective_capabilities", caps.clone());
        }
        if let Some(caps) = &f.bounding_capabilities {
            put("bounding_capabilities", caps.clone());
        }
        if let Some(dir) = &f.seccomp_config_dir {
            put("seccomp_config_dir", dir.display().to_string());
        }
        if let Some(name) = &f.seccomp_profile_name {
            put("seccomp_profile_name", name.clone());
        }
        put("default_role", f.default_role.clone());
        put("checkpoint", "true".into());
        // Credential flags show their paths, never what the files hold.
        if let Some(path) = &f.credential {
            put("credential", path.clone());
        }
        put("authenticatee", f.authenticatee.clone());
        put(
            "authentication_backoff_factor",
            format_duration(f.authentication_backoff_factor),
        );
        put(
            "authentication_timeout_min",
            format_duration(f.authentication_timeout_min),
        );
        put(
            "authentication_timeout_max",
            format_duration(f.authentication_timeout_max),
        );
        if let Some(path) = &f.http_credentials {
            put("http_credentials", path.clone());
        }
        put(
            "authenticate_http_readonly",
            f.authenticate_http_readonly.to_string(),
        );
        put(
            "authenticate_http_readwrite",
            f.authenticate_http_readwrite.to_string(),
        );
        put(
            "authenticate_http_executors",
            f.authenticate_http_executors.to_string(),
        );
        put("http_authenticators", f.http_authenticators.clone());
        if let Some(path) = &f.jwt_secret_key {
            put("jwt_secret_key", path.display().to_string());
        }
        if let Some(path) = &f.audit_log {
            put("audit_log", path.display().to_string());
        }
        if let Some(acls) = &f.acls {
            put("acls", acls.clone());
        }
        put("insecure", f.insecure.to_string());
        serde_json::json!({ "flags": m })
    }
}

/// The authentication part of [`Config`], derived from the flags.
struct AuthConfig {
    credential: Option<Credential>,
    mechanisms: Vec<Mechanism>,
    http_credentials: Option<CredentialStore>,
    jwt_key: Option<Secret>,
}

impl AuthConfig {
    /// Applies `--insecure` to `flags`, checks the authentication flags and
    /// loads the files they name.
    fn from_flags(flags: &mut Flags) -> Result<Self, FlagError> {
        if flags.insecure {
            flags.authenticate_http_readonly = false;
            flags.authenticate_http_readwrite = false;
            flags.authenticate_http_executors = false;
        }
        let mut basic = false;
        for name in flags
            .http_authenticators
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match name {
                "basic" => basic = true,
                "jwt" => {}
                other => {
                    return Err(FlagError::Auth(format!(
                        "--http_authenticators: unknown HTTP authenticator '{other}' (known: basic, jwt)"
                    )))
                }
            }
        }
        if !basic && (flags.authenticate_http_readonly || flags.authenticate_http_readwrite) {
            return Err(FlagError::Auth(
                "--http_authenticators must include 'basic' while --authenticate_http_readonly \
                 or --authenticate_http_readwrite is on (jwt only authenticates executors)"
                    .into(),
            ));
        }
        if flags.authentication_timeout_min.is_zero() {
            return Err(FlagError::Range(
                "--authentication_timeout_min must be positive".into(),
            ));
        }
        if flags.authentication_timeout_min > flags.authentication_timeout_max {
            return Err(FlagError::Range(
                "--authentication_timeout_min must not exceed --authentication_timeout_max".into(),
            ));
        }
        let mechanisms = match flags.authenticatee.as_str() {
            "crammd5" => vec![Mechanism::CramMd5],
            _ => vec![Mechanism::ScramSha256],
        };
        let credential = flags
            .credential
            .as_deref()
            .map(|value| {
                load_credential(value).map_err(|e| FlagError::Auth(format!("--credential: {e}")))
            })
            .transpose()?;
        let http_credentials = flags
            .http_credentials
            .as_deref()
            .map(|value| {
                load_credentials(value)
                    .map(CredentialStore::new)
                    .map_err(|e| FlagError::Auth(format!("--http_credentials: {e}")))
            })
            .transpose()?;
        if (flags.authenticate_http_readonly || flags.authenticate_http_readwrite)
            && http_credentials.is_none()
        {
            return Err(FlagError::Auth(MISSING_HTTP_CREDENTIALS.into()));
        }
        let jwt_key = match (&flags.jwt_secret_key, flags.authenticate_http_executors) {
            (Some(path), true) => Some(read_key(path)?),
            _ => None,
        };
        Ok(Self {
            credential,
            mechanisms,
            http_credentials,
            jwt_key,
        })
    }
}

/// Reads `--jwt_secret_key`: the file's bytes are the HMAC key.
fn read_key(path: &std::path::Path) -> Result<Secret, FlagError> {
    let bytes = std::fs::read(path).map_err(|e| {
        FlagError::Auth(format!(
            "--jwt_secret_key: cannot read {}: {e}",
            path.display()
        ))
    })?;
    if bytes.is_empty() {
        return Err(FlagError::Auth(format!(
            "--jwt_secret_key: {} is empty",
            path.display()
        )));
    }
    if bytes.len() < 32 {
        tracing::warn!(file = %path.display(), "--jwt_secret_key holds fewer than 32 bytes; executor tokens are only as strong as this key");
    }
    Ok(Secret::new(bytes))
}

/// The system's host name (`gethostname`), or `localhost`.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The first non-loopback IPv4 address the host name resolves to, else
/// 127.0.0.1 (what libprocess does when bound to the wildcard address).
pub fn detect_advertise_ip(hostname: &str) -> IpAddr {
    (hostname, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|addrs| {
            addrs
                .map(|a| a.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        let mut all = vec!["mesos-agent"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all)
    }

    fn ports_config_of(
        extra: &[&str],
    ) -> Result<Option<crate::isolators::ports::PortsConfig>, FlagError> {
        let mut args = vec!["--master=127.0.0.1:5050", "--work_dir=/w", "--insecure"];
        args.extend_from_slice(extra);
        Config::from_flags(parse(&args).expect("parses")).map(|c| c.ports)
    }

    #[test]
    fn isolation_defaults_to_the_cgroups_isolators_on_the_linux_launcher_only() {
        let config = |extra: &[&str]| {
            let mut args = vec!["--master=127.0.0.1:5050", "--work_dir=/w", "--insecure"];
            args.extend_from_slice(extra);
            Config::from_flags(parse(&args).expect("parses"))
        };
        let linux = config(&["--launcher=linux"]).expect("linux");
        assert_eq!(linux.isolation[..2], ["cgroups/cpu", "cgroups/mem"]);
        assert!(
            !linux.flags.cgroups_enable_cfs,
            "Mesos default: no CFS quota"
        );
        let posix = config(&["--launcher=posix"]).expect("posix");
        assert_eq!(posix.isolation[..2], ["posix/cpu", "posix/mem"]);
        assert!(!posix.isolation.iter().any(|n| n.starts_with("cgroups/")));
        let cfs = config(&["--launcher=linux", "--cgroups_enable_cfs"]).expect("cfs");
        assert!(cfs.flags.cgroups_enable_cfs);
        let err = config(&["--launcher=posix", "--isolation=cgroups"])
            .expect_err("cgroups isolators need the linux launcher");
        assert_eq!(
            err.to_string(),
            "The 'cgroups/cpu' isolator requires the 'linux' launcher"
        );
    }

    #[test]
    fn capabilities_nnp_and_seccomp_are_on_by_default_and_their_flags_are_checked() {
        let config = |extra: &[&str]| {
            let mut args = vec![
                "--master=127.0.0.1:5050",
                "--work_dir=/w",
                "--insecure",
                "--launcher=posix",
            ];
            args.extend_from_slice(extra);
            Config::from_flags(parse(&args).expect("parses"))
        };
        let root = nix::unistd::geteuid().is_root();
        let default = config(&[]).expect("defaults");
        assert!(default.isolation.iter().any(|n| n == "linux/nnp"));
        assert_eq!(
            default.isolation.iter().any(|n| n == "linux/capabilities"),
            root,
            "capabilities by default when root"
        );
        assert_eq!(default.capabilities.is_some(), root);
        assert_eq!(
            default.seccomp.is_some(),
            cfg!(target_arch = "x86_64"),
            "the built-in profile by default"
        );
        // Explicit --isolation replaces the default set (network/ports stays opt-in).
        let explicit = config(&["--isolation=posix/cpu"]).expect("explicit");
        assert!(explicit.capabilities.is_none() && explicit.seccomp.is_none());
        if root {
            let alias = config(&[r#"--allowed_capabilities={"capabilities":["NET_RAW"]}"#])
                .expect("Mesos's alias");
            assert_eq!(
                alias.capabilities.and_then(|c| c.effective),
                Some(1 << 13),
                "NET_RAW"
            );
            let err = config(&[r#"--bounding_capabilities={"capabilities":["NET_RAWW"]}"#])
                .expect_err("unknown capability");
            assert_eq!(
                err.to_string(),
                "invalid --bounding_capabilities: unknown capability 'NET_RAWW'"
            );
        }
        if cfg!(target_arch = "x86_64") {
            let err = config(&["--seccomp_profile_name=x.json"]).expect_err("no dir");
            assert_eq!(
                err.to_string(),
                "--seccomp_profile_name needs --seccomp_config_dir"
            );
        }
    }

    #[test]
    fn network_ports_flags_follow_mesos() {
        use crate::isolators::ports::PortRanges;
        let flags = parse(&["--master=127.0.0.1:5050", "--work_dir=/w"]).expect("valid flags");
        assert!(!flags.enforce_container_ports, "Mesos default: off");
        assert!(!flags.check_agent_port_range_only);
        assert_eq!(flags.container_ports_watch_interval, Duration::from_secs(5));
        assert_eq!(ports_config_of(&[]).expect("default isolation"), None);

        let on = ["--isolation=network/ports", "--launcher=linux"];
        let config = ports_config_of(&on).expect("valid").expect("on");
        assert_eq!(config.isolated, None, "all ports by default");
        assert!(!config.enforce_at_bind, "follows --enforce_container_ports");
        let mut enforced = on.to_vec();
        enforced.push("--enforce_container_ports");
        let config = ports_config_of(&enforced).expect("valid").expect("on");
        assert!(config.enforce_at_bind, "on with enforcement");
        enforced.push("--container_ports_enforce_at_bind=false");
        let config = ports_config_of(&enforced).expect("valid").expect("on");
        assert!(
            config.enforce && !config.enforce_at_bind,
            "turned off by name"
        );
        let mut bind_only = on.to_vec();
        bind_only.push("--container_ports_enforce_at_bind");
        let config = ports_config_of(&bind_only).expect("valid").expect("on");
        assert!(!config.enforce && config.enforce_at_bind);

        let err = ports_config_of(&["--isolation=network/ports", "--launcher=posix"])
            .expect_err("posix launcher");
        assert_eq!(
            err.to_string(),
            "The 'network/ports' isolator requires the 'linux' launcher"
        );

        let mut both = on.to_vec();
        both.extend([
            "--check_agent_port_range_only",
            "--container_ports_isolated_range=[1-2]",
        ]);
        let err = ports_config_of(&both).expect_err("exclusive");
        assert!(
            err.to_string()
                .starts_with("Only one of `--check_agent_port_range_only`"),
            "{err}"
        );

        let mut agent_only = on.to_vec();
        agent_only.extend([
            "--check_agent_port_range_only",
            "--resources=cpus:1;ports:[100-200,300-300]",
        ]);
        let config = ports_config_of(&agent_only).expect("valid").expect("on");
        assert_eq!(
            config.isolated,
            Some(PortRanges::from_ranges([(100, 200), (300, 300)]))
        );
        let mut default_range = on.to_vec();
        default_range.extend(["--check_agent_port_range_only", "--resources=cpus:1"]);
        let config = ports_config_of(&default_range).expect("valid").expect("on");
        assert_eq!(
            config.isolated,
            Some(PortRanges::from_ranges([(31000, 32000)]))
        );

        let mut range = on.to_vec();
        range.extend([
            "--container_ports_isolated_range=[0-1023, 31000-32000]",
            "--enforce_container_ports",
        ]);
        let config = ports_config_of(&range).expect("valid").expect("on");
        assert_eq!(
            config.isolated,
            Some(PortRanges::from_ranges([(0, 1023), (31000, 32000)]))
        );
        assert!(config.enforce);
        let mut bad = on.to_vec();
        bad.push("--container_ports_isolated_range=1-2");
        assert_eq!(
            ports_config_of(&bad).expect_err("no brackets").to_string(),
            "Failed to parse isolated ports range '1-2'"
        );
        let err = ports_config_of(&["--isolation=linux/devices"]).expect_err("not implemented");
        assert!(matches!(err, FlagError::Isolation(_)), "{err}");
    }

    #[test]
    fn defaults_are_mesos_defaults() {
        let flags = parse(&["--master=127.0.0.1:5050", "--work_dir=/tmp/w"]).expect("valid flags");
        assert_eq!(flags.port, 5051);
        assert_eq!(flags.recover, "reconnect");
        assert_eq!(flags.executor_registration_timeout, Duration::from_secs(60));
        assert_eq!(flags.executor_shutdown_grace_period, Duration::from_secs(5));
        assert_eq!(flags.recovery_timeout, Duration::from_secs(900));
        assert!(flags.switch_user);
        assert_eq!(flags.default_role, "*");
        assert_eq!(flags.cgroups_root, "mesos");
    }

    #[test]
    fn malformed_flags_are_refused() {
        assert!(parse(&["--work_dir=/tmp/w"]).is_err(), "master is required");
        assert!(parse(&["--master=m:1"]).is_err(), "work_dir is required");
        assert!(parse(&["--master=m:1", "--work_dir=/w", "--port=x"]).is_err());
        assert!(parse(&["--master=m:1", "--work_dir=/w", "--recover=maybe"]).is_err());
        assert!(parse(&[
            "--master=m:1",
            "--work_dir=/w",
            "--executor_registration_timeout=5"
        ])
        .is_err());
        assert!(parse(&["--master=m:1", "--work_dir=/w", "--switch_user=perhaps"]).is_err());
        let flags =
            parse(&["--master=m:1", "--work_dir=/w", "--switch_user=false"]).expect("bool flag");
        assert!(!flags.switch_user);
    }

    #[test]
    fn master_forms_are_accepted() {
        assert_eq!(
            parse_master("127.0.0.1:5050")
                .expect("host:port")
                .to_string(),
            "master@127.0.0.1:5050"
        );
        assert_eq!(
            parse_master("master@10.0.0.1:5050")
                .expect("upid")
                .to_string(),
            "master@10.0.0.1:5050"
        );
        let resolved = parse_master("localhost:5050").expect("resolvable name");
        assert_eq!(resolved.port, 5050);
        assert!(resolved.host.parse::<IpAddr>().is_ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("master");
        std::fs::write(&file, "127.0.0.1:6060\n").expect("write");
        let from_file = parse_master(&format!("file://{}", file.display())).expect("file form");
        assert_eq!(from_file.to_string(), "master@127.0.0.1:6060");
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:x",
            "@1.2.3.4:5",
            "zk://z:2181/mesos",
            "1.2.3.4:0",
        ] {
            assert!(parse_master(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_master("file:///nonexistent/m"),
            Err(FlagError::MasterFile { .. })
        ));
    }

    #[test]
    fn attributes_parse_like_mesos() {
        let attrs =
            parse_attributes("rack:a;zone:b;level:3;ports:[1-10,20-30];tags:{x,y}").expect("valid");
        assert_eq!(attrs.len(), 5);
        assert_eq!(attrs[0].r#type(), v1::value::Type::Text);
        assert_eq!(attrs[2].r#type(), v1::value::Type::Scalar);
        assert_eq!(attrs[3].ranges.as_ref().map(|r| r.range.len()), Some(2));
        assert_eq!(
            attrs[4].set.as_ref().map(|s| s.item.clone()),
            Some(vec!["x".to_string(), "y".to_string()])
        );
        let json = attributes_json(&attrs);
        assert_eq!(json["rack"], "a");
        assert_eq!(json["level"], 3.0);
        for bad in ["rack", ":a", "rack:", "p:[5-1]", "p:[a-b]", "x:a]"] {
            assert!(parse_attributes(bad).is_err(), "{bad}");
        }
        assert!(parse_attributes("").expect("empty is fine").is_empty());
    }

    #[test]
    fn config_validates_and_derives_addresses() {
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/tmp/w",
            "--ip=127.0.0.1",
            "--hostname=h1",
            "--insecure",
        ])
        .expect("valid flags");
        let config = Config::from_flags(flags).expect("valid config");
        assert_eq!(config.advertise_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.hostname, "h1");
        assert!(matches!(
            config.flags.launcher.as_deref(),
            Some("posix" | "linux")
        ));
        let json = config.flags_json();
        assert!(json["flags"]
            .as_object()
            .expect("object")
            .values()
            .all(|v| v.is_string()));
        assert_eq!(json["flags"]["port"], "5051");

        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--advertise_ip=10.1.2.3",
            "--insecure",
        ])
        .expect("valid");
        assert_eq!(
            Config::from_flags(flags)
                .expect("valid")
                .advertise_ip
                .to_string(),
            "10.1.2.3"
        );
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--launcher=docker",
            "--insecure",
        ])
        .expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Launcher(_))
        ));
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--hostname=a b",
            "--insecure",
        ])
        .expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Hostname(_))
        ));
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--registration_backoff_factor=2mins",
            "--insecure",
        ])
        .expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Range(_))
        ));
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }

    #[test]
    fn authentication_is_on_by_default_and_needs_http_credentials() {
        let flags = parse(&["--master=127.0.0.1:5050", "--work_dir=/w"]).expect("valid flags");
        assert!(flags.authenticate_http_readonly);
        assert!(flags.authenticate_http_readwrite);
        assert!(flags.authenticate_http_executors);
        assert!(!flags.insecure);
        assert_eq!(flags.authenticatee, "scram_sha256");
        assert_eq!(flags.http_authenticators, "basic");
        assert_eq!(flags.authentication_backoff_factor, Duration::from_secs(1));
        assert_eq!(flags.authentication_timeout_min, Duration::from_secs(5));
        assert_eq!(flags.authentication_timeout_max, Duration::from_secs(60));
        let err = Config::from_flags(flags).expect_err("no --http_credentials");
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(
            text.contains("--http_credentials=/path/to/credentials.json"),
            "{text}"
        );
        assert!(text.contains("--insecure"), "{text}");

        // Only the executor realm on: no HTTP credentials needed.
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--authenticate_http_readonly=0",
            "--authenticate_http_readwrite=false",
        ])
        .expect("valid flags");
        let config = Config::from_flags(flags).expect("executor auth needs no credentials");
        assert!(config.flags.authenticate_http_executors);
        assert!(
            config.jwt_key.is_none(),
            "generated later, under --work_dir"
        );
    }

    #[test]
    fn insecure_turns_every_http_realm_off_and_shows_in_flags() {
        let flags = parse(&["--master=127.0.0.1:5050", "--work_dir=/w", "--insecure"])
            .expect("valid flags");
        let config = Config::from_flags(flags).expect("valid config");
        assert!(!config.flags.authenticate_http_readonly);
        assert!(!config.flags.authenticate_http_readwrite);
        assert!(!config.flags.authenticate_http_executors);
        assert!(config.jwt_key.is_none());
        let json = config.flags_json();
        assert_eq!(json["flags"]["insecure"], "true");
        assert_eq!(json["flags"]["authenticate_http_readonly"], "false");
        assert_eq!(config.security_warnings().len(), 1);
        let flags = parse(&["--master=m:1", "--work_dir=/w", "--insecure=1"]).expect("1 is true");
        assert!(flags.insecure);
        assert!(parse(&["--master=m:1", "--work_dir=/w", "--insecure=yes"]).is_err());
    }

    #[test]
    fn credentials_load_and_flags_show_their_paths_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let credential = write(
            dir.path(),
            "credential.json",
            r#"{"principal":"agent","secret":"agent-secret"}"#,
        );
        let http = write(dir.path(), "http", "ops ops-secret\n");
        let key = write(dir.path(), "key", &"k".repeat(32));
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            &format!("--credential=file://{credential}"),
            &format!("--http_credentials={http}"),
            &format!("--executor_secret_key={key}"),
            "--authenticatee=crammd5",
        ])
        .expect("valid flags");
        let config = Config::from_flags(flags).expect("valid config");
        assert_eq!(
            config.credential.as_ref().map(|c| c.principal.as_str()),
            Some("agent")
        );
        assert_eq!(config.mechanisms, vec![Mechanism::CramMd5]);
        assert!(config
            .http_credentials
            .as_ref()
            .expect("loaded")
            .current()
            .verify("ops", b"ops-secret"));
        assert!(config.jwt_key.is_some());
        let json = config.flags_json().to_string();
        for secret in ["agent-secret", "ops-secret", "kkkk"] {
            assert!(
                !json.contains(secret),
                "{secret} leaked into /flags: {json}"
            );
        }
        assert!(json.contains(&credential), "{json}");
        assert!(json.contains(&http), "{json}");
        assert!(json.contains("\"jwt_secret_key\""), "{json}");
        assert!(config.security_warnings().is_empty());
    }

    #[test]
    fn bad_authentication_flags_are_refused_naming_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let http = write(dir.path(), "http", "ops ops-secret\n");
        let refuse = |extra: &[&str]| {
            let mut args = vec!["--master=127.0.0.1:5050", "--work_dir=/w"];
            let http_flag = format!("--http_credentials={http}");
            args.push(&http_flag);
            args.extend_from_slice(extra);
            Config::from_flags(parse(&args).expect("parses"))
                .expect_err("refused")
                .to_string()
        };
        assert!(refuse(&["--http_authenticators=basic,kerberos"]).contains("'kerberos'"));
        assert!(refuse(&["--http_authenticators=jwt"]).contains("must include 'basic'"));
        assert!(refuse(&["--credential=/nonexistent/credential"]).contains("--credential"));
        assert!(refuse(&["--jwt_secret_key=/nonexistent/key"]).contains("--jwt_secret_key"));
        assert!(refuse(&[
            "--authentication_timeout_min=2mins",
            "--authentication_timeout_max=1mins"
        ])
        .contains("--authentication_timeout_min"));
        assert!(parse(&["--master=m:1", "--work_dir=/w", "--authenticatee=kerberos"]).is_err());
        let empty = write(dir.path(), "empty", "");
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            &format!("--http_credentials={empty}"),
        ])
        .expect("parses");
        assert!(Config::from_flags(flags).is_err());
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--insecure",
            "--http_authenticators=basic,jwt",
        ])
        .expect("parses");
        assert!(Config::from_flags(flags).is_ok());
    }
}
