//! The change log: what each commit changed in a view's results, kept in
//! `freshet_changes` so that a change feed can resume from a position after a restart.
//!
//! A commit (or a repair) that deletes or upserts rows adds one entry in its own
//! transaction, numbered `seq` = the view's last entry plus one (1, 2, …): the entry is
//! there exactly when the rows are. The entry holds the deleted keys and the upserted rows
//! as Arrow IPC streams (one insert per commit, whatever its size). A commit that changes
//! no rows adds no entry: its progress is seen in the view's status, and idle views
//! (which commit every period) do not push real changes out of the log.
//!
//! The same transaction prunes the view's entries beyond [`ChangeRetention`] (count, age
//! and bytes of encoded rows, oldest first), always keeping the newest, so the next position is known after any pruning.
//! Dropping a view leaves one [`ChangeKind::Dropped`] entry in place of its log, so that
//! positions are never reused under a name. A commit whose changed rows encode to more
//! than [`ChangeRetention::entry_bytes`] takes its position with a
//! [`ChangeKind::Overflow`] entry that holds no rows: the commit itself always succeeds,
//! and a client following the log learns that it must start over. This
//! module encodes and decodes entries and holds the SQL both backends run; it does no I/O.

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

use crate::StoreError;
use crate::definition::Definition;
use crate::model::{Commit, Progress, ResultBatch};
use crate::schema::STATE_COLUMN;
use freshet_types::limits::{
    CHANGE_ENTRY_BYTES_MAX, CHANGE_LOG_AGE_MAX_MS, CHANGE_LOG_BYTES_MAX, CHANGE_LOG_COMMITS_MAX,
};

/// What made a change-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A view's commit ([`ResultStore::commit`](crate::ResultStore::commit)).
    Commit,
    /// A correction outside the stream (reconciliation, backfill:
    /// [`ResultStore::repair`](crate::ResultStore::repair)).
    Repair,
    /// The view was dropped: the entries before were removed, and a view created again
    /// under the name numbers on from here. It changes no rows; a client whose position is
    /// before it followed the dropped view and must start over.
    Dropped,
    /// The commit (or repair) changed more rows than one entry holds
    /// ([`ChangeRetention::entry_bytes`]): the rows are in the view but not in the log,
    /// so a client that follows the log cannot apply this position and must start over.
    /// It keeps the commit's progress.
    Overflow,
}

impl ChangeKind {
    /// The text stored in `freshet_changes.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Commit => "commit",
            ChangeKind::Repair => "repair",
            ChangeKind::Dropped => "dropped",
            ChangeKind::Overflow => "overflow",
        }
    }

    fn parse(text: &str) -> Option<ChangeKind> {
        match text {
            "commit" => Some(ChangeKind::Commit),
            "repair" => Some(ChangeKind::Repair),
            "dropped" => Some(ChangeKind::Dropped),
            "overflow" => Some(ChangeKind::Overflow),
            _ => None,
        }
    }
}

/// One entry of a view's change log: the rows one commit or repair changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    /// The entry's position in the view's log: 1 for the first, then one more each time.
    pub seq: u64,
    /// When the commit happened, in ms since the epoch (wall clock).
    pub committed_at_ms: i64,
    /// A commit or a repair.
    pub kind: ChangeKind,
    /// The progress the commit reached; `None` for a repair, which moves no progress.
    pub progress: Option<Progress>,
    /// The keys of the rows removed (the key columns only), applied before the upserts;
    /// `None` if none.
    pub deletes: Option<RecordBatch>,
    /// The rows inserted or replaced, in the order written (a key may appear twice: the
    /// last one stands), with the table's columns then `_state` (Utf8); `None` if none.
    pub upserts: Option<RecordBatch>,
}

/// A read of a view's change log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeLog {
    /// The oldest position still kept; `None` if the log is empty.
    pub oldest_seq: Option<u64>,
    /// The newest position; `None` if the view never changed a row (since schema 2).
    pub latest_seq: Option<u64>,
    /// Entries after the position asked for, oldest first.
    pub entries: Vec<ChangeEntry>,
}

/// How much of its change log a view keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRetention {
    /// Most entries kept (at least 1).
    pub commits: u64,
    /// Entries older than this are pruned (the newest never is).
    pub age_ms: i64,
    /// Most bytes of encoded rows (deleted keys plus upserted rows) kept: the oldest
    /// entries beyond it are pruned (the newest never is).
    pub bytes: u64,
    /// Most bytes of encoded rows one entry holds: a commit that changes more is logged
    /// as [`ChangeKind::Overflow`], without its rows.
    pub entry_bytes: u64,
}

/// The variable that lowers [`ChangeRetention::commits`].
pub const RETAIN_COMMITS_ENV: &str = "FRESHET_CHANGES_RETAIN_COMMITS";

/// The variable that lowers [`ChangeRetention::entry_bytes`].
pub const ENTRY_BYTES_ENV: &str = "FRESHET_CHANGES_ENTRY_BYTES_MAX";

impl Default for ChangeRetention {
    fn default() -> ChangeRetention {
        ChangeRetention {
            commits: CHANGE_LOG_COMMITS_MAX,
            age_ms: CHANGE_LOG_AGE_MAX_MS,
            bytes: CHANGE_LOG_BYTES_MAX,
            entry_bytes: CHANGE_ENTRY_BYTES_MAX,
        }
    }
}

impl ChangeRetention {
    /// The default, lowered by `FRESHET_CHANGES_RETAIN_COMMITS` (1 to
    /// [`CHANGE_LOG_COMMITS_MAX`]) and `FRESHET_CHANGES_ENTRY_BYTES_MAX` (1 to
    /// [`CHANGE_ENTRY_BYTES_MAX`]) where set; another value is a user error.
    pub fn from_env() -> Result<ChangeRetention, StoreError> {
        let default = ChangeRetention::default();
        Ok(ChangeRetention {
            commits: lowered(RETAIN_COMMITS_ENV, "commits", default.commits)?,
            entry_bytes: lowered(ENTRY_BYTES_ENV, "bytes", default.entry_bytes)?,
            ..default
        })
    }
}

/// The value of the variable `var`, from 1 to `max` (`max` if unset).
fn lowered(var: &str, unit: &str, max: u64) -> Result<u64, StoreError> {
    let Ok(text) = std::env::var(var) else {
        return Ok(max);
    };
    match text.trim().parse::<u64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(StoreError::user(format!(
            "{var}='{text}': give a number of {unit} from 1 to {max}"
        ))),
    }
}

/// What a commit or repair changed, before it is encoded into a change-log entry.
#[derive(Clone, Copy)]
pub(crate) struct Changed<'a> {
    pub(crate) kind: ChangeKind,
    /// The progress a commit reached; `None` for a repair.
    pub(crate) progress: Option<&'a Progress>,
    pub(crate) deletes: &'a [RecordBatch],
    pub(crate) upserts: &'a [ResultBatch],
}

impl<'a> Changed<'a> {
    /// What `commit` changed.
    pub(crate) fn commit(commit: &'a Commit) -> Changed<'a> {
        Changed {
            kind: ChangeKind::Commit,
            progress: Some(&commit.progress),
            deletes: &commit.deletes,
            upserts: &commit.upserts,
        }
    }

    /// What a repair deleting `deletes` and upserting `upserts` changed.
    pub(crate) fn repair(deletes: &'a [RecordBatch], upserts: &'a [ResultBatch]) -> Changed<'a> {
        Changed {
            kind: ChangeKind::Repair,
            progress: None,
            deletes,
            upserts,
        }
    }
}

/// A change-log entry about to be written, encoded.
pub(crate) struct NewChange {
    pub(crate) kind: ChangeKind,
    /// The progress as JSON; `None` for a repair.
    pub(crate) progress: Option<serde_json::Value>,
    pub(crate) deletes: Option<Vec<u8>>,
    pub(crate) upserts: Option<Vec<u8>>,
}

impl NewChange {
    /// The entry for `changed`; `None` if it changes no rows; an [`ChangeKind::Overflow`]
    /// entry without rows if they encode to more than `entry_bytes` (found while
    /// encoding, which stops there).
    pub(crate) fn encode(
        def: &Definition,
        changed: &Changed<'_>,
        entry_bytes: u64,
    ) -> Result<Option<NewChange>, StoreError> {
        let Changed {
            kind,
            progress,
            deletes,
            upserts,
        } = *changed;
        let deletes: Vec<RecordBatch> = deletes
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                b.project(&def.key)
                    .map_err(|e| StoreError::bug(format!("projecting deleted keys: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let upserts: Vec<RecordBatch> = upserts
            .iter()
            .filter(|u| u.batch.num_rows() > 0)
            .map(with_state)
            .collect::<Result<_, _>>()?;
        if deletes.is_empty() && upserts.is_empty() {
            return Ok(None);
        }
        let progress = progress
            .map(|p| {
                serde_json::to_value(p)
                    .map_err(|e| StoreError::bug(format!("serialising progress: {e}")))
            })
            .transpose()?;
        let encoded = match ipc_bytes(&deletes, entry_bytes)? {
            Ipc::TooLarge => None,
            Ipc::Bytes(deletes) => {
                let left = entry_bytes.saturating_sub(ipc_len(&deletes));
                match ipc_bytes(&upserts, left)? {
                    Ipc::TooLarge => None,
                    Ipc::Bytes(upserts) => Some((deletes, upserts)),
                }
            }
        };
        Ok(Some(match encoded {
            Some((deletes, upserts)) => NewChange {
                kind,
                progress,
                deletes,
                upserts,
            },
            None => NewChange {
                kind: ChangeKind::Overflow,
                progress,
                deletes: None,
                upserts: None,
            },
        }))
    }
}

/// The rows of `upsert` with a `_state` column holding its state.
fn with_state(upsert: &ResultBatch) -> Result<RecordBatch, StoreError> {
    let batch = &upsert.batch;
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(STATE_COLUMN, DataType::Utf8, false)));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![
        upsert.state.as_str();
        batch.num_rows()
    ])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| StoreError::bug(format!("adding the state column: {e}")))
}

/// Rows encoded at a time, so that an entry over its bound is found after at most this
/// many rows more than the bound holds.
const ENCODE_ROWS: usize = 4_096;

/// Batches encoded as one Arrow IPC stream.
enum Ipc {
    /// The stream; `None` if there were no batches.
    Bytes(Option<Vec<u8>>),
    /// The stream passed the bound given (encoding stopped there).
    TooLarge,
}

fn ipc_len(bytes: &Option<Vec<u8>>) -> u64 {
    bytes.as_ref().map_or(0, |b| b.len() as u64)
}

/// The batches as one Arrow IPC stream of at most `max` bytes.
fn ipc_bytes(batches: &[RecordBatch], max: u64) -> Result<Ipc, StoreError> {
    let Some(first) = batches.first() else {
        return Ok(Ipc::Bytes(None));
    };
    let bug = |e: arrow_schema::ArrowError| StoreError::bug(format!("encoding changes: {e}"));
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &first.schema()).map_err(bug)?;
    for batch in batches {
        for start in (0..batch.num_rows()).step_by(ENCODE_ROWS) {
            let rows = ENCODE_ROWS.min(batch.num_rows() - start);
            writer.write(&batch.slice(start, rows)).map_err(bug)?;
            if writer.get_ref().len() as u64 > max {
                return Ok(Ipc::TooLarge);
            }
        }
    }
    let bytes = writer.into_inner().map_err(bug)?;
    Ok(match bytes.len() as u64 > max {
        true => Ipc::TooLarge,
        false => Ipc::Bytes(Some(bytes)),
    })
}

/// The rows of an IPC stream written by [`ipc_bytes`], as one batch.
fn read_ipc(view: &str, seq: u64, bytes: &[u8]) -> Result<RecordBatch, StoreError> {
    let corrupt = |e: arrow_schema::ArrowError| {
        StoreError::corrupt(format!(
            "freshet_changes entry {seq} of view '{view}' cannot be read: {e}"
        ))
    };
    let reader = arrow_ipc::reader::StreamReader::try_new(bytes, None).map_err(corrupt)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(corrupt)?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(corrupt)
}

/// A `freshet_changes` row as read back (seq, committed_at_ms, kind, progress JSON text,
/// deletes, upserts).
pub(crate) type ChangeRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// Decodes one stored entry, refusing what no store wrote as corruption.
pub(crate) fn decode_entry(view: &str, row: ChangeRow) -> Result<ChangeEntry, StoreError> {
    let (seq, committed_at_ms, kind, progress, deletes, upserts) = row;
    let corrupt = |what: String| {
        StoreError::corrupt(format!(
            "freshet_changes entry {seq} of view '{view}': {what}"
        ))
    };
    let seq = u64::try_from(seq).map_err(|_| corrupt("a negative position".into()))?;
    let kind = ChangeKind::parse(&kind).ok_or_else(|| corrupt(format!("kind '{kind}'")))?;
    let progress = progress
        .map(|text| serde_json::from_str::<Progress>(&text))
        .transpose()
        .map_err(|e| corrupt(format!("progress: {e}")))?;
    Ok(ChangeEntry {
        seq,
        committed_at_ms,
        kind,
        progress,
        deletes: deletes.map(|b| read_ipc(view, seq, &b)).transpose()?,
        upserts: upserts.map(|b| read_ipc(view, seq, &b)).transpose()?,
    })
}

/// The first and last positions kept, as `SELECT MIN(seq), MAX(seq)` gives them.
pub(crate) fn bounds(
    view: &str,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(Option<u64>, Option<u64>), StoreError> {
    let convert = |v: Option<i64>| {
        v.map(u64::try_from).transpose().map_err(|_| {
            StoreError::corrupt(format!(
                "freshet_changes holds a negative position for view '{view}'"
            ))
        })
    };
    Ok((convert(min)?, convert(max)?))
}

/// A position as an SQL integer (positions count commits: far below 2^63).
pub(crate) fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowState;
    use crate::schema::Column;
    use arrow_array::Int64Array;

    #[test]
    fn an_entry_round_trips_through_its_stored_form() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let def = Definition {
            columns: schema
                .fields()
                .iter()
                .map(|f| Column::from_field(f).expect("supported"))
                .collect(),
            key: vec![0],
        };
        let batch = |k: Vec<i64>, n: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(n))],
            )
            .expect("batch")
        };
        let upserts = [
            ResultBatch {
                batch: batch(vec![1], vec![10]),
                state: RowState::Provisional,
            },
            ResultBatch {
                batch: batch(vec![2, 3], vec![20, 30]),
                state: RowState::Final,
            },
        ];
        let repaired = Changed {
            kind: ChangeKind::Repair,
            progress: None,
            deletes: &[batch(vec![7], vec![0])],
            upserts: &upserts,
        };
        let change = NewChange::encode(&def, &repaired, u64::MAX)
            .expect("encode")
            .expect("rows changed");
        // Over the bound: the position is taken, without rows.
        let over = NewChange::encode(
            &def,
            &Changed {
                deletes: &[],
                ..repaired
            },
            64,
        )
        .expect("encode")
        .expect("rows changed");
        assert_eq!(over.kind, ChangeKind::Overflow);
        assert!(over.deletes.is_none() && over.upserts.is_none());
        let entry = decode_entry(
            "v",
            (4, 99, "repair".into(), None, change.deletes, change.upserts),
        )
        .expect("decode");
        assert_eq!((entry.seq, entry.kind), (4, ChangeKind::Repair));
        let deletes = entry.deletes.expect("deletes");
        assert_eq!(deletes.num_columns(), 1, "keys only");
        assert_eq!(deletes.schema().field(0).name(), "k");
        let upserts = entry.upserts.expect("upserts");
        assert_eq!(upserts.num_rows(), 3);
        let state = upserts.column_by_name("_state").expect("_state");
        let state = state.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(state.value(0), "provisional");
        assert_eq!(state.value(2), "final");

        let nothing = NewChange::encode(
            &def,
            &Changed {
                kind: ChangeKind::Commit,
                progress: None,
                deletes: &[],
                upserts: &[],
            },
            u64::MAX,
        )
        .expect("encode");
        assert!(nothing.is_none(), "no rows changed, no entry");
    }
}
