//! NDJSON: one JSON object per line. Decoded with arrow-json's vectorised decoder; fields
//! not in the schema are ignored; timestamps may be RFC 3339 strings or integer epoch
//! milliseconds (told apart by the JSON type).
//!
//! Integer columns are decoded as exact decimals and then converted, so that a value with
//! a fraction (`1.5`) is rejected (`wrong_type`), as in CSV, rather than truncated as
//! arrow-json's integer decoder does; whole numbers in any notation (`7`, `"7"`, `2e3`,
//! `7.0`) are accepted, and values out of the column's range are rejected.

use super::checks::{finish, lenient_schema, set_aside_wrong_types};
use super::{Attempt, Bisected, Decoded, RejectCode, bisect, split_lines};
use crate::def::StreamDef;
use crate::error::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef, Decimal128Array, RecordBatch};
use arrow_cast::cast::{CastOptions, cast_with_options};
use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// Digits after the point of the decimals integer columns are decoded as: more than any
/// JSON encoder writes for a whole number (`7.0000000000`), with 28 left for the integer
/// part, beyond any 64-bit integer's 20.
const SCALE: i8 = 10;

/// The decimal type integer columns are decoded as.
const DECIMAL: DataType = DataType::Decimal128(38, SCALE);

/// Decodes NDJSON text for one stream.
pub struct NdjsonDecoder {
    def: StreamDef,
    /// The lenient schema with integer columns as [`DECIMAL`]: what arrow-json decodes.
    decoded: SchemaRef,
    lenient: SchemaRef,
    schema: SchemaRef,
}

impl NdjsonDecoder {
    /// A decoder for `def`'s schema.
    pub fn new(def: &StreamDef) -> NdjsonDecoder {
        let lenient = lenient_schema(def);
        let decoded = Arc::new(Schema::new(
            lenient
                .fields()
                .iter()
                .map(|f| match f.data_type().is_integer() {
                    true => Field::new(f.name(), DECIMAL, true),
                    false => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        NdjsonDecoder {
            def: def.clone(),
            decoded,
            lenient,
            schema: def.schema(),
        }
    }

    /// Decode `text`, whose first line is line `first_line` (1-based) of its source.
    pub fn decode(&self, text: &[u8], first_line: u64) -> Result<Decoded> {
        let mut out = Bisected::default();
        let lines = split_lines(text, first_line, &mut out.rejects);
        let attempt =
            |from: usize, to: usize| self.attempt(&text[lines[from].1..lines[to - 1].2], to - from);
        // Runs of lines not separated by an oversized line are contiguous in `text`.
        let mut run_start = 0;
        for i in 1..=lines.len() {
            if i == lines.len() || !contiguous(text, lines[i - 1].2, lines[i].1) {
                bisect(text, &lines, run_start, i, &attempt, &mut out)?;
                run_start = i;
            }
        }
        let batch = out.concat(&self.decoded)?;
        let (mut kept, mut rejects) = (out.kept, out.rejects);
        let batch = match batch {
            Some(batch) => {
                let (batch, wrong) = self.integers(&batch)?;
                let (batch, narrowed) =
                    set_aside_wrong_types(batch, wrong, kept, &lines, text, &mut rejects)?;
                kept = narrowed;
                Some(batch)
            }
            None => None,
        };
        finish(
            &self.def,
            &self.schema,
            batch,
            rejects,
            |row| lines[kept[row]].0,
            |row| text[lines[kept[row]].1..lines[kept[row]].2].to_vec(),
        )
    }

    /// `batch` (decoded) in the lenient schema: each integer column converted from its
    /// decimals, with why each row that does not convert is wrong.
    fn integers(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<Option<String>>)> {
        let rows = batch.num_rows();
        let mut wrong: Vec<Option<String>> = vec![None; rows];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (col, array) in self.def.columns.iter().zip(batch.columns()) {
            if !col.data_type.is_integer() {
                columns.push(array.clone());
                continue;
            }
            let decimals = array.as_primitive::<Decimal128Type>();
            let one = 10_i128.pow(SCALE as u32);
            let whole: Decimal128Array = decimals
                .iter()
                .map(|v| v.filter(|v| v % one == 0).map(|v| v / one))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 0)?;
            // Out of the column's range: NULL (checked below).
            let safe = CastOptions {
                safe: true,
                ..CastOptions::default()
            };
            let converted = cast_with_options(&whole, &col.data_type, &safe)?;
            for (row, slot) in wrong.iter_mut().enumerate() {
                if slot.is_none() && decimals.is_valid(row) && converted.is_null(row) {
                    let value = decimal_text(decimals.value(row), one);
                    *slot = Some(if whole.is_null(row) {
                        format!(
                            "column `{}`: {value} is not a whole number, so not a {}",
                            col.name, col.sql_type
                        )
                    } else {
                        format!(
                            "column `{}`: {value} is out of range for {}",
                            col.name, col.sql_type
                        )
                    });
                }
            }
            columns.push(converted);
        }
        Ok((RecordBatch::try_new(self.lenient.clone(), columns)?, wrong))
    }

    /// arrow-json's message for `e`, which calls the integer columns decimals when the
    /// stream has no decimal columns of its own.
    fn clean(&self, e: arrow_schema::ArrowError) -> String {
        let msg = clean(e);
        let decimals = self
            .def
            .columns
            .iter()
            .any(|c| matches!(c.data_type, DataType::Decimal128(..)));
        match decimals {
            true => msg,
            false => msg.replace("decimal", "integer"),
        }
    }

    fn attempt(&self, bytes: &[u8], expected_rows: usize) -> Result<Attempt> {
        let mut decoder = ReaderBuilder::new(self.decoded.clone())
            .with_batch_size(expected_rows + 1)
            .build_decoder()?;
        let mut rest = bytes;
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) => return Ok(bad(RejectCode::BadJson, self.clean(e))),
            }
            if decoder.len() > expected_rows {
                break;
            }
        }
        if decoder.has_partial_record() {
            return Ok(bad(RejectCode::BadJson, "incomplete JSON object"));
        }
        if decoder.len() != expected_rows {
            return Ok(bad(
                RejectCode::BadJson,
                "a line must hold exactly one JSON object",
            ));
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == expected_rows => Ok(Ok(batch)),
            Ok(_) => Ok(bad(
                RejectCode::BadJson,
                "a line must hold exactly one JSON object",
            )),
            Err(e) => {
                let msg = self.clean(e);
                let code = if !msg.starts_with("whilst decoding field")
                    && msg.contains("expected")
                    && msg.contains("got")
                {
                    // The tape holds something other than an object at the top level.
                    RejectCode::BadJson
                } else {
                    RejectCode::WrongType
                };
                Ok(bad(code, msg))
            }
        }
    }
}

/// A decimal of [`SCALE`] digits after the point as it would be written: `1.5`, `-7`.
fn decimal_text(value: i128, one: i128) -> String {
    let (whole, fraction) = (value / one, (value % one).unsigned_abs());
    if fraction == 0 {
        return whole.to_string();
    }
    let sign = if value < 0 && whole == 0 { "-" } else { "" };
    let digits = format!("{fraction:0width$}", width = SCALE as usize);
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

fn bad(code: RejectCode, reason: impl Into<String>) -> Attempt {
    Err((code, reason.into()))
}

fn contiguous(text: &[u8], prev_end: usize, next_start: usize) -> bool {
    text[prev_end..next_start]
        .iter()
        .all(u8::is_ascii_whitespace)
}

fn clean(e: arrow_schema::ArrowError) -> String {
    let s = e.to_string();
    s.strip_prefix("Json error: ")
        .or_else(|| s.strip_prefix("Parser error: "))
        .unwrap_or(&s)
        .to_string()
}
