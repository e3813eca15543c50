//! What a libprocess peer writes back to our pipelined messages: the
//! answers the transport's reader frames (status line, headers, a body by
//! length or chunks). Any bytes must give an answer, "more", or an error,
//! never a panic, and a framed answer lies within what was read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_common::transport::{parse_answer, MAX_ANSWER};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((status, consumed))) = parse_answer(data) {
        assert!(consumed <= data.len() && consumed <= MAX_ANSWER);
        assert!((100..1000).contains(&status));
    }
});
