//! Reservations and persistent volumes: the offer operations RESERVE,
//! UNRESERVE, CREATE, DESTROY, GROW_VOLUME and SHRINK_VOLUME, from a
//! framework's ACCEPT or from an operator (`/master/reserve`, the v1
//! operator calls).
//!
//! Each is validated with Mesos's rules and messages, authorized, applied
//! to the offered resources (framework path) or to the agent's available
//! resources (operator path), then to the agent's total. The agent's new
//! dynamic reservations and volumes are staged in the registry; nothing
//! about the change leaves the master (the 202, the operation status, the
//! `CheckpointResourcesMessage` to the agent) before the registry has
//! flushed it ([`Master::commit`]).

use mesos_acls::{Action, Object};
use mesos_common::conversions::{self, Conversion, ConversionError};
use mesos_common::resources::{reservation_role, ResourceText, Resources};
use mesos_proto::internal as msg;
use mesos_proto::v1::agent_info::capability::Type as AgentCapability;
use mesos_proto::v1::offer::{operation, Operation};
use mesos_proto::v1::scheduler::{event, Event};
use mesos_proto::v1::{self as v1, volume, Resource};
use tokio::sync::oneshot;

use super::authz::Denied;
use super::Master;

/// Why an operator's operation was refused, with the HTTP status Mesos
/// answers.
#[derive(Debug)]
pub enum OperationError {
    /// 400: malformed or invalid for the agent's state.
    BadRequest(String),
    /// 403: the authorizer said no.
    Forbidden(Denied),
    /// 409: the agent does not have the resources available.
    Conflict(String),
}

/// What waits for the next registry commit before anyone hears of it.
#[derive(Debug)]
pub enum AfterCommit {
    /// An operation's status: recorded (for RECONCILE_OPERATIONS and
    /// GET_OPERATIONS) and sent to its framework.
    Operation {
        /// The framework that sent it.
        framework_id: String,
        /// The agent it applied to.
        agent_id: String,
        /// The operation.
        operation: Box<Operation>,
        /// Its new status.
        status: v1::OperationStatus,
    },
    /// AGENT_ADDED again, with the agent's new total, to operator streams.
    AgentUpdated(String),
}

/// Resolves once the operation is in the registry on disk.
pub type Durable = oneshot::Receiver<()>;

/// What validation needs to know about the caller.
struct Caller<'a> {
    /// Authenticated principal, if any.
    principal: Option<&'a str>,
    /// The framework's roles on the framework path; `None` for operators.
    framework_roles: Option<&'a [String]>,
}

fn text(r: &Resource) -> String {
    ResourceText(r).to_string()
}

fn has_capability(capabilities: &[i32], capability: AgentCapability) -> bool {
    capabilities.contains(&(capability as i32))
}

fn list(resources: &[Resource]) -> Result<Resources, String> {
    Resources::new(resources.to_vec()).map_err(|e| format!("Invalid resources: {e}"))
}

fn persistence_id(r: &Resource) -> Option<&str> {
    r.disk
        .as_ref()
        .and_then(|d| d.persistence.as_ref())
        .map(|p| p.id.as_str())
}

fn persistence_principal(r: &Resource) -> Option<&str> {
    r.disk
        .as_ref()
        .and_then(|d| d.persistence.as_ref())
        .and_then(|p| p.principal.as_deref())
}

/// Mesos's capability checks for a reservation on an agent: a
/// hierarchical role needs HIERARCHICAL_ROLE, a refined one
/// RESERVATION_REFINEMENT. `what` and `done` fill Mesos's message
/// ("Resource ... cannot be reserved", "Volume ... cannot be created").
fn agent_can_hold(
    r: &Resource,
    capabilities: &[i32],
    what: &str,
    done: &str,
) -> Result<(), String> {
    let role = reservation_role(r).unwrap_or("*");
    if role.contains('/') && !has_capability(capabilities, AgentCapability::HierarchicalRole) {
        return Err(format!(
            "{what} {} with reservation for hierarchical role '{role}' cannot be {done} on an agent without HIERARCHICAL_ROLE capability",
            text(r)
        ));
    }
    if r.reservations.len() > 1
        && !has_capability(capabilities, AgentCapability::ReservationRefinement)
    {
        return Err(format!(
            "{what} {} with reservation refinement cannot be {done} on an agent without RESERVATION_REFINEMENT capability",
            text(r)
        ));
    }
    Ok(())
}

fn validate_reserve(
    reserve: &operation::Reserve,
    caller: &Caller,
    capabilities: &[i32],
) -> Result<(), String> {
    list(&reserve.resources)?;
    Resources::new(reserve.source.clone()).map_err(|e| format!("Invalid source: {e}"))?;
    if !reserve.source.is_empty() {
        let plain = |rs: &[Resource]| {
            Resources::new(rs.iter().map(conversions::strip_dynamic).collect())
                .map(|r| r.unallocated())
        };
        let (source, target) = (plain(&reserve.source), plain(&reserve.resources));
        if let (Ok(source), Ok(target)) = (source, target) {
            if source != target {
                return Err(format!(
                    "Source and target resources should refer to identical resource quantities: {source} vs. {target}"
                ));
            }
        }
    }
    if let Some(v) = reserve
        .resources
        .iter()
        .chain(reserve.source.iter())
        .find(|r| conversions::is_persistent_volume(r))
    {
        return Err(format!(
            "Resource {} is a persistent volume: RESERVE cannot change a volume's reservations",
            text(v)
        ));
    }
    for r in &reserve.resources {
        if !conversions::is_dynamically_reserved(r) {
            return Err(format!("Resource {} is not dynamically reserved", text(r)));
        }
        let role = reservation_role(r).unwrap_or("*");
        agent_can_hold(r, capabilities, "Resource", "reserved")?;
        if let Some(principal) = caller.principal {
            let top = r.reservations.last();
            match top.and_then(|t| t.principal.as_deref()) {
                None => return Err(format!(
                    "A reserve operation was attempted by principal '{principal}', but there is a reserved resource in the request with no principal set"
                )),
                Some(p) if p != principal => return Err(format!(
                    "A reserve operation was attempted by authenticated principal '{principal}', which does not match a reserved resource in the request with principal '{p}'"
                )),
                Some(_) => {}
            }
        }
        let allocated = r.allocation_info.as_ref().and_then(|a| a.role.as_deref());
        match (caller.framework_roles, allocated) {
            (Some(_), None) => return Err(format!(
                "A reserve operation was attempted on unallocated resource {}, but frameworks can only perform reservations on allocated resources",
                text(r)
            )),
            (Some(roles), Some(allocated)) => {
                if role != allocated {
                    return Err(format!(
                        "A reserve operation was attempted for a resource with role '{role}', but the resource was allocated to role '{allocated}'"
                    ));
                }
                if !roles.iter().any(|x| x == allocated) {
                    return Err(format!(
                        "A reserve operation was attempted for a resource allocated to role '{allocated}', but the framework only has roles '{}'",
                        roles.join(", ")
                    ));
                }
            }
            (None, Some(_)) => return Err(
                "A reserve operation was attempted with an allocated resource, but the operator API only allows reservations to be made to unallocated resources".into()
            ),
            (None, None) => {}
        }
    }
    if caller.framework_roles.is_some() {
        single_allocation_role(&reserve.resources)
            .map_err(|e| format!("Invalid reservation resources: {e}"))?;
    }
    Ok(())
}

fn single_allocation_role(resources: &[Resource]) -> Result<(), String> {
    let mut seen: Option<&str> = None;
    for r in resources {
        let Some(role) = r.allocation_info.as_ref().and_then(|a| a.role.as_deref()) else {
            return Err("The resources are not allocated to a role".into());
        };
        match seen {
            Some(s) if s != role => {
                return Err(format!(
                    "The resources have multiple allocation roles ('{role}' and '{s}') but only one allocation role is allowed"
                ))
            }
            _ => seen = Some(role),
        }
    }
    Ok(())
}

fn validate_unreserve(unreserve: &operation::Unreserve) -> Result<(), String> {
    list(&unreserve.resources)?;
    for r in &unreserve.resources {
        if !conversions::is_dynamically_reserved(r) {
            return Err(format!("Resource {} is not dynamically reserved", text(r)));
        }
        if conversions::is_persistent_volume(r) {
            return Err(format!(
                "A dynamically reserved persistent volume {} cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource",
                text(r)
            ));
        }
    }
    Ok(())
}

/// `validatePersistentVolume` and the DiskInfo checks of Mesos.
fn validate_volume_shape(v: &Resource) -> Result<(), String> {
    let Some(disk) = &v.disk else {
        return Err(format!(
            "Not a persistent volume: Resource {} does not have DiskInfo",
            text(v)
        ));
    };
    let Some(persistence) = &disk.persistence else {
        return Err("Not a persistent volume: 'persistence' is not set in DiskInfo".into());
    };
    if v.revocable.is_some() {
        return Err(
            "Invalid DiskInfo: Persistent volumes cannot be created from revocable resources"
                .into(),
        );
    }
    if reservation_role(v).is_none() {
        return Err(
            "Invalid DiskInfo: Persistent volumes cannot be created from unreserved resources"
                .into(),
        );
    }
    let Some(vol) = &disk.volume else {
        return Err("Invalid DiskInfo: Expecting 'volume' to be set for persistent volume".into());
    };
    if vol.host_path.is_some() {
        return Err(
            "Invalid DiskInfo: Expecting 'host_path' to be unset for persistent volume".into(),
        );
    }
    super::validation::validate_id("Persistence ID", &persistence.id).map_err(|e| {
        format!("Invalid DiskInfo: Invalid persistence ID for persistent volume: {e}")
    })?;
    if vol.mode == volume::Mode::Ro as i32 {
        return Err("Not a persistent volume: Read-only persistent volume not supported".into());
    }
    if !is_relative_inside(&vol.container_path) {
        return Err(format!(
            "Invalid DiskInfo: 'container_path' '{}' of persistent volume must be a relative path inside the sandbox",
            vol.container_path
        ));
    }
    if v.shared.is_some() {
        return Err(
            "Shared persistent volumes are not supported by this master: each volume belongs to the principal that created it".into(),
        );
    }
    Ok(())
}

fn validate_create(
    create: &operation::Create,
    checkpointed: &Resources,
    caller: &Caller,
    capabilities: &[i32],
) -> Result<(), String> {
    list(&create.volumes)?;
    for v in &create.volumes {
        validate_volume_shape(v)?;
    }
    // Persistence ids are unique per role on the agent.
    let mut ids: Vec<(String, String)> = checkpointed
        .iter()
        .filter_map(|r| {
            Some((
                reservation_role(r)?.to_string(),
                persistence_id(r)?.to_string(),
            ))
        })
        .collect();
    for v in &create.volumes {
        let key = (
            reservation_role(v).unwrap_or("*").to_string(),
            persistence_id(v).unwrap_or_default().to_string(),
        );
        if ids.contains(&key) {
            return Err(format!("Persistence ID '{}' is not unique", key.1));
        }
        ids.push(key);
    }
    for v in &create.volumes {
        agent_can_hold(v, capabilities, "Volume", "created")?;
        if let Some(principal) = caller.principal {
            match persistence_principal(v) {
                None => return Err(format!(
                    "Create volume operation attempted by principal '{principal}', but there is a volume in the operation with no principal set in 'disk.persistence'"
                )),
                Some(p) if p != principal => return Err(format!(
                    "Create volume operation attempted by authenticated principal '{principal}', which does not match a volume in the operation with principal '{p}' set in 'disk.persistence'"
                )),
                Some(_) => {}
            }
        }
    }
    if caller.framework_roles.is_some() {
        single_allocation_role(&create.volumes)
            .map_err(|e| format!("Invalid volume resources: {e}"))?;
    }
    Ok(())
}

fn validate_destroy(
    destroy: &operation::Destroy,
    checkpointed: &Resources,
    used: &Resources,
) -> Result<(), String> {
    let volumes = list(&destroy.volumes)?.unallocated();
    for v in volumes.iter() {
        if v.disk
            .as_ref()
            .and_then(|d| d.persistence.as_ref())
            .is_none()
        {
            return Err(format!(
                "Not a persistent volume: Resource {} does not have DiskInfo with 'persistence'",
                text(v)
            ));
        }
    }
    for v in volumes.iter() {
        let single = Resources::new(vec![v.clone()]).map_err(|e| e.to_string())?;
        if !checkpointed.contains(&single) {
            return Err("Persistent volumes not found".into());
        }
        if used.contains(&single) {
            return Err("Persistent volumes in use".into());
        }
    }
    Ok(())
}

fn validate_grow(grow: &operation::GrowVolume, capabilities: &[i32]) -> Result<(), String> {
    Resources::new(vec![grow.volume.clone()])
        .map_err(|e| format!("Invalid resource in the 'GrowVolume.volume' field: {e}"))?;
    Resources::new(vec![grow.addition.clone()])
        .map_err(|e| format!("Invalid resource in the 'GrowVolume.addition' field: {e}"))?;
    if grow.addition.scalar.as_ref().map_or(0.0, |s| s.value) <= 0.0 {
        return Err("The size of 'GrowVolume.addition' field must be greater than zero".into());
    }
    validate_volume_shape(&grow.volume)
        .map_err(|e| format!("Invalid persistent volume in the 'GrowVolume.volume' field: {e}"))?;
    let stripped = conversions::strip_persistence(&grow.volume);
    let combined = Resources::new(vec![stripped, grow.addition.clone()]);
    if combined.map_or(true, |c| c.len() != 1) {
        return Err(
            "Incompatible resources in the 'GrowVolume.volume' and 'GrowVolume.addition' fields"
                .into(),
        );
    }
    if !has_capability(capabilities, AgentCapability::ResizeVolume) {
        return Err(format!(
            "Volume {} cannot be grown on an agent without RESIZE_VOLUME capability",
            text(&grow.volume)
        ));
    }
    Ok(())
}

fn validate_shrink(shrink: &operation::ShrinkVolume, capabilities: &[i32]) -> Result<(), String> {
    Resources::new(vec![shrink.volume.clone()])
        .map_err(|e| format!("Invalid resource in the 'ShrinkVolume.volume' field: {e}"))?;
    let subtract = shrink.subtract.value;
    if subtract.is_nan() || subtract <= 0.0 {
        return Err("Value of 'ShrinkVolume.subtract' must be greater than zero".into());
    }
    if shrink.volume.scalar.as_ref().map_or(0.0, |s| s.value) <= subtract {
        return Err(
            "Value of 'ShrinkVolume.subtract' must be smaller than the size of 'ShrinkVolume.volume'"
                .into(),
        );
    }
    let mount = shrink
        .volume
        .disk
        .as_ref()
        .and_then(|d| d.source.as_ref())
        .is_some_and(|s| s.r#type == v1::resource::disk_info::source::Type::Mount as i32);
    if mount {
        return Err("Shrinking a volume on a MOUNT disk is not supported".into());
    }
    validate_volume_shape(&shrink.volume).map_err(|e| {
        format!("Invalid persistent volume in the 'ShrinkVolume.volume' field: {e}")
    })?;
    if !has_capability(capabilities, AgentCapability::ResizeVolume) {
        return Err(format!(
            "Volume {} cannot be shrunk on an agent without RESIZE_VOLUME capability",
            text(&shrink.volume)
        ));
    }
    Ok(())
}

/// A volume's `container_path` names a place inside the sandbox: relative,
/// non-empty, without empty, `.` or `..` components.
fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .trim_end_matches('/')
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// Copies `role` into every resource of the operation that has no
/// allocation (frameworks that are not MULTI_ROLE never set it).
fn inject_allocation(op: &mut Operation, role: &str) {
    let inject = |r: &mut Resource| {
        if r.allocation_info.is_none() {
            r.allocation_info = Some(v1::resource::AllocationInfo {
                role: Some(role.to_string()),
            });
        }
    };
    if let Some(x) = op.reserve.as_mut() {
        x.resources.iter_mut().for_each(inject);
        x.source.iter_mut().for_each(inject);
    }
    if let Some(x) = op.unreserve.as_mut() {
        x.resources.iter_mut().for_each(inject);
    }
    if let Some(x) = op.create.as_mut() {
        x.volumes.iter_mut().for_each(inject);
    }
    if let Some(x) = op.destroy.as_mut() {
        x.volumes.iter_mut().for_each(inject);
    }
    if let Some(x) = op.grow_volume.as_mut() {
        inject(&mut x.volume);
        inject(&mut x.addition);
    }
    if let Some(x) = op.shrink_volume.as_mut() {
        inject(&mut x.volume);
    }
}

/// The missing-field message of Mesos's `validateAndUpgradeResources`.
fn require_body(op: &Operation) -> Result<(), String> {
    let kind = op.r#type.and_then(|t| operation::Type::try_from(t).ok());
    let present = match kind {
        Some(operation::Type::Reserve) => op.reserve.is_some(),
        Some(operation::Type::Unreserve) => op.unreserve.is_some(),
        Some(operation::Type::Create) => op.create.is_some(),
        Some(operation::Type::Destroy) => op.destroy.is_some(),
        Some(operation::Type::GrowVolume) => op.grow_volume.is_some(),
        Some(operation::Type::ShrinkVolume) => op.shrink_volume.is_some(),
        _ => return Err("Unknown offer operation".into()),
    };
    if present {
        return Ok(());
    }
    Err(match kind {
        Some(operation::Type::Reserve) => {
            "A RESERVE offer operation must have the Offer.Operation.reserve field set.".into()
        }
        Some(operation::Type::Unreserve) => {
            "An UNRESERVE offer operation must have the Offer.Operation.unreserve field set.".into()
        }
        Some(operation::Type::Create) => {
            "A CREATE offer operation must have the Offer.Operation.create field set.".into()
        }
        Some(operation::Type::Destroy) => {
            "A DESTROY offer operation must have the Offer.Operation.destroy field set.".into()
        }
        Some(operation::Type::GrowVolume) => {
            "A GROW_VOLUME operation must have the Offer.Operation.grow_volume field set".into()
        }
        _ => {
            "A SHRINK_VOLUME offer operation must have the Offer.Operation.shrink_volume field set"
                .into()
        }
    })
}

/// The principal of `r`'s most refined reservation ("" if none).
fn reserver(r: &Resource) -> String {
    r.reservations
        .last()
        .and_then(|t| t.principal.clone())
        .unwrap_or_default()
}

/// The ACL checks of one operation: (action, object, owner) for each
/// resource it touches.
fn authorization_requests(op: &Operation) -> Vec<(Action, String, Option<String>)> {
    let role = |r: &Resource| reservation_role(r).unwrap_or("*").to_string();
    let mut out = Vec::new();
    if let Some(x) = &op.reserve {
        for r in &x.resources {
            out.push((Action::ReserveResources, role(r), None));
        }
        // Re-reserving takes the source's reservations away from whoever
        // made them: that is an unreservation of each.
        for r in x
            .source
            .iter()
            .filter(|r| conversions::is_dynamically_reserved(r))
        {
            let reserver = reserver(r);
            out.push((
                Action::UnreserveResources,
                reserver.clone(),
                Some(reserver).filter(|p| !p.is_empty()),
            ));
        }
    }
    if let Some(x) = &op.unreserve {
        for r in &x.resources {
            let reserver = reserver(r);
            out.push((
                Action::UnreserveResources,
                reserver.clone(),
                Some(reserver).filter(|p| !p.is_empty()),
            ));
        }
    }
    if let Some(x) = &op.create {
        for v in &x.volumes {
            out.push((Action::CreateVolumes, role(v), None));
        }
    }
    if let Some(x) = &op.destroy {
        for v in &x.volumes {
            let creator = persistence_principal(v).unwrap_or_default().to_string();
            out.push((
                Action::DestroyVolumes,
                creator.clone(),
                Some(creator).filter(|p| !p.is_empty()),
            ));
        }
    }
    for v in [
        op.grow_volume.as_ref().map(|g| &g.volume),
        op.shrink_volume.as_ref().map(|s| &s.volume),
    ]
    .into_iter()
    .flatten()
    {
        out.push((
            Action::ResizeVolumes,
            role(v),
            persistence_principal(v).map(str::to_string),
        ));
    }
    out
}

impl Master {
    /// The dynamic reservations and volumes of an agent as the registry
    /// holds them.
    pub fn checkpointed_resources(&self, agent_id: &str) -> Resources {
        self.agent_resources
            .get(agent_id)
            .cloned()
            .unwrap_or_default()
    }

    /// What tasks and executors on `agent_id` use (unallocated form).
    pub fn used_resources(&self, agent_id: &str) -> Resources {
        let mut used = Resources::default();
        let Some(agent) = self.agents.get(agent_id) else {
            return used;
        };
        for (framework_id, task_id) in agent.tasks.iter() {
            let Some(task) = self
                .frameworks
                .get(framework_id)
                .and_then(|f| f.tasks.get(task_id))
            else {
                continue;
            };
            if super::is_terminal(task.state()) {
                continue;
            }
            if let Ok(r) = Resources::new(task.resources()) {
                used += r;
            }
        }
        for executor in agent.executors.values() {
            if let Ok(r) = Resources::new(executor.resources.clone()) {
                used += r;
            }
        }
        used.unallocated()
    }

    fn validate_operation(
        &self,
        agent_id: &str,
        op: &Operation,
        caller: &Caller,
    ) -> Result<(), String> {
        require_body(op)?;
        let capabilities: &[i32] = self
            .agents
            .get(agent_id)
            .map_or(&[], |a| a.capabilities.as_slice());
        let checkpointed = self.checkpointed_resources(agent_id);
        match op.r#type.and_then(|t| operation::Type::try_from(t).ok()) {
            Some(operation::Type::Reserve) => validate_reserve(
                op.reserve.as_ref().unwrap_or(&Default::default()),
                caller,
                capabilities,
            ),
            Some(operation::Type::Unreserve) => {
                validate_unreserve(op.unreserve.as_ref().unwrap_or(&Default::default()))
            }
            Some(operation::Type::Create) => validate_create(
                op.create.as_ref().unwrap_or(&Default::default()),
                &checkpointed,
                caller,
                capabilities,
            ),
            Some(operation::Type::Destroy) => validate_destroy(
                op.destroy.as_ref().unwrap_or(&Default::default()),
                &checkpointed,
                &self.used_resources(agent_id),
            ),
            Some(operation::Type::GrowVolume) => match &op.grow_volume {
                Some(g) => validate_grow(g, capabilities),
                None => Err("Expecting 'grow_volume' to be present".into()),
            },
            Some(operation::Type::ShrinkVolume) => match &op.shrink_volume {
                Some(s) => validate_shrink(s, capabilities),
                None => Err("Expecting 'shrink_volume' to be present".into()),
            },
            _ => Err("Unknown offer operation".into()),
        }
    }

    fn authorize_operation(&self, op: &Operation, principal: Option<&str>) -> Result<(), Denied> {
        for (action, object, owner) in authorization_requests(op) {
            let object = match object.as_str() {
                "" => Object::Any,
                value => Object::Value(value),
            };
            match action {
                Action::DestroyVolumes | Action::ResizeVolumes => self.config.authz.check_volume(
                    action,
                    principal,
                    object,
                    owner.as_deref(),
                    true,
                )?,
                _ => self
                    .config
                    .authz
                    .check_owned(action, principal, object, owner.as_deref())?,
            }
        }
        Ok(())
    }

    /// Why `principal` may not launch `task_id` with `resources`: the first
    /// persistent volume among them it may not use, with the rule.
    pub(crate) fn volume_denial<'r>(
        &self,
        principal: Option<&str>,
        task_id: &str,
        resources: impl Iterator<Item = &'r Resource>,
    ) -> Option<String> {
        resources
            .filter(|r| conversions::is_persistent_volume(r))
            .find_map(|v| {
                self.may_use_volume(principal, v, true).err().map(|denied| {
                    format!(
                        "Principal '{}' is not authorized to use persistent volume '{}' in task {task_id}: {}",
                        principal.unwrap_or(""),
                        persistence_id(v).unwrap_or_default(),
                        denied.explanation
                    )
                })
            })
    }

    /// Whether `principal` may launch tasks on the volume `volume`
    /// (`use_volumes` on its creator).
    pub(crate) fn may_use_volume(
        &self,
        principal: Option<&str>,
        volume: &Resource,
        audit: bool,
    ) -> Result<(), Denied> {
        let creator = persistence_principal(volume);
        let object = creator.map_or(Object::Any, Object::Value);
        self.config
            .authz
            .check_volume(Action::UseVolumes, principal, object, creator, audit)
    }

    /// An operator's RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME or
    /// SHRINK_VOLUME on `agent_id`. On success the change is staged; the
    /// returned [`Durable`] resolves once the registry has it on disk,
    /// which is when the caller may answer 202.
    pub fn operator_operation(
        &mut self,
        agent_id: &str,
        op: Operation,
        principal: Option<&str>,
        now: std::time::Instant,
    ) -> Result<Durable, OperationError> {
        let name = conversions::operation_name(&op);
        let Some(agent) = self.agents.get(agent_id) else {
            return self.orphan_operation(agent_id, op, principal);
        };
        let agent_text = format!("{} at {} ({})", agent.id, agent.pid, agent.info.hostname);
        let caller = Caller {
            principal,
            framework_roles: None,
        };
        if let Err(e) = self.validate_operation(agent_id, &op, &caller) {
            let prefix = match name {
                "DESTROY" | "UNRESERVE" => format!("Invalid {name} operation: "),
                _ => format!("Invalid {name} operation on agent {agent_text}: "),
            };
            return Err(OperationError::BadRequest(format!("{prefix}{e}")));
        }
        self.authorize_operation(&op, principal)
            .map_err(OperationError::Forbidden)?;
        let conversions = conversions::conversions(&op)
            .map_err(|e| OperationError::BadRequest(format!("Invalid {name} operation: {e}")))?;
        // What the operation needs may sit in outstanding offers: rescind
        // them one at a time until it fits.
        let fits = |m: &Master| {
            m.allocator
                .available(agent_id)
                .is_some_and(|a| conversions::apply(a, &conversions, name).is_ok())
        };
        if !fits(self) {
            let offers: Vec<String> = self
                .agents
                .get(agent_id)
                .map(|a| a.offers.iter().cloned().collect())
                .unwrap_or_default();
            for offer_id in offers {
                self.remove_offer(&offer_id, true, None, now);
                if fits(self) {
                    break;
                }
            }
        }
        let available = self
            .allocator
            .available(agent_id)
            .cloned()
            .unwrap_or_default();
        if let Err(e) = conversions::apply(&available, &conversions, name) {
            let message = match e {
                ConversionError::Insufficient { have, want, .. } => {
                    format!("{have} does not contain {want}")
                }
                other => other.to_string(),
            };
            return Err(OperationError::Conflict(message));
        }
        tracing::info!(%agent_id, operation = name, principal = principal.unwrap_or(""), "applying operator operation");
        self.convert_agent_resources(agent_id, None, &conversions);
        Ok(self.durable())
    }

    /// DESTROY or UNRESERVE of what the registry holds for an agent that is
    /// gone (not registered, not expected back): the registry alone
    /// changes, as there is no agent to tell.
    fn orphan_operation(
        &mut self,
        agent_id: &str,
        op: Operation,
        principal: Option<&str>,
    ) -> Result<Durable, OperationError> {
        let name = conversions::operation_name(&op);
        let orphaned = self.agent_resources.contains_key(agent_id)
            && !self.recovered_agents.contains_key(agent_id)
            && !self.unreachable_agents.contains_key(agent_id);
        if !orphaned {
            return Err(OperationError::BadRequest(
                "No agent found with specified ID".into(),
            ));
        }
        if !matches!(name, "DESTROY" | "UNRESERVE") {
            return Err(OperationError::BadRequest(format!(
                "Agent {agent_id} is gone: only DESTROY and UNRESERVE of what the registry still holds for it are possible"
            )));
        }
        let caller = Caller {
            principal,
            framework_roles: None,
        };
        self.validate_operation(agent_id, &op, &caller)
            .map_err(|e| OperationError::BadRequest(format!("Invalid {name} operation: {e}")))?;
        self.authorize_operation(&op, principal)
            .map_err(OperationError::Forbidden)?;
        let conversions = conversions::conversions(&op)
            .map_err(|e| OperationError::BadRequest(format!("Invalid {name} operation: {e}")))?;
        // What the registry holds, plus the plain resources its entries
        // came from, is the agent's total as far as the registry knows.
        let held = self.checkpointed_resources(agent_id);
        let mut total = held.clone();
        for r in held.iter() {
            let _ = total.push(conversions::strip_dynamic(r));
        }
        let after = conversions::apply(&total, &conversions, name).map_err(|e| match e {
            ConversionError::Insufficient { have, want, .. } => {
                OperationError::Conflict(format!("{have} does not contain {want}"))
            }
            other => OperationError::BadRequest(other.to_string()),
        })?;
        tracing::info!(%agent_id, operation = name, "applying operator operation to a gone agent's registry record");
        self.stage_agent_resources(agent_id, conversions::checkpointed(&after));
        Ok(self.durable())
    }

    /// One operation of an ACCEPT. `remaining` is what is left of the
    /// accepted offers; the conversions apply to it, so later operations
    /// of the same ACCEPT (a LAUNCH) see their result. Errors drop the
    /// operation, as Mesos does.
    pub(crate) fn offer_operation(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        mut op: Operation,
        remaining: &mut Resources,
    ) {
        let name = conversions::operation_name(&op);
        inject_allocation(&mut op, role);
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let principal = framework.principal.clone();
        let roles = framework.roles.clone();
        let caller = Caller {
            principal: principal.as_deref(),
            framework_roles: Some(&roles),
        };
        let agent_text = self
            .agents
            .get(agent_id)
            .map(|a| format!("{} at {} ({})", a.id, a.pid, a.info.hostname))
            .unwrap_or_else(|| agent_id.to_string());
        let outcome = (|| -> Result<Vec<Conversion>, String> {
            if name == "RESERVE" && op.reserve.as_ref().is_some_and(|r| !r.source.is_empty()) {
                return Err("Operation attempted with invalid resources: Reservation updates are not yet implemented for the scheduler API.".into());
            }
            self.validate_operation(agent_id, &op, &caller)
                .map_err(|e| format!("{e}; on agent {agent_text}"))?;
            self.authorize_operation(&op, principal.as_deref())
                .map_err(|denied| {
                    format!(
                        "Principal '{}' no authorized to {name}: {}",
                        principal.as_deref().unwrap_or(""),
                        denied.explanation
                    )
                })?;
            let conversions = conversions::conversions(&op).map_err(|e| e.to_string())?;
            let after = conversions::apply(remaining, &conversions, &format!("Invalid {name}"))
                .map_err(|e| match e {
                    ConversionError::Insufficient { have, want, .. } => {
                        format!("{have} does not contain {want}")
                    }
                    other => other.to_string(),
                })?;
            *remaining = after;
            Ok(conversions)
        })();
        let conversions = match outcome {
            Ok(c) => c,
            Err(message) => {
                tracing::warn!(%framework_id, "Dropping {name} operation from framework {framework_id}: {message}");
                self.operation_status(
                    framework_id,
                    agent_id,
                    &op,
                    v1::OperationState::OperationError,
                    Some(message),
                    false,
                );
                return;
            }
        };
        tracing::info!(%framework_id, %agent_id, "Applying {name} operation from framework {framework_id} to agent {agent_id}");
        self.convert_agent_resources(agent_id, Some(framework_id), &conversions);
        let converted: Vec<Resource> = conversions
            .iter()
            .flat_map(|c| c.converted.iter().cloned())
            .collect();
        if op.id.is_some() {
            self.operation_status_converted(framework_id, agent_id, &op, converted);
        }
    }

    fn operation_status_converted(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        op: &Operation,
        converted: Vec<Resource>,
    ) {
        let Some(id) = op.id.clone() else {
            return;
        };
        let status = v1::OperationStatus {
            operation_id: Some(id),
            state: v1::OperationState::OperationFinished as i32,
            message: None,
            converted_resources: converted,
            uuid: Some(v1::Uuid {
                value: bytes::Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes()),
            }),
            agent_id: Some(v1::AgentId {
                value: agent_id.to_string(),
            }),
            resource_provider_id: None,
        };
        self.after_commit.push(AfterCommit::Operation {
            framework_id: framework_id.to_string(),
            agent_id: agent_id.to_string(),
            operation: Box::new(op.clone()),
            status,
        });
    }

    /// Tells the framework about an operation that has an `id`: now for a
    /// refusal, after the next registry flush for a change.
    fn operation_status(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        op: &Operation,
        state: v1::OperationState,
        message: Option<String>,
        durable: bool,
    ) {
        let Some(id) = op.id.clone() else {
            return;
        };
        let status = v1::OperationStatus {
            operation_id: Some(id),
            state: state as i32,
            message,
            agent_id: Some(v1::AgentId {
                value: agent_id.to_string(),
            }),
            ..Default::default()
        };
        if durable {
            self.after_commit.push(AfterCommit::Operation {
                framework_id: framework_id.to_string(),
                agent_id: agent_id.to_string(),
                operation: Box::new(op.clone()),
                status,
            });
            return;
        }
        self.record_operation(framework_id, agent_id, op, status.clone());
        if let Some(framework) = self.frameworks.get(framework_id) {
            framework.send(&operation_event(status));
        }
    }

    fn record_operation(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        op: &Operation,
        status: v1::OperationStatus,
    ) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.record_operation(v1::Operation {
                framework_id: Some(v1::FrameworkId {
                    value: framework_id.to_string(),
                }),
                agent_id: Some(v1::AgentId {
                    value: agent_id.to_string(),
                }),
                info: op.clone(),
                latest_status: status.clone(),
                statuses: vec![status.clone()],
                uuid: status.uuid.clone().unwrap_or_else(|| v1::Uuid {
                    value: bytes::Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes()),
                }),
            });
        }
    }

    /// Applies conversions to the agent's total and the allocator (to the
    /// framework's allocation when given, else to what is available),
    /// stages the agent's new checkpointed resources in the registry and
    /// queues the `CheckpointResourcesMessage` that tells the agent.
    fn convert_agent_resources(
        &mut self,
        agent_id: &str,
        framework_id: Option<&str>,
        conversions: &[Conversion],
    ) {
        let plain: Vec<Conversion> = conversions
            .iter()
            .map(|c| Conversion {
                consumed: c.consumed.unallocated(),
                converted: c.converted.unallocated(),
            })
            .collect();
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        match conversions::apply(&agent.total, &plain, "agent total") {
            Ok(total) => agent.total = total,
            Err(e) => {
                // Validated against what is available, which the total
                // holds; reaching this is a bug, and the registry is not
                // touched.
                tracing::error!(%agent_id, "operation does not apply to the agent's total: {e}");
                return;
            }
        }
        let checkpointed = conversions::checkpointed(&agent.total);
        let pid = agent.pid.clone();
        self.allocator
            .convert(agent_id, framework_id, conversions, &plain);
        self.stage_agent_resources(agent_id, checkpointed.clone());
        self.send(
            &pid,
            &msg::CheckpointResourcesMessage {
                resources: checkpointed.into_vec(),
            },
        );
        self.after_commit
            .push(AfterCommit::AgentUpdated(agent_id.to_string()));
    }

    /// Records `resources` as the agent's dynamic reservations and volumes,
    /// durable at the next [`Master::commit`].
    pub(crate) fn stage_agent_resources(&mut self, agent_id: &str, resources: Resources) {
        let list = resources.clone().into_vec();
        if let Err(e) = self.registry.stage_resources(agent_id, &list) {
            registry_failed(&e);
        }
        self.registry_dirty = true;
        if resources.is_empty() {
            self.agent_resources.remove(agent_id);
        } else {
            self.agent_resources.insert(agent_id.to_string(), resources);
        }
    }

    /// Settles an (re)registering agent's dynamic reservations and volumes
    /// and returns its total. A durable registry wins over what the agent
    /// reports (every change reached the registry before the agent heard
    /// of it, so a difference is a message the agent missed); a forgetful
    /// one adopts the report. `Ok((total, tell))`: when `tell`, the agent
    /// must be sent the registry's set.
    pub(crate) fn settle_agent_resources(
        &mut self,
        agent_id: &str,
        static_resources: &Resources,
        reported: &[Resource],
    ) -> Result<(Resources, bool), String> {
        let reported = Resources::new(reported.to_vec()).unwrap_or_else(|e| {
            tracing::warn!(%agent_id, "agent reported invalid checkpointed resources, ignoring them: {e}");
            Resources::default()
        });
        // The registry speaks for agents it knows (admitted before, or
        // holding reservations); an agent it has no record of (a new master
        // work dir, a moved master) keeps what it reports, which is adopted.
        let known = self.recovered_agents.contains_key(agent_id)
            || self.unreachable_agents.contains_key(agent_id)
            || self.agent_resources.contains_key(agent_id);
        let authoritative = if self.registry.is_durable() && known {
            self.checkpointed_resources(agent_id)
        } else {
            if reported != self.checkpointed_resources(agent_id) {
                self.stage_agent_resources(agent_id, reported.clone());
            }
            reported.clone()
        };
        let total =
            conversions::apply_checkpointed(static_resources, &authoritative).map_err(|e| {
                format!(
                    "its --resources cannot hold its reservations and volumes in the registry: {e}"
                )
            })?;
        let tell = reported != authoritative;
        if tell {
            tracing::warn!(%agent_id, reported = %reported, registry = %authoritative,
                "agent's checkpointed resources differ from the registry; the registry wins and the agent is told");
        }
        Ok((total, tell))
    }

    /// Sends an agent its dynamic reservations and volumes.
    pub(crate) fn tell_checkpointed(&mut self, agent_id: &str) {
        let Some(pid) = self.agents.get(agent_id).map(|a| a.pid.clone()) else {
            return;
        };
        let resources = self.checkpointed_resources(agent_id).into_vec();
        self.send(&pid, &msg::CheckpointResourcesMessage { resources });
    }

    /// ACKNOWLEDGE_OPERATION_STATUS: a terminal status the framework has
    /// seen is forgotten (Mesos keeps an operation until its terminal
    /// status is acknowledged).
    pub(crate) fn acknowledge_operation(
        &mut self,
        framework_id: &str,
        ack: &mesos_proto::v1::scheduler::call::AcknowledgeOperationStatus,
    ) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.operations.retain(|o| {
                o.latest_status.operation_id.as_ref() != Some(&ack.operation_id)
                    || o.latest_status.uuid.as_ref().map(|u| &u.value[..]) != Some(&ack.uuid[..])
            });
        }
    }

    /// RECONCILE_OPERATIONS: the latest status of each operation named (all
    /// of the framework's when none is), OPERATION_UNKNOWN for one this
    /// master does not know.
    pub(crate) fn reconcile_operations(
        &mut self,
        framework_id: &str,
        reconcile: &mesos_proto::v1::scheduler::call::ReconcileOperations,
    ) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let statuses: Vec<v1::OperationStatus> = if reconcile.operations.is_empty() {
            framework
                .operations
                .iter()
                .map(|o| o.latest_status.clone())
                .collect()
        } else {
            reconcile
                .operations
                .iter()
                .map(|wanted| {
                    framework
                        .operations
                        .iter()
                        .find(|o| {
                            o.latest_status.operation_id.as_ref() == Some(&wanted.operation_id)
                        })
                        .map(|o| o.latest_status.clone())
                        .unwrap_or_else(|| v1::OperationStatus {
                            operation_id: Some(wanted.operation_id.clone()),
                            state: v1::OperationState::OperationUnknown as i32,
                            agent_id: wanted.agent_id.clone(),
                            message: Some("This master has no record of the operation".into()),
                            ..Default::default()
                        })
                })
                .collect()
        };
        for mut status in statuses {
            // Reconciliation answers carry no uuid: nothing to acknowledge.
            status.uuid = None;
            framework.send(&operation_event(status));
        }
    }

    /// A receiver that resolves after the next registry flush.
    pub fn durable(&mut self) -> Durable {
        let (tx, rx) = oneshot::channel();
        self.durable_waiters.push(tx);
        rx
    }

    /// Flushes what was staged since the last call, then releases what
    /// waited for it: replies, operation statuses. The actor calls this
    /// after each batch of inputs and before sending any message, so one
    /// flush covers every mutation of the batch (group commit) and no
    /// agent hears of a change the registry could still lose.
    pub fn commit(&mut self) {
        if self.registry_dirty {
            if let Err(e) = self.registry.sync() {
                registry_failed(&e);
            }
            self.registry_dirty = false;
            self.counters.registry_flushes += 1;
        }
        for waiter in self.durable_waiters.drain(..) {
            let _ = waiter.send(());
        }
        for item in std::mem::take(&mut self.after_commit) {
            match item {
                AfterCommit::Operation {
                    framework_id,
                    agent_id,
                    operation,
                    status,
                } => {
                    self.record_operation(&framework_id, &agent_id, &operation, status.clone());
                    if let Some(framework) = self.frameworks.get(&framework_id) {
                        framework.send(&operation_event(status));
                    }
                }
                AfterCommit::AgentUpdated(agent_id) => self.emit_agent_added(&agent_id),
            }
        }
    }
}

fn operation_event(status: v1::OperationStatus) -> Event {
    Event {
        r#type: Some(event::Type::UpdateOperationStatus as i32),
        update_operation_status: Some(event::UpdateOperationStatus { status }),
        ..Default::default()
    }
}

/// A registry that cannot store is fatal, as in Mesos: continuing would
/// acknowledge changes a restart forgets.
fn registry_failed(e: &crate::registry::RegistryError) -> ! {
    tracing::error!("registry write failed, exiting so no unrecorded change is acknowledged: {e}");
    eprintln!("mesos-master: registry write failed: {e}");
    std::process::exit(70)
}
