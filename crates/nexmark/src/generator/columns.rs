//! Arrow columns under construction: plain vectors and byte buffers, handed to Arrow
//! without copying when a batch is finished.

use crate::EventKind;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use std::sync::Arc;

/// A `Utf8` column under construction: offsets and bytes, as Arrow lays them out.
pub(super) struct Utf8Column {
    offsets: Vec<i32>,
    /// The bytes of the rows so far; a row may be appended here piece by piece, then
    /// closed with [`Utf8Column::end_row`].
    pub(super) values: Vec<u8>,
}

impl Utf8Column {
    pub(super) fn with_capacity(rows: usize, bytes: usize) -> Utf8Column {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Utf8Column {
            offsets,
            values: Vec::with_capacity(bytes),
        }
    }

    /// Ends the current row at the bytes appended so far.
    #[inline]
    pub(super) fn end_row(&mut self) {
        let end = i32::try_from(self.values.len())
            .expect("EVENTS_PER_CALL_MAX keeps a string column under 2 GiB");
        self.offsets.push(end);
    }

    /// Appends one whole row.
    #[inline]
    pub(super) fn push(&mut self, value: &[u8]) {
        self.values.extend_from_slice(value);
        self.end_row();
    }

    pub(super) fn finish(self) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        Arc::new(
            StringArray::try_new(offsets, Buffer::from_vec(self.values), None)
                .expect("generated text is ASCII with monotone offsets"),
        )
    }
}

pub(super) fn int64(values: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::new(ScalarBuffer::from(values), None))
}

pub(super) fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::new(
        ScalarBuffer::from(values),
        None,
    ))
}

pub(super) fn record_batch(kind: EventKind, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(kind.schema(), columns).expect("columns are built to the kind's schema")
}
