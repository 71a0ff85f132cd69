//! Frame payloads: one Arrow IPC stream (schema message, one record batch, end marker) per
//! frame, so every frame can be decoded on its own.

use crate::error::Result;
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

/// Room for an IPC stream's schema message, batch metadata, padding and end marker.
const IPC_OVERHEAD_BYTES: usize = 4096;

/// Encode `batch` as a self-contained Arrow IPC stream.
pub fn encode(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    // The batch's buffers plus the messages around them, so the payload is written
    // without growing (each growth a copy of what is written so far, and fresh pages).
    out.reserve(batch.get_array_memory_size() + IPC_OVERHEAD_BYTES);
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
