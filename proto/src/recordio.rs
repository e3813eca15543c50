//! RecordIO framing as Mesos streams it: each record is its length in ASCII
//! decimal, a `\n`, then exactly that many bytes. No trailer, no header.

use bytes::{Buf, Bytes, BytesMut};

/// Default cap on one decoded record, matching what a sane peer sends.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 16 * 1024 * 1024;

/// Longest length prefix accepted (u64::MAX has 20 digits).
const MAX_LENGTH_DIGITS: usize = 20;

/// Why a RecordIO stream could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordIoError {
    /// The length prefix contained something other than ASCII digits.
    #[error("invalid RecordIO length prefix {0:?}")]
    InvalidLength(String),
    /// A record announced more bytes than the decoder accepts.
    #[error("RecordIO record of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: u64,
        /// Configured maximum.
        max: usize,
    },
}

/// Appends one framed record to `out`.
pub fn encode_into(record: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(record);
}

/// Frames one record into a fresh buffer.
pub fn encode(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 8);
    encode_into(record, &mut out);
    out.freeze()
}

/// Incremental decoder: feed it bytes as they arrive, take records out.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max: usize,
    /// Length of the record whose prefix has been consumed, if any.
    pending: Option<usize>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_SIZE)
    }
}

impl Decoder {
    /// A decoder that rejects records larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
            pending: None,
        }
    }

    /// Adds received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete record, `Ok(None)` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                    if self.buf.len() > MAX_LENGTH_DIGITS
                        || !self.buf.iter().all(u8::is_ascii_digit)
                    {
                        return Err(self.invalid_prefix(self.buf.len()));
                    }
                    return Ok(None);
                };
                let digits = &self.buf[..nl];
                if digits.is_empty()
                    || digits.len() > MAX_LENGTH_DIGITS
                    || !digits.iter().all(u8::is_ascii_digit)
                {
                    return Err(self.invalid_prefix(nl));
                }
                let text = std::str::from_utf8(digits).map_err(|_| self.invalid_prefix(nl))?;
                let size: u64 = text.parse().map_err(|_| self.invalid_prefix(nl))?;
                if size > self.max as u64 {
                    return Err(RecordIoError::TooLarge {
                        size,
                        max: self.max,
                    });
                }
                self.buf.advance(nl + 1);
                // Bounded by `max`, so it fits in usize.
                let len = size as usize;
                self.pending = Some(len);
                len
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes buffered but not yet returned as a record.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn invalid_prefix(&self, upto: usize) -> RecordIoError {
        let shown = &self.buf[..upto.min(24)];
        RecordIoError::InvalidLength(String::from_utf8_lossy(shown).into_owned())
    }
}

/// Decodes a complete buffer into records (for tests and one-shot bodies).
pub fn decode_all(data: &[u8], max: usize) -> Result<Vec<Bytes>, RecordIoError> {
    let mut decoder = Decoder::new(max);
    decoder.feed(data);
    let mut records = Vec::new();
    while let Some(record) = decoder.next_record()? {
        records.push(record);
    }
    if decoder.buffered() > 0 || decoder.pending.is_some() {
        return Err(RecordIoError::InvalidLength("truncated record".into()));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn heartbeat_is_framed_like_mesos() {
        assert_eq!(
            &encode(br#"{"type":"HEARTBEAT"}"#)[..],
            b"20\n{\"type\":\"HEARTBEAT\"}"
        );
    }

    #[test]
    fn records_split_across_feeds_are_reassembled() {
        let mut d = Decoder::default();
        d.feed(b"5\nhel");
        assert_eq!(d.next_record(), Ok(None));
        d.feed(b"lo3\nabc1");
        assert_eq!(d.next_record(), Ok(Some(Bytes::from_static(b"hello"))));
        assert_eq!(d.next_record(), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(d.next_record(), Ok(None));
        d.feed(b"\nz");
        assert_eq!(d.next_record(), Ok(Some(Bytes::from_static(b"z"))));
    }

    #[test]
    fn oversized_record_is_rejected_before_buffering() {
        let mut d = Decoder::new(10);
        d.feed(b"11\n");
        assert_eq!(
            d.next_record(),
            Err(RecordIoError::TooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn malformed_prefixes_are_rejected() {
        for bad in [
            &b"x\n"[..],
            b"-1\n",
            b"\n",
            b"12a\n",
            b"999999999999999999999999\n",
        ] {
            let mut d = Decoder::new(100);
            d.feed(bad);
            assert!(
                matches!(d.next_record(), Err(RecordIoError::InvalidLength(_))),
                "{bad:?}"
            );
        }
        let mut d = Decoder::new(100);
        d.feed(b"abc");
        assert!(d.next_record().is_err(), "non-digit without newline");
    }

    #[test]
    fn truncated_body_is_an_error_for_whole_buffers() {
        assert!(decode_all(b"5\nabc", 100).is_err());
    }

    proptest! {
        #[test]
        fn any_records_round_trip_in_any_chunking(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            chunk in 1usize..17,
        ) {
            let mut wire = BytesMut::new();
            for r in &records { encode_into(r, &mut wire); }
            let mut d = Decoder::new(64);
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                d.feed(piece);
                while let Some(r) = d.next_record().expect("valid stream") { out.push(r.to_vec()); }
            }
            prop_assert_eq!(out, records);
        }
    }
}
