//! A fast answer to "are all `required` fields present?" read straight off
//! the protobuf wire bytes, without building a `DynamicMessage`. It only
//! ever says yes when the reflective check would; anything else (a field
//! missing, a message split over several occurrences, groups, malformed
//! bytes) returns `false` and the caller takes the reflective path, which
//! gives the exact error.

use prost_reflect::{Cardinality, Kind, MessageDescriptor};

/// Whether every required field of `desc`, and of every sub-message, is
/// present in `bytes` in a form the fast path understands.
pub(crate) fn all_required_present(desc: &MessageDescriptor, bytes: &[u8]) -> bool {
    walk(desc, bytes, 0).unwrap_or(false)
}

const MAX_DEPTH: usize = 64;

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

fn walk(desc: &MessageDescriptor, bytes: &[u8], depth: usize) -> Option<bool> {
    if depth > MAX_DEPTH {
        return None;
    }
    let required: Vec<u32> = desc
        .fields()
        .filter(|f| f.cardinality() == Cardinality::Required)
        .map(|f| f.number())
        .collect();
    let mut seen = vec![false; required.len()];
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        if let Some(i) = required.iter().position(|n| *n == number) {
            seen[i] = true;
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
                if let Some(field) = desc.get_field(number) {
                    if let Kind::Message(inner) = field.kind() {
                        if field.is_map() || !walk(&inner, body, depth + 1)? {
                            return Some(false);
                        }
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
    Some(seen.iter().all(|s| *s))
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
        let desc = crate::json::pool()
            .get_message_by_name(&M::full_name())
            .expect("known message");
        all_required_present(&desc, bytes)
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
