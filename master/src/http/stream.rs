//! Streaming response bodies: the RecordIO records the master task queues
//! for one subscriber, with a HEARTBEAT record every 15 s (the first one 15 s
//! after the stream opens). The body ends when the master drops the sender.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::core::HEARTBEAT_INTERVAL_SECS;

/// Records already queued are joined into one chunk up to this size.
const MAX_CHUNK: usize = 64 * 1024;

struct StreamState<G> {
    records: mpsc::UnboundedReceiver<Bytes>,
    heartbeat: tokio::time::Interval,
    heartbeat_record: Bytes,
    /// Dropped with the body (client gone or stream ended).
    _guard: G,
}

/// The body of an event stream. `heartbeat_record` is the encoded
/// HEARTBEAT event; `guard` lives as long as the body does.
pub fn record_stream<G: Send + 'static>(
    records: mpsc::UnboundedReceiver<Bytes>,
    heartbeat_record: Bytes,
    guard: G,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let period = Duration::from_secs_f64(HEARTBEAT_INTERVAL_SECS);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = StreamState {
        records,
        heartbeat,
        heartbeat_record,
        _guard: guard,
    };
    futures::stream::unfold(state, |mut state| async move {
        tokio::select! {
            biased;
            record = state.records.recv() => {
                let record = record?;
                if record.len() > MAX_CHUNK {
                    return Some((Ok(record), state));
                }
                let Ok(more) = state.records.try_recv() else {
                    return Some((Ok(record), state));
                };
                // Joined in one buffer: each record is copied once.
                let mut joined = bytes::BytesMut::with_capacity(MAX_CHUNK.min(64 * (record.len() + more.len())));
                joined.extend_from_slice(&record);
                joined.extend_from_slice(&more);
                while joined.len() <= MAX_CHUNK {
                    let Ok(more) = state.records.try_recv() else { break };
                    joined.extend_from_slice(&more);
                }
                Some((Ok(joined.freeze()), state))
            }
            _ = state.heartbeat.tick() => {
                let record = state.heartbeat_record.clone();
                Some((Ok(record), state))
            }
        }
    })
}
