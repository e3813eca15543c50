//! Protobuf bodies of `/api/v1/scheduler`: never panic; what decodes also
//! converts to Mesos JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_proto::json;
use mesos_proto::v1::scheduler;

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = json::decode_checked::<scheduler::Call>(data) {
        let _ = json::to_string(&call);
    }
});
