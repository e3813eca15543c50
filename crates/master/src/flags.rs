//! `mesos-master` flags: Mesos's names and defaults, each also read from
//! `MESOS_<NAME>`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mesos_common::flags::{duration_arg, format_duration};

/// Where the registry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryKind {
    /// Durable, on disk under `--work_dir` (sled).
    Sled,
    /// Lost on restart; for tests and experiments only.
    #[value(name = "in_memory")]
    InMemory,
}

/// The Mesos master.
#[derive(Debug, Clone, Parser)]
#[command(name = "mesos-master", rename_all = "snake_case", version = mesos_common::MESOS_VERSION, about = "The Mesos master: scheduler and operator APIs, agents' registry and the allocator.")]
pub struct Flags {
    /// IP address to listen on.
    #[arg(long, env = "MESOS_IP", default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,

    /// Port to listen on.
    #[arg(long, env = "MESOS_PORT", default_value_t = 5050)]
    pub port: u16,

    /// IP address advertised to agents and frameworks (defaults to --ip,
    /// or 127.0.0.1 when --ip is 0.0.0.0).
    #[arg(long, env = "MESOS_ADVERTISE_IP")]
    pub advertise_ip: Option<std::net::IpAddr>,

    /// Port advertised to agents and frameworks (defaults to --port).
    #[arg(long, env = "MESOS_ADVERTISE_PORT")]
    pub advertise_port: Option<u16>,

    /// Hostname the master reports (defaults to the advertised IP).
    #[arg(long, env = "MESOS_HOSTNAME")]
    pub hostname: Option<String>,

    /// Human-readable name for the cluster, shown in the web UI.
    #[arg(long, env = "MESOS_CLUSTER")]
    pub cluster: Option<String>,

    /// Directory for the registry. Required with --registry=sled.
    #[arg(long, env = "MESOS_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Registry backend: `sled` (durable, default) or `in_memory`.
    #[arg(long, env = "MESOS_REGISTRY", value_enum, default_value = "sled")]
    pub registry: RegistryKind,

    /// Time between allocation cycles.
    #[arg(long, env = "MESOS_ALLOCATION_INTERVAL", default_value = "1secs", value_parser = duration_arg)]
    pub allocation_interval: Duration,

    /// Time between pings to an agent; a missed pong counts as one timeout.
    #[arg(long, env = "MESOS_AGENT_PING_TIMEOUT", default_value = "15secs", value_parser = duration_arg)]
    pub agent_ping_timeout: Duration,

    /// Consecutive missed pongs after which an agent is unreachable.
    #[arg(long, env = "MESOS_MAX_AGENT_PING_TIMEOUTS", default_value_t = 5)]
    pub max_agent_ping_timeouts: u32,

    /// How long agents known from the registry have to re-register after a
    /// master failover before they are marked unreachable.
    #[arg(long, env = "MESOS_AGENT_REREGISTER_TIMEOUT", default_value = "10mins", value_parser = duration_arg)]
    pub agent_reregister_timeout: Duration,

    /// Comma-separated `role=weight` list.
    #[arg(long, env = "MESOS_WEIGHTS")]
    pub weights: Option<String>,

    /// Comma-separated whitelist of roles frameworks may use (deprecated in
    /// Mesos; unset = any valid role).
    #[arg(long, env = "MESOS_ROLES")]
    pub roles: Option<String>,

    /// Whether frameworks may run as `root`.
    #[arg(long, env = "MESOS_ROOT_SUBMISSIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub root_submissions: bool,

    /// Completed frameworks kept in memory for the endpoints.
    #[arg(long, env = "MESOS_MAX_COMPLETED_FRAMEWORKS", default_value_t = 50)]
    pub max_completed_frameworks: usize,

    /// Completed tasks kept per framework.
    #[arg(
        long,
        env = "MESOS_MAX_COMPLETED_TASKS_PER_FRAMEWORK",
        default_value_t = 1000
    )]
    pub max_completed_tasks_per_framework: usize,

    /// Maximum size of one request body or RecordIO record.
    #[arg(long, env = "MESOS_MAX_REQUEST_SIZE", default_value = "16MB", value_parser = bytes_arg)]
    pub max_request_size: u64,
}

fn bytes_arg(text: &str) -> Result<u64, String> {
    mesos_common::flags::parse_bytes(text).map_err(|e| e.to_string())
}

impl Flags {
    /// Checks what clap cannot: combinations and values.
    pub fn validate(&self) -> Result<(), String> {
        if self.registry == RegistryKind::Sled && self.work_dir.is_none() {
            return Err("--work_dir is required with --registry=sled".into());
        }
        if self.agent_ping_timeout < Duration::from_secs(1)
            || self.agent_ping_timeout > Duration::from_secs(15 * 60)
        {
            return Err("--agent_ping_timeout must be between 1secs and 15mins".into());
        }
        if self.max_agent_ping_timeouts < 1 {
            return Err("--max_agent_ping_timeouts must be at least 1".into());
        }
        if self.allocation_interval.is_zero() {
            return Err("--allocation_interval must be positive".into());
        }
        self.parsed_weights()?;
        Ok(())
    }

    /// `--weights` as pairs.
    pub fn parsed_weights(&self) -> Result<Vec<(String, f64)>, String> {
        let Some(text) = &self.weights else {
            return Ok(Vec::new());
        };
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|pair| {
                let (role, weight) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--weights: '{pair}' is not role=weight"))?;
                let weight: f64 = weight
                    .trim()
                    .parse()
                    .map_err(|_| format!("--weights: weight '{weight}' is not a number"))?;
                if !(weight.is_finite() && weight > 0.0) {
                    return Err(format!("--weights: weight for '{role}' must be positive"));
                }
                Ok((role.trim().to_string(), weight))
            })
            .collect()
    }

    /// `--roles` as a list, if set.
    pub fn role_whitelist(&self) -> Option<Vec<String>> {
        self.roles.as_ref().map(|r| {
            r.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }

    /// The IP others reach us on.
    pub fn advertised_ip(&self) -> std::net::IpAddr {
        match self.advertise_ip {
            Some(ip) => ip,
            None if self.ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            None => self.ip,
        }
    }

    /// The port others reach us on.
    pub fn advertised_port(&self) -> u16 {
        self.advertise_port.unwrap_or(self.port)
    }

    /// Every flag as Mesos's `/flags` shows it (name → string value).
    pub fn to_map(&self) -> Vec<(String, String)> {
        let mut flags = vec![
            ("ip".to_string(), self.ip.to_string()),
            ("port".into(), self.port.to_string()),
            (
                "registry".into(),
                match self.registry {
                    RegistryKind::Sled => "sled".into(),
                    RegistryKind::InMemory => "in_memory".into(),
                },
            ),
            (
                "allocation_interval".into(),
                format_duration(self.allocation_interval),
            ),
            (
                "agent_ping_timeout".into(),
                format_duration(self.agent_ping_timeout),
            ),
            (
                "max_agent_ping_timeouts".into(),
                self.max_agent_ping_timeouts.to_string(),
            ),
            (
                "agent_reregister_timeout".into(),
                format_duration(self.agent_reregister_timeout),
            ),
            ("root_submissions".into(), self.root_submissions.to_string()),
            (
                "max_completed_frameworks".into(),
                self.max_completed_frameworks.to_string(),
            ),
            (
                "max_completed_tasks_per_framework".into(),
                self.max_completed_tasks_per_framework.to_string(),
            ),
            ("max_request_size".into(), self.max_request_size.to_string()),
            ("authenticate_frameworks".into(), "false".into()),
            ("authenticate_agents".into(), "false".into()),
            ("authenticate_http_frameworks".into(), "false".into()),
        ];
        let optional = [
            ("advertise_ip", self.advertise_ip.map(|v| v.to_string())),
            ("advertise_port", self.advertise_port.map(|v| v.to_string())),
            ("hostname", self.hostname.clone()),
            ("cluster", self.cluster.clone()),
            (
                "work_dir",
                self.work_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("weights", self.weights.clone()),
            ("roles", self.roles.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                flags.push((name.to_string(), value));
            }
        }
        flags.sort();
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mesos_defaults() {
        let flags = Flags::try_parse_from(["mesos-master", "--work_dir=/tmp/x"]).expect("parses");
        assert_eq!(flags.port, 5050);
        assert_eq!(flags.allocation_interval, Duration::from_secs(1));
        assert_eq!(flags.agent_ping_timeout, Duration::from_secs(15));
        assert_eq!(flags.max_agent_ping_timeouts, 5);
        assert!(flags.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Flags::try_parse_from(["mesos-master", "--allocation_interval=soon"]).is_err());
        assert!(Flags::try_parse_from(["mesos-master", "--port=99999"]).is_err());
        let flags = Flags::try_parse_from(["mesos-master"]).expect("parses");
        assert_eq!(
            flags.validate().expect_err("needs work_dir"),
            "--work_dir is required with --registry=sled"
        );
        let flags =
            Flags::try_parse_from(["mesos-master", "--registry=in_memory", "--weights=a=x"])
                .expect("parses");
        assert!(flags.validate().is_err());
    }
}
