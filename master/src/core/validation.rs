//! Mesos's validation rules for what frameworks send: roles, FrameworkInfo
//! and tasks. Each error text is the one a Mesos user would search for.

use std::collections::HashSet;

use mesos_proto::v1::framework_info::capability::Type as Capability;
use mesos_proto::v1::{FrameworkInfo, TaskInfo};

use super::framework::has_capability;

/// Checks a role name as `src/common/roles.cpp` does.
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Empty role name is invalid".into());
    }
    if role.starts_with('/') || role.ends_with('/') {
        return Err(format!("Role '{role}' cannot start or end with '/'"));
    }
    if role.contains("//") {
        return Err(format!("Role '{role}' cannot contain '//'"));
    }
    for component in role.split('/') {
        if component == "." || component == ".." || component == "*" {
            return Err(format!(
                "Role '{role}' cannot contain '{component}' as a component"
            ));
        }
        if component.starts_with('-') {
            return Err(format!(
                "Role '{role}' cannot have a component starting with '-'"
            ));
        }
        if component
            .chars()
            .any(|c| matches!(c, '\x09'..='\x0d' | ' ' | '\x7f'))
        {
            return Err(format!(
                "Role '{role}' cannot contain whitespace or DEL characters"
            ));
        }
    }
    Ok(())
}

/// Checks a FrameworkInfo at SUBSCRIBE; the error becomes the text of the
/// ERROR event.
pub fn validate_framework_info(
    info: &FrameworkInfo,
    whitelist: Option<&[String]>,
    root_submissions: bool,
) -> Result<(), String> {
    let multi_role = has_capability(info, Capability::MultiRole);
    if multi_role {
        if info.role.is_some() {
            return Err(
                "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
                    .into(),
            );
        }
        let mut seen = HashSet::new();
        for role in &info.roles {
            if !seen.insert(role) {
                return Err(format!(
                    "'FrameworkInfo.roles' contains duplicate role '{role}'"
                ));
            }
        }
    } else if !info.roles.is_empty() {
        return Err(
            "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
                .into(),
        );
    }
    let roles = super::framework::roles_of(info);
    for role in &roles {
        validate_role(role)
            .map_err(|e| format!("'FrameworkInfo.roles' contains invalid role: {e}"))?;
    }
    if let Some(whitelist) = whitelist {
        let missing: Vec<&str> = roles
            .iter()
            .filter(|r| r.as_str() != "*" && !is_whitelisted(r, whitelist))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Roles {{ {} }} are not present in the master's --roles",
                missing.join(", ")
            ));
        }
    }
    if info.user == "root" && !root_submissions {
        return Err(
            "User 'root' is not allowed to run frameworks without --root_submissions set".into(),
        );
    }
    if let Some(timeout) = info.failover_timeout {
        if !timeout.is_finite() || !(0.0..=1e11).contains(&timeout) {
            return Err(format!(
                "The framework failover_timeout ({timeout}) is invalid"
            ));
        }
    }
    Ok(())
}

fn is_whitelisted(role: &str, whitelist: &[String]) -> bool {
    // A whitelisted role also allows its ancestors.
    whitelist
        .iter()
        .any(|w| w == role || w.starts_with(&format!("{role}/")))
}

/// Checks the parts of one task that do not depend on resources.
pub fn validate_task_shape(task: &TaskInfo, offer_agent: &str) -> Result<(), String> {
    validate_id("Task ID", &task.task_id.value)?;
    if task.agent_id.value != offer_agent {
        return Err(format!(
            "Task uses agent {} but the offers are for agent {}",
            task.agent_id.value, offer_agent
        ));
    }
    if task.executor.is_some() == task.command.is_some() {
        return Err(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
                .into(),
        );
    }
    if let Some(command) = &task.command {
        if command.shell.unwrap_or(true) && command.value.as_deref().unwrap_or("").is_empty() {
            return Err("Command task with 'shell' set requires 'value'".into());
        }
    }
    if let Some(executor) = &task.executor {
        validate_id("Executor ID", &executor.executor_id.value)?;
    }
    Ok(())
}

/// Mesos's id rules (`common/validation.cpp`): non-empty, printable, no
/// `/`, not `.` or `..`.
pub fn validate_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if id.len() > 255 {
        let head: String = id.chars().take(32).collect();
        return Err(format!("{what} '{head}...' is longer than 255 characters"));
    }
    if id == "." || id == ".." {
        return Err(format!("{what} '{id}' is disallowed"));
    }
    if id.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    if id
        .chars()
        .any(|c| c == '/' || c.is_control() || c.is_whitespace())
    {
        return Err(format!("{what} '{id}' contains invalid characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::framework_info::Capability as Cap;

    fn info(role: Option<&str>, roles: &[&str], multi: bool) -> FrameworkInfo {
        FrameworkInfo {
            user: "u".into(),
            name: "n".into(),
            role: role.map(str::to_string),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            capabilities: if multi {
                vec![Cap {
                    r#type: Some(Capability::MultiRole as i32),
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    #[test]
    fn role_names_follow_mesos_rules() {
        for ok in ["*", "a", "a/b", "eng.prod"] {
            assert!(validate_role(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", "-a", "a b", "a/*", "."] {
            assert!(validate_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multi_role_rules() {
        assert!(validate_framework_info(&info(None, &["a", "b"], true), None, true).is_ok());
        assert!(validate_framework_info(&info(Some("a"), &[], true), None, true).is_err());
        assert!(validate_framework_info(&info(None, &["a", "a"], true), None, true).is_err());
        assert!(validate_framework_info(&info(None, &["a"], false), None, true).is_err());
        assert!(validate_framework_info(&info(Some("a b"), &[], false), None, true).is_err());
    }

    #[test]
    fn whitelist_and_root() {
        let wl = vec!["prod/web".to_string()];
        let err = validate_framework_info(&info(Some("dev"), &[], false), Some(&wl), true)
            .expect_err("not listed");
        assert_eq!(err, "Roles { dev } are not present in the master's --roles");
        assert!(validate_framework_info(&info(Some("prod"), &[], false), Some(&wl), true).is_ok());
        let mut root = info(None, &[], false);
        root.user = "root".into();
        assert!(validate_framework_info(&root, None, false).is_err());
        let mut bad = info(None, &[], false);
        bad.failover_timeout = Some(f64::NAN);
        assert!(validate_framework_info(&bad, None, true).is_err());
    }
}
