//! What a libprocess peer controls: the `Libprocess-From` UPID and the
//! bodies of the messages the master and agent decode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_common::Upid;
use mesos_proto::internal;
use mesos_proto::json::decode_checked;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(upid) = text.parse::<Upid>() {
            let printed = upid.to_string();
            assert_eq!(printed.parse::<Upid>().expect("reparses"), upid);
        }
    }
    let _ = decode_checked::<internal::RegisterSlaveMessage>(data);
    let _ = decode_checked::<internal::ReregisterSlaveMessage>(data);
    let _ = decode_checked::<internal::StatusUpdateMessage>(data);
    let _ = decode_checked::<internal::RunTaskMessage>(data);
    let _ = decode_checked::<internal::StatusUpdateAcknowledgementMessage>(data);
});
