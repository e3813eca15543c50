//! JSON bodies of `/api/v1/scheduler` and `/api/v1`: never panic, and what
//! parses re-serializes to JSON that parses to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_proto::json;
use mesos_proto::v1::{master, scheduler};

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = json::from_slice::<scheduler::Call>(data) {
        let text = json::to_string(&call);
        let again: scheduler::Call = json::from_slice(text.as_bytes()).expect("round trip");
        assert_eq!(call, again);
    }
    let _ = json::from_slice::<master::Call>(data);
});
