//! NDJSON: one JSON object per line. Decoded with arrow-json's vectorised decoder; fields
//! not in the schema are ignored; timestamps may be RFC 3339 strings or integer epoch
//! milliseconds (told apart by the JSON type).

use super::checks::{finish, lenient_schema};
use super::{Decoded, Reject, RejectCode, split_lines};
use crate::def::StreamDef;
use crate::error::Result;
use arrow_array::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;

/// Decodes NDJSON text for one stream.
pub struct NdjsonDecoder {
    def: StreamDef,
    lenient: SchemaRef,
    schema: SchemaRef,
}

enum Attempt {
    Ok(RecordBatch),
    Bad(RejectCode, String),
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
        let mut rejects = Vec::new();
        let lines = split_lines(text, first_line, &mut rejects);
        let mut batches = Vec::new();
        let mut kept: Vec<usize> = Vec::with_capacity(lines.len());
        // Runs of lines not separated by an oversized line are contiguous in `text`.
        let mut run_start = 0;
        for i in 0..=lines.len() {
            let boundary = i == lines.len()
                || (i > run_start && !contiguous(text, lines[i - 1].2, lines[i].1));
            if boundary && i > run_start {
                self.decode_run(
                    text,
                    &lines,
                    run_start,
                    i,
                    &mut batches,
                    &mut kept,
                    &mut rejects,
                )?;
                run_start = i;
            }
        }
        let batch = match batches.len() {
            0 => None,
            1 => batches.pop(),
            _ => Some(arrow_select::concat::concat_batches(
                &self.lenient,
                &batches,
            )?),
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

    /// Decode lines `[from, to)`; on failure bisect until each bad line is isolated.
    #[allow(clippy::too_many_arguments)]
    fn decode_run(
        &self,
        text: &[u8],
        lines: &[(u64, usize, usize)],
        from: usize,
        to: usize,
        batches: &mut Vec<RecordBatch>,
        kept: &mut Vec<usize>,
        rejects: &mut Vec<Reject>,
    ) -> Result<()> {
        let bytes = &text[lines[from].1..lines[to - 1].2];
        match self.attempt(bytes, to - from)? {
            Attempt::Ok(batch) => {
                batches.push(batch);
                kept.extend(from..to);
            }
            Attempt::Bad(code, reason) if to - from == 1 => {
                let (line, s, e) = lines[from];
                rejects.push(Reject {
                    code,
                    reason,
                    line,
                    raw: text[s..e].to_vec(),
                });
            }
            Attempt::Bad(..) => {
                let mid = from + (to - from) / 2;
                self.decode_run(text, lines, from, mid, batches, kept, rejects)?;
                self.decode_run(text, lines, mid, to, batches, kept, rejects)?;
            }
        }
        Ok(())
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
                Err(e) => return Ok(Attempt::Bad(RejectCode::BadJson, clean(e))),
            }
            if decoder.len() > expected_rows {
                break;
            }
        }
        if decoder.has_partial_record() {
            return Ok(Attempt::Bad(
                RejectCode::BadJson,
                "incomplete JSON object".into(),
            ));
        }
        if decoder.len() != expected_rows {
            return Ok(Attempt::Bad(
                RejectCode::BadJson,
                "a line must hold exactly one JSON object".into(),
            ));
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == expected_rows => Ok(Attempt::Ok(batch)),
            Ok(_) => Ok(Attempt::Bad(
                RejectCode::BadJson,
                "a line must hold exactly one JSON object".into(),
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
                Ok(Attempt::Bad(code, msg))
            }
        }
    }
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
