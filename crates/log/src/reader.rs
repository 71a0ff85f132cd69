//! Reading a partition from any offset, from this process or another one.
//!
//! A reader locates a segment by base offset, then a frame with the segment's sparse index,
//! then reads frames sequentially and keeps its position so that consecutive reads do no
//! lookups. Every frame's CRC is checked; a damaged frame is an error, never returned. A
//! reader never modifies files: an incomplete frame at the end of the newest segment (a write
//! in progress, or a torn tail that the writer will cut on open) reads as the end of data.

use crate::error::{LogError, Result, io_err};
use crate::frame::Frame;
use crate::segment::{self, index_path, log_path, read_index};
use crate::storage::{Storage, StorageFile};
use freshet_types::Offset;
use std::path::PathBuf;
use std::sync::Arc;

type Limit = Box<dyn Fn() -> Offset + Send + Sync>;

struct Position {
    base: Offset,
    file: Arc<dyn StorageFile>,
    next: Offset,
    byte: u64,
}

/// A sequential reader over one partition.
pub struct PartitionReader {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    limit: Option<Limit>,
    bases: Vec<Offset>,
    at: Option<Position>,
}

impl PartitionReader {
    /// A reader over the partition in `dir`; works while another process writes it.
    pub fn open(storage: Arc<dyn Storage>, dir: impl Into<PathBuf>) -> Result<PartitionReader> {
        let mut reader = PartitionReader {
            storage,
            dir: dir.into(),
            limit: None,
            bases: Vec::new(),
            at: None,
        };
        reader.refresh()?;
        Ok(reader)
    }

    pub(crate) fn with_limit(storage: Arc<dyn Storage>, dir: PathBuf, limit: Limit) -> Self {
        PartitionReader {
            storage,
            dir,
            limit: Some(limit),
            bases: Vec::new(),
            at: None,
        }
    }

    fn refresh(&mut self) -> Result<()> {
        self.bases = segment::list_segments(self.storage.as_ref(), &self.dir)?.0;
        Ok(())
    }

    /// The earliest offset still held (older segments may have been removed by retention).
    pub fn start_offset(&mut self) -> Result<Offset> {
        self.refresh()?;
        Ok(self.bases.first().copied().unwrap_or(Offset(0)))
    }

    /// Frames holding offsets from `from` on, about `max_bytes` of them (at least one frame
    /// when any is available). The first frame may begin before `from`: callers skip the
    /// records before it. Returns an empty list at the end of the data.
    pub fn read(&mut self, from: Offset, max_bytes: usize) -> Result<Vec<Frame>> {
        let limit = self.limit.as_ref().map(|f| f());
        if limit.is_some_and(|l| from >= l) {
            return Ok(Vec::new());
        }
        if self.at.as_ref().is_none_or(|p| p.next != from) && !self.seek(from)? {
            return Ok(Vec::new());
        }
        let mut frames = Vec::new();
        let mut bytes = 0usize;
        while bytes < max_bytes.max(1) {
            let at = self.at.as_mut().expect("seek positioned the reader");
            let path = log_path(&self.dir, at.base);
            let len = at.file.len().map_err(io_err("stat", &path))?;
            match segment::read_frame_at(at.file.as_ref(), &path, at.byte, len, at.next)? {
                Ok((header, payload)) => {
                    if limit.is_some_and(|l| header.base_offset >= l) {
                        break;
                    }
                    at.byte += u64::from(header.frame_bytes);
                    at.next = header.end_offset();
                    bytes += header.frame_bytes as usize;
                    frames.push(Frame { header, payload });
                }
                Err(defect) => {
                    let at_end = at.byte == len;
                    let next = at.next;
                    // Is there a newer segment that starts where this one ends?
                    if at_end {
                        if !self.bases.iter().any(|&b| b == next) {
                            self.refresh()?;
                        }
                        if self.bases.binary_search(&next).is_ok() {
                            let file = self.open_segment(next)?;
                            self.at = Some(Position {
                                base: next,
                                file,
                                next,
                                byte: 0,
                            });
                            continue;
                        }
                        break;
                    }
                    let is_last = self.bases.last().is_none_or(|&b| b <= at.base);
                    let below_limit = limit.is_some_and(|l| next < l);
                    if is_last && !below_limit {
                        // A write in progress or a torn tail: the end of readable data.
                        break;
                    }
                    return Err(LogError::Corrupt {
                        file: path,
                        position: at.byte,
                        offset: next,
                        detail: defect.to_string(),
                    });
                }
            }
        }
        Ok(frames)
    }

    fn open_segment(&self, base: Offset) -> Result<Arc<dyn StorageFile>> {
        let path = log_path(&self.dir, base);
        self.storage.open(&path, false).map_err(io_err("open", &path))
    }

    /// Position the reader at the frame holding `from`. False when `from` is at or past
    /// the end of the data.
    fn seek(&mut self, from: Offset) -> Result<bool> {
        self.refresh()?;
        let Some(&first) = self.bases.first() else {
            return Ok(false);
        };
        if from < first {
            return Err(LogError::OffsetOutOfRange {
                requested: from,
                earliest: first,
                end: Offset(u64::MAX),
            });
        }
        let base = match self.bases.binary_search(&from) {
            Ok(i) => self.bases[i],
            Err(i) => self.bases[i - 1],
        };
        let file = self.open_segment(base)?;
        let path = log_path(&self.dir, base);
        let len = file.len().map_err(io_err("stat", &path))?;
        let index = read_index(self.storage.as_ref(), &index_path(&self.dir, base), base, len.max(1))
            .unwrap_or_default();
        let (mut next, mut byte) = match index.binary_search_by(|e| e.offset.cmp(&from)) {
            Ok(i) => (index[i].offset, index[i].position),
            Err(0) => (base, 0),
            Err(i) => (index[i - 1].offset, index[i - 1].position),
        };
        // Walk frame headers up to the one holding `from`.
        loop {
            match segment::read_frame_at(file.as_ref(), &path, byte, len, next)? {
                Ok((h, _)) if h.end_offset() > from => break,
                Ok((h, _)) => {
                    byte += u64::from(h.frame_bytes);
                    next = h.end_offset();
                }
                Err(_) => {
                    // End of the data (or an incomplete tail): nothing at `from` yet.
                    self.at = Some(Position {
                        base,
                        file,
                        next,
                        byte,
                    });
                    return Ok(next == from);
                }
            }
        }
        self.at = Some(Position {
            base,
            file,
            next,
            byte,
        });
        Ok(true)
    }
}
