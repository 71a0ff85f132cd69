//! A join's buffered input rows as checkpoint values: the rows and their input positions
//! in one Arrow IPC batch, the positions as trailing columns (three per position).

use crate::aggregate::{sortable, unsortable};
use crate::error::{EngineError, Result};
use crate::rows::{Change, Origin, Rows};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use freshet_store::RowState;
use std::sync::Arc;

const POSITION_COLUMNS: [(&str, DataType); 3] = [
    ("__freshet_partition", DataType::UInt32),
    ("__freshet_offset", DataType::UInt64),
    ("__freshet_copy", DataType::UInt32),
];

/// Where a join keeps a chunk of one input's rows in its checkpoint: after the operator id
/// and the join's kind byte, the window's end for a window join (so that a closed window's
/// chunks are found together), the chunk's sequence number (so that entries come back in
/// the order they arrived), and its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkKey {
    /// The window's end (window joins only).
    pub end: Option<i64>,
    /// The chunk's number among the operator's chunks.
    pub seq: u64,
    /// Whether the rows are the right input's.
    pub right: bool,
}

impl ChunkKey {
    /// The key's bytes, for operator `id` of join kind `kind`.
    pub fn encode(&self, id: u16, kind: u8) -> Vec<u8> {
        let mut k = id.to_be_bytes().to_vec();
        k.push(kind);
        if let Some(end) = self.end {
            k.extend_from_slice(&sortable(end));
        }
        k.extend_from_slice(&self.seq.to_be_bytes());
        k.push(u8::from(self.right));
        k
    }

    /// A key made by [`ChunkKey::encode`] for kind `kind`, with a window end if `windowed`.
    pub fn parse(k: &[u8], kind: u8, windowed: bool) -> Result<ChunkKey> {
        let end_bytes = if windowed { 8 } else { 0 };
        if k.len() != 2 + 1 + end_bytes + 8 + 1 || k[2] != kind {
            return Err(EngineError::Bug(format!(
                "a malformed join checkpoint key (kind {kind})"
            )));
        }
        let eight = |at: usize| -> [u8; 8] { k[at..at + 8].try_into().expect("8 bytes") };
        Ok(ChunkKey {
            end: windowed.then(|| unsortable(eight(3))),
            seq: u64::from_be_bytes(eight(3 + end_bytes)),
            right: k[3 + end_bytes + 8] == 1,
        })
    }
}

/// `rows` (final rows of one join input) as bytes.
pub(super) fn encode(rows: &Rows) -> Result<Vec<u8>> {
    let mut fields: Vec<Field> = rows
        .batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = rows.batch.columns().to_vec();
    if let Some(o) = &rows.origin {
        let positions = o.columns();
        for (i, c) in positions.iter().enumerate() {
            let (name, t) = &POSITION_COLUMNS[i % 3];
            // NULL where an outer window join padded the row it joins.
            fields.push(Field::new(format!("{name}_{}", i / 3), t.clone(), true));
            columns.push(c.clone());
        }
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.batch.num_rows())),
    )?;
    let mut out = Vec::new();
    freshet_streams::payload::encode(&batch, &mut out)?;
    Ok(out)
}

/// Rows made by [`encode`] from an input of `schema`.
pub(super) fn decode(bytes: &[u8], schema: &SchemaRef) -> Result<Rows> {
    let batches = freshet_streams::payload::decode(bytes)?;
    let [batch] = batches.as_slice() else {
        return Err(EngineError::Bug("a join chunk holds one batch".into()));
    };
    let width = schema.fields().len();
    if batch.num_columns() < width {
        return Err(EngineError::Bug("a join chunk lacks columns".into()));
    }
    let origin = match &batch.columns()[width..] {
        [] => None,
        positions => Some(Origin::from_columns(positions)?),
    };
    let data = RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns()[..width].to_vec(),
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    Ok(Rows {
        batch: data,
        origin,
        change: Change::Upsert(RowState::Final),
    })
}

/// The rows of `parts` (of one input) as one batch.
pub(super) fn concat(parts: &[Rows]) -> Result<Rows> {
    if let [one] = parts {
        return Ok(one.clone());
    }
    let schema = parts[0].batch.schema();
    let batch = arrow_select::concat::concat_batches(&schema, parts.iter().map(|p| &p.batch))?;
    let origins: Option<Vec<&Origin>> = parts.iter().map(|p| p.origin.as_ref()).collect();
    Ok(Rows {
        batch,
        origin: origins.map(|o| Origin::concat(&o)).transpose()?,
        change: Change::Upsert(RowState::Final),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, UInt32Array, UInt64Array};

    fn origin(offsets: &[u64]) -> Origin {
        Origin::new(
            UInt32Array::from(vec![1; offsets.len()]),
            UInt64Array::from(offsets.to_vec()),
            UInt32Array::from(vec![0; offsets.len()]),
        )
    }

    /// A chunk of a join's rows (two positions each) comes back with both positions.
    #[test]
    fn chunks_keep_every_position() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let rows = Rows {
            batch: RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(vec![7, 8]))],
            )
            .expect("batch"),
            origin: Some(Origin::join(origin(&[3, 4]), origin(&[10, 11]))),
            change: Change::Upsert(RowState::Final),
        };
        let back = decode(&encode(&rows).expect("encode"), &schema).expect("decode");
        let o = back.origin.expect("positions");
        assert_eq!(o.positions(), 2);
        assert_eq!(o.offset.values().to_vec(), vec![3, 4]);
        assert_eq!(
            o.paired.expect("right").offset.values().to_vec(),
            vec![10, 11]
        );
        let two = concat(&[rows.clone(), rows]).expect("concat");
        assert_eq!(two.origin.expect("positions").positions(), 2);
    }

    /// Keys round-trip, and order by window end (negative ones too), then by arrival.
    #[test]
    fn chunk_keys_round_trip_in_window_then_arrival_order() {
        let key = |end, seq, right| ChunkKey { end, seq, right };
        let windowed = [
            key(Some(-5), 9, true),
            key(Some(3), 1, false),
            key(Some(3), 2, true),
        ];
        let bytes: Vec<Vec<u8>> = windowed.iter().map(|k| k.encode(7, 4)).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]), "ordered: {bytes:?}");
        for (k, b) in windowed.iter().zip(&bytes) {
            assert_eq!(ChunkKey::parse(b, 4, true).expect("parses"), *k);
        }
        let plain = key(None, 42, false);
        assert_eq!(
            ChunkKey::parse(&plain.encode(7, 6), 6, false).expect("parses"),
            plain
        );
        assert!(
            ChunkKey::parse(&plain.encode(7, 6), 4, false).is_err(),
            "another kind"
        );
        assert!(
            ChunkKey::parse(&bytes[0], 4, false).is_err(),
            "another length"
        );
    }
}
