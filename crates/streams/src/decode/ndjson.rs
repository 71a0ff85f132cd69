//! NDJSON: one JSON object per line. Decoded with arrow-json's vectorised decoder; fields
//! not in the schema are ignored; timestamps may be RFC 3339 strings or integer epoch
//! milliseconds (told apart by the JSON type).

use super::checks::{finish, lenient_schema};
use super::{Attempt, Bisected, Decoded, RejectCode, bisect, split_lines};
use crate::def::StreamDef;
use crate::error::Result;
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;

/// Decodes NDJSON text for one stream.
pub struct NdjsonDecoder {
    def: StreamDef,
    lenient: SchemaRef,
    schema: SchemaRef,
}

impl NdjsonDecoder {
    /// A decoder for `def`'s schema.
    pub fn new(def: &StreamDef) -> NdjsonDecoder {
        NdjsonDecoder {
            def: def.clone(),
            lenient: lenient_schema(def),
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
        let batch = out.concat(&self.lenient)?;
        let kept = out.kept;
        finish(
            &self.def,
            &self.schema,
            batch,
            out.rejects,
            |row| lines[kept[row]].0,
            |row| text[lines[kept[row]].1..lines[kept[row]].2].to_vec(),
        )
    }

    fn attempt(&self, bytes: &[u8], expected_rows: usize) -> Result<Attempt> {
        let mut decoder = ReaderBuilder::new(self.lenient.clone())
            .with_batch_size(expected_rows + 1)
            .build_decoder()?;
        let mut rest = bytes;
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) => return Ok(bad(RejectCode::BadJson, clean(e))),
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
