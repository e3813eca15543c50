//! The agent's command line: Mesos's flag names, `MESOS_<NAME>` environment
//! forms and defaults, and the validation that happens before any socket is
//! bound. Values that clap cannot check (the master address, attributes,
//! resources) are parsed here into typed values once.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mesos_common::flags::{duration_arg, format_duration};
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

    /// Isolators, comma separated (recorded; enforcement comes with the
    /// launcher).
    #[arg(long, env = "MESOS_ISOLATION", default_value = "posix/cpu,posix/mem")]
    pub isolation: String,

    /// Role of resources given without one.
    #[arg(long, env = "MESOS_DEFAULT_ROLE", default_value = "*")]
    pub default_role: String,
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
}

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
        Ok(Self {
            flags,
            master,
            advertise_ip,
            hostname,
            attributes,
            launcher_dir,
        })
    }

    /// `/flags` content: every flag as a string, as Mesos shows them.
    pub fn flags_json(&self) -> serde_json::Value {
        let f = &self.flags;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), serde_json::Value::String(v));
        };
        put("master", f.master.clone());
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
        put("isolation", f.isolation.clone());
        put("default_role", f.default_role.clone());
        put("checkpoint", "true".into());
        serde_json::json!({ "flags": m })
    }
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
        ])
        .expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Launcher(_))
        ));
        let flags =
            parse(&["--master=127.0.0.1:5050", "--work_dir=/w", "--hostname=a b"]).expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Hostname(_))
        ));
        let flags = parse(&[
            "--master=127.0.0.1:5050",
            "--work_dir=/w",
            "--registration_backoff_factor=2mins",
        ])
        .expect("parses");
        assert!(matches!(
            Config::from_flags(flags),
            Err(FlagError::Range(_))
        ));
    }
}
