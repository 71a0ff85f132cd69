//! Frame payloads: one Arrow IPC stream (schema message, one record batch, end marker) per
//! frame, so every frame can be decoded on its own.

use crate::error::Result;
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

/// Encode `batch` as a self-contained Arrow IPC stream.
pub fn encode(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let mut writer = StreamWriter::try_new(&mut *out, batch.schema_ref())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// Decode a payload written by [`encode`] into its record batches.
pub fn decode(payload: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(std::io::Cursor::new(payload), None)?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(batch?);
    }
    Ok(out)
}
