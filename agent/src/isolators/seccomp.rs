//! `linux/seccomp`: a seccomp filter on every container, from a profile in
//! Docker's seccomp JSON format as Mesos reads it (`defaultAction`,
//! `archMap`/`architectures`, `syscalls[]` with `names`, `action`, `args`,
//! `includes`/`excludes`). Profiles are parsed (and so checked) when the agent
//! starts or the task names one; they are compiled to BPF with `seccompiler`
//! in the agent, once the container's capabilities are known (entries may
//! depend on them), and loaded by the launcher's child after `no_new_privs`.
//!
//! Secure by default: without `--seccomp_profile_name` the built-in profile
//! (`agent/seccomp/default.json`) applies, which refuses (EPERM) the
//! calls containers have no business making (`keyctl`, `mount`, `unshare`,
//! `setns`, `ptrace`, `bpf`, `kexec_load`, ...). A task opts out with
//! `LinuxInfo.seccomp.unconfined` or picks another profile of
//! `--seccomp_config_dir` with `LinuxInfo.seccomp.profile_name`.
//!
//! Only x86_64 is supported (the syscall table); the kernel stacks the
//! filters of one profile and applies the most restrictive verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesos_proto::v1;
use serde_json::Value;

use super::capabilities::{capability, CapabilitySet};
use super::{ContainerConfig, ContainerLaunchInfo};
use super::{Isolator, IsolatorError, LINUX_SECCOMP};
use crate::sys::BpfInstruction;

/// The built-in profile.
pub const DEFAULT_PROFILE: &str = include_str!("../../seccomp/default.json");

/// What a filter does with a system call (Mesos's five actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `SCMP_ACT_KILL`: the process is killed.
    Kill,
    /// `SCMP_ACT_TRAP`: SIGSYS.
    Trap,
    /// `SCMP_ACT_ERRNO`: the call fails with this errno (the entry's
    /// `errnoRet`, the profile's `defaultErrnoRet`, else EPERM).
    Errno(u32),
    /// `SCMP_ACT_TRACE`: a tracer is notified.
    Trace,
    /// `SCMP_ACT_ALLOW`.
    Allow,
}

impl Action {
    /// `text` (`SCMP_ACT_*`); an ERRNO action fails with `errno`.
    fn parse(text: &str, errno: u32) -> Option<Self> {
        Some(match text {
            "SCMP_ACT_KILL" => Action::Kill,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_ERRNO" => Action::Errno(errno),
            "SCMP_ACT_TRACE" => Action::Trace,
            "SCMP_ACT_ALLOW" => Action::Allow,
            _ => return None,
        })
    }

    fn compiled(self) -> seccompiler::SeccompAction {
        use seccompiler::SeccompAction as A;
        match self {
            Action::Kill => A::KillProcess,
            Action::Trap => A::Trap,
            Action::Errno(errno) => A::Errno(errno),
            Action::Trace => A::Trace(0),
            Action::Allow => A::Allow,
        }
    }
}

/// One condition on an argument.
#[derive(Debug, Clone, PartialEq)]
struct Arg {
    index: u8,
    op: seccompiler::SeccompCmpOp,
    value: u64,
}

/// One `syscalls[]` entry that applies to this architecture.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    syscalls: Vec<i64>,
    action: Action,
    args: Vec<Arg>,
    /// The entry applies only if the container has all of these.
    includes_caps: CapabilitySet,
    /// The entry is skipped if the container has any of these.
    excludes_caps: CapabilitySet,
}

/// A parsed profile.
#[derive(Debug, Clone, PartialEq)]
pub struct SeccompProfile {
    /// The file name (for messages).
    pub name: String,
    default_action: Action,
    entries: Vec<Entry>,
}

impl Eq for SeccompProfile {}

/// Names `uname -m`-style and Docker-style for this machine.
const NATIVE_ARCHES: &[&str] = &["amd64", "x86_64", "SCMP_ARCH_X86_64"];

fn syscall_number(name: &str) -> Option<i64> {
    super::seccomp_syscalls::X86_64
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

fn strings<'a>(value: &'a Value, what: &str) -> Result<Vec<&'a str>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("'{what}' must be an array of strings"))?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| format!("'{what}' must be an array of strings"))
        })
        .collect()
}

/// `includes`/`excludes`: whether its `arches` allow this machine, and its caps.
fn filter(value: &Value, what: &str) -> Result<(Option<bool>, CapabilitySet), String> {
    let Some(object) = value.as_object() else {
        return Err(format!("'{what}' must be an object"));
    };
    let arches = match object.get("arches") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let list = strings(v, &format!("{what}.arches"))?;
            (!list.is_empty()).then(|| list.iter().any(|a| NATIVE_ARCHES.contains(a)))
        }
    };
    let mut caps = 0;
    if let Some(v) = object.get("caps").filter(|v| !v.is_null()) {
        for name in strings(v, &format!("{what}.caps"))? {
            let cap = capability(name.strip_prefix("CAP_").unwrap_or(name))
                .ok_or_else(|| format!("{what}.caps: unknown capability '{name}'"))?;
            caps |= 1u64 << cap;
        }
    }
    Ok((arches, caps))
}

fn parse_arg(value: &Value) -> Result<Arg, String> {
    let number = |key: &str| -> Result<u64, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("'{key}' must be an unsigned integer")),
        }
    };
    let index = number("index")?;
    if index > 5 {
        return Err(format!("argument index {index} is out of range (0-5)"));
    }
    let (value_one, value_two) = (number("value")?, number("valueTwo")?);
    use seccompiler::SeccompCmpOp as Op;
    let op = value.get("op").and_then(Value::as_str).unwrap_or("");
    let (op, compared) = match op {
        "SCMP_CMP_NE" => (Op::Ne, value_one),
        "SCMP_CMP_LT" => (Op::Lt, value_one),
        "SCMP_CMP_LE" => (Op::Le, value_one),
        "SCMP_CMP_EQ" => (Op::Eq, value_one),
        "SCMP_CMP_GE" => (Op::Ge, value_one),
        "SCMP_CMP_GT" => (Op::Gt, value_one),
        // libseccomp: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq(value_one), value_two),
        other => return Err(format!("unknown operator '{other}'")),
    };
    Ok(Arg {
        index: index as u8,
        op,
        value: compared,
    })
}

/// The errno an ERRNO action gives when none is named.
const EPERM: u32 = libc::EPERM as u32;

/// `errnoRet` / `defaultErrnoRet` (Docker's, optional): an errno from 1 to 4095.
fn errno_ret(object: &Value, key: &str) -> Result<Option<u32>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n @ 1..=4095) => Ok(Some(n as u32)),
            _ => Err(format!("'{key}' must be an errno between 1 and 4095")),
        },
    }
}

impl SeccompProfile {
    /// Parses `text`; errors read `seccomp profile <name>: syscalls[3]: ...`.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let fail = |what: String| format!("seccomp profile {name}: {what}");
        let root: Value =
            serde_json::from_str(text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
        let default_action = root
            .get("defaultAction")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("missing 'defaultAction'".into()))?;
        let default_errno = errno_ret(&root, "defaultErrnoRet").map_err(&fail)?;
        let default_action = Action::parse(default_action, default_errno.unwrap_or(EPERM))
            .ok_or_else(|| fail(format!("unknown action '{default_action}'")))?;
        if let Some(map) = root.get("archMap").filter(|v| !v.is_null()) {
            let map = map
                .as_array()
                .ok_or_else(|| fail("'archMap' must be an array".into()))?;
            for (i, arch) in map.iter().enumerate() {
                if !arch.get("architecture").is_some_and(Value::is_string) {
                    return Err(fail(format!("archMap[{i}]: missing 'architecture'")));
                }
            }
        }
        let mut entries = Vec::new();
        let syscalls = match root.get("syscalls") {
            None | Some(Value::Null) => &Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or_else(|| fail("'syscalls' must be an array".into()))?,
        };
        for (i, entry) in syscalls.iter().enumerate() {
            let fail = |what: String| fail(format!("syscalls[{i}]: {what}"));
            for key in ["names", "action", "args", "includes", "excludes"] {
                if entry.get(key).is_none() {
                    return Err(fail(format!("missing '{key}'")));
                }
            }
            let names = strings(&entry["names"], "names").map_err(&fail)?;
            if names.is_empty() {
                return Err(fail("'names' is empty".into()));
            }
            let action_text = entry["action"]
                .as_str()
                .ok_or_else(|| fail("'action' must be a string".into()))?;
            let errno = errno_ret(entry, "errnoRet").map_err(&fail)?;
            let action = Action::parse(action_text, errno.or(default_errno).unwrap_or(EPERM))
                .ok_or_else(|| fail(format!("unknown action '{action_text}'")))?;
            let args = match &entry["args"] {
                Value::Null => Vec::new(),
                Value::Array(args) => args
                    .iter()
                    .enumerate()
                    .map(|(j, a)| parse_arg(a).map_err(|e| fail(format!("args[{j}]: {e}"))))
                    .collect::<Result<_, _>>()?,
                _ => return Err(fail("'args' must be an array or null".into())),
            };
            let (included_here, includes_caps) =
                filter(&entry["includes"], "includes").map_err(&fail)?;
            let (excluded_here, excludes_caps) =
                filter(&entry["excludes"], "excludes").map_err(&fail)?;
            // Architectures are decided now, capabilities at launch (as Mesos).
            if included_here == Some(false) || excluded_here == Some(true) {
                continue;
            }
            let mut numbers = Vec::new();
            for name in names {
                match syscall_number(name) {
                    Some(nr) => numbers.push(nr),
                    None => tracing::debug!(
                        profile = name,
                        "seccomp: no system call '{name}' on this architecture; ignored"
                    ),
                }
            }
            entries.push(Entry {
                syscalls: numbers,
                action,
                args,
                includes_caps,
                excludes_caps,
            });
        }
        Ok(Self {
            name: name.to_string(),
            default_action,
            entries,
        })
    }

    /// Reads and parses `dir/name`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, String> {
        if name.contains('/') || name == ".." || name == "." {
            return Err(format!(
                "seccomp profile {name}: must be a file name in --seccomp_config_dir"
            ));
        }
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "seccomp profile {name}: cannot read {}: {e}",
                path.display()
            )
        })?;
        Self::parse(name, &text)
    }

    /// Compiles the profile for a container holding `caps`: one BPF program
    /// per action the profile uses (the kernel runs them all and applies the
    /// most restrictive verdict).
    pub fn compile(&self, caps: CapabilitySet) -> Result<Vec<Vec<BpfInstruction>>, String> {
        use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCondition, SeccompFilter};
        use seccompiler::{SeccompRule, TargetArch};
        let fail = |e: seccompiler::BackendError| format!("seccomp profile {}: {e}", self.name);
        let applies =
            |e: &&Entry| e.includes_caps & caps == e.includes_caps && e.excludes_caps & caps == 0;
        // syscall -> rules (an empty list matches unconditionally).
        let add = |map: &mut BTreeMap<i64, Option<Vec<SeccompRule>>>, e: &Entry| {
            let rule = if e.args.is_empty() {
                None
            } else {
                let conditions = e
                    .args
                    .iter()
                    .map(|a| {
                        SeccompCondition::new(
                            a.index,
                            SeccompCmpArgLen::Qword,
                            a.op.clone(),
                            a.value,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>();
                Some(conditions.and_then(SeccompRule::new))
            };
            for &nr in &e.syscalls {
                let slot = map.entry(nr).or_insert_with(|| Some(Vec::new()));
                match (&rule, slot.as_mut()) {
                    // Unconditional wins.
                    (None, _) => *slot = None,
                    (Some(Ok(r)), Some(rules)) => rules.push(r.clone()),
                    _ => {}
                }
            }
            rule.transpose().map(|_| ())
        };
        let finish = |map: BTreeMap<i64, Option<Vec<SeccompRule>>>| {
            map.into_iter()
                .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
                .collect::<BTreeMap<_, _>>()
        };
        // seccompiler checks the architecture but not the x32 bit, so
        // `syscall(0x40000000 | nr)` would reach the kernel's x32 table
        // past every rule below: refuse the whole x32 range first.
        let mut programs = vec![x32_guard()];
        let mut push = |rules, mismatch: SeccompAction, matched: SeccompAction| {
            let filter =
                SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).map_err(fail)?;
            let program: seccompiler::BpfProgram = filter.try_into().map_err(fail)?;
            programs.push(
                program
                    .into_iter()
                    .map(|i| BpfInstruction {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect(),
            );
            Ok::<(), String>(())
        };
        let selected: Vec<&Entry> = self.entries.iter().filter(applies).collect();
        if self.default_action != Action::Allow {
            // Everything listed passes this one; the rest gets the default.
            let mut listed = BTreeMap::new();
            for e in &selected {
                add(&mut listed, e).map_err(fail)?;
            }
            push(
                finish(listed),
                self.default_action.compiled(),
                SeccompAction::Allow,
            )?;
        }
        let mut actions: Vec<Action> = Vec::new();
        for e in &selected {
            if e.action != Action::Allow && !actions.contains(&e.action) {
                actions.push(e.action);
            }
        }
        for action in actions {
            let mut map = BTreeMap::new();
            for e in selected.iter().filter(|e| e.action == action) {
                add(&mut map, e).map_err(fail)?;
            }
            if !map.is_empty() {
                push(finish(map), SeccompAction::Allow, action.compiled())?;
            }
        }
        Ok(programs)
    }
}

/// The operator's seccomp settings.
#[derive(Debug, Clone)]
pub struct SeccompConfig {
    /// `--seccomp_config_dir`, where task-named profiles are looked up.
    pub config_dir: Option<PathBuf>,
    /// The profile of containers that name none: `--seccomp_profile_name`,
    /// else the built-in one.
    pub default_profile: Arc<SeccompProfile>,
}

impl SeccompConfig {
    /// From the flags; a bad profile is an error naming it and the entry.
    pub fn from_flags(
        config_dir: Option<&Path>,
        profile_name: Option<&str>,
    ) -> Result<Self, String> {
        if !cfg!(target_arch = "x86_64") {
            return Err("the 'linux/seccomp' isolator supports only x86_64".into());
        }
        let default_profile = match (config_dir, profile_name) {
            (Some(dir), Some(name)) => SeccompProfile::load(dir, name)?,
            (None, Some(_)) => {
                return Err("--seccomp_profile_name needs --seccomp_config_dir".into())
            }
            (_, None) => SeccompProfile::parse("default.json", DEFAULT_PROFILE)?,
        };
        Ok(Self {
            config_dir: config_dir.map(Path::to_path_buf),
            default_profile: Arc::new(default_profile),
        })
    }
}

/// The `linux/seccomp` isolator. Holds no per-container state.
#[derive(Debug, Clone)]
pub struct LinuxSeccompIsolator {
    config: SeccompConfig,
}

impl LinuxSeccompIsolator {
    /// With the operator's (validated) settings.
    pub fn new(config: SeccompConfig) -> Self {
        Self { config }
    }
}

impl Isolator for LinuxSeccompIsolator {
    fn name(&self) -> &'static str {
        LINUX_SECCOMP
    }

    fn prepare(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<ContainerLaunchInfo>, IsolatorError> {
        let seccomp = config
            .container_info
            .as_ref()
            .and_then(|c| c.linux_info.as_ref())
            .and_then(|l| l.seccomp.as_ref());
        let profile = match seccomp {
            Some(v1::SeccompInfo {
                unconfined: Some(true),
                profile_name: Some(_),
            }) => {
                return Err(IsolatorError::Refused(
                    "Cannot set seccomp profile name for an unconfined container".into(),
                ))
            }
            Some(v1::SeccompInfo {
                unconfined: Some(true),
                ..
            }) => return Ok(None),
            Some(v1::SeccompInfo {
                profile_name: Some(name),
                ..
            }) => {
                let Some(dir) = &self.config.config_dir else {
                    return Err(IsolatorError::Refused(format!(
                        "Cannot use seccomp profile '{name}': the agent has no --seccomp_config_dir"
                    )));
                };
                Arc::new(SeccompProfile::load(dir, name).map_err(IsolatorError::Refused)?)
            }
            _ => Arc::clone(&self.config.default_profile),
        };
        Ok(Some(ContainerLaunchInfo {
            seccomp_profile: Some(profile),
            ..ContainerLaunchInfo::default()
        }))
    }
}

/// A filter answering EPERM to every x86_64 system call number with the
/// x32 bit (0x40000000) set, and allowing the rest (other filters decide
/// those). libseccomp does the same for Mesos.
fn x32_guard() -> Vec<BpfInstruction> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ERRNO_EPERM: u32 = 0x0005_0000 | 1;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let i = |code, jt, jf, k| BpfInstruction { code, jt, jf, k };
    vec![
        i(LD_W_ABS, 0, 0, 4),              // A = seccomp_data.arch
        i(JEQ_K, 0, 3, AUDIT_ARCH_X86_64), // not x86_64: allow (others decide)
        i(LD_W_ABS, 0, 0, 0),              // A = seccomp_data.nr
        i(JGE_K, 0, 1, X32_SYSCALL_BIT),   // x32 number?
        i(RET_K, 0, 0, SECCOMP_RET_ERRNO_EPERM),
        i(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: &str) -> String {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {{"names":["read"],"action":"SCMP_ACT_ALLOW","args":null,"includes":{{}},"excludes":{{}}}},
            {{{extra}}}]}}"#
        )
    }

    #[test]
    fn the_built_in_profile_parses_and_compiles_to_one_filter_per_errno() {
        let profile = SeccompProfile::parse("default.json", DEFAULT_PROFILE).expect("valid");
        assert_eq!(profile.default_action, Action::Allow);
        let keyctl = syscall_number("keyctl").expect("keyctl");
        assert!(profile.entries[0].syscalls.contains(&keyctl));
        let programs = profile.compile(0).expect("compiles");
        assert_eq!(
            programs.len(),
            3,
            "the x32 guard, then the EPERM filter and clone3's ENOSYS one"
        );
        assert_eq!(programs[0], x32_guard());
        assert!(programs[1..].iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn malformed_profiles_are_refused_naming_the_entry() {
        let cases = [
            (
                r#""names":["keyctl"],"action":"SCMP_ACT_FOO","args":null,"includes":{},"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: unknown action 'SCMP_ACT_FOO'",
            ),
            (
                r#""names":[],"action":"SCMP_ACT_ERRNO","args":null,"includes":{},"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: 'names' is empty",
            ),
            (
                r#""names":["keyctl"],"action":"SCMP_ACT_ERRNO","args":null,"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: missing 'includes'",
            ),
            (
                r#""names":["keyctl"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}],"includes":{},"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: args[0]: argument index 7 is out of range (0-5)",
            ),
            (
                r#""names":["keyctl"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_XX"}],"includes":{},"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: args[0]: unknown operator 'SCMP_CMP_XX'",
            ),
            (
                r#""names":["keyctl"],"action":"SCMP_ACT_ERRNO","args":null,"includes":{"caps":["CAP_NOPE"]},"excludes":{}"#,
                "seccomp profile p.json: syscalls[1]: includes.caps: unknown capability 'CAP_NOPE'",
            ),
        ];
        for (bad, expected) in cases {
            assert_eq!(
                SeccompProfile::parse("p.json", &entry(bad)).expect_err(bad),
                expected
            );
        }
        assert_eq!(
            SeccompProfile::parse("p.json", "{")
                .expect_err("not JSON")
                .split(':')
                .next(),
            Some("seccomp profile p.json")
        );
        assert_eq!(
            SeccompProfile::parse("p.json", r#"{"syscalls":[]}"#).expect_err("no default"),
            "seccomp profile p.json: missing 'defaultAction'"
        );
        assert_eq!(
            SeccompProfile::parse("p.json", r#"{"defaultAction":"SCMP_ACT_NOPE"}"#)
                .expect_err("bad default"),
            "seccomp profile p.json: unknown action 'SCMP_ACT_NOPE'"
        );
    }

    #[test]
    fn arches_are_filtered_at_parse_time_and_caps_at_compile_time() {
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","write","exit_group","execve"],"action":"SCMP_ACT_ALLOW","args":null,"includes":{},"excludes":{}},
            {"names":["s390_pci_mmio_read"],"action":"SCMP_ACT_ALLOW","args":null,"includes":{"arches":["s390x"]},"excludes":{}},
            {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","args":null,"includes":{"caps":["CAP_SYS_PTRACE"]},"excludes":{}},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"valueTwo":0,"op":"SCMP_CMP_EQ"}],"includes":{},"excludes":{}}
        ]}"#;
        let profile = SeccompProfile::parse("p.json", text).expect("valid");
        assert_eq!(profile.entries.len(), 3, "the s390x entry is dropped");
        let without = profile.compile(0).expect("compiles");
        let with = profile
            .compile(1u64 << capability("SYS_PTRACE").expect("cap"))
            .expect("compiles");
        assert_eq!(
            without.len(),
            2,
            "the x32 guard, then one filter: listed calls pass, the rest ERRNO"
        );
        assert!(
            with[1].len() > without[1].len(),
            "ptrace is allowed only with CAP_SYS_PTRACE"
        );
    }

    #[test]
    fn errno_ret_names_the_errno_and_a_bad_one_is_refused_naming_the_entry() {
        let profile = SeccompProfile::parse(
            "p.json",
            r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":13,"syscalls":[
                {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"args":null,"includes":{},"excludes":{}},
                {"names":["keyctl"],"action":"SCMP_ACT_ERRNO","args":null,"includes":{},"excludes":{}}]}"#,
        )
        .expect("valid");
        let actions: Vec<Action> = profile.entries.iter().map(|e| e.action).collect();
        assert_eq!(actions, vec![Action::Errno(38), Action::Errno(13)]);
        assert_eq!(
            profile.compile(u64::MAX).expect("compiles").len(),
            3,
            "the x32 guard and one program per errno"
        );
        let err = SeccompProfile::parse(
            "p.json",
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":0,"args":null,"includes":{},"excludes":{}}]}"#,
        )
        .expect_err("errno 0");
        assert_eq!(
            err,
            "seccomp profile p.json: syscalls[0]: 'errnoRet' must be an errno between 1 and 4095"
        );
    }

    #[test]
    fn the_built_in_profile_refuses_clone3_with_enosys() {
        let profile = SeccompProfile::parse("default.json", DEFAULT_PROFILE).expect("built in");
        let clone3 = syscall_number("clone3").expect("clone3");
        assert!(profile
            .entries
            .iter()
            .any(|e| e.syscalls == [clone3] && e.action == Action::Errno(libc::ENOSYS as u32)));
    }
}
