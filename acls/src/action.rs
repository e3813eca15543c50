//! The authorization actions of Mesos's local authorizer: their `--acls` JSON
//! keys, the object key each one's entries carry, and how each object is
//! matched. This module only names things; it decides nothing.

use std::fmt;
use std::str::FromStr;

/// How an action's object values are compared, following
/// `src/authorizer/local/authorizer.cpp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Exact string comparison.
    Plain,
    /// Role-valued: an ACL value ending in `/%` also matches every strictly
    /// nested role (`eng/%` matches `eng/a` and `eng/a/b`, not `eng`).
    Role,
    /// The object is always `ANY` in requests; Mesos's `LocalAuthorizer::validate`
    /// rejects a `SOME` object for these actions.
    AnyOnly,
}

macro_rules! actions {
    ($( $variant:ident => $key:literal, $object:literal, $kind:ident; )*) => {
        /// One authorization action, named after its `--acls` JSON key.
        ///
        /// `Unknown` mirrors Mesos's `authorization::UNKNOWN`: it has no JSON
        /// key, cannot be parsed, and is always denied.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $(
                #[doc = concat!("`", $key, "` (object key `", $object, "`).")]
                $variant,
            )*
            /// An action this authorizer does not know; always denied.
            Unknown,
        }

        impl Action {
            /// Every known action, in the order of Mesos's `acls.proto` table.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The JSON key of this action's array in `--acls`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $key,)*
                    Action::Unknown => "unknown",
                }
            }

            /// The JSON key of the object entity in this action's entries
            /// (`roles`, `users`, ...).
            pub fn object_key(self) -> &'static str {
                match self {
                    $(Action::$variant => $object,)*
                    Action::Unknown => "objects",
                }
            }

            /// How this action's object values are matched.
            pub fn object_kind(self) -> ObjectKind {
                match self {
                    $(Action::$variant => ObjectKind::$kind,)*
                    Action::Unknown => ObjectKind::Plain,
                }
            }
        }
    };
}

actions! {
    RegisterFrameworks => "register_frameworks", "roles", Role;
    RunTasks => "run_tasks", "users", Plain;
    ReserveResources => "reserve_resources", "roles", Role;
    UnreserveResources => "unreserve_resources", "reserver_principals", Plain;
    CreateVolumes => "create_volumes", "roles", Role;
    DestroyVolumes => "destroy_volumes", "creator_principals", Plain;
    TeardownFrameworks => "teardown_frameworks", "framework_principals", Plain;
    UpdateWeights => "update_weights", "roles", Role;
    GetEndpoints => "get_endpoints", "paths", Plain;
    GetQuotas => "get_quotas", "roles", Role;
    UpdateQuotas => "update_quotas", "roles", Role;
    ViewFrameworks => "view_frameworks", "users", Plain;
    ViewTasks => "view_tasks", "users", Plain;
    ViewExecutors => "view_executors", "users", Plain;
    AccessSandboxes => "access_sandboxes", "users", Plain;
    AccessMesosLogs => "access_mesos_logs", "logs", AnyOnly;
    ViewRoles => "view_roles", "roles", Role;
    ViewFlags => "view_flags", "flags", AnyOnly;
    LaunchNestedContainersAsUser => "launch_nested_containers_as_user", "users", Plain;
    LaunchNestedContainersUnderParentWithUser => "launch_nested_containers_under_parent_with_user", "users", Plain;
    KillNestedContainers => "kill_nested_containers", "users", Plain;
    WaitNestedContainers => "wait_nested_containers", "users", Plain;
    LaunchNestedContainerSessionsAsUser => "launch_nested_container_sessions_as_user", "users", Plain;
    LaunchNestedContainerSessionsUnderParentWithUser => "launch_nested_container_sessions_under_parent_with_user", "users", Plain;
    AttachContainersInput => "attach_containers_input", "users", Plain;
    AttachContainersOutput => "attach_containers_output", "users", Plain;
    ViewContainers => "view_containers", "users", Plain;
    SetLogLevel => "set_log_level", "level", AnyOnly;
    RemoveNestedContainers => "remove_nested_containers", "users", Plain;
    RegisterAgents => "register_agents", "agents", AnyOnly;
    UpdateMaintenanceSchedules => "update_maintenance_schedules", "machines", AnyOnly;
    GetMaintenanceSchedules => "get_maintenance_schedules", "machines", AnyOnly;
    StartMaintenances => "start_maintenances", "machines", AnyOnly;
    StopMaintenances => "stop_maintenances", "machines", AnyOnly;
    GetMaintenanceStatuses => "get_maintenance_statuses", "machines", AnyOnly;
    // Mesos's validate() does not restrict this one to ANY/NONE.
    MarkAgentsGone => "mark_agents_gone", "agents", Plain;
    LaunchStandaloneContainers => "launch_standalone_containers", "users", AnyOnly;
    KillStandaloneContainers => "kill_standalone_containers", "users", AnyOnly;
    WaitStandaloneContainers => "wait_standalone_containers", "users", AnyOnly;
    RemoveStandaloneContainers => "remove_standalone_containers", "users", AnyOnly;
    ModifyResourceProviderConfigs => "modify_resource_provider_configs", "resource_providers", AnyOnly;
    ViewStandaloneContainers => "view_standalone_containers", "users", AnyOnly;
    PruneImages => "prune_images", "images", AnyOnly;
    ResizeVolumes => "resize_volumes", "roles", Role;
    CreateBlockDisks => "create_block_disks", "roles", Role;
    DestroyBlockDisks => "destroy_block_disks", "roles", Role;
    CreateMountDisks => "create_mount_disks", "roles", Role;
    DestroyMountDisks => "destroy_mount_disks", "roles", Role;
    ViewResourceProviders => "view_resource_providers", "resource_providers", AnyOnly;
    MarkResourceProvidersGone => "mark_resource_providers_gone", "resource_providers", AnyOnly;
    DestroyRawDisks => "destroy_raw_disks", "roles", Role;
    DrainAgents => "drain_agents", "agents", AnyOnly;
    DeactivateAgents => "deactivate_agents", "agents", AnyOnly;
    ReactivateAgents => "reactivate_agents", "agents", AnyOnly;
    // Not in Mesos: launching a task or executor that uses a persistent
    // volume created by one of `creator_principals`.
    UseVolumes => "use_volumes", "creator_principals", Plain;
}

/// Paths Mesos accepts in a `get_endpoints` `SOME` entry
/// (`AUTHORIZABLE_ENDPOINTS`); any other path is a configuration error.
pub const AUTHORIZABLE_ENDPOINTS: &[&str] = &[
    "/containers",
    "/containerizer/debug",
    "/files/debug",
    "/files/debug.json",
    "/logging/toggle",
    "/metrics/snapshot",
    "/monitor/statistics",
    "/monitor/statistics.json",
];

/// Keys that once existed in Mesos's `ACLs` message and what replaced them.
const RETIRED: &[(&str, &str)] = &[
    ("shutdown_frameworks", "teardown_frameworks"),
    ("set_quotas", "update_quotas"),
    ("remove_quotas", "update_quotas"),
];

/// A string that names no action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction {
    /// The string that was given.
    pub key: String,
    /// The closest known key, if one is close enough to be a likely typo,
    /// or the replacement of a retired key.
    pub suggestion: Option<&'static str>,
}

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown ACL action '{}'", self.key)?;
        if let Some(s) = self.suggestion {
            write!(f, " (did you mean '{s}'?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(a) = Action::ALL.iter().find(|a| a.as_str() == s) {
            return Ok(*a);
        }
        Err(UnknownAction {
            key: s.to_owned(),
            suggestion: suggest(s),
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn suggest(key: &str) -> Option<&'static str> {
    if let Some((_, new)) = RETIRED.iter().find(|(old, _)| *old == key) {
        return Some(new);
    }
    let (best, distance) = Action::ALL
        .iter()
        .map(|a| (a.as_str(), edit_distance(key, a.as_str())))
        .min_by_key(|(_, d)| *d)?;
    // A third of the key's length is a generous but not absurd typo budget.
    (distance <= (key.len() / 3).max(2)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_json_key() {
        assert_eq!(Action::ALL.len(), 55);
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
    }

    #[test]
    fn unknown_is_not_parseable() {
        assert!("unknown".parse::<Action>().is_err());
    }

    #[test]
    fn typo_suggests_the_closest_action() {
        let err = "run_task"
            .parse::<Action>()
            .expect_err("typo must not parse");
        assert_eq!(
            err.to_string(),
            "unknown ACL action 'run_task' (did you mean 'run_tasks'?)"
        );
        let err = "shutdown_frameworks"
            .parse::<Action>()
            .expect_err("retired");
        assert_eq!(err.suggestion, Some("teardown_frameworks"));
        let err = "frobnicate".parse::<Action>().expect_err("nonsense");
        assert_eq!(err.suggestion, None);
    }
}
