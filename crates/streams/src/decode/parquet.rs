//! Parquet files: columns are matched to the stream by name and cast to the stream's types
//! (a value that does not cast rejects its row). Rejected rows are kept as JSON.

use super::checks::{finish, lenient_schema};
use super::{Decoded, Reject, RejectCode};
use crate::def::StreamDef;
use crate::error::{Result, StreamError};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast::{CastOptions, cast_with_options};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::path::{Path, PathBuf};

/// Decode a whole Parquet file in batches of `limits::INGEST_BATCH_ROWS` rows, calling
/// `sink` with each decoded batch. Row numbers (1-based) stand in for line numbers.
pub fn decode_parquet_file(
    def: &StreamDef,
    path: &Path,
    mut sink: impl FnMut(Decoded) -> Result<()>,
) -> Result<()> {
    let mut decoder = ParquetDecoder::open(def, path)?;
    while let Some(decoded) = decoder.next_batch()? {
        sink(decoded)?;
    }
    Ok(())
}

/// A Parquet file decoded a batch at a time.
pub struct ParquetDecoder {
    def: StreamDef,
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    lenient: SchemaRef,
    schema: SchemaRef,
    /// Rows before the next batch.
    row_base: u64,
}

impl ParquetDecoder {
    /// Opens `path` for `def`; a file that is not Parquet is refused here.
    pub fn open(def: &StreamDef, path: &Path) -> Result<ParquetDecoder> {
        let file = std::fs::File::open(path).map_err(crate::error::io_err("open", path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| {
                StreamError::BadInput(format!("{}: not a Parquet file: {e}", path.display()))
            })?
            .with_batch_size(freshet_types::limits::INGEST_BATCH_ROWS)
            .build()
            .map_err(|e| StreamError::BadInput(format!("{}: {e}", path.display())))?;
        Ok(ParquetDecoder {
            def: def.clone(),
            path: path.to_path_buf(),
            reader,
            lenient: lenient_schema(def),
            schema: def.schema(),
            row_base: 0,
        })
    }

    /// The next batch of rows, decoded; `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<Decoded>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let path = &self.path;
        let (def, lenient, schema, row_base) =
            (&self.def, &self.lenient, &self.schema, self.row_base);
        let options = CastOptions {
            safe: true,
            ..CastOptions::default()
        };
        let batch = batch.map_err(|e| StreamError::BadInput(format!("{}: {e}", path.display())))?;
        let rows = batch.num_rows();
        let mut wrong: Vec<Option<String>> = vec![None; rows];
        let mut columns: Vec<ArrayRef> = Vec::new();
        for col in &def.columns {
            let Some(source) = batch.column_by_name(&col.name) else {
                columns.push(arrow_array::new_null_array(&col.data_type, rows));
                continue;
            };
            let cast = if source.data_type() == &col.data_type {
                source.clone()
            } else {
                cast_with_options(source, &col.data_type, &options)?
            };
            for (row, slot) in wrong.iter_mut().enumerate() {
                if slot.is_none() && source.is_valid(row) && cast.is_null(row) {
                    *slot = Some(format!(
                        "column `{}`: value of type {} does not convert to {}",
                        col.name,
                        source.data_type(),
                        col.sql_type
                    ));
                }
            }
            columns.push(cast);
        }
        let typed = RecordBatch::try_new(lenient.clone(), columns)?;
        let mut rejects = Vec::new();
        let keep: Vec<usize> = (0..rows).filter(|r| wrong[*r].is_none()).collect();
        for (row, reason) in wrong.into_iter().enumerate() {
            if let Some(reason) = reason {
                rejects.push(Reject {
                    code: RejectCode::WrongType,
                    reason,
                    line: row_base + row as u64 + 1,
                    raw: row_json(&batch, row),
                });
            }
        }
        let good = if keep.len() == rows {
            typed
        } else {
            let idx = arrow_array::UInt32Array::from_iter_values(keep.iter().map(|r| *r as u32));
            arrow_select::take::take_record_batch(&typed, &idx)?
        };
        let decoded = finish(
            def,
            schema,
            Some(good),
            rejects,
            |r| row_base + keep[r] as u64 + 1,
            |r| row_json(&batch, keep[r]),
        )?;
        self.row_base += rows as u64;
        Ok(Some(decoded))
    }
}

/// One row rendered as a JSON object, for the dead-letter stream.
fn row_json(batch: &RecordBatch, row: usize) -> Vec<u8> {
    let one = batch.slice(row, 1);
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    if writer.write(&one).is_err() || writer.finish().is_err() {
        return b"(row could not be rendered)".to_vec();
    }
    let mut out = writer.into_inner();
    while out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}
