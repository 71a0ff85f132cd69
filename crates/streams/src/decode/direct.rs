//! NDJSON's fast path: one pass over each line straight into the stream's column types,
//! for clean input (issue 18).
//!
//! It takes a strict subset of what the general path (arrow-json's tape, then
//! `text::convert`) takes, and for that subset gives exactly the values the general path
//! gives. At the first line it cannot read that way — malformed JSON, a value the general
//! path would convert or refuse, a repeated key, an escaped key — [`Direct::decode`] stops,
//! and the rest of the chunk takes the general path, which finds and explains the bad lines.
//! A stream with a column type it does not read, or a chunk that is not UTF-8, takes the
//! general path throughout. So a bad line costs speed, never a different answer: the
//! `matches_the_general_path` tests hold the two paths to that.
//!
//! Accepted per column type (`null` is NULL everywhere; a missing key is NULL):
//! - integers: a JSON number, or a string holding one, that is a whole number in range, in
//!   any notation (as `text::convert` reads it);
//! - REAL and DOUBLE: a JSON number (correctly rounded, as arrow-json's parser);
//! - BOOLEAN: `true`, `false`;
//! - text: a string (escapes decoded), or a number's or a boolean's own text;
//! - timestamps in UTC: a JSON integer (epoch milliseconds) or a string Arrow's parser
//!   reads.

use super::text::whole_number;
use crate::error::Result;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMillisecondType,
};
use arrow_array::{ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use std::sync::Arc;

/// Deepest nesting of an ignored field's value the fast path walks.
const DEPTH_MAX: usize = 32;

/// How one column's values are read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int { min: i64, max: i64 },
    F32,
    F64,
    Bool,
    Text,
    Time,
}

/// The fast NDJSON decoder for one schema (the decoders' lenient schema).
pub(crate) struct Direct {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    names: Vec<Vec<u8>>,
}

impl Direct {
    /// The fast path for `schema`, or None if a column's type is one it does not read.
    pub fn new(schema: &SchemaRef) -> Option<Direct> {
        let kinds = schema
            .fields()
            .iter()
            .map(|f| kind_of(f.data_type()))
            .collect::<Option<Vec<_>>>()?;
        Some(Direct {
            schema: schema.clone(),
            kinds,
            names: schema
                .fields()
                .iter()
                .map(|f| f.name().as_bytes().to_vec())
                .collect(),
        })
    }

    /// The first lines of `lines` (`(line number, start, end)` in `text`) as one batch of
    /// the schema, up to the first line that is not for the fast path; the batch's rows are
    /// `lines[..rows]`.
    pub fn decode(&self, text: &[u8], lines: &[(u64, usize, usize)]) -> Result<RecordBatch> {
        let lines = match simdutf8::basic::from_utf8(text) {
            Ok(_) => lines,
            Err(_) => &[],
        };
        let mut columns: Vec<Column> = self
            .kinds
            .iter()
            .map(|&kind| Column::new(kind, lines.len(), text.len()))
            .collect();
        let mut scratch = Vec::new();
        for (row, &(_, start, end)) in lines.iter().enumerate() {
            let mut line = Line {
                b: &text[start..end],
                i: 0,
            };
            if self
                .row(&mut line, row, &mut columns, &mut scratch)
                .is_none()
            {
                // What this row left in the columns goes; the rest is the general path's.
                columns.iter_mut().for_each(|c| c.truncate(row));
                break;
            }
            for column in columns.iter_mut() {
                if column.filled <= row {
                    column.push_null();
                }
            }
        }
        let arrays = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(column, field)| column.finish(field.data_type()))
            .collect::<Vec<_>>();
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// Read one line's object into `columns`; None if it is not for the fast path.
    fn row(
        &self,
        line: &mut Line<'_>,
        row: usize,
        columns: &mut [Column],
        scratch: &mut Vec<u8>,
    ) -> Option<()> {
        line.ws();
        line.eat(b'{')?;
        line.ws();
        let mut guess = 0;
        if line.peek()? != b'}' {
            loop {
                let key = line.plain_string()?;
                line.ws();
                line.eat(b':')?;
                line.ws();
                match self.column_of(key, guess) {
                    Some(c) => {
                        let column = &mut columns[c];
                        if column.filled > row {
                            return None; // a repeated key: the general path keeps the last
                        }
                        column.read(line, scratch)?;
                        guess = c + 1;
                    }
                    None => line.skip_value(0)?,
                }
                line.ws();
                match line.next()? {
                    b',' => line.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        } else {
            line.i += 1;
        }
        line.ws();
        (line.i == line.b.len()).then_some(())
    }

    /// The column named `key`, trying `guess` first (keys usually come in column order).
    fn column_of(&self, key: &[u8], guess: usize) -> Option<usize> {
        if self.names.get(guess).is_some_and(|n| n == key) {
            return Some(guess);
        }
        self.names.iter().position(|n| n == key)
    }
}

fn kind_of(t: &DataType) -> Option<Kind> {
    let int = |min: i64, max: i64| Some(Kind::Int { min, max });
    match t {
        DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => int(i64::MIN, i64::MAX),
        DataType::Float32 => Some(Kind::F32),
        DataType::Float64 => Some(Kind::F64),
        DataType::Boolean => Some(Kind::Bool),
        DataType::Utf8 => Some(Kind::Text),
        // Naive times are read in UTC: the column's zone must be UTC.
        DataType::Timestamp(TimeUnit::Millisecond, tz)
            if tz.as_deref().is_none_or(|tz| tz == "+00:00") =>
        {
            Some(Kind::Time)
        }
        _ => None,
    }
}

/// One column's values as they are read.
struct Column {
    kind: Kind,
    /// Rows in the chunk.
    rows: usize,
    /// Bytes in the chunk: more text than that no column can hold.
    text_len: usize,
    /// Rows read so far (values and NULLs).
    filled: usize,
    valid: BooleanBufferBuilder,
    ints: Vec<i64>,
    floats: Vec<f64>,
    bools: BooleanBufferBuilder,
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl Column {
    fn new(kind: Kind, rows: usize, text_len: usize) -> Column {
        let cap = |k: bool| if k { rows } else { 0 };
        let mut offsets = Vec::with_capacity(cap(kind == Kind::Text) + 1);
        offsets.push(0);
        Column {
            kind,
            rows,
            text_len,
            filled: 0,
            valid: BooleanBufferBuilder::new(rows),
            ints: Vec::with_capacity(cap(matches!(kind, Kind::Int { .. } | Kind::Time))),
            floats: Vec::with_capacity(cap(matches!(kind, Kind::F32 | Kind::F64))),
            bools: BooleanBufferBuilder::new(cap(kind == Kind::Bool)),
            offsets,
            bytes: Vec::new(),
        }
    }

    fn push_null(&mut self) {
        self.valid.append(false);
        self.filled += 1;
        match self.kind {
            Kind::Int { .. } | Kind::Time => self.ints.push(0),
            Kind::F32 | Kind::F64 => self.floats.push(0.0),
            Kind::Bool => self.bools.append(false),
            Kind::Text => self.offsets.push(self.bytes.len() as i32),
        }
    }

    /// Keep only the first `rows` rows.
    fn truncate(&mut self, rows: usize) {
        self.filled = self.filled.min(rows);
        self.valid.truncate(self.filled);
        match self.kind {
            Kind::Int { .. } | Kind::Time => self.ints.truncate(self.filled),
            Kind::F32 | Kind::F64 => self.floats.truncate(self.filled),
            Kind::Bool => self.bools.truncate(self.filled),
            Kind::Text => {
                self.offsets.truncate(self.filled + 1);
                self.bytes.truncate(self.offsets[self.filled] as usize);
            }
        }
    }

    fn pushed(&mut self) -> Option<()> {
        self.valid.append(true);
        self.filled += 1;
        Some(())
    }

    fn push_int(&mut self, v: i128, min: i64, max: i64) -> Option<()> {
        let v = i64::try_from(v).ok().filter(|v| (min..=max).contains(v))?;
        self.ints.push(v);
        self.pushed()
    }

    fn push_text(&mut self, s: &[u8]) -> Option<()> {
        if self.bytes.capacity() - self.bytes.len() < s.len() {
            // Grow once to what the rows so far say the rest of the chunk needs, instead
            // of doubling (each doubling a copy of everything so far, and fresh pages);
            // never past what the chunk's bytes could hold.
            let per_row = (self.bytes.len() + s.len()) / (self.filled + 1) + 1;
            let rest = self.rows.saturating_sub(self.filled);
            let predicted = per_row.saturating_mul(rest) / 8 * 9;
            let most = self.text_len.saturating_sub(self.bytes.len());
            self.bytes.reserve(predicted.min(most).max(s.len()));
        }
        self.bytes.extend_from_slice(s);
        // Offsets are i32: a chunk's text is far below 2 GiB, but say so rather than wrap.
        self.offsets.push(i32::try_from(self.bytes.len()).ok()?);
        self.pushed()
    }

    /// Read the value at `line` into this column.
    fn read(&mut self, line: &mut Line<'_>, scratch: &mut Vec<u8>) -> Option<()> {
        match line.peek()? {
            b'n' => {
                line.literal(b"null")?;
                self.push_null();
                Some(())
            }
            b'"' => self.read_string(line, scratch),
            b't' | b'f' => {
                let value = line.peek()? == b't';
                line.literal(if value { b"true" } else { b"false" })?;
                match self.kind {
                    Kind::Bool => {
                        self.bools.append(value);
                        self.pushed()
                    }
                    Kind::Text => self.push_text(if value { b"true" } else { b"false" }),
                    _ => None,
                }
            }
            _ => {
                let (number, plain) = line.number()?;
                match self.kind {
                    Kind::Int { min, max } => match plain && number.len() <= 18 {
                        true => self.push_int(parse_plain(number).into(), min, max),
                        false => self.push_int(whole_number(ascii(number))?, min, max),
                    },
                    Kind::Time if plain && number.len() <= 18 => {
                        self.ints.push(parse_plain(number));
                        self.pushed()
                    }
                    Kind::F64 => {
                        let v: f64 = ascii(number).parse().ok()?;
                        self.floats.push(v);
                        v.is_finite().then(|| self.pushed())?
                    }
                    Kind::F32 => {
                        let v: f32 = ascii(number).parse().ok()?;
                        self.floats.push(f64::from(v));
                        v.is_finite().then(|| self.pushed())?
                    }
                    Kind::Text => self.push_text(number),
                    _ => None,
                }
            }
        }
    }

    fn read_string(&mut self, line: &mut Line<'_>, scratch: &mut Vec<u8>) -> Option<()> {
        match self.kind {
            Kind::Text => {
                let s = line.string(scratch)?;
                self.push_text(s.unwrap_or(scratch))
            }
            Kind::Time => {
                let s = line.string(scratch)?;
                let s = std::str::from_utf8(s.unwrap_or(scratch)).ok()?;
                let t = arrow_cast::parse::string_to_datetime(&chrono::Utc, s).ok()?;
                self.ints.push(t.timestamp_millis());
                self.pushed()
            }
            Kind::Int { min, max } => {
                // The general path reads a string's text as it reads a number's.
                let s = line.string(scratch)?;
                let v = whole_number(std::str::from_utf8(s.unwrap_or(scratch)).ok()?)?;
                self.push_int(v, min, max)
            }
            _ => None,
        }
    }

    fn finish(self, data_type: &DataType) -> ArrayRef {
        let mut valid = self.valid;
        let nulls = Some(NullBuffer::new(valid.finish())).filter(|n| n.null_count() > 0);
        match self.kind {
            Kind::Int { .. } => match data_type {
                DataType::Int8 => narrowed::<Int8Type>(&self.ints, nulls),
                DataType::Int16 => narrowed::<Int16Type>(&self.ints, nulls),
                DataType::Int32 => narrowed::<Int32Type>(&self.ints, nulls),
                _ => Arc::new(PrimitiveArray::<Int64Type>::new(self.ints.into(), nulls)),
            },
            Kind::Time => Arc::new(
                PrimitiveArray::<TimestampMillisecondType>::new(self.ints.into(), nulls)
                    .with_data_type(data_type.clone()),
            ),
            Kind::F64 => Arc::new(PrimitiveArray::<Float64Type>::new(
                self.floats.into(),
                nulls,
            )),
            Kind::F32 => Arc::new(PrimitiveArray::<Float32Type>::new(
                self.floats.iter().map(|&v| v as f32).collect(),
                nulls,
            )),
            Kind::Bool => {
                let mut bools = self.bools;
                Arc::new(BooleanArray::new(bools.finish(), nulls))
            }
            Kind::Text => Arc::new(StringArray::new(
                OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
                self.bytes.into(),
                nulls,
            )),
        }
    }
}

fn narrowed<T>(values: &[i64], nulls: Option<NullBuffer>) -> ArrayRef
where
    T: arrow_array::ArrowPrimitiveType,
    T::Native: TryFrom<i64> + Default,
{
    // Every value was checked against the type's range as it was read.
    let values: ScalarBuffer<T::Native> = values
        .iter()
        .map(|&v| T::Native::try_from(v).unwrap_or_default())
        .collect();
    Arc::new(PrimitiveArray::<T>::new(values, nulls))
}

/// The digits of a plain JSON integer (`-?[0-9]{1,18}`), which cannot overflow an i64.
fn parse_plain(s: &[u8]) -> i64 {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    if negative { -v } else { v }
}

/// `s`, which the caller knows to be ASCII (a number's text).
fn ascii(s: &[u8]) -> &str {
    std::str::from_utf8(s).unwrap_or_default()
}

/// A cursor over one line's bytes.
struct Line<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A string without escapes (an object's key); None if it has any.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    /// A string: its bytes when it has no escapes, else None with its decoded bytes in
    /// `scratch`. The outer None: not a valid JSON string.
    fn string(&mut self, scratch: &mut Vec<u8>) -> Option<Option<&'a [u8]>> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] == b'"' {
            self.i += end + 1;
            return Some(Some(&rest[..end]));
        }
        scratch.clear();
        scratch.extend_from_slice(&rest[..end]);
        self.i += end;
        loop {
            match self.next()? {
                b'"' => return Some(None),
                b'\\' => self.escape(scratch)?,
                _ => {
                    let rest = &self.b[self.i - 1..];
                    let run = memchr::memchr2(b'"', b'\\', rest)?;
                    scratch.extend_from_slice(&rest[..run]);
                    self.i += run - 1;
                }
            }
        }
    }

    /// One escape after its backslash, decoded into `out`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let c = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = self.hex4()?;
                let c = match high {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x1_0000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    _ => char::from_u32(high)?, // a lone low surrogate is not a char
                };
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        out.push(c);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits
            .iter()
            .try_fold(0u32, |v, &d| Some(v * 16 + char::from(d).to_digit(16)?))
    }

    /// A JSON number (strict grammar): its text, and whether it is a plain integer.
    fn number(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |l: &mut Line<'_>| {
            let from = l.i;
            while l.peek().is_some_and(|c| c.is_ascii_digit()) {
                l.i += 1;
            }
            l.i - from
        };
        let first = self.peek()?;
        let n = digits(self);
        if n == 0 || (first == b'0' && n > 1) {
            return None;
        }
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            plain = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            plain = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some((&self.b[start..self.i], plain))
    }

    /// Skip any JSON value, checking its grammar (an ignored field's).
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > DEPTH_MAX {
            return None;
        }
        match self.peek()? {
            b'"' => self.string(&mut Vec::new()).map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.string(&mut Vec::new())?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        c if c == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => self.number().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Direct;
    use crate::ddl::{StreamStatement, parse_stream_statement};
    use crate::decode::checks::lenient_schema;
    use crate::decode::{NdjsonDecoder, split_lines};
    use crate::def::StreamDef;

    fn def() -> StreamDef {
        let sql = "CREATE STREAM t (id BIGINT NOT NULL, small SMALLINT, tiny TINYINT, n INT,
                   d DOUBLE, r REAL, ok BOOLEAN, name VARCHAR, at TIMESTAMP WITH TIME ZONE,
                   ts TIMESTAMP NOT NULL, WATERMARK FOR ts AS ts)";
        match parse_stream_statement(sql).unwrap() {
            Some(StreamStatement::Create { def, .. }) => def,
            _ => unreachable!(),
        }
    }

    /// What each column may be given: good, wrong, borderline and malformed values.
    const VALUES: &[&str] = &[
        "null",
        "0",
        "-0",
        "7",
        "-7",
        "7.0",
        "2e3",
        "1E2",
        "1.5",
        "-0.25",
        "0.1",
        "1e400",
        "127",
        "128",
        "-128",
        "-129",
        "32767",
        "32768",
        "2147483648",
        "-2147483649",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "123456789012345678",
        "1234567890123456789",
        "1436918400001",
        "1436918400001.5",
        "-1",
        "007",
        "1.",
        ".5",
        "-",
        "+1",
        "true",
        "false",
        "nul",
        "tru",
        r#""7""#,
        r#""x""#,
        r#""""#,
        r#""a\"b""#,
        r#""\u00e9""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\udc00""#,
        r#""tab\there""#,
        "\"raw\ttab\"",
        r#""é""#,
        r#""\/\\\b\f\n\r""#,
        r#""\x""#,
        r#""2015-07-15T00:00:00.000Z""#,
        r#""2015-07-15 00:00:00""#,
        r#""2015-07-15T01:00:00+01:00""#,
        r#""2015-07-15T00:00:00.1234567Z""#,
        r#""not a time""#,
        "[1,2]",
        r#"{"a":1}"#,
        "{}",
        "[]",
        r#"[{"a":[null,true]}]"#,
        "[1,]",
        r#"{"a"}"#,
        r#""unterminated"#,
        r#"" 7""#,
        r#""-7e2""#,
        r#""1.5""#,
        "1.00000005960464477539062499",
        "3.4028235e38",
        "3.4028236e38",
    ];

    /// Keys as written between the quotes.
    const KEYS: &[&str] = &[
        "id",
        "small",
        "tiny",
        "n",
        "d",
        "r",
        "ok",
        "name",
        "at",
        "ts",
        "extra",
        "ID",
        r"na\u006de",
    ];

    /// The general path alone, and both paths; asserts they decode `text` alike and
    /// says whether the fast path took it.
    fn same(text: &str) -> bool {
        let def = def();
        let both = NdjsonDecoder::new(&def);
        let general = NdjsonDecoder::new(&def).without_fast_path();
        let (a, b) = (
            both.decode(text.as_bytes(), 1).unwrap(),
            general.decode(text.as_bytes(), 1).unwrap(),
        );
        assert_eq!(a.batch, b.batch, "{text}");
        assert_eq!(a.rejects, b.rejects, "{text}");
        let lines = split_lines(text.as_bytes(), 1, &mut Vec::new());
        let direct = Direct::new(&lenient_schema(&def)).expect("every type is read");
        direct.decode(text.as_bytes(), &lines).unwrap().num_rows() == lines.len()
    }

    /// Every key given every value, one line each, both paths alike; the fast path takes
    /// the values it should.
    #[test]
    fn matches_the_general_path_value_by_value() {
        let mut taken = 0;
        for key in KEYS {
            for value in VALUES {
                let line = format!(r#"{{"id":1,"ts":2,"{key}":{value}}}"#);
                taken += usize::from(same(&line));
            }
        }
        assert!(taken > KEYS.len() * VALUES.len() / 4, "{taken} taken");
        for line in [
            r#"{"id":1,"ts":"2015-07-15T00:00:00Z","name":"a\"b\u00e9\ud83d\ude00","d":2e3}"#,
            r#" { "ts" : 2 , "id" : -7 , "extra" : [ { "k" : [ null , "\"" ] } ] } "#,
            r#"{"ts":2,"id":7.0,"small":-32768,"tiny":2e1,"r":0.1,"ok":false,"name":12.5}"#,
            r#"{"id":1,"ts":2,"at":null,"name":true}"#,
            r#"{"id":null,"ts":2}"#,
            r#"{"ts":99999999999999999}"#,
            r#"{"id":"7","ts":2,"n":"-2e3"}"#,
        ] {
            assert!(same(line), "the fast path takes {line}");
        }
        for line in [
            r#"{"id":1,"ts":2,"id":3}"#,
            r#"{"id":1.5,"ts":2}"#,
            r#"{"id":1,"ts":2}{"id":2,"ts":3}"#,
            r#"{"id":1,"ts":2,}"#,
            "[1]",
        ] {
            assert!(
                !same(line),
                "the fast path leaves {line} to the general path"
            );
        }
    }

    /// Values the fast path takes.
    const CLEAN: &[(&str, &str)] = &[
        ("name", r#""s\n""#),
        ("name", "null"),
        ("d", "2.5"),
        ("small", "-3"),
        ("ok", "true"),
        ("extra", r#"[1,{"a":"b"}]"#),
        ("at", r#""2015-07-15T00:00:00Z""#),
        ("r", "1e-3"),
    ];

    /// A line the fast path cannot read leaves it and the lines after it to the general
    /// path; the lines before it stay on the fast path.
    #[test]
    fn the_fast_path_stops_at_the_first_line_it_cannot_read() {
        let text = "{\"id\":1,\"ts\":2,\"name\":\"a\"}\n{\"id\":2,\"ts\":3,\"name\":\"b\"}\n\
                    {\"id\":1.5,\"ts\":4}\n{\"id\":4,\"ts\":5}\n";
        let def = def();
        let lines = split_lines(text.as_bytes(), 1, &mut Vec::new());
        let direct = Direct::new(&lenient_schema(&def)).expect("every type is read");
        let batch = direct.decode(text.as_bytes(), &lines).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert!(!same(text));
        let decoded = NdjsonDecoder::new(&def).decode(text.as_bytes(), 1).unwrap();
        assert_eq!(decoded.accepted(), 3);
        assert_eq!(decoded.rejects[0].line, 3);
    }

    /// An object split over two lines is two bad lines, whatever lines it is decoded
    /// with: the general path checks each line holds one object, so the fast path stopping
    /// early cannot change which lines are taken.
    #[test]
    fn an_object_split_over_two_lines_is_rejected_wherever_bisection_cuts() {
        let clean = "{\"id\":0,\"ts\":0}\n";
        let text = format!(
            "{clean}{clean}{clean}{{\"id\":1,\"ts\":1}}{{\"id\":2,\n\"ts\":2}}\n{clean}{clean}x\n"
        );
        assert!(!same(&text));
        let decoded = NdjsonDecoder::new(&def())
            .decode(text.as_bytes(), 1)
            .unwrap();
        let lines: Vec<u64> = decoded.rejects.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 8]);
        assert_eq!(decoded.accepted(), 5);
    }

    /// A column in a zone other than UTC is left to the general path, which reads naive
    /// times in that zone.
    #[test]
    fn only_utc_timestamps_take_the_fast_path() {
        use arrow_schema::{DataType, Field, Schema, TimeUnit};
        let zoned = |tz: Option<&str>| {
            let t = DataType::Timestamp(TimeUnit::Millisecond, tz.map(Into::into));
            Direct::new(&std::sync::Arc::new(Schema::new(vec![Field::new(
                "t", t, true,
            )])))
        };
        assert!(zoned(None).is_some());
        assert!(zoned(Some("+00:00")).is_some());
        assert!(zoned(Some("+01:00")).is_none());
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    /// Random chunks of lines, clean and not, both paths alike.
    #[test]
    fn matches_the_general_path_on_random_chunks() {
        let mut rng = Rng(0x5eed);
        let (mut taken, chunks) = (0, 400);
        for _ in 0..chunks {
            let mut text = String::new();
            let dirty = rng.below(3) == 0;
            for _ in 0..1 + rng.below(12) {
                let mut fields = vec![
                    format!(r#""id":{}"#, rng.below(1000)),
                    format!(r#""ts":{}"#, 1_436_918_400_000 + rng.below(10_000)),
                ];
                for _ in 0..rng.below(5) {
                    let (key, value) = match dirty {
                        true => (KEYS[rng.below(KEYS.len())], VALUES[rng.below(VALUES.len())]),
                        false => CLEAN[rng.below(CLEAN.len())],
                    };
                    let quoted = format!(r#""{key}":"#);
                    if dirty || !fields.iter().any(|f| f.starts_with(&quoted)) {
                        fields.push(format!("{quoted}{value}"));
                    }
                }
                let at = rng.below(fields.len());
                let first = fields.remove(at);
                fields.push(first);
                let space = [" ", "", "\t"][rng.below(3)];
                text.push_str(&format!("{{{space}{}}}", fields.join(&format!(",{space}"))));
                text.push_str(["\n", "\r\n", "\n\n"][rng.below(3)]);
            }
            taken += usize::from(same(&text));
        }
        assert!(taken > chunks / 2, "{taken} of {chunks} chunks taken");
    }
}
