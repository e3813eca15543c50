//! `linux/capabilities` and `linux/nnp`: which Linux capabilities a
//! container's executor (and so its tasks) may hold, and `no_new_privs`.
//!
//! The decision follows Mesos's `LinuxCapabilitiesIsolatorProcess::prepare`
//! (rules and messages); it is a plain function over the agent's flags and the
//! task's `LinuxInfo`. The launcher's child applies the result before exec
//! (see [`crate::sys::privilege_steps`]). Secure by default: with neither
//! `--effective_capabilities` nor `--bounding_capabilities`, the bounding set
//! is [`DEFAULT_BOUNDING`] (no `NET_RAW`, no `SYS_ADMIN`) where Mesos would
//! allow everything; a task asking for more fails to launch.

use mesos_proto::v1;

use super::{ContainerConfig, ContainerLaunchInfo, Isolator, IsolatorError};
use super::{LINUX_CAPABILITIES, LINUX_NNP};

/// Mesos's capability names (`CapabilityInfo.Capability` without the 1000
/// offset), indexed by Linux capability number.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `CapabilityInfo.Capability` = Linux capability number + this.
const PROTOBUF_OFFSET: i32 = 1000;

/// The bounding set when the operator sets neither capability flag: Docker's
/// default set without `NET_RAW`, `MKNOD`, `SETFCAP` and `SETPCAP`.
pub const DEFAULT_BOUNDING: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
];

/// A set of capabilities: bit `n` is Linux capability `n`.
pub type CapabilitySet = u64;

/// The capability named `name` (Mesos's name, e.g. `NET_RAW`).
pub fn capability(name: &str) -> Option<u8> {
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// The set of these names; the first unknown name is the error.
pub fn set_of(names: &[&str]) -> Result<CapabilitySet, String> {
    names.iter().try_fold(0u64, |set, name| {
        capability(name)
            .map(|c| set | (1u64 << c))
            .ok_or_else(|| format!("unknown capability '{name}'"))
    })
}

/// Mesos's rendering of a set: `{ NET_RAW, SYS_ADMIN }` (by number).
pub fn stringify(set: CapabilitySet) -> String {
    let names: Vec<&str> = CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| set & (1u64 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "{  }".to_string()
    } else {
        format!("{{ {} }}", names.join(", "))
    }
}

/// A `CapabilityInfo` as a set; `UNKNOWN` and numbers outside the table are refused.
pub fn from_info(info: &v1::CapabilityInfo) -> Result<CapabilitySet, String> {
    info.capabilities.iter().try_fold(0u64, |set, &value| {
        let cap = value - PROTOBUF_OFFSET;
        if (0..CAPABILITY_NAMES.len() as i32).contains(&cap) {
            Ok(set | (1u64 << cap))
        } else {
            Err(format!("unknown capability {value}"))
        }
    })
}

/// Parses a capability flag: JSON `{"capabilities":["NET_RAW",...]}`, or
/// `file:///path` to it.
pub fn parse_flag(flag: &str, value: &str) -> Result<CapabilitySet, String> {
    let text = match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("invalid --{flag}: cannot read {path}: {e}"))?,
        None => value.to_string(),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Json {
        #[serde(default)]
        capabilities: Vec<String>,
    }
    let json: Json = serde_json::from_str(&text).map_err(|e| {
        format!("invalid --{flag}: expected {{\"capabilities\":[\"NET_RAW\",...]}}: {e}")
    })?;
    let names: Vec<&str> = json.capabilities.iter().map(String::as_str).collect();
    set_of(&names).map_err(|e| format!("invalid --{flag}: {e}"))
}

/// The operator's capability flags, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitiesConfig {
    /// `--effective_capabilities`: granted to tasks that ask for nothing.
    pub effective: Option<CapabilitySet>,
    /// `--bounding_capabilities`: the most any task may have; with neither
    /// flag, [`DEFAULT_BOUNDING`].
    pub bounding: Option<CapabilitySet>,
}

impl CapabilitiesConfig {
    /// From the flag values (JSON or `file://`). Refuses an effective set
    /// outside the bounding set, as Mesos does.
    pub fn from_flags(effective: Option<&str>, bounding: Option<&str>) -> Result<Self, String> {
        let effective = effective
            .map(|v| parse_flag("effective_capabilities", v))
            .transpose()?;
        let bounding = bounding
            .map(|v| parse_flag("bounding_capabilities", v))
            .transpose()?;
        if let (Some(e), Some(b)) = (effective, bounding) {
            if e & b != e {
                // Mesos's text, typo included.
                return Err(
                    "Allowed capabilities are not a subset of the bounding capabilites".into(),
                );
            }
        }
        let bounding = match (effective, bounding) {
            (None, None) => Some(set_of(DEFAULT_BOUNDING)?),
            (_, b) => b,
        };
        Ok(Self {
            effective,
            bounding,
        })
    }
}

/// What a container gets: `(effective, bounding)`, or `None` when nothing is
/// to be set. Mesos's rules: `capability_info` (deprecated) and
/// `effective_capabilities` exclude each other; a requested bounding set must
/// be within the agent's; effective defaults to the agent's effective flag,
/// bounding to the agent's bounding flag and then to effective; effective
/// must be within bounding.
pub fn decide(
    config: &CapabilitiesConfig,
    linux_info: Option<&v1::LinuxInfo>,
) -> Result<Option<(Option<CapabilitySet>, CapabilitySet)>, String> {
    let mut effective = None;
    let mut bounding = None;
    if let Some(info) = linux_info {
        if info.capability_info.is_some() && info.effective_capabilities.is_some() {
            return Err(
                "Only one of 'capability_info' or 'effective_capabilities' is allowed".into(),
            );
        }
        if let Some(c) = info
            .capability_info
            .as_ref()
            .or(info.effective_capabilities.as_ref())
        {
            effective = Some(from_info(c)?);
        }
        if let Some(c) = &info.bounding_capabilities {
            bounding = Some(from_info(c)?);
        }
    }
    let effective = effective.or(config.effective);
    if let (Some(requested), Some(allowed)) = (bounding, config.bounding) {
        if requested & allowed != requested {
            return Err(format!(
                "Bounding capabilities '{}', but only '{}' are allowed",
                stringify(requested),
                stringify(allowed)
            ));
        }
    }
    let bounding = bounding.or(config.bounding).or(effective);
    let Some(bounding) = bounding else {
        return Ok(None);
    };
    if let Some(requested) = effective {
        if requested & bounding != requested {
            return Err(format!(
                "Requested capabilities '{}', but only '{}' are allowed",
                stringify(requested),
                stringify(bounding)
            ));
        }
    }
    Ok(Some((effective, bounding)))
}

/// The `linux/capabilities` isolator. Holds no per-container state.
#[derive(Debug, Clone)]
pub struct LinuxCapabilitiesIsolator {
    config: CapabilitiesConfig,
}

impl LinuxCapabilitiesIsolator {
    /// With the operator's (validated) flags.
    pub fn new(config: CapabilitiesConfig) -> Self {
        Self { config }
    }
}

impl Isolator for LinuxCapabilitiesIsolator {
    fn name(&self) -> &'static str {
        LINUX_CAPABILITIES
    }

    fn prepare(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        let linux_info = config
            .container_info
            .as_ref()
            .and_then(|c| c.linux_info.as_ref());
        let decided = decide(&self.config, linux_info).map_err(IsolatorError::Refused)?;
        Ok(decided.map(|(effective, bounding)| ContainerLaunchInfo {
            bounding_capabilities: Some(bounding),
            effective_capabilities: effective,
            ..ContainerLaunchInfo::default()
        }))
    }
}

/// The `linux/nnp` isolator: `no_new_privs` on every container.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxNnpIsolator;

impl Isolator for LinuxNnpIsolator {
    fn name(&self) -> &'static str {
        LINUX_NNP
    }

    fn prepare(&self, _: &ContainerConfig) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        Ok(Some(ContainerLaunchInfo {
            no_new_privileges: true,
            ..ContainerLaunchInfo::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(names: &[&str]) -> v1::CapabilityInfo {
        v1::CapabilityInfo {
            capabilities: names
                .iter()
                .map(|n| i32::from(capability(n).expect("known")) + PROTOBUF_OFFSET)
                .collect(),
        }
    }

    fn set(names: &[&str]) -> CapabilitySet {
        set_of(names).expect("known names")
    }

    #[test]
    fn names_follow_the_linux_numbers_and_mesos_renders_sets_by_number() {
        assert_eq!(capability("NET_RAW"), Some(13));
        assert_eq!(capability("SYS_ADMIN"), Some(21));
        assert_eq!(capability("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability("CAP_NET_RAW"), None);
        assert_eq!(
            stringify(set(&["SYS_ADMIN", "NET_RAW"])),
            "{ NET_RAW, SYS_ADMIN }"
        );
        assert_eq!(
            from_info(&v1::CapabilityInfo {
                capabilities: vec![0]
            })
            .expect_err("UNKNOWN"),
            "unknown capability 0"
        );
    }

    #[test]
    fn flags_parse_json_or_a_file_and_the_default_bounding_set_is_minimal() {
        let default = CapabilitiesConfig::from_flags(None, None).expect("defaults");
        assert_eq!(default.effective, None);
        let bounding = default.bounding.expect("a default bounding set");
        assert_eq!(bounding & set(&["NET_RAW", "SYS_ADMIN"]), 0);
        assert_ne!(bounding & set(&["NET_BIND_SERVICE"]), 0);

        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("caps.json");
        std::fs::write(&path, r#"{"capabilities":["NET_RAW"]}"#).expect("write");
        let c = CapabilitiesConfig::from_flags(
            Some(&format!("file://{}", path.display())),
            Some(r#"{"capabilities":["NET_RAW","CHOWN"]}"#),
        )
        .expect("valid");
        assert_eq!(c.effective, Some(set(&["NET_RAW"])));
        assert_eq!(c.bounding, Some(set(&["NET_RAW", "CHOWN"])));

        let err = CapabilitiesConfig::from_flags(Some(r#"{"capabilities":["NET_RAWW"]}"#), None)
            .expect_err("unknown name");
        assert_eq!(
            err,
            "invalid --effective_capabilities: unknown capability 'NET_RAWW'"
        );
        let err = CapabilitiesConfig::from_flags(None, Some("[NET_RAW]")).expect_err("not JSON");
        assert!(
            err.starts_with("invalid --bounding_capabilities: expected"),
            "{err}"
        );
        let err = CapabilitiesConfig::from_flags(
            Some(r#"{"capabilities":["NET_RAW"]}"#),
            Some(r#"{"capabilities":["CHOWN"]}"#),
        )
        .expect_err("effective outside bounding");
        assert_eq!(
            err,
            "Allowed capabilities are not a subset of the bounding capabilites"
        );
    }

    #[test]
    fn mesos_rules_decide_effective_and_bounding_sets() {
        let agent = CapabilitiesConfig {
            effective: None,
            bounding: Some(set(&["CHOWN", "NET_RAW"])),
        };
        // Nothing asked: the agent's bounding set, nothing granted.
        assert_eq!(
            decide(&agent, None),
            Ok(Some((None, set(&["CHOWN", "NET_RAW"]))))
        );
        // Effective within bounding.
        let asks = v1::LinuxInfo {
            effective_capabilities: Some(info(&["NET_RAW"])),
            ..Default::default()
        };
        assert_eq!(
            decide(&agent, Some(&asks)),
            Ok(Some((Some(set(&["NET_RAW"])), set(&["CHOWN", "NET_RAW"]))))
        );
        // The deprecated capability_info means the same.
        let old = v1::LinuxInfo {
            capability_info: Some(info(&["NET_RAW"])),
            ..Default::default()
        };
        assert_eq!(decide(&agent, Some(&old)), decide(&agent, Some(&asks)));
        // Beyond the agent's bounding set.
        let greedy = v1::LinuxInfo {
            effective_capabilities: Some(info(&["NET_RAW", "SYS_ADMIN"])),
            ..Default::default()
        };
        assert_eq!(
            decide(&agent, Some(&greedy)),
            Err("Requested capabilities '{ NET_RAW, SYS_ADMIN }', but only '{ CHOWN, NET_RAW }' are allowed".into())
        );
        // A bounding request beyond the agent's.
        let wide = v1::LinuxInfo {
            bounding_capabilities: Some(info(&["SYS_ADMIN"])),
            ..Default::default()
        };
        assert_eq!(
            decide(&agent, Some(&wide)),
            Err(
                "Bounding capabilities '{ SYS_ADMIN }', but only '{ CHOWN, NET_RAW }' are allowed"
                    .into()
            )
        );
        // Both effective forms at once.
        let both = v1::LinuxInfo {
            capability_info: Some(info(&["CHOWN"])),
            effective_capabilities: Some(info(&["CHOWN"])),
            ..Default::default()
        };
        assert_eq!(
            decide(&agent, Some(&both)),
            Err("Only one of 'capability_info' or 'effective_capabilities' is allowed".into())
        );
        // A narrower task bounding set must still hold its effective set.
        let narrow = v1::LinuxInfo {
            effective_capabilities: Some(info(&["NET_RAW"])),
            bounding_capabilities: Some(info(&["CHOWN"])),
            ..Default::default()
        };
        assert_eq!(
            decide(&agent, Some(&narrow)),
            Err("Requested capabilities '{ NET_RAW }', but only '{ CHOWN }' are allowed".into())
        );
        // Agent effective only (as Mesos with --effective_capabilities alone):
        // bounding falls back to effective.
        let only_effective = CapabilitiesConfig {
            effective: Some(set(&["NET_RAW"])),
            bounding: None,
        };
        assert_eq!(
            decide(&only_effective, None),
            Ok(Some((Some(set(&["NET_RAW"])), set(&["NET_RAW"]))))
        );
        // No flags at all (not reachable from from_flags, which picks the
        // default bounding set): nothing to set.
        let none = CapabilitiesConfig {
            effective: None,
            bounding: None,
        };
        assert_eq!(decide(&none, None), Ok(None));
    }

    #[test]
    fn the_isolators_prepare_launch_info_or_refuse_the_launch() {
        let caps = LinuxCapabilitiesIsolator::new(
            CapabilitiesConfig::from_flags(None, None).expect("defaults"),
        );
        let config = ContainerConfig {
            container_id: "c1".into(),
            container_info: Some(v1::ContainerInfo {
                linux_info: Some(v1::LinuxInfo {
                    effective_capabilities: Some(info(&["NET_RAW"])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = caps
            .prepare(&config)
            .expect_err("NET_RAW is not in the default set");
        assert!(
            err.to_string()
                .starts_with("Requested capabilities '{ NET_RAW }', but only '{ CHOWN,"),
            "{err}"
        );
        let plain = ContainerConfig {
            container_id: "c2".into(),
            ..Default::default()
        };
        let info = caps
            .prepare(&plain)
            .expect("prepared")
            .expect("launch info");
        assert_eq!(info.bounding_capabilities, Some(set(DEFAULT_BOUNDING)));
        assert_eq!(info.effective_capabilities, None);
        let nnp = LinuxNnpIsolator
            .prepare(&plain)
            .expect("prepared")
            .expect("launch info");
        assert!(nnp.no_new_privileges);
    }
}
