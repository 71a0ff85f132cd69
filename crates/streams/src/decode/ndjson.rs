//! NDJSON: one JSON object per line. Decoded with arrow-json's vectorised decoder; fields
//! not in the schema are ignored; timestamps may be RFC 3339 strings or integer epoch
//! milliseconds (told apart by the JSON type).
//!
//! Integer and decimal columns are decoded as text (the JSON number's own text, or a JSON
//! string's) and converted as CSV converts them (`text::convert`): arrow-json's integer
//! decoder would truncate `1.5` to 1, and its decimal decoder trusts the length of what it
//! is given. So a fraction or a value out of range is `wrong_type`, as in CSV, and whole
//! numbers in any notation (`7`, `"7"`, `2e3`, `7.0`) are taken. Since arrow-json then
//! decodes with `coerce_primitive`, a number or boolean sent to a text column is taken as
//! its JSON text.
//!
//! Clean input takes a faster path first (`direct`): one pass per line straight into the
//! column types, giving the same values; from the first line it cannot read that way, the
//! rest of the chunk comes here.

use super::checks::{finish, lenient_schema, set_aside_wrong_types};
use super::direct::Direct;
use super::text;
use super::{Attempt, Bisected, Decoded, RejectCode, bisect, split_lines};
use crate::def::StreamDef;
use crate::error::Result;
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use std::sync::Arc;

/// Whether a column of this type is decoded as text and converted by `text::convert`.
fn as_text(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Decimal128(..))
}

/// Decodes NDJSON text for one stream.
pub struct NdjsonDecoder {
    def: StreamDef,
    /// The lenient schema with integer and decimal columns as text: what arrow-json
    /// decodes.
    decoded: SchemaRef,
    lenient: SchemaRef,
    schema: SchemaRef,
    /// The fast path, where every column's type is one it reads.
    direct: Option<Direct>,
}

impl NdjsonDecoder {
    /// A decoder for `def`'s schema.
    pub fn new(def: &StreamDef) -> NdjsonDecoder {
        let lenient = lenient_schema(def);
        let decoded = Arc::new(Schema::new(
            lenient
                .fields()
                .iter()
                .map(|f| match as_text(f.data_type()) {
                    true => Field::new(f.name(), DataType::Utf8, true),
                    false => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        NdjsonDecoder {
            def: def.clone(),
            decoded,
            direct: Direct::new(&lenient),
            lenient,
            schema: def.schema(),
        }
    }

    /// Decode `text`, whose first line is line `first_line` (1-based) of its source.
    pub fn decode(&self, text: &[u8], first_line: u64) -> Result<Decoded> {
        let mut out = Bisected::default();
        let lines = split_lines(text, first_line, &mut out.rejects);
        // The fast path reads the chunk's lines from the first on, as far as it can; the
        // general path reads the rest.
        let fast = match &self.direct {
            Some(direct) => Some(direct.decode(text, &lines)?),
            None => None,
        };
        let taken = fast.as_ref().map_or(0, RecordBatch::num_rows);
        let attempt = |from: usize, to: usize| self.attempt(text, &lines[from..to]);
        if taken < lines.len() {
            bisect(text, &lines, taken, lines.len(), &attempt, &mut out)?;
        }
        let batch = out.concat(&self.decoded)?;
        let (mut kept, mut rejects) = (out.kept, out.rejects);
        let general = match batch {
            Some(batch) => {
                let (batch, wrong) = self.convert(&batch)?;
                let (batch, narrowed) =
                    set_aside_wrong_types(batch, wrong, kept, &lines, text, &mut rejects)?;
                kept = narrowed;
                Some(batch)
            }
            None => None,
        };
        // The fast path's rows are the chunk's first lines.
        let kept: Vec<usize> = (0..taken).chain(kept).collect();
        let batch = match (fast.filter(|b| b.num_rows() > 0), general) {
            (Some(fast), Some(general)) => Some(concat_batches(&self.lenient, [&fast, &general])?),
            (fast, general) => fast.or(general),
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

    /// This decoder without its fast path: the general path alone, which the fast path is
    /// held to (the tests and the NDJSON fuzz target compare the two).
    #[doc(hidden)]
    pub fn without_fast_path(mut self) -> NdjsonDecoder {
        self.direct = None;
        self
    }

    /// `batch` (decoded) in the lenient schema: each column decoded as text converted,
    /// with why each row that does not convert is wrong.
    fn convert(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<Option<String>>)> {
        let mut wrong: Vec<Option<String>> = vec![None; batch.num_rows()];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (col, array) in self.def.columns.iter().zip(batch.columns()) {
            if !as_text(&col.data_type) {
                columns.push(array.clone());
                continue;
            }
            let (converted, why) = text::convert(col, array.as_string::<i32>())?;
            for (slot, why) in wrong.iter_mut().zip(why) {
                if slot.is_none() {
                    *slot = why;
                }
            }
            columns.push(converted);
        }
        Ok((RecordBatch::try_new(self.lenient.clone(), columns)?, wrong))
    }

    /// Decode `lines` of `text`. Each must hold exactly one JSON object, checked line by
    /// line, so whether a line is taken never depends on the lines decoded with it.
    fn attempt(&self, text: &[u8], lines: &[(u64, usize, usize)]) -> Result<Attempt> {
        let expected_rows = lines.len();
        let mut decoder = ReaderBuilder::new(self.decoded.clone())
            .with_coerce_primitive(true)
            .with_batch_size(expected_rows + 1)
            .build_decoder()?;
        for (done, &(_, start, end)) in lines.iter().enumerate() {
            let mut rest = &text[start..end];
            while !rest.is_empty() {
                match decoder.decode(rest) {
                    Ok(0) => break,
                    Ok(n) => rest = &rest[n..],
                    Err(e) => return Ok(bad(RejectCode::BadJson, clean(e))),
                }
                if decoder.len() > done + 1 {
                    break;
                }
            }
            if decoder.has_partial_record() {
                return Ok(bad(RejectCode::BadJson, "incomplete JSON object"));
            }
            if decoder.len() != done + 1 {
                return Ok(bad(
                    RejectCode::BadJson,
                    "a line must hold exactly one JSON object",
                ));
            }
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == expected_rows => Ok(Ok(batch)),
            Ok(_) => Ok(bad(
                RejectCode::BadJson,
                "a line must hold exactly one JSON object",
            )),
            Err(e) => {
                let msg = clean(e);
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

fn bad(code: RejectCode, reason: impl Into<String>) -> Attempt {
    Err((code, reason.into()))
}

fn clean(e: arrow_schema::ArrowError) -> String {
    let s = e.to_string();
    s.strip_prefix("Json error: ")
        .or_else(|| s.strip_prefix("Parser error: "))
        .unwrap_or(&s)
        .to_string()
}
