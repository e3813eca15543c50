//! A fast answer to "are all `required` fields present?" read straight off
//! the protobuf wire bytes, without building a `DynamicMessage`. It only
//! ever says yes when the reflective check would; anything else (a field
//! missing, a message split over several occurrences, groups, malformed
//! bytes) returns `false` and the caller takes the reflective path, which
//! gives the exact error.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{Cardinality, DescriptorPool, Kind};

/// Whether every required field of the message `M`, and of every
/// sub-message, is present in `bytes` in a form the fast path understands.
pub(crate) fn all_required_present<M: prost::Name>(bytes: &[u8]) -> bool {
    let plans = &*PLANS;
    plans
        .index(M::PACKAGE, M::NAME, M::full_name)
        .is_some_and(|i| walk(&plans.plans, i, bytes, 0).unwrap_or(false))
}

const MAX_DEPTH: usize = 64;

/// What the walk needs of one message type, read once from the descriptor
/// pool: asking prost-reflect per message and per field (iterating fields,
/// looking up kinds, collecting the required numbers) cost more than the
/// walk itself on the master's busiest path.
struct Plan {
    /// Numbers of its required fields.
    required: Box<[u32]>,
    /// Its message-typed fields, sorted by number: (number, plan of the
    /// field's type, whether it is a map).
    messages: Box<[(u32, usize, bool)]>,
}

struct Plans {
    /// package → bare name → plan, or None where the package has several
    /// messages of that name (nested in different parents).
    by_name: HashMap<String, HashMap<String, Option<usize>>>,
    /// Full name → plan.
    by_full_name: HashMap<String, usize>,
    plans: Vec<Plan>,
}

static PLANS: LazyLock<Plans> = LazyLock::new(|| Plans::of(crate::json::pool()));

impl Plans {
    /// The plan of a message. `name` is prost's bare name (`Operation` for
    /// `Offer.Operation`), so it only identifies a type its package has
    /// once; otherwise the full name (an allocation) decides.
    fn index(
        &self,
        package: &str,
        name: &str,
        full_name: impl FnOnce() -> String,
    ) -> Option<usize> {
        match self.by_name.get(package)?.get(name)? {
            Some(index) => Some(*index),
            None => self.by_full_name.get(&full_name()).copied(),
        }
    }

    fn of(pool: &DescriptorPool) -> Self {
        let messages: Vec<_> = pool.all_messages().collect();
        let by_full_name: HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_string(), i))
            .collect();
        let mut by_name: HashMap<String, HashMap<String, Option<usize>>> = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            by_name
                .entry(m.package_name().to_string())
                .or_default()
                .entry(m.name().to_string())
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i));
        }
        let plans = messages
            .iter()
            .map(|m| {
                let required = m
                    .fields()
                    .filter(|f| f.cardinality() == Cardinality::Required)
                    .map(|f| f.number())
                    .collect();
                let mut fields: Vec<(u32, usize, bool)> = m
                    .fields()
                    .filter_map(|f| match f.kind() {
                        Kind::Message(inner) => by_full_name
                            .get(inner.full_name())
                            .map(|&i| (f.number(), i, f.is_map())),
                        _ => None,
                    })
                    .collect();
                fields.sort_unstable();
                Plan {
                    required,
                    messages: fields.into(),
                }
            })
            .collect();
        Self {
            by_name,
            by_full_name,
            plans,
        }
    }
}

fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn walk(plans: &[Plan], index: usize, bytes: &[u8], depth: usize) -> Option<bool> {
    let plan = plans.get(index)?;
    if depth > MAX_DEPTH || plan.required.len() > 64 {
        return None;
    }
    let mut seen = 0u64;
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        if let Some(i) = plan.required.iter().position(|n| *n == number) {
            seen |= 1 << i;
        }
        match key & 7 {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos = pos.checked_add(8)?,
            5 => pos = pos.checked_add(4)?,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                let body = bytes.get(pos..end)?;
                if let Ok(at) = plan.messages.binary_search_by_key(&number, |m| m.0) {
                    let (_, inner, is_map) = plan.messages[at];
                    if is_map || !walk(plans, inner, body, depth + 1)? {
                        return Some(false);
                    }
                }
                pos = end;
            }
            _ => return None, // groups: let the reflective path decide
        }
        if pos > bytes.len() {
            return None;
        }
    }
    Some(seen.count_ones() as usize == plan.required.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal as msg;
    use crate::v1;
    use proptest::prelude::*;
    use prost::{Message, Name};

    fn status_update() -> Vec<u8> {
        msg::StatusUpdateMessage {
            update: msg::StatusUpdate {
                framework_id: v1::FrameworkId { value: "f".into() },
                slave_id: Some(v1::AgentId { value: "a".into() }),
                status: v1::TaskStatus {
                    task_id: v1::TaskId { value: "t".into() },
                    state: v1::TaskState::TaskRunning as i32,
                    uuid: Some(bytes::Bytes::from_static(&[1; 16])),
                    ..Default::default()
                },
                timestamp: 1.0,
                uuid: Some(bytes::Bytes::from_static(&[1; 16])),
                ..Default::default()
            },
            pid: Some("slave(1)@127.0.0.1:5051".into()),
        }
        .encode_to_vec()
    }

    fn reflective_ok<M: Message + Default + Name>(bytes: &[u8]) -> bool {
        let desc = crate::json::pool()
            .get_message_by_name(&M::full_name())
            .expect("known message");
        prost_reflect::DynamicMessage::decode(desc, bytes)
            .ok()
            .is_some_and(|d| crate::json::check_required(&d).is_ok())
    }

    fn fast_ok<M: Name>(bytes: &[u8]) -> bool {
        all_required_present::<M>(bytes)
    }

    #[test]
    fn a_complete_status_update_passes_and_a_missing_required_field_does_not() {
        let bytes = status_update();
        assert!(fast_ok::<msg::StatusUpdateMessage>(&bytes));
        let partial = msg::StatusUpdate {
            framework_id: v1::FrameworkId { value: "f".into() },
            ..Default::default()
        };
        let mut raw = Vec::new();
        // framework_id (1) only: status (4) and timestamp (5) are absent.
        prost::encoding::message::encode(1, &partial.framework_id, &mut raw);
        let mut wrapped = Vec::new();
        prost::encoding::bytes::encode(1, &raw, &mut wrapped);
        assert!(!fast_ok::<msg::StatusUpdateMessage>(&wrapped));
        assert!(!reflective_ok::<msg::StatusUpdateMessage>(&wrapped));
    }

    #[test]
    fn nested_message_types_are_found_by_their_prost_names() {
        let operation = v1::offer::Operation {
            r#type: Some(v1::offer::operation::Type::Launch as i32),
            launch: Some(v1::offer::operation::Launch {
                task_infos: vec![v1::TaskInfo {
                    name: "t".into(),
                    task_id: v1::TaskId { value: "t".into() },
                    agent_id: v1::AgentId { value: "a".into() },
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let bytes = operation.encode_to_vec();
        assert!(fast_ok::<v1::offer::Operation>(&bytes));
        // Launch (2) holding one task without its required agent_id (3).
        let mut raw = Vec::new();
        prost::encoding::string::encode(1, &"t".to_string(), &mut raw);
        let task_id = v1::TaskId { value: "t".into() };
        prost::encoding::message::encode(2, &task_id, &mut raw);
        let mut launch = Vec::new();
        prost::encoding::bytes::encode(1, &raw, &mut launch);
        let mut wrapped = Vec::new();
        prost::encoding::bytes::encode(2, &launch, &mut wrapped);
        assert!(!fast_ok::<v1::offer::Operation>(&wrapped));
        assert!(!reflective_ok::<v1::offer::Operation>(&wrapped));
    }

    #[test]
    fn every_message_in_the_pool_resolves_to_its_own_plan() {
        let plans = &*PLANS;
        let mut ambiguous = 0;
        for m in crate::json::pool().all_messages() {
            let index = plans.index(m.package_name(), m.name(), || m.full_name().to_string());
            assert_eq!(
                index,
                plans.by_full_name.get(m.full_name()).copied(),
                "{}",
                m.full_name()
            );
            if plans.by_name[m.package_name()][m.name()].is_none() {
                ambiguous += 1;
            }
        }
        // Nested names repeat (e.g. several `Type` enums' parents); at least
        // one message name does too, or this test checks less than it says.
        assert!(ambiguous > 0);
    }

    proptest! {
        /// The fast path (this check, then prost's decode, as
        /// `decode_checked` does) never accepts what the reflective one
        /// refuses.
        #[test]
        fn never_accepts_what_the_reflective_check_refuses(
            cut_start in 0usize..200,
            cut_len in 0usize..20,
            flip in proptest::option::of((0usize..200, any::<u8>())),
        ) {
            let mut bytes = status_update();
            let start = cut_start.min(bytes.len());
            let end = (start + cut_len).min(bytes.len());
            bytes.drain(start..end);
            if let Some((at, value)) = flip {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            if fast_ok::<msg::StatusUpdateMessage>(&bytes)
                && msg::StatusUpdateMessage::decode(bytes.as_slice()).is_ok()
            {
                prop_assert!(reflective_ok::<msg::StatusUpdateMessage>(&bytes), "{bytes:?}");
            }
        }
    }
}
