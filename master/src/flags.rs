//! `mesos-master` flags: Mesos's names and defaults, each also read from
//! `MESOS_<NAME>`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mesos_common::auth::sasl::Mechanism;
use mesos_common::flags::{bool_arg, duration_arg, format_duration};

/// Where the registry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryKind {
    /// Durable, on disk under `--work_dir`: each change is `fsync`ed
    /// (redb, `<work_dir>/registry.redb`).
    Redb,
    /// On disk under `--work_dir` (sled, `<work_dir>/registry`): survives a
    /// crash of the master, not a power loss (its flush does not `fsync`).
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

    /// Directory for the registry. Required unless --registry=in_memory.
    #[arg(long, env = "MESOS_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Registry backend: `redb` (durable, default), `sled` (survives a
    /// master crash, not a power loss) or `in_memory`.
    #[arg(long, env = "MESOS_REGISTRY", value_enum, default_value = "redb")]
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

    /// Require agents to authenticate (SASL over libprocess messages) before
    /// they register. Mesos's default is false; ours is true.
    #[arg(long, alias = "authenticate_slaves", env = "MESOS_AUTHENTICATE_AGENTS", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_agents: bool,

    /// Require v0 (libprocess driver) frameworks to authenticate. Mesos's
    /// default is false; ours is true.
    #[arg(long, alias = "authenticate", env = "MESOS_AUTHENTICATE_FRAMEWORKS", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_frameworks: bool,

    /// Require HTTP schedulers to authenticate on /api/v1/scheduler (realm
    /// `mesos-master-scheduler`). Mesos's default is false; ours is true.
    #[arg(long, env = "MESOS_AUTHENTICATE_HTTP_FRAMEWORKS", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_frameworks: bool,

    /// Authenticators for HTTP schedulers (only `basic` is built in). Mesos
    /// has no default; ours is `basic`.
    #[arg(
        long,
        env = "MESOS_HTTP_FRAMEWORK_AUTHENTICATORS",
        default_value = "basic"
    )]
    pub http_framework_authenticators: String,

    /// Require authentication on read-only endpoints (realm
    /// `mesos-master-readonly`). Mesos's default is false; ours is true.
    #[arg(long, env = "MESOS_AUTHENTICATE_HTTP_READONLY", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_readonly: bool,

    /// Require authentication on read-write endpoints, `/api/v1` included
    /// (realm `mesos-master-readwrite`). Mesos's default is false; ours is
    /// true.
    #[arg(long, alias = "authenticate_http", env = "MESOS_AUTHENTICATE_HTTP_READWRITE", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub authenticate_http_readwrite: bool,

    /// Principals and secrets accepted by every authenticator: a path or
    /// `file:///path` to `{"credentials":[{"principal":…,"secret":…}]}` or
    /// to `principal secret` lines. Reloaded on SIGHUP.
    #[arg(long, env = "MESOS_CREDENTIALS")]
    pub credentials: Option<String>,

    /// SASL mechanisms offered to agents and v0 frameworks, in preference
    /// order: `scram_sha256`, `crammd5` (Mesos's only one).
    #[arg(
        long,
        env = "MESOS_AUTHENTICATORS",
        default_value = "scram_sha256,crammd5"
    )]
    pub authenticators: String,

    /// Authenticators for the read-only and read-write realms (only
    /// `basic` is built in).
    #[arg(long, env = "MESOS_HTTP_AUTHENTICATORS", default_value = "basic")]
    pub http_authenticators: String,

    /// How long a SASL authentication may take before the master discards
    /// it.
    #[arg(long, env = "MESOS_AUTHENTICATION_V0_TIMEOUT", default_value = "15secs", value_parser = duration_arg)]
    pub authentication_v0_timeout: Duration,

    /// Append a JSON line per authentication success and failure to this
    /// file (time, peer, principal, mechanism, outcome, reason).
    #[arg(long, env = "MESOS_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Mesos ACLs: JSON, a path, or `file:///path`. Without it (and with
    /// authentication on) our secure default applies: a principal may
    /// register with role `*` and its own roles (`alice`, `alice/...`), run
    /// tasks as any user but root, and view and tear down the frameworks it
    /// registered; everything else is denied, each denial naming the ACL to
    /// add. Reloaded on SIGHUP.
    #[arg(long, env = "MESOS_ACLS")]
    pub acls: Option<String>,

    /// Inbound connection limits.
    #[command(flatten)]
    pub connections: mesos_common::connections::ConnectionFlags,

    /// Authorizer to use: only `local` (Mesos's ACL authorizer) is built
    /// in.
    #[arg(long, env = "MESOS_AUTHORIZERS", default_value = "local")]
    pub authorizers: String,

    /// Turn every `--authenticate_*` flag off: anyone may register agents
    /// and frameworks and call every endpoint. For reproducing Mesos's
    /// default and the workshop's first step, never for a real cluster.
    #[arg(long, env = "MESOS_INSECURE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = bool_arg)]
    pub insecure: bool,

    /// Maximum size of one request body or RecordIO record.
    #[arg(long, env = "MESOS_MAX_REQUEST_SIZE", default_value = "16MB", value_parser = bytes_arg)]
    pub max_request_size: u64,
}

fn bytes_arg(text: &str) -> Result<u64, String> {
    mesos_common::flags::parse_bytes(text).map_err(|e| e.to_string())
}

impl Flags {
    /// `--registry` as written on the command line.
    pub fn registry_name(&self) -> &'static str {
        match self.registry {
            RegistryKind::Redb => "redb",
            RegistryKind::Sled => "sled",
            RegistryKind::InMemory => "in_memory",
        }
    }

    /// Checks what clap cannot, and applies `--insecure`.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.insecure {
            self.authenticate_agents = false;
            self.authenticate_frameworks = false;
            self.authenticate_http_frameworks = false;
            self.authenticate_http_readonly = false;
            self.authenticate_http_readwrite = false;
        }
        self.sasl_mechanisms()?;
        self.connections.validate()?;
        if !self.connections.http_idle_timeout.is_zero()
            && self.connections.http_idle_timeout <= self.agent_ping_timeout
        {
            return Err(format!(
                "--http_idle_timeout ({}) must be longer than --agent_ping_timeout ({}): \
                 agents' connections idle between pings",
                format_duration(self.connections.http_idle_timeout),
                format_duration(self.agent_ping_timeout),
            ));
        }
        if self.authorizers != "local" {
            return Err(format!(
                "--authorizers: unknown authorizer '{}' (only 'local' is built in)",
                self.authorizers
            ));
        }
        for (flag, list) in [
            ("--http_authenticators", &self.http_authenticators),
            (
                "--http_framework_authenticators",
                &self.http_framework_authenticators,
            ),
        ] {
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name != "basic" {
                    return Err(format!(
                        "{flag}: unknown HTTP authenticator '{name}' (only 'basic' is built in)"
                    ));
                }
            }
        }
        if self.any_authentication() && self.credentials.is_none() {
            return Err(
                "authentication is on by default and needs the principals it accepts: \
                 pass --credentials=/path/to/credentials.json (a file holding \
                 {\"credentials\":[{\"principal\":\"…\",\"secret\":\"…\"}]}), \
                 or --insecure to run without authentication (never in production)"
                    .into(),
            );
        }
        if self.registry != RegistryKind::InMemory && self.work_dir.is_none() {
            return Err(format!(
                "--work_dir is required with --registry={}",
                self.registry_name()
            ));
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

    /// True when any `--authenticate_*` flag is on.
    pub fn any_authentication(&self) -> bool {
        self.authenticate_agents
            || self.authenticate_frameworks
            || self.authenticate_http_frameworks
            || self.authenticate_http_readonly
            || self.authenticate_http_readwrite
    }

    /// `--authenticators` as SASL mechanisms, in preference order.
    pub fn sasl_mechanisms(&self) -> Result<Vec<Mechanism>, String> {
        let mut mechanisms = Vec::new();
        for name in self.authenticators.split(',').map(str::trim) {
            let mechanism = match name {
                "crammd5" => Mechanism::CramMd5,
                "scram_sha256" => Mechanism::ScramSha256,
                "" => continue,
                other => {
                    return Err(format!(
                        "--authenticators: unknown authenticator '{other}' (known: scram_sha256, crammd5)"
                    ))
                }
            };
            if !mechanisms.contains(&mechanism) {
                mechanisms.push(mechanism);
            }
        }
        if mechanisms.is_empty() {
            return Err("--authenticators must name at least one of scram_sha256, crammd5".into());
        }
        Ok(mechanisms)
    }

    /// Security warnings an operator must see (startup log and `/flags`).
    pub fn security_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.insecure {
            warnings.push(
                "--insecure: authentication is off; any agent or framework may join and every endpoint is open"
                    .to_string(),
            );
        } else {
            for (on, what) in [
                (
                    self.authenticate_agents,
                    "--authenticate_agents=false: any agent may register",
                ),
                (
                    self.authenticate_frameworks,
                    "--authenticate_frameworks=false: v0 frameworks may register unauthenticated",
                ),
                (
                    self.authenticate_http_frameworks,
                    "--authenticate_http_frameworks=false: any HTTP scheduler may subscribe",
                ),
                (
                    self.authenticate_http_readonly,
                    "--authenticate_http_readonly=false: read-only endpoints are open",
                ),
                (
                    self.authenticate_http_readwrite,
                    "--authenticate_http_readwrite=false: read-write endpoints are open",
                ),
            ] {
                if !on {
                    warnings.push(what.to_string());
                }
            }
        }
        warnings
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
        let mut flags: Vec<(String, String)> = self
            .connections
            .flags_json()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        flags.extend([
            ("ip".to_string(), self.ip.to_string()),
            ("port".into(), self.port.to_string()),
            ("registry".into(), self.registry_name().into()),
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
            (
                "authenticate_frameworks".into(),
                self.authenticate_frameworks.to_string(),
            ),
            (
                "authenticate_agents".into(),
                self.authenticate_agents.to_string(),
            ),
            (
                "authenticate_http_frameworks".into(),
                self.authenticate_http_frameworks.to_string(),
            ),
            (
                "authenticate_http_readonly".into(),
                self.authenticate_http_readonly.to_string(),
            ),
            (
                "authenticate_http_readwrite".into(),
                self.authenticate_http_readwrite.to_string(),
            ),
            (
                "http_framework_authenticators".into(),
                self.http_framework_authenticators.clone(),
            ),
            ("authenticators".into(), self.authenticators.clone()),
            (
                "http_authenticators".into(),
                self.http_authenticators.clone(),
            ),
            (
                "authentication_v0_timeout".into(),
                format_duration(self.authentication_v0_timeout),
            ),
            ("insecure".into(), self.insecure.to_string()),
            ("authorizers".into(), self.authorizers.clone()),
        ]);
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
            // A path, never the secrets (inline JSON is refused at load).
            ("credentials", self.credentials.clone()),
            ("acls", self.acls.clone()),
            (
                "audit_log",
                self.audit_log.as_ref().map(|p| p.display().to_string()),
            ),
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
        let mut flags = Flags::try_parse_from([
            "mesos-master",
            "--work_dir=/tmp/x",
            "--credentials=/tmp/creds.json",
        ])
        .expect("parses");
        assert_eq!(flags.port, 5050);
        assert!(flags.authenticate_agents && flags.authenticate_http_frameworks);
        assert_eq!(flags.allocation_interval, Duration::from_secs(1));
        assert_eq!(flags.agent_ping_timeout, Duration::from_secs(15));
        assert_eq!(flags.max_agent_ping_timeouts, 5);
        assert!(flags.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Flags::try_parse_from(["mesos-master", "--allocation_interval=soon"]).is_err());
        assert!(Flags::try_parse_from(["mesos-master", "--port=99999"]).is_err());
        let mut flags = Flags::try_parse_from(["mesos-master", "--insecure"]).expect("parses");
        assert_eq!(
            flags.validate().expect_err("needs work_dir"),
            "--work_dir is required with --registry=redb"
        );
        let mut flags = Flags::try_parse_from([
            "mesos-master",
            "--insecure",
            "--registry=in_memory",
            "--weights=a=x",
        ])
        .expect("parses");
        assert!(flags.validate().is_err());
    }

    #[test]
    fn authentication_is_on_by_default_and_needs_credentials() {
        let mut flags =
            Flags::try_parse_from(["mesos-master", "--registry=in_memory"]).expect("parses");
        let error = flags.validate().expect_err("no credentials");
        assert!(error.contains("--credentials="), "{error}");
        assert!(error.contains("--insecure"), "{error}");
    }

    #[test]
    fn insecure_turns_every_authenticate_flag_off_and_warns() {
        let mut flags =
            Flags::try_parse_from(["mesos-master", "--registry=in_memory", "--insecure"])
                .expect("parses");
        flags.validate().expect("insecure needs no credentials");
        assert!(!flags.any_authentication());
        assert_eq!(flags.security_warnings().len(), 1);
        assert!(flags.to_map().contains(&("insecure".into(), "true".into())));
    }

    #[test]
    fn mesos_boolean_spellings_are_accepted() {
        let flags = Flags::try_parse_from([
            "mesos-master",
            "--authenticate_agents=0",
            "--authenticate_http_readonly=false",
            "--authenticate_frameworks",
        ])
        .expect("parses");
        assert!(!flags.authenticate_agents);
        assert!(!flags.authenticate_http_readonly);
        assert!(flags.authenticate_frameworks);
        assert!(Flags::try_parse_from(["mesos-master", "--authenticate_agents=yes"]).is_err());
    }

    #[test]
    fn unknown_authenticators_are_refused() {
        let mut flags = Flags::try_parse_from([
            "mesos-master",
            "--insecure",
            "--registry=in_memory",
            "--authenticators=kerberos",
        ])
        .expect("parses");
        assert!(flags.validate().expect_err("unknown").contains("kerberos"));
        let mut flags = Flags::try_parse_from([
            "mesos-master",
            "--insecure",
            "--registry=in_memory",
            "--http_authenticators=jwt",
        ])
        .expect("parses");
        assert!(flags.validate().expect_err("unknown").contains("jwt"));
    }
}
