//! Reading a partition from any offset, from this process or another one.
//!
//! A reader locates a segment by base offset, then a frame with the segment's sparse index,
//! then reads frames sequentially and keeps its position so that consecutive reads do no
//! lookups. Every frame's CRC is checked; a damaged frame is an error, never returned, and
//! so is damage a seek has to walk past. An index entry is used only after checking that a
//! frame with its offset starts at its position (the index is derived data). A reader never
//! modifies files: an incomplete frame at the end of the newest segment (a write in progress,
//! or a torn tail that the writer will cut on open) reads as the end of data.

use crate::error::{LogError, Result, io_err};
use crate::frame::Frame;
use crate::segment::{self, index_path, log_path, read_index};
use crate::storage::{Storage, StorageFile};
use freshet_types::{EventTime, Offset};
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

    /// The earliest event time among the frames held, read from their headers alone;
    /// `None` if the partition holds no frame.
    pub fn earliest_event_time(&self) -> Result<Option<EventTime>> {
        let earliest = std::cell::Cell::new(None::<EventTime>);
        segment::tail_headers(self.storage.as_ref(), &self.dir, usize::MAX, |header| {
            let t = header.min_event_time;
            earliest.set(Some(earliest.get().map_or(t, |e| e.min(t))));
            false
        })?;
        Ok(earliest.get())
    }

    /// Frames holding offsets from `from` on, about `max_bytes` of them (at least one frame
    /// when any is available). The first frame may begin before `from`: callers skip the
    /// records before it. Returns an empty list at the end of the data.
    pub fn read(&mut self, from: Offset, max_bytes: usize) -> Result<Vec<Frame>> {
        let limit = self.limit.as_ref().map(|f| f());
        if limit.is_some_and(|l| from >= l) {
            return Ok(Vec::new());
        }
        if self.at.as_ref().is_none_or(|p| p.next != from) && !self.seek(from, limit)? {
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
                    let (base, byte, next) = (at.base, at.byte, at.next);
                    if byte == len {
                        // The end of this segment: go on in the one that starts here, if any.
                        if self.has_segment_after(base, next)? {
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
                    if self.is_tail(base, next, limit)? {
                        // A write in progress or a torn tail: the end of readable data.
                        break;
                    }
                    return Err(LogError::Corrupt {
                        file: path,
                        position: byte,
                        offset: next,
                        detail: defect.to_string(),
                    });
                }
            }
        }
        Ok(frames)
    }

    /// Whether a segment other than `base` starts at `next`. A segment that holds nothing
    /// ends where it starts, so it must not be mistaken for its own successor.
    fn has_segment_after(&mut self, base: Offset, next: Offset) -> Result<bool> {
        if next <= base {
            return Ok(false);
        }
        if self.bases.binary_search(&next).is_err() {
            self.refresh()?;
        }
        Ok(self.bases.binary_search(&next).is_ok())
    }

    /// Whether bytes that are not a frame at offset `next` of segment `base` can be the end
    /// of the data rather than damage: only in the newest segment (listed afresh, since the
    /// writer may have rolled since the last look) and at or past what the writer declared
    /// visible.
    fn is_tail(&mut self, base: Offset, next: Offset, limit: Option<Offset>) -> Result<bool> {
        self.refresh()?;
        let is_last = self.bases.last().is_none_or(|&b| b <= base);
        let below_limit = limit.is_some_and(|l| next < l);
        Ok(is_last && !below_limit)
    }

    fn open_segment(&self, base: Offset) -> Result<Arc<dyn StorageFile>> {
        let path = log_path(&self.dir, base);
        self.storage
            .open(&path, false)
            .map_err(io_err("open", &path))
    }

    /// Where to start walking segment `base` towards `from`: the closest index entry at or
    /// before it, if the index has one that is right. The index is derived data and may be
    /// stale or wrong, so an entry is used only if a frame with exactly its base offset
    /// starts at its position; otherwise the walk starts at the segment's first frame.
    fn walk_start(
        &self,
        base: Offset,
        file: &dyn StorageFile,
        len: u64,
        from: Offset,
    ) -> Result<(Offset, u64)> {
        let path = log_path(&self.dir, base);
        let index = read_index(
            self.storage.as_ref(),
            &index_path(&self.dir, base),
            base,
            len,
        )
        .unwrap_or_default();
        let entry = match index.binary_search_by(|e| e.offset.cmp(&from)) {
            Ok(i) => Some(index[i]),
            Err(0) => None,
            Err(i) => Some(index[i - 1]),
        };
        if let Some(e) = entry
            && segment::entry_is_frame_start(file, &path, len, &e)
        {
            return Ok((e.offset, e.position));
        }
        Ok((base, 0))
    }

    /// Offset after the last complete frame of the newest segment.
    fn data_end(&mut self) -> Result<Offset> {
        self.refresh()?;
        let Some(&base) = self.bases.last() else {
            return Ok(Offset(0));
        };
        let file = self.open_segment(base)?;
        let path = log_path(&self.dir, base);
        let len = file.len().map_err(io_err("stat", &path))?;
        let (mut next, mut byte) = self.walk_start(base, file.as_ref(), len, Offset(u64::MAX))?;
        while let Ok(Ok((h, _))) = segment::read_frame_at(file.as_ref(), &path, byte, len, next) {
            byte += u64::from(h.frame_bytes);
            next = h.end_offset();
        }
        Ok(next)
    }

    /// Position the reader at the frame holding `from`. False when `from` is at or past
    /// the end of the data.
    fn seek(&mut self, from: Offset, limit: Option<Offset>) -> Result<bool> {
        self.refresh()?;
        let Some(&first) = self.bases.first() else {
            return Ok(false);
        };
        if from < first {
            let end = match limit {
                Some(limit) => limit,
                None => self.data_end()?,
            };
            return Err(LogError::OffsetOutOfRange {
                requested: from,
                earliest: first,
                end,
            });
        }
        let base = match self.bases.binary_search(&from) {
            Ok(i) => self.bases[i],
            Err(i) => self.bases[i - 1],
        };
        let file = self.open_segment(base)?;
        let path = log_path(&self.dir, base);
        let len = file.len().map_err(io_err("stat", &path))?;
        let (mut next, mut byte) = self.walk_start(base, file.as_ref(), len, from)?;
        // Walk frames up to the one holding `from`.
        loop {
            match segment::read_frame_at(file.as_ref(), &path, byte, len, next)? {
                Ok((h, _)) if h.end_offset() > from => break,
                Ok((h, _)) => {
                    byte += u64::from(h.frame_bytes);
                    next = h.end_offset();
                }
                Err(defect) => {
                    if byte != len && !self.is_tail(base, next, limit)? {
                        // Damage before `from`: reading past it would hide it.
                        return Err(LogError::Corrupt {
                            file: path,
                            position: byte,
                            offset: next,
                            detail: defect.to_string(),
                        });
                    }
                    // The end of the data (or an incomplete tail): nothing past `next` yet.
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
