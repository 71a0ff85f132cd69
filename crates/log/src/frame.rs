//! The frame: the unit the log writes, checksums and reads (see `docs/log-format.md`).
//!
//! ```text
//! offset size field
//!      0    4 length         bytes after this field: header rest (60) + payload, u32 LE
//!      4    4 crc32c         CRC32C (Castagnoli) of bytes [8, 4 + length)
//!      8    1 magic          0xF5
//!      9    1 version        1
//!     10    2 tag_parts      how many frames share `tag` (0 when untagged), u16 LE
//!     12    4 record_count   > 0, u32 LE
//!     16    8 base_offset    offset of the first record, u64 LE
//!     24    8 min_event_time ms since epoch, i64 LE
//!     32    8 max_event_time ms since epoch, i64 LE
//!     40    8 ingest_time    ms since epoch, i64 LE
//!     48   16 tag            producer tag (hash of an idempotency key), u128 LE; 0 = none
//!     64    …  payload       opaque to the log (Freshet writes an Arrow IPC stream)
//! ```
//!
//! Invariant: a frame read back has the CRC it was written with; a reader never returns a
//! frame whose CRC does not match.

use freshet_types::{EventTime, IngestTime, Offset};

/// Bytes in a frame header, payload excluded.
pub const HEADER_BYTES: usize = 64;
/// First byte after the length and CRC fields.
pub const MAGIC: u8 = 0xF5;
/// The only frame version this build writes and reads.
pub const VERSION: u8 = 1;

/// Identifies the request that wrote a frame, so a retried request can be recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerTag {
    /// Hash of the producer's idempotency key; never 0.
    pub id: u128,
    /// How many frames (across partitions and the dead-letter log) the request wrote.
    pub parts: u16,
}

/// Everything about a frame except its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Offset of the frame's first record.
    pub base_offset: Offset,
    /// Records in the frame; at least 1.
    pub record_count: u32,
    /// Earliest event time among the records.
    pub min_event_time: EventTime,
    /// Latest event time among the records.
    pub max_event_time: EventTime,
    /// When the log accepted the frame.
    pub ingest_time: IngestTime,
    /// The request that wrote the frame, if it carried an idempotency key.
    pub tag: Option<ProducerTag>,
    /// Total frame size on disk, header included.
    pub frame_bytes: u32,
}

impl FrameHeader {
    /// Offset just after the frame's last record.
    pub fn end_offset(&self) -> Offset {
        self.base_offset.plus(u64::from(self.record_count))
    }
}

/// A frame as read back: header and payload, CRC verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The decoded header.
    pub header: FrameHeader,
    /// The opaque payload.
    pub payload: Vec<u8>,
}

/// Encode the header of a frame carrying `payload`. The frame's CRC covers the header after
/// the CRC field and then the payload; it is computed in place, so the payload is hashed
/// without being copied next to the header.
#[allow(clippy::too_many_arguments)]
pub fn encode_header(
    base_offset: Offset,
    record_count: u32,
    min_event_time: EventTime,
    max_event_time: EventTime,
    ingest_time: IngestTime,
    tag: Option<ProducerTag>,
    payload: &[u8],
) -> [u8; HEADER_BYTES] {
    let payload_len = payload.len();
    let mut h = [0u8; HEADER_BYTES];
    let length = (HEADER_BYTES - 4 + payload_len) as u32;
    h[0..4].copy_from_slice(&length.to_le_bytes());
    h[8] = MAGIC;
    h[9] = VERSION;
    h[10..12].copy_from_slice(&tag.map_or(0u16, |t| t.parts).to_le_bytes());
    h[12..16].copy_from_slice(&record_count.to_le_bytes());
    h[16..24].copy_from_slice(&base_offset.0.to_le_bytes());
    h[24..32].copy_from_slice(&min_event_time.0.to_le_bytes());
    h[32..40].copy_from_slice(&max_event_time.0.to_le_bytes());
    h[40..48].copy_from_slice(&ingest_time.0.to_le_bytes());
    h[48..64].copy_from_slice(&tag.map_or(0u128, |t| t.id).to_le_bytes());
    let head_crc = crc32c::crc32c(&h[8..]);
    let crc = crc32c::crc32c_append(head_crc, payload);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Append the whole encoded frame (header and payload) to `out`.
#[allow(clippy::too_many_arguments)]
pub fn encode(
    out: &mut Vec<u8>,
    base_offset: Offset,
    record_count: u32,
    min_event_time: EventTime,
    max_event_time: EventTime,
    ingest_time: IngestTime,
    tag: Option<ProducerTag>,
    payload: &[u8],
) {
    out.extend_from_slice(&encode_header(
        base_offset,
        record_count,
        min_event_time,
        max_event_time,
        ingest_time,
        tag,
        payload,
    ));
    out.extend_from_slice(payload);
}

/// Why bytes at some position are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDefect {
    /// Fewer bytes remain than a header needs.
    ShortHeader,
    /// The length field points past the end of the file.
    ShortPayload,
    /// Wrong magic byte or unknown version.
    BadMagic,
    /// The length field is impossible (smaller than a header, or over the payload limit).
    BadLength,
    /// The stored CRC does not match the bytes.
    CrcMismatch,
    /// The record count is zero.
    EmptyFrame,
    /// The frame's records would run past the largest offset (`base_offset +
    /// record_count` does not fit in a u64).
    OffsetOverflow,
}

impl std::fmt::Display for FrameDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameDefect::ShortHeader => "incomplete frame header",
            FrameDefect::ShortPayload => "frame extends past the end of the file",
            FrameDefect::BadMagic => "bad magic byte or unknown frame version",
            FrameDefect::BadLength => "impossible frame length",
            FrameDefect::CrcMismatch => "CRC32C mismatch",
            FrameDefect::EmptyFrame => "frame with zero records",
            FrameDefect::OffsetOverflow => "frame's offsets run past the largest offset",
        })
    }
}

/// Total frame size (header included) announced by a header's length field, after basic
/// sanity checks; `available` is how many bytes exist from the frame's start.
pub fn frame_len(header: &[u8], available: u64) -> Result<u64, FrameDefect> {
    if header.len() < HEADER_BYTES || available < HEADER_BYTES as u64 {
        return Err(FrameDefect::ShortHeader);
    }
    if header[8] != MAGIC || header[9] != VERSION {
        return Err(FrameDefect::BadMagic);
    }
    let length = u64::from(u32::from_le_bytes(
        header[0..4].try_into().expect("slice of 4"),
    ));
    if length < (HEADER_BYTES - 4) as u64
        || length > (freshet_types::limits::FRAME_PAYLOAD_BYTES_MAX + HEADER_BYTES - 4) as u64
    {
        return Err(FrameDefect::BadLength);
    }
    let total = length + 4;
    if total > available {
        return Err(FrameDefect::ShortPayload);
    }
    Ok(total)
}

/// Decode a header from its first [`HEADER_BYTES`] bytes (no CRC check).
pub fn decode_header(bytes: &[u8]) -> FrameHeader {
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let i64_at = |i: usize| i64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let length = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let parts = u16::from_le_bytes(bytes[10..12].try_into().expect("2 bytes"));
    let id = u128::from_le_bytes(bytes[48..64].try_into().expect("16 bytes"));
    FrameHeader {
        base_offset: Offset(u64_at(16)),
        record_count: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
        min_event_time: EventTime(i64_at(24)),
        max_event_time: EventTime(i64_at(32)),
        ingest_time: IngestTime(i64_at(40)),
        tag: (id != 0).then_some(ProducerTag { id, parts }),
        frame_bytes: length + 4,
    }
}

/// Check a whole frame (header and payload) held in `bytes`, and decode its header.
pub fn check(bytes: &[u8]) -> Result<FrameHeader, FrameDefect> {
    let total = frame_len(bytes, bytes.len() as u64)? as usize;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[8..total]) != stored {
        return Err(FrameDefect::CrcMismatch);
    }
    let header = decode_header(bytes);
    if header.record_count == 0 {
        return Err(FrameDefect::EmptyFrame);
    }
    // Every reader computes the frame's end offset; one that cannot exist is damage, not
    // an overflow for the reader to panic on.
    if header
        .base_offset
        .0
        .checked_add(u64::from(header.record_count))
        .is_none()
    {
        return Err(FrameDefect::OffsetOverflow);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &mut out,
            Offset(7),
            3,
            EventTime(10),
            EventTime(20),
            IngestTime(30),
            Some(ProducerTag { id: 99, parts: 2 }),
            b"payload",
        );
        out
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert_eq!(bytes.len(), HEADER_BYTES + 7);
        let h = check(&bytes).unwrap();
        assert_eq!(h.base_offset, Offset(7));
        assert_eq!(h.record_count, 3);
        assert_eq!(h.end_offset(), Offset(10));
        assert_eq!(h.min_event_time, EventTime(10));
        assert_eq!(h.max_event_time, EventTime(20));
        assert_eq!(h.ingest_time, IngestTime(30));
        assert_eq!(h.tag, Some(ProducerTag { id: 99, parts: 2 }));
        assert_eq!(h.frame_bytes as usize, bytes.len());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(check(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    /// Issue 19 (found by fuzz/fuzz_targets/frame.rs): a frame with a valid CRC whose
    /// base offset plus record count overflows passed the check, and `end_offset` then
    /// panicked in the reader, `log verify` and recovery.
    #[test]
    fn issue_19_a_frame_whose_offsets_overflow_is_a_defect() {
        let mut bytes = Vec::new();
        let base = Offset(u64::MAX - 1);
        let t = EventTime(0);
        encode(&mut bytes, base, 3, t, t, IngestTime(0), None, b"x");
        assert_eq!(check(&bytes), Err(FrameDefect::OffsetOverflow));
        let mut bytes = Vec::new();
        encode(&mut bytes, base, 1, t, t, IngestTime(0), None, b"x");
        assert_eq!(check(&bytes).map(|h| h.end_offset()), Ok(Offset(u64::MAX)));
    }

    #[test]
    fn truncated_frame_is_short() {
        let bytes = sample();
        assert_eq!(check(&bytes[..10]), Err(FrameDefect::ShortHeader));
        assert_eq!(
            check(&bytes[..bytes.len() - 1]),
            Err(FrameDefect::ShortPayload)
        );
    }
}
