//! NDJSON encoding of generated batches: one JSON object per row, one row per line.
//!
//! Hand-written for speed: integers are formatted two digits at a time, timestamps as RFC
//! 3339 UTC with milliseconds (`2015-07-15T00:00:00.000Z`) reusing the date of the previous
//! row, and strings are copied whole unless they hold a character JSON requires escaping
//! (`"`, `\` or a control character), which is checked eight bytes at a time.
//!
//! It writes any batch whose columns are `Int64`, `Utf8` or `Timestamp(Millisecond, _)`,
//! which covers the three Nexmark schemas; a null is written as `null`.

use crate::EventKind;
use crate::format::{TimestampFormatter, push_i64};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, TimeUnit};

/// One column, typed, with its key already encoded (`{"name":` or `,"name":`).
struct Column<'a> {
    key: Vec<u8>,
    values: Values<'a>,
}

enum Values<'a> {
    Int64(&'a Int64Array),
    /// Strings, and whether any of them needs escaping (if none does, as in generated data,
    /// every value is copied whole).
    Utf8(&'a StringArray, bool),
    Timestamp(&'a TimestampMillisecondArray),
}

impl Values<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Values::Int64(a) => a.is_null(row),
            Values::Utf8(a, _) => a.is_null(row),
            Values::Timestamp(a) => a.is_null(row),
        }
    }

    fn null_count(&self) -> usize {
        match self {
            Values::Int64(a) => a.null_count(),
            Values::Utf8(a, _) => a.null_count(),
            Values::Timestamp(a) => a.null_count(),
        }
    }
}

/// Append the rows of `batch` (one of the three schemas) as NDJSON lines to `out`.
/// Timestamps as RFC 3339 UTC with milliseconds, e.g. "2015-07-15T00:00:00.000Z". Strings
/// properly JSON-escaped.
///
/// # Panics
///
/// If a column is not `Int64`, `Utf8` or `Timestamp(Millisecond, _)` (no Nexmark schema has
/// one).
pub fn write_ndjson(kind: EventKind, batch: &RecordBatch, out: &mut Vec<u8>) {
    debug_assert!(
        batch.schema().fields().iter().map(|f| f.name()).eq(kind
            .schema()
            .fields()
            .iter()
            .map(|f| f.name())),
        "batch columns are those of the {} schema",
        kind.stream_name()
    );
    write_rows(batch, out);
}

/// [`write_ndjson`] for any batch of supported column types, named by its own schema.
fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut text_bytes = 0;
    for (i, (field, array)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        let mut key = Vec::with_capacity(field.name().len() + 4);
        key.push(if i == 0 { b'{' } else { b',' });
        push_json_string(&mut key, field.name().as_bytes());
        key.push(b':');
        let values = match array.data_type() {
            DataType::Int64 => Values::Int64(array.as_primitive::<Int64Type>()),
            DataType::Utf8 => {
                let strings = array.as_string::<i32>();
                let offsets = strings.value_offsets();
                let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
                let text = &strings.values()[first..last];
                text_bytes += text.len();
                Values::Utf8(strings, any_needs_escape(text))
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Values::Timestamp(array.as_primitive::<TimestampMillisecondType>())
            }
            other => panic!(
                "write_ndjson: column {} has type {other}, not a Nexmark column type",
                field.name()
            ),
        };
        columns.push(Column { key, values });
    }
    if columns.is_empty() {
        for _ in 0..batch.num_rows() {
            out.extend_from_slice(b"{}\n");
        }
        return;
    }

    // Keys, numbers, quotes and timestamps take about 32 bytes per column.
    out.reserve(text_bytes + batch.num_rows() * (2 + 32 * columns.len()));
    let any_nulls = columns.iter().any(|c| c.values.null_count() > 0);
    let mut timestamps = TimestampFormatter::new();
    for row in 0..batch.num_rows() {
        for column in &columns {
            out.extend_from_slice(&column.key);
            if any_nulls && column.values.is_null(row) {
                out.extend_from_slice(b"null");
                continue;
            }
            match column.values {
                Values::Int64(a) => push_i64(out, a.value(row)),
                Values::Utf8(a, false) => {
                    out.push(b'"');
                    out.extend_from_slice(a.value(row).as_bytes());
                    out.push(b'"');
                }
                Values::Utf8(a, true) => push_json_string(out, a.value(row).as_bytes()),
                Values::Timestamp(a) => {
                    out.push(b'"');
                    timestamps.push(out, a.value(row));
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Whether any of the 8 bytes in `word` must be escaped in a JSON string: below 0x20, `"`
/// or `\`. (The classic "has a zero byte" trick; exact for the whole word, which is all
/// that is asked.)
#[inline]
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

#[inline]
fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `text` must be escaped. It looks at every byte without stopping
/// early, which lets the compiler vectorise it: text rarely needs escaping.
fn any_needs_escape(text: &[u8]) -> bool {
    text.iter()
        .fold(false, |any, &b| any | byte_needs_escape(b))
}

/// Appends `s` (UTF-8) as a JSON string literal, quotes included.
#[inline]
fn push_json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    let mut clean = s.len() - tail.len();
    for (i, chunk) in chunks.enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8)"));
        if word_needs_escape(word) {
            clean = i * 8;
            break;
        }
    }
    if clean == s.len() - tail.len() && !tail.iter().any(|&b| byte_needs_escape(b)) {
        clean = s.len();
    }
    out.extend_from_slice(&s[..clean]);
    if clean < s.len() {
        push_escaped(out, &s[clean..]);
    }
    out.push(b'"');
}

/// The slow path of [`push_json_string`]: escapes byte by byte.
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if !byte_needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::ArrayRef;
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn json_string(s: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, s.as_bytes());
        String::from_utf8(out).expect("utf-8 in, utf-8 out")
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        let cases = [
            "",
            "plain",
            "exactly8",
            "sixteen chars ok",
            "quote \" here",
            "back\\slash",
            "new\nline and\ttab\r\u{8}\u{c}",
            "\u{0}\u{1}\u{1f} controls",
            "unicode: héllo wörld ✓ 𝄞",
            "a long clean prefix of more than eight bytes then \"",
            "\"",
            "12345678\\",
            "\u{7f} is not escaped",
        ];
        for case in cases {
            let encoded = json_string(case);
            let decoded: String = serde_json::from_str(&encoded).expect(&encoded);
            assert_eq!(decoded, case, "{encoded}");
            assert_eq!(
                encoded,
                serde_json::to_string(case).expect("serialize"),
                "{case:?}"
            );
        }
        for case in cases {
            let needs = case.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(any_needs_escape(case.as_bytes()), needs, "{case:?}");
        }
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'a', b'b', b, b'c', b'd', b'e', b'f', b'g']);
            assert_eq!(word_needs_escape(word), byte_needs_escape(b), "{b}");
        }
    }

    #[test]
    fn nulls_and_odd_strings_round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(-5), None])),
            Arc::new(StringArray::from(vec![None, Some("a\"b\n")])),
            Arc::new(TimestampMillisecondArray::from(vec![Some(0), None]).with_timezone("UTC")),
        ];
        let batch = RecordBatch::try_new(schema, columns).expect("batch");
        let mut out = Vec::new();
        write_rows(&batch, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "{\"n\":-5,\"s\":null,\"t\":\"1970-01-01T00:00:00.000Z\"}\n\
             {\"n\":null,\"s\":\"a\\\"b\\n\",\"t\":null}\n"
        );
    }
}
