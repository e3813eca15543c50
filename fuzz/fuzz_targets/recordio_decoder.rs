//! RecordIO framing from the network: never panics, never yields a record
//! larger than the cap, and fed in any chunking yields the same records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_proto::recordio::Decoder;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut whole = Decoder::new(4096);
    whole.feed(data);
    let mut chunked = Decoder::new(4096);
    let mut from_chunks = Vec::new();
    let mut chunk_error = false;
    for piece in data.chunks(split) {
        chunked.feed(piece);
        loop {
            match chunked.next_record() {
                Ok(Some(r)) => {
                    assert!(r.len() <= 4096);
                    from_chunks.push(r)
                }
                Ok(None) => break,
                Err(_) => {
                    chunk_error = true;
                    break;
                }
            }
        }
        if chunk_error {
            break;
        }
    }
    let mut from_whole = Vec::new();
    while let Ok(Some(r)) = whole.next_record() {
        from_whole.push(r);
    }
    if !chunk_error {
        assert_eq!(from_whole, from_chunks);
    }
});
