//! CSV with a header row. Each record must fit on one line. Every field is first read as
//! text, then converted column by column with Arrow's cast kernels, so a bad value is found
//! per row without failing the batch. Timestamps may be RFC 3339 or integer epoch
//! milliseconds. Empty fields are NULL. Columns missing from the header are NULL; extra
//! columns are ignored.

use super::checks::{finish, lenient_schema, set_aside_wrong_types};
use super::text;
use super::{Bisected, Decoded, Reject, RejectCode, bisect, split_lines};
use crate::def::StreamDef;
use crate::error::{Result, StreamError};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// The column names of a CSV header line, split as the records are (csv-core's rules):
/// at commas outside quotes; a field is quoted only if a quote is its first character, and
/// then `""` inside it is one quote and its text is kept as written. Unquoted names are
/// trimmed of the spaces around them, as before.
fn header_fields(line: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let (mut quoted, mut was_quoted) = (false, false);
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                names.push(header_name(std::mem::take(&mut field), was_quoted));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(StreamError::BadInput(format!(
            "the CSV header has a quote that is never closed: {line:?}"
        )));
    }
    names.push(header_name(field, was_quoted));
    Ok(names)
}

fn header_name(field: String, quoted: bool) -> String {
    if quoted {
        field
    } else {
        field.trim().to_string()
    }
}

/// Decodes CSV records for one stream, given the file's header.
pub struct CsvDecoder {
    def: StreamDef,
    lenient: SchemaRef,
    schema: SchemaRef,
    text_schema: SchemaRef,
    /// For each stream column, its position in the header.
    positions: Vec<Option<usize>>,
}

impl CsvDecoder {
    /// A decoder for files whose first line is `header`.
    pub fn new(def: &StreamDef, header: &[u8]) -> Result<CsvDecoder> {
        let header = header.strip_prefix(super::UTF8_BOM).unwrap_or(header);
        let header = std::str::from_utf8(header)
            .map_err(|_| StreamError::BadInput("CSV header is not UTF-8".into()))?;
        let names = header_fields(header.trim_end_matches(['\r', '\n']))?;
        let positions: Vec<Option<usize>> = def
            .columns
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| *n == c.name)
                    .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(&c.name)))
            })
            .collect();
        if positions.iter().all(Option::is_none) {
            return Err(StreamError::BadInput(format!(
                "the CSV header names none of the columns of stream `{}` (header: {header:?})",
                def.name
            )));
        }
        let text_schema = Arc::new(Schema::new(
            names
                .iter()
                .enumerate()
                .map(|(i, _)| Field::new(format!("c{i}"), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        Ok(CsvDecoder {
            def: def.clone(),
            lenient: lenient_schema(def),
            schema: def.schema(),
            text_schema,
            positions,
        })
    }

    /// Decode records (no header) starting at 1-based line `first_line` of their source.
    pub fn decode(&self, text: &[u8], first_line: u64) -> Result<Decoded> {
        let mut out = Bisected::default();
        let mut lines = split_lines(text, first_line, &mut out.rejects);
        // arrow-csv checks UTF-8 over all the fields of a batch at once, then slices each
        // field unchecked: the bytes of two bad fields can together form a valid character,
        // and each field is then a `str` that is not UTF-8 (a panic when printed). A line
        // checked here splits only at ASCII separators, so each of its fields is text.
        lines.retain(|&(line, s, e)| match std::str::from_utf8(&text[s..e]) {
            Ok(_) => true,
            Err(err) => {
                out.rejects.push(Reject {
                    code: RejectCode::BadCsv,
                    reason: format!("the record is not UTF-8: {err}"),
                    line,
                    raw: text[s..e].to_vec(),
                });
                false
            }
        });
        let attempt = |from: usize, to: usize| {
            // Feed only the chosen lines: oversized and blank lines are left out.
            let mut buf = Vec::new();
            for &(_, s, e) in &lines[from..to] {
                buf.extend_from_slice(&text[s..e]);
                buf.push(b'\n');
            }
            Ok(self
                .attempt(&buf, to - from)
                .map_err(|reason| (RejectCode::BadCsv, reason)))
        };
        if !lines.is_empty() {
            bisect(text, &lines, 0, lines.len(), &attempt, &mut out)?;
        }
        let raw_batch = out.concat(&self.text_schema)?;
        let (kept, mut rejects) = (out.kept, out.rejects);
        let Some(raw_batch) = raw_batch else {
            return finish(
                &self.def,
                &self.schema,
                None,
                rejects,
                |_| 0,
                |_| Vec::new(),
            );
        };
        // Convert each column; a value that does not convert rejects its row.
        let rows = raw_batch.num_rows();
        let mut wrong: Vec<Option<String>> = vec![None; rows];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.def.columns.len());
        for (col, pos) in self.def.columns.iter().zip(&self.positions) {
            let Some(pos) = pos else {
                columns.push(arrow_array::new_null_array(&col.data_type, rows));
                continue;
            };
            let (converted, why) = text::convert(col, raw_batch.column(*pos).as_string::<i32>())?;
            for (slot, why) in wrong.iter_mut().zip(why) {
                if slot.is_none() {
                    *slot = why;
                }
            }
            columns.push(converted);
        }
        let batch = RecordBatch::try_new(self.lenient.clone(), columns)?;
        let (batch, rows_kept) =
            set_aside_wrong_types(batch, wrong, kept, &lines, text, &mut rejects)?;
        finish(
            &self.def,
            &self.schema,
            Some(batch),
            rejects,
            |row| lines[rows_kept[row]].0,
            |row| text[lines[rows_kept[row]].1..lines[rows_kept[row]].2].to_vec(),
        )
    }

    fn attempt(&self, buf: &[u8], expected: usize) -> std::result::Result<RecordBatch, String> {
        let mut decoder = arrow_csv::ReaderBuilder::new(self.text_schema.clone())
            .with_header(false)
            .with_batch_size(expected + 1)
            .build_decoder();
        let mut rest = buf;
        while !rest.is_empty() {
            match decoder.decode(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) => return Err(e.to_string()),
            }
        }
        match decoder.flush() {
            Ok(Some(b)) if b.num_rows() == expected => Ok(b),
            Ok(_) => Err("a CSV record must fit on one line".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Text to the column's type; values that do not convert become NULL.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{StreamStatement, parse_stream_statement};

    fn def(sql: &str) -> StreamDef {
        match parse_stream_statement(sql).expect("parses") {
            Some(StreamStatement::Create { def, .. }) => def,
            _ => unreachable!("a CREATE STREAM"),
        }
    }

    /// Issue 19 (found by fuzz/fuzz_targets/csv.rs): two records of one byte each that
    /// are not UTF-8 alone but are together (0xDC 0x94) went through arrow-csv's UTF-8
    /// check, and the decoder panicked printing the field in the reject reason. Each is
    /// now rejected as bad_csv, and the good rows around them are kept.
    #[test]
    fn issue_19_fields_that_are_utf8_only_together_are_rejected_not_a_panic() {
        let def = def("CREATE STREAM t (i INT, ts TIMESTAMP NOT NULL,
                       WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)");
        // The fuzzer's input, with the header line it began with.
        let crash = b"I\n\xdc\n\x94\x10\n\x10\n\x00\x10\n\x00\n\t\xf8\x8b0\t\n";
        let (header, records) = crash.split_at(2);
        let decoder = CsvDecoder::new(&def, header).expect("a header naming `i`");
        let decoded = decoder.decode(records, 2).expect("bad rows are rejected");
        assert_eq!(decoded.accepted(), 0);
        let got: Vec<(u64, RejectCode)> =
            decoded.rejects.iter().map(|r| (r.line, r.code)).collect();
        assert_eq!(
            got,
            vec![
                (2, RejectCode::BadCsv),
                (3, RejectCode::BadCsv),
                (4, RejectCode::WrongType),
                (5, RejectCode::WrongType),
                (6, RejectCode::WrongType),
                (7, RejectCode::BadCsv),
            ]
        );
        let decoder = CsvDecoder::new(&def, b"i,ts\n").expect("a header");
        let decoded = decoder
            .decode(b"1,5\n\xdc,5\n\x94,5\n2,6\n", 2)
            .expect("bad rows are rejected");
        assert_eq!(decoded.accepted(), 2, "{:?}", decoded.rejects);
        let got: Vec<(u64, RejectCode)> =
            decoded.rejects.iter().map(|r| (r.line, r.code)).collect();
        assert_eq!(got, vec![(3, RejectCode::BadCsv), (4, RejectCode::BadCsv)]);
    }

    /// Issue 20: a header was split at every comma, quoted or not.
    #[test]
    fn issue_20_a_quoted_header_name_may_hold_a_comma_or_a_quote() {
        assert_eq!(
            header_fields(r#"id,"a,b","say ""hi""", plain ," c ""#).expect("a header"),
            vec!["id", "a,b", r#"say "hi""#, "plain", " c "]
        );
        // As csv-core splits records: a quote after a space does not quote the field.
        assert_eq!(
            header_fields(r#"id, "a,b""#).expect("a header"),
            vec!["id", r#""a"#, r#"b""#]
        );
        assert_eq!(header_fields("x").expect("one"), vec!["x"]);
        assert_eq!(header_fields("x,").expect("two"), vec!["x", ""]);
        assert!(header_fields(r#"a,"b"#).is_err());
    }
}
