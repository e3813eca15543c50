//! Offer operations as resource conversions, as Mesos's
//! `getResourceConversions` and `Resources::apply` define them: RESERVE
//! turns resources into the same resources with one more reservation on
//! the stack, CREATE turns reserved disk into a persistent volume, and so
//! on. The master applies them to an agent's total and to offered
//! resources, the agent to its checkpointed resources; both sides use
//! these functions, so they cannot disagree about what an operation does.
//!
//! Pure values: validation against cluster state (who may, what exists)
//! lives with the master.

use mesos_proto::v1::offer::{operation, Operation};
use mesos_proto::v1::resource::reservation_info;
use mesos_proto::v1::value::Scalar;
use mesos_proto::v1::Resource;

use crate::resources::{from_fixed, to_fixed, Resources, ResourcesError};

/// `consumed` is replaced by `converted`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// What the operation takes.
    pub consumed: Resources,
    /// What it gives back in exchange.
    pub converted: Resources,
}

/// Why an operation's conversions could not be built or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    /// The operation is malformed (a missing field, a bad resource).
    #[error("{0}")]
    Invalid(String),
    /// The resources it consumes are not there.
    #[error("{kind} Operation: {have} does not contain {want}")]
    Insufficient {
        /// `Invalid RESERVE`, `Invalid CREATE`, ...
        kind: String,
        /// What was available.
        have: String,
        /// What the operation needed.
        want: String,
    },
}

impl From<ResourcesError> for ConversionError {
    fn from(e: ResourcesError) -> Self {
        ConversionError::Invalid(e.to_string())
    }
}

/// Whether the most refined reservation of `r` is dynamic.
pub fn is_dynamically_reserved(r: &Resource) -> bool {
    r.reservations
        .last()
        .is_some_and(|info| info.r#type == Some(reservation_info::Type::Dynamic as i32))
}

/// Whether `r` is a persistent volume.
pub fn is_persistent_volume(r: &Resource) -> bool {
    r.disk.as_ref().is_some_and(|d| d.persistence.is_some())
}

/// Whether the agent must checkpoint `r`: a dynamic reservation or a
/// persistent volume. Static reservations and unreserved resources come
/// from the agent's `--resources` and are never checkpointed.
pub fn is_checkpointed(r: &Resource) -> bool {
    is_dynamically_reserved(r) || is_persistent_volume(r)
}

/// The part of `total` an agent checkpoints and the registry keeps.
pub fn checkpointed(total: &Resources) -> Resources {
    total.filter(is_checkpointed)
}

/// `r` with its most refined reservation removed.
pub fn pop_reservation(r: &Resource) -> Resource {
    let mut out = r.clone();
    out.reservations.pop();
    out
}

/// `r` without its persistence and volume: the disk it was made of.
pub fn strip_persistence(r: &Resource) -> Resource {
    let mut out = r.clone();
    out.shared = None;
    if let Some(disk) = out.disk.as_mut() {
        disk.persistence = None;
        disk.volume = None;
        if disk.source.is_none() {
            out.disk = None;
        }
    }
    out
}

/// `r` with every dynamic reservation popped and its persistence removed:
/// what the agent's `--resources` gave before any operation.
pub fn strip_dynamic(r: &Resource) -> Resource {
    let mut out = strip_persistence(r);
    while is_dynamically_reserved(&out) {
        out.reservations.pop();
    }
    out
}

/// The agent's total: its `--resources` with its checkpointed reservations
/// and volumes applied (each one replaces the plain resources it was made
/// of). Fails when the static resources cannot hold them, e.g. the agent
/// was restarted with less disk than its volumes use.
pub fn apply_checkpointed(
    static_resources: &Resources,
    checkpointed: &Resources,
) -> Result<Resources, ConversionError> {
    let mut total = static_resources.clone();
    for r in checkpointed.iter() {
        let plain = Resources::new(vec![strip_dynamic(r)])?;
        if !total.contains(&plain) {
            return Err(ConversionError::Insufficient {
                kind: "Invalid checkpointed resources".into(),
                have: total.to_string(),
                want: plain.to_string(),
            });
        }
        total -= &plain;
        total.push(r.clone())?;
    }
    Ok(total)
}

fn resources(list: &[Resource]) -> Result<Resources, ConversionError> {
    Ok(Resources::new(list.to_vec())?)
}

fn scalar_value(r: &Resource) -> f64 {
    r.scalar.as_ref().map_or(0.0, |s| s.value)
}

fn with_scalar(r: &Resource, fixed: i64) -> Resource {
    let mut out = r.clone();
    out.scalar = Some(Scalar {
        value: from_fixed(fixed),
    });
    out
}

/// The conversions an operation performs. LAUNCH, LAUNCH_GROUP and the
/// resource-provider disk operations convert nothing here.
pub fn conversions(op: &Operation) -> Result<Vec<Conversion>, ConversionError> {
    let kind = op.r#type.and_then(|t| operation::Type::try_from(t).ok());
    let missing =
        |field: &str| ConversionError::Invalid(format!("Expecting '{field}' to be present"));
    match kind {
        Some(operation::Type::Reserve) => {
            let reserve = op.reserve.as_ref().ok_or_else(|| missing("reserve"))?;
            if !reserve.source.is_empty() {
                // Re-reservation: the whole source becomes the whole target.
                return Ok(vec![Conversion {
                    consumed: resources(&reserve.source)?,
                    converted: resources(&reserve.resources)?,
                }]);
            }
            reserve
                .resources
                .iter()
                .map(|r| {
                    Ok(Conversion {
                        consumed: Resources::new(vec![pop_reservation(r)])?,
                        converted: Resources::new(vec![r.clone()])?,
                    })
                })
                .collect()
        }
        Some(operation::Type::Unreserve) => {
            let unreserve = op.unreserve.as_ref().ok_or_else(|| missing("unreserve"))?;
            unreserve
                .resources
                .iter()
                .map(|r| {
                    Ok(Conversion {
                        consumed: Resources::new(vec![r.clone()])?,
                        converted: Resources::new(vec![pop_reservation(r)])?,
                    })
                })
                .collect()
        }
        Some(operation::Type::Create) => {
            let create = op.create.as_ref().ok_or_else(|| missing("create"))?;
            create
                .volumes
                .iter()
                .map(|v| {
                    Ok(Conversion {
                        consumed: Resources::new(vec![strip_persistence(v)])?,
                        converted: Resources::new(vec![v.clone()])?,
                    })
                })
                .collect()
        }
        Some(operation::Type::Destroy) => {
            let destroy = op.destroy.as_ref().ok_or_else(|| missing("destroy"))?;
            destroy
                .volumes
                .iter()
                .map(|v| {
                    Ok(Conversion {
                        consumed: Resources::new(vec![v.clone()])?,
                        converted: Resources::new(vec![strip_persistence(v)])?,
                    })
                })
                .collect()
        }
        Some(operation::Type::GrowVolume) => {
            let grow = op
                .grow_volume
                .as_ref()
                .ok_or_else(|| missing("grow_volume"))?;
            let size = to_fixed(scalar_value(&grow.volume));
            let more = to_fixed(scalar_value(&grow.addition));
            let mut consumed = Resources::new(vec![grow.volume.clone()])?;
            consumed.push(grow.addition.clone())?;
            let grown = size.checked_add(more).ok_or_else(|| {
                ConversionError::Invalid("GROW_VOLUME would overflow the volume's size".into())
            })?;
            Ok(vec![Conversion {
                consumed,
                converted: Resources::new(vec![with_scalar(&grow.volume, grown)])?,
            }])
        }
        Some(operation::Type::ShrinkVolume) => {
            let shrink = op
                .shrink_volume
                .as_ref()
                .ok_or_else(|| missing("shrink_volume"))?;
            let size = to_fixed(scalar_value(&shrink.volume));
            let less = to_fixed(shrink.subtract.value);
            let mut converted =
                Resources::new(vec![with_scalar(&shrink.volume, size.saturating_sub(less))])?;
            converted.push(with_scalar(&strip_persistence(&shrink.volume), less))?;
            Ok(vec![Conversion {
                consumed: Resources::new(vec![shrink.volume.clone()])?,
                converted,
            }])
        }
        _ => Ok(Vec::new()),
    }
}

/// The name Mesos's messages use for an operation (`RESERVE`, `CREATE`).
pub fn operation_name(op: &Operation) -> &'static str {
    op.r#type
        .and_then(|t| operation::Type::try_from(t).ok())
        .map_or("UNKNOWN", |t| t.as_str_name())
}

/// `total` with `conversions` applied, in order; `kind` names the
/// operation in the error (`Invalid RESERVE`).
pub fn apply(
    total: &Resources,
    conversions: &[Conversion],
    kind: &str,
) -> Result<Resources, ConversionError> {
    let mut out = total.clone();
    for c in conversions {
        if !out.contains(&c.consumed) {
            return Err(ConversionError::Insufficient {
                kind: kind.to_string(),
                have: out.to_string(),
                want: c.consumed.to_string(),
            });
        }
        out -= &c.consumed;
        out += &c.converted;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::resource::disk_info::Persistence;
    use mesos_proto::v1::resource::{DiskInfo, ReservationInfo};
    use mesos_proto::v1::{offer::operation as op, volume};

    fn plain(text: &str) -> Resources {
        Resources::parse(text).expect("parses")
    }

    fn reserved(name: &str, value: f64, role: &str, principal: &str) -> Resource {
        let mut r = plain(&format!("{name}:{value}")).into_vec().remove(0);
        r.reservations.push(ReservationInfo {
            r#type: Some(reservation_info::Type::Dynamic as i32),
            role: Some(role.into()),
            principal: Some(principal.into()),
            labels: None,
        });
        r
    }

    fn volume_of(disk: Resource, id: &str) -> Resource {
        let mut v = disk;
        v.disk = Some(Box::new(DiskInfo {
            persistence: Some(Persistence {
                id: id.into(),
                principal: Some("alice".into()),
            }),
            volume: Some(mesos_proto::v1::Volume {
                container_path: "data".into(),
                mode: volume::Mode::Rw as i32,
                ..Default::default()
            }),
            source: None,
        }));
        v
    }

    fn operation(kind: op::Type) -> Operation {
        Operation {
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    #[test]
    fn reserve_then_create_then_destroy_then_unreserve_round_trips() {
        let total = plain("cpus:4;mem:1024;disk:2048");
        let disk = reserved("disk", 512.0, "dev", "alice");
        let mut reserve = operation(op::Type::Reserve);
        reserve.reserve = Some(op::Reserve {
            resources: vec![disk.clone(), reserved("cpus", 1.0, "dev", "alice")],
            source: vec![],
        });
        let after_reserve =
            apply(&total, &conversions(&reserve).expect("valid"), "RESERVE").expect("valid");
        assert_eq!(
            after_reserve.unreserved(),
            plain("cpus:3;mem:1024;disk:1536")
        );
        assert_eq!(checkpointed(&after_reserve).len(), 2);

        let vol = volume_of(disk.clone(), "v1");
        let mut create = operation(op::Type::Create);
        create.create = Some(op::Create {
            volumes: vec![vol.clone()],
        });
        let after_create = apply(
            &after_reserve,
            &conversions(&create).expect("valid"),
            "CREATE",
        )
        .expect("valid");
        assert!(after_create.iter().any(is_persistent_volume));
        assert_eq!(after_create.disk(), 2048.0, "a volume is still disk");

        // A second CREATE of the same disk finds it consumed.
        let err = apply(
            &after_create,
            &conversions(&create).expect("valid"),
            "Invalid CREATE",
        )
        .expect_err("disk is taken");
        assert!(
            err.to_string().starts_with("Invalid CREATE Operation: "),
            "{err}"
        );

        let mut destroy = operation(op::Type::Destroy);
        destroy.destroy = Some(op::Destroy { volumes: vec![vol] });
        let after_destroy = apply(
            &after_create,
            &conversions(&destroy).expect("valid"),
            "DESTROY",
        )
        .expect("valid");
        assert_eq!(after_destroy, after_reserve);

        let mut unreserve = operation(op::Type::Unreserve);
        unreserve.unreserve = Some(op::Unreserve {
            resources: vec![disk, reserved("cpus", 1.0, "dev", "alice")],
        });
        let back = apply(
            &after_destroy,
            &conversions(&unreserve).expect("valid"),
            "UNRESERVE",
        )
        .expect("valid");
        assert_eq!(back, total);
    }

    #[test]
    fn grow_and_shrink_change_the_volume_size_and_free_disk() {
        let disk = reserved("disk", 100.0, "dev", "alice");
        let vol = volume_of(disk, "v1");
        let mut total = Resources::new(vec![vol.clone()]).expect("valid");
        total
            .push(reserved("disk", 50.0, "dev", "alice"))
            .expect("valid");

        let mut grow = operation(op::Type::GrowVolume);
        grow.grow_volume = Some(op::GrowVolume {
            volume: vol.clone(),
            addition: reserved("disk", 50.0, "dev", "alice"),
        });
        let grown =
            apply(&total, &conversions(&grow).expect("valid"), "GROW_VOLUME").expect("valid");
        let sizes: Vec<f64> = grown
            .iter()
            .filter(|r| is_persistent_volume(r))
            .map(scalar_value)
            .collect();
        assert_eq!(sizes, vec![150.0]);
        assert_eq!(grown.len(), 1, "all the spare disk went into the volume");

        let mut shrink = operation(op::Type::ShrinkVolume);
        shrink.shrink_volume = Some(op::ShrinkVolume {
            volume: with_scalar(&vol, to_fixed(150.0)),
            subtract: Scalar { value: 30.0 },
        });
        let shrunk = apply(
            &grown,
            &conversions(&shrink).expect("valid"),
            "SHRINK_VOLUME",
        )
        .expect("valid");
        let volume_size: f64 = shrunk
            .iter()
            .filter(|r| is_persistent_volume(r))
            .map(scalar_value)
            .sum();
        assert_eq!(volume_size, 120.0);
        assert_eq!(shrunk.filter(|r| !is_persistent_volume(r)).disk(), 30.0);
    }

    #[test]
    fn checkpointed_resources_reapply_onto_static_ones() {
        let static_resources = plain("cpus:4;mem:1024;disk:2048;cpus(ops):1");
        let disk = reserved("disk", 512.0, "dev", "alice");
        let vol = volume_of(disk, "v1");
        let checkpoint =
            Resources::new(vec![vol, reserved("mem", 256.0, "dev", "bob")]).expect("valid");
        let total = apply_checkpointed(&static_resources, &checkpoint).expect("valid");
        assert_eq!(checkpointed(&total), checkpoint);
        assert_eq!(total.unreserved(), plain("cpus:4;mem:768;disk:1536"));
        assert_eq!(
            total.reserved(Some("ops")).cpus(),
            1.0,
            "static reservation kept"
        );

        let small = plain("cpus:4;mem:1024;disk:100");
        let err = apply_checkpointed(&small, &checkpoint).expect_err("too little disk");
        assert!(err.to_string().contains("disk"), "{err}");
    }

    #[test]
    fn volume_on_static_reservation_strips_to_static() {
        let static_resources = plain("disk(dev):100");
        let r = static_resources.iter().next().expect("valid").clone();
        let vol = volume_of(r.clone(), "v1");
        assert_eq!(strip_dynamic(&vol), r);
        assert!(!is_dynamically_reserved(&vol));
        assert!(is_checkpointed(&vol));
        let total = apply_checkpointed(
            &static_resources,
            &Resources::new(vec![vol]).expect("valid"),
        );
        assert_eq!(total.expect("valid").len(), 1);
    }
}
