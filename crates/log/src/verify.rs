//! `log verify`: check every frame of every segment of a partition without changing it.

use crate::error::{LogError, Result};
use crate::segment::{self, IndexCadence, index_path, log_path, read_index};
use crate::storage::Storage;
use freshet_types::Offset;
use std::path::{Path, PathBuf};

/// One thing wrong with a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned.
    pub file: PathBuf,
    /// Byte position in it.
    pub position: u64,
    /// The offset expected there.
    pub offset: Offset,
    /// What is wrong.
    pub detail: String,
    /// True for damage that opening the partition would refuse; false for what it repairs
    /// by itself (a torn tail, a stale index).
    pub fatal: bool,
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: usize,
    /// Frames whose CRC matched.
    pub frames: u64,
    /// Records in those frames.
    pub records: u64,
    /// Bytes in all segments.
    pub bytes: u64,
    /// Earliest offset.
    pub start: Offset,
    /// Offset after the last valid record.
    pub end: Offset,
    /// Everything wrong, in file order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the partition has damage that needs an operator.
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(|p| p.fatal)
    }
}

/// Verify the partition in `dir`: every frame's CRC, dense offsets within and across
/// segments, and each sparse index against the frames.
pub fn verify_partition(storage: &dyn Storage, dir: &Path) -> Result<VerifyReport> {
    let (bases, _) = segment::list_segments(storage, dir)?;
    let mut report = VerifyReport {
        start: bases.first().copied().unwrap_or(Offset(0)),
        end: bases.first().copied().unwrap_or(Offset(0)),
        ..VerifyReport::default()
    };
    let last = bases.len().saturating_sub(1);
    // False after a damaged segment, whose end is unknown: the next one is not compared
    // with it, so one damage is reported once.
    let mut end_known = true;
    for (i, &base) in bases.iter().enumerate() {
        let path = log_path(dir, base);
        report.segments += 1;
        let file = storage
            .open(&path, false)
            .map_err(crate::error::io_err("open", &path))?;
        let len = file.len().map_err(crate::error::io_err("stat", &path))?;
        if len == 0 && i != last {
            report.problems.push(Problem {
                file: path,
                position: 0,
                offset: base,
                detail: "empty segment before the last one; the next open removes it".into(),
                fatal: false,
            });
            continue;
        }
        if end_known && base != report.end {
            report.problems.push(Problem {
                file: path.clone(),
                position: 0,
                offset: report.end,
                detail: format!(
                    "segment starts at offset {base} but the previous one ends at {}",
                    report.end
                ),
                fatal: true,
            });
        }
        end_known = true;
        report.bytes += len;
        // Any index interval works for checking frames; the one the index used is
        // recovered from its entries, so compare entries as a subset of frame starts.
        let mut starts = Vec::new();
        let scan = segment::scan(
            file.as_ref(),
            &path,
            0,
            base,
            IndexCadence::new(1),
            |_, _| {},
        );
        match scan {
            Ok(scan) => {
                report.frames += scan.frames;
                report.records += scan.records;
                report.end = scan.end;
                starts.extend(scan.index.iter().copied());
                if let Some(torn) = scan.torn {
                    report.problems.push(Problem {
                        file: path.clone(),
                        position: torn.position,
                        offset: scan.end,
                        detail: if i == last {
                            format!(
                                "torn tail of {} bytes ({}); the next open truncates it",
                                torn.bytes, torn.defect
                            )
                        } else {
                            format!("{} in a sealed segment", torn.defect)
                        },
                        fatal: i != last,
                    });
                }
            }
            Err(LogError::Corrupt {
                file,
                position,
                offset,
                detail,
            }) => {
                report.end = offset;
                end_known = false;
                report.problems.push(Problem {
                    file,
                    position,
                    offset,
                    detail,
                    fatal: true,
                });
                continue;
            }
            Err(e) => return Err(e),
        }
        let idx = index_path(dir, base);
        match read_index(storage, &idx, base, len) {
            Some(entries) if entries.iter().all(|e| starts.contains(e)) => {}
            Some(_) => report.problems.push(Problem {
                file: idx,
                position: 0,
                offset: base,
                detail: "index entries do not match frame positions; the next open rebuilds it"
                    .into(),
                fatal: false,
            }),
            None if len > 0 => report.problems.push(Problem {
                file: idx,
                position: 0,
                offset: base,
                detail: "index missing or malformed; the next open rebuilds it".into(),
                fatal: false,
            }),
            None => {}
        }
    }
    Ok(report)
}
