//! One partition of a stream: a directory of segments, written by one process.
//!
//! Writers call [`Partition::append`] (written, not yet durable) and then
//! [`Partition::sync_through`], or [`Partition::append_durable`] which applies the stream's
//! fsync policy. Syncs are group-committed: one `fsync` covers every frame written before it
//! started, and callers whose frames it covered return without syncing again.
//!
//! A partition can also be *gated* ([`Partition::gate`]): frames then become visible to
//! this process's readers only once the writer publishes them ([`Partition::publish_through`]),
//! and an unpublished tail can be cut off ([`Partition::truncate_unpublished`]). A stream
//! uses this to make a request that writes to several partitions all or nothing. A gated
//! partition never rolls to a new segment while it holds unpublished frames, so a tail that
//! may be cut is always in the active segment.
//!
//! Invariants: offsets are dense and strictly increasing across frames and segments; the
//! durable end never exceeds the written end; a failed sync poisons the partition (what is on
//! disk is unknown until it is reopened and re-verified), so nothing written after a failed
//! sync is ever acknowledged; the published end never exceeds the written end.

use crate::consumers::Consumers;
use crate::error::{LogError, Result, io_err};
use crate::frame::{HEADER_BYTES, ProducerTag};
use crate::reader::PartitionReader;
use crate::segment::{
    self, IndexCadence, IndexEntry, TornTail, encode_index, index_path, log_path, read_index,
};
use crate::storage::{Storage, StorageFile};
use freshet_types::{EventTime, IngestTime, Offset};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When appended frames are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before an append is acknowledged (group-committed). The default.
    Always,
    /// At most this long after an append (and on segment roll and close).
    Interval(Duration),
    /// Only on segment roll and close; the OS decides otherwise.
    Never,
}

/// How a partition is written and retained.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// A segment is sealed once it holds at least this many bytes.
    pub segment_bytes: u64,
    /// Bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// Remove sealed segments whose newest frame was ingested longer ago than this.
    pub retention_age: Option<Duration>,
    /// Remove the oldest sealed segments while the partition is larger than this.
    pub retention_bytes: Option<u64>,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            fsync: FsyncPolicy::Always,
            segment_bytes: freshet_types::limits::SEGMENT_BYTES_DEFAULT,
            index_interval_bytes: freshet_types::limits::INDEX_INTERVAL_BYTES,
            retention_age: None,
            retention_bytes: None,
        }
    }
}

/// One frame to append.
#[derive(Debug, Clone, Copy)]
pub struct AppendRecord<'a> {
    /// The opaque payload.
    pub payload: &'a [u8],
    /// Records in the payload; at least 1.
    pub record_count: u32,
    /// Earliest event time in the payload.
    pub min_event_time: EventTime,
    /// Latest event time in the payload.
    pub max_event_time: EventTime,
    /// When the log accepted it.
    pub ingest_time: IngestTime,
    /// The request that wrote it, for idempotent retries.
    pub tag: Option<ProducerTag>,
}

/// Where an appended frame landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of its first record.
    pub base_offset: Offset,
    /// Offset after its last record.
    pub end_offset: Offset,
    /// Base offset of the segment it is in.
    pub segment: Offset,
    /// Byte position of the frame in that segment.
    pub position: u64,
}

/// What opening a partition had to repair.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// A torn tail that was cut off the last segment.
    pub truncated: Option<TornTail>,
    /// Empty segment files that were removed.
    pub removed_empty_segments: Vec<PathBuf>,
    /// Index files that were missing or wrong and were rebuilt.
    pub rebuilt_indexes: Vec<PathBuf>,
}

/// Size and extent of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    /// Earliest offset held.
    pub start: Offset,
    /// Offset after the last record written.
    pub end: Offset,
    /// Bytes in all segments.
    pub bytes: u64,
    /// Number of segment files.
    pub segments: usize,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments removed.
    pub removed_segments: usize,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// The earliest offset held afterwards.
    pub start: Offset,
}

#[derive(Debug, Clone)]
pub(crate) struct SealedSegment {
    pub base: Offset,
    pub end: Offset,
    pub bytes: u64,
    pub last_ingest: IngestTime,
}

struct Active {
    base: Offset,
    file: Arc<dyn StorageFile>,
    index_file: Arc<dyn StorageFile>,
    index_bytes: u64,
    cadence: IndexCadence,
    bytes: u64,
    end: Offset,
    last_ingest: IngestTime,
}

struct Inner {
    sealed: Vec<SealedSegment>,
    active: Active,
    poisoned: Option<String>,
    last_sync: Instant,
    /// The lowest end the active segment had since the running sync started: what that
    /// sync made durable (a cut meanwhile removed, and later appends may not be covered).
    synced_through: u64,
}

/// A partition open for writing. Share it with `Arc`; all methods take `&self`.
pub struct Partition {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: PartitionConfig,
    inner: Mutex<Inner>,
    /// Whether a sync (the group-commit leader's) is running; waiters sleep on
    /// `sync_done` and all wake together when it ends.
    syncing: Mutex<bool>,
    sync_done: Condvar,
    written_end: AtomicU64,
    durable_end: AtomicU64,
    visible: Mutex<()>,
    visible_changed: Condvar,
    /// Offset up to which a gated partition's frames are published; `u64::MAX` when the
    /// partition is not gated.
    published_end: AtomicU64,
    /// Wakes an append waiting to roll until the unpublished frames are published or cut;
    /// paired with `inner`.
    settled: Condvar,
    consumers: Consumers,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    /// Open (creating if needed) the partition in `dir`, recovering from an unclean
    /// shutdown: the last segment is verified frame by frame, a torn tail is cut off and
    /// what remains is synced (it is reported durable from now on); empty segment files
    /// are removed; damage anywhere else is refused with [`LogError::Corrupt`], leaving the
    /// segments as they were.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: impl Into<PathBuf>,
        config: PartitionConfig,
    ) -> Result<(Partition, RecoveryReport)> {
        let dir = dir.into();
        if config.segment_bytes == 0 || config.index_interval_bytes == 0 {
            return Err(LogError::Invalid(
                "segment_bytes and index_interval_bytes must be positive".into(),
            ));
        }
        storage
            .create_dir_all(&dir)
            .map_err(io_err("create directory", &dir))?;
        let mut report = RecoveryReport::default();
        let (bases, orphans) = segment::list_segments(storage.as_ref(), &dir)?;
        for name in orphans {
            let path = dir.join(name);
            storage.remove(&path).map_err(io_err("remove", &path))?;
        }
        let mut sealed = Vec::new();
        let mut empty = Vec::new();
        let mut expected: Option<Offset> = None;
        let last = bases.len().checked_sub(1);
        for (i, &base) in bases.iter().enumerate() {
            let path = log_path(&dir, base);
            let file = if Some(i) == last {
                None
            } else {
                let file = storage.open(&path, false).map_err(io_err("open", &path))?;
                let len = file.len().map_err(io_err("stat", &path))?;
                if len == 0 {
                    // An empty file holds no offsets, so removing it loses nothing. The log
                    // never leaves one before another segment (a roll syncs the sealed
                    // segment before creating the next), so this is a stray file; if it
                    // stands for lost data instead, the next segment does not start where
                    // the previous one ends and the check below refuses the gap. It is
                    // removed only once the whole partition checked out.
                    empty.push(base);
                    continue;
                }
                Some((file, len))
            };
            if let Some(exp) = expected
                && base != exp
            {
                return Err(LogError::Corrupt {
                    file: path,
                    position: 0,
                    offset: exp,
                    detail: format!(
                        "segment starts at offset {base} but the previous one ends at {exp}"
                    ),
                });
            }
            let Some((file, len)) = file else {
                break;
            };
            let seg = open_sealed(
                storage.as_ref(),
                &dir,
                base,
                file.as_ref(),
                len,
                &config,
                &mut report,
            )?;
            expected = Some(seg.end);
            sealed.push(seg);
        }
        let active_base = match last {
            Some(i) => bases[i],
            None => Offset(0),
        };
        let active = open_active(storage.as_ref(), &dir, active_base, &config, &mut report)?;
        if active.bytes > 0 {
            // What survived in the last segment may never have been synced (the previous
            // writer may have stopped before syncing, or after a failed sync). It is
            // reported durable and, under `fsync = always`, exposed to readers from now on,
            // so it must be durable first.
            let path = log_path(&dir, active_base);
            active.file.sync().map_err(io_err("fsync", &path))?;
        }
        for base in empty {
            let path = log_path(&dir, base);
            storage.remove(&path).map_err(io_err("remove", &path))?;
            let _ = storage.remove(&index_path(&dir, base));
            report.removed_empty_segments.push(path);
        }
        if !report.removed_empty_segments.is_empty() || report.truncated.is_some() {
            storage
                .sync_dir(&dir)
                .map_err(io_err("sync directory", &dir))?;
        }
        let end = active.end;
        let consumers = Consumers::load(storage.clone(), &dir)?;
        Ok((
            Partition {
                storage,
                dir,
                config,
                inner: Mutex::new(Inner {
                    sealed,
                    active,
                    poisoned: None,
                    last_sync: Instant::now(),
                    synced_through: end.0,
                }),
                syncing: Mutex::new(false),
                sync_done: Condvar::new(),
                written_end: AtomicU64::new(end.0),
                durable_end: AtomicU64::new(end.0),
                visible: Mutex::new(()),
                visible_changed: Condvar::new(),
                published_end: AtomicU64::new(u64::MAX),
                settled: Condvar::new(),
                consumers,
            },
            report,
        ))
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition's configuration.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// Write one frame. It is readable at once by this process's readers when the policy is
    /// not `Always`, and durable only after a sync covering it.
    pub fn append(&self, record: &AppendRecord<'_>) -> Result<Appended> {
        if record.record_count == 0 {
            return Err(LogError::Invalid(
                "a frame needs at least one record".into(),
            ));
        }
        if record.payload.len() > freshet_types::limits::FRAME_PAYLOAD_BYTES_MAX {
            return Err(LogError::FrameTooLarge {
                bytes: record.payload.len(),
                max: freshet_types::limits::FRAME_PAYLOAD_BYTES_MAX,
            });
        }
        let frame_bytes = (HEADER_BYTES + record.payload.len()) as u64;
        let mut inner = lock(&self.inner);
        if let Some(reason) = &inner.poisoned {
            return Err(LogError::Poisoned {
                dir: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        if inner.active.bytes > 0 && inner.active.bytes + frame_bytes > self.config.segment_bytes {
            // A gated partition's unpublished tail may still be cut, which only the active
            // segment allows: wait until it is published or cut (one sync of the writers
            // ahead, who never wait for this append).
            while self.published_end.load(Ordering::Acquire)
                < self.written_end.load(Ordering::Acquire)
                && inner.poisoned.is_none()
            {
                inner = self
                    .settled
                    .wait_timeout(inner, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if let Some(reason) = &inner.poisoned {
                return Err(LogError::Poisoned {
                    dir: self.dir.clone(),
                    reason: reason.clone(),
                });
            }
            // A cut meanwhile may have emptied the segment: an empty one never rolls.
            if inner.active.bytes > 0
                && inner.active.bytes + frame_bytes > self.config.segment_bytes
            {
                self.roll(&mut inner)?;
            }
        }
        let active = &mut inner.active;
        let base_offset = active.end;
        let header = crate::frame::encode_header(
            base_offset,
            record.record_count,
            record.min_event_time,
            record.max_event_time,
            record.ingest_time,
            record.tag,
            record.payload,
        );
        let position = active.bytes;
        let path = log_path(&self.dir, active.base);
        let written = active.file.write_at(position, &header).and_then(|()| {
            active
                .file
                .write_at(position + HEADER_BYTES as u64, record.payload)
        });
        if let Err(e) = written {
            // Cut off whatever part of the frame reached the file; if even that fails the
            // file's state is unknown and the partition stops.
            if let Err(t) = active.file.truncate(position) {
                inner.poisoned = Some(format!("write failed ({e}) and truncate failed ({t})"));
            }
            return Err(LogError::Io {
                op: "append to",
                path,
                source: e,
            });
        }
        if active.cadence.take(position) {
            let entry = encode_index(&[IndexEntry {
                offset: base_offset,
                position,
            }]);
            // The index is derived data and rebuilt on open if it is wrong; a failure to
            // write it does not fail the append.
            if active
                .index_file
                .write_at(active.index_bytes, &entry)
                .is_ok()
            {
                active.index_bytes += entry.len() as u64;
            }
        }
        active.bytes += frame_bytes;
        let end_offset = base_offset.plus(u64::from(record.record_count));
        active.end = end_offset;
        active.last_ingest = record.ingest_time;
        let segment = active.base;
        let prev = self.written_end.swap(end_offset.0, Ordering::AcqRel);
        assert!(prev < end_offset.0, "offsets must strictly increase");
        drop(inner);
        if self.config.fsync != FsyncPolicy::Always {
            self.notify_visible();
        }
        Ok(Appended {
            base_offset,
            end_offset,
            segment,
            position,
        })
    }

    /// Gate the partition: from now on a frame appended is visible to this process's readers
    /// only once [`Partition::publish_through`] covers it. What the partition holds now is
    /// published.
    pub fn gate(&self) {
        let _inner = lock(&self.inner);
        self.published_end
            .store(self.written_end.load(Ordering::Acquire), Ordering::Release);
    }

    /// Publish a gated partition's frames before `end` (they must have been written).
    pub fn publish_through(&self, end: Offset) {
        debug_assert!(end.0 <= self.written_end.load(Ordering::Acquire));
        self.published_end.fetch_max(end.0, Ordering::AcqRel);
        self.notify_settled();
        self.notify_visible();
    }

    /// Cut a gated partition's unpublished tail from the frame `from` on, durably: nothing of
    /// it is read again, here or after a restart. `from` must be unpublished and in the
    /// active segment (a gated partition does not roll while it holds unpublished frames);
    /// a tail already cut below `from` is left alone. If the cut cannot be made, the
    /// partition is poisoned: it takes no more writes until reopened.
    pub fn truncate_unpublished(&self, from: &Appended) -> Result<()> {
        let mut inner = lock(&self.inner);
        if from.base_offset.0 < self.published_end.load(Ordering::Acquire) {
            return Err(LogError::Invalid(format!(
                "cannot cut published offset {} of {}",
                from.base_offset,
                self.dir.display()
            )));
        }
        if from.base_offset >= inner.active.end {
            return Ok(());
        }
        if from.segment != inner.active.base {
            return Err(LogError::Invalid(format!(
                "cannot cut offset {} of {}: it is not in the active segment",
                from.base_offset,
                self.dir.display()
            )));
        }
        let result = cut_active(&mut inner.active, from, &self.dir);
        inner.synced_through = inner.synced_through.min(from.base_offset.0);
        if let Err(e) = &result {
            inner.poisoned = Some(format!("cutting an unpublished tail failed: {e}"));
        } else {
            self.written_end
                .store(from.base_offset.0, Ordering::Release);
            self.durable_end
                .fetch_min(from.base_offset.0, Ordering::AcqRel);
        }
        drop(inner);
        self.notify_settled();
        result
    }

    fn notify_settled(&self) {
        // Taking the lock orders this wake-up after a waiter's check of the ends.
        drop(lock(&self.inner));
        self.settled.notify_all();
    }

    /// Append and apply the fsync policy: with `Always` this returns only once the frame is
    /// durable; with `Interval` it syncs if the interval has passed.
    pub fn append_durable(&self, record: &AppendRecord<'_>) -> Result<Appended> {
        let appended = self.append(record)?;
        match self.config.fsync {
            FsyncPolicy::Always => self.sync_through(appended.end_offset)?,
            FsyncPolicy::Interval(every) => {
                if lock(&self.inner).last_sync.elapsed() >= every {
                    self.sync()?;
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(appended)
    }

    /// Make every record before `end` durable. Group commit: one fsync covers all frames
    /// written before it started, and callers it covered do not sync again.
    pub fn sync_through(&self, end: Offset) -> Result<()> {
        let written_end = self.written_end.load(Ordering::Acquire);
        if end.0 > written_end {
            // Syncing cannot make unwritten records durable; returning Ok would claim so.
            return Err(LogError::Invalid(format!(
                "sync through offset {end}, but only [0, {written_end}) was written"
            )));
        }
        if self.durable_end.load(Ordering::Acquire) >= end.0 {
            return Ok(());
        }
        // Group commit: one caller leads a sync covering everything written before it
        // started; the others sleep until it ends and all wake at once (a mutex hand-off
        // would wake them one by one, which showed as tail latency under load).
        {
            let mut syncing = lock(&self.syncing);
            loop {
                if self.durable_end.load(Ordering::Acquire) >= end.0 {
                    return Ok(());
                }
                if !*syncing {
                    *syncing = true;
                    break;
                }
                syncing = self
                    .sync_done
                    .wait(syncing)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        let result = self.lead_sync();
        *lock(&self.syncing) = false;
        self.sync_done.notify_all();
        result
    }

    /// The group-commit leader's sync: everything written so far becomes durable.
    fn lead_sync(&self) -> Result<()> {
        let (file, path) = {
            let mut inner = lock(&self.inner);
            if let Some(reason) = &inner.poisoned {
                return Err(LogError::Poisoned {
                    dir: self.dir.clone(),
                    reason: reason.clone(),
                });
            }
            inner.synced_through = inner.active.end.0;
            (
                inner.active.file.clone(),
                log_path(&self.dir, inner.active.base),
            )
        };
        if let Err(e) = file.sync() {
            let mut inner = lock(&self.inner);
            inner.poisoned = Some(format!("fsync of {} failed: {e}", path.display()));
            return Err(LogError::Io {
                op: "fsync",
                path,
                source: e,
            });
        }
        // Under the lock, so that a cut (which lowers the durable end) cannot run between
        // reading what this sync covered and claiming it.
        let mut inner = lock(&self.inner);
        inner.last_sync = Instant::now();
        let written = inner.synced_through;
        let prev = self.durable_end.fetch_max(written, Ordering::AcqRel);
        drop(inner);
        assert!(
            prev <= written || prev <= self.written_end.load(Ordering::Acquire),
            "durable end must not pass the written end"
        );
        self.notify_visible();
        Ok(())
    }

    /// Sync if the last sync is older than `every` (the `Interval` policy).
    pub fn sync_if_older_than(&self, every: Duration) -> Result<()> {
        let due = lock(&self.inner).last_sync.elapsed() >= every;
        if due { self.sync() } else { Ok(()) }
    }

    /// Make everything written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.sync_through(Offset(self.written_end.load(Ordering::Acquire)))
    }

    /// Offset after the last record written (durable or not).
    pub fn end_offset(&self) -> Offset {
        Offset(self.written_end.load(Ordering::Acquire))
    }

    /// Offset after the last durable record.
    pub fn durable_end(&self) -> Offset {
        Offset(self.durable_end.load(Ordering::Acquire))
    }

    /// Offset up to which this process's consumers may read: the durable end under
    /// `fsync = always` (nothing unacknowledged is exposed), the written end otherwise.
    pub fn visible_end(&self) -> Offset {
        let end = match self.config.fsync {
            FsyncPolicy::Always => self.durable_end(),
            _ => self.end_offset(),
        };
        end.min(Offset(self.published_end.load(Ordering::Acquire)))
    }

    /// Block until the visible end passes `offset` or `timeout` elapses; returns the
    /// visible end. This is how consumers tail-follow the partition.
    pub fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.visible);
        loop {
            let end = self.visible_end();
            if end > offset {
                return end;
            }
            let now = Instant::now();
            if now >= deadline {
                return end;
            }
            guard = self
                .visible_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn notify_visible(&self) {
        let _guard = lock(&self.visible);
        self.visible_changed.notify_all();
    }

    /// A reader over this partition that never reads past the visible end.
    pub fn reader(self: &Arc<Self>) -> PartitionReader {
        let me = self.clone();
        PartitionReader::with_limit(
            self.storage.clone(),
            self.dir.clone(),
            Box::new(move || me.visible_end()),
        )
    }

    /// Extent and size.
    pub fn stats(&self) -> PartitionStats {
        let inner = lock(&self.inner);
        let start = inner.sealed.first().map_or(inner.active.base, |s| s.base);
        PartitionStats {
            start,
            end: inner.active.end,
            bytes: inner.sealed.iter().map(|s| s.bytes).sum::<u64>() + inner.active.bytes,
            segments: inner.sealed.len() + 1,
        }
    }

    /// The registered consumers and the offsets they still need.
    pub fn consumers(&self) -> &Consumers {
        &self.consumers
    }

    /// Remove sealed segments past the retention age or size, never one holding an offset
    /// that a registered consumer still needs, and never the active segment.
    pub fn apply_retention(&self, now: IngestTime) -> Result<RetentionReport> {
        // Hold the consumer registry for the whole pass: a consumer registering a lower
        // offset meanwhile would otherwise lose segments it needs.
        self.consumers
            .while_pinned(|pin| self.retain_with_pin(now, pin))
    }

    fn retain_with_pin(&self, now: IngestTime, pin: Option<Offset>) -> Result<RetentionReport> {
        let mut inner = lock(&self.inner);
        let mut total: u64 = inner.sealed.iter().map(|s| s.bytes).sum::<u64>() + inner.active.bytes;
        let mut report = RetentionReport::default();
        while let Some(seg) = inner.sealed.first().cloned() {
            if pin.is_some_and(|pin| seg.end > pin) {
                break;
            }
            let too_old = self.config.retention_age.is_some_and(|age| {
                now.0.saturating_sub(seg.last_ingest.0) >= age.as_millis() as i64
            });
            let too_big = self.config.retention_bytes.is_some_and(|max| total > max);
            if !too_old && !too_big {
                break;
            }
            let path = log_path(&self.dir, seg.base);
            self.storage
                .remove(&path)
                .map_err(io_err("remove", &path))?;
            let _ = self.storage.remove(&index_path(&self.dir, seg.base));
            inner.sealed.remove(0);
            total -= seg.bytes;
            report.removed_segments += 1;
            report.removed_bytes += seg.bytes;
        }
        if report.removed_segments > 0 {
            self.storage
                .sync_dir(&self.dir)
                .map_err(io_err("sync directory", &self.dir))?;
        }
        report.start = inner.sealed.first().map_or(inner.active.base, |s| s.base);
        Ok(report)
    }

    fn roll(&self, inner: &mut Inner) -> Result<()> {
        let old = &inner.active;
        let old_path = log_path(&self.dir, old.base);
        if let Err(e) = old.file.sync() {
            inner.poisoned = Some(format!("fsync of {} failed: {e}", old_path.display()));
            return Err(LogError::Io {
                op: "fsync",
                path: old_path,
                source: e,
            });
        }
        // Everything in the sealed segment is durable now, hence visible under `Always`.
        self.durable_end.fetch_max(old.end.0, Ordering::AcqRel);
        self.notify_visible();
        let sealed = SealedSegment {
            base: old.base,
            end: old.end,
            bytes: old.bytes,
            last_ingest: old.last_ingest,
        };
        let base = old.end;
        let path = log_path(&self.dir, base);
        let file = self
            .storage
            .open(&path, true)
            .map_err(io_err("create", &path))?;
        let idx = index_path(&self.dir, base);
        let index_file = self
            .storage
            .open(&idx, true)
            .map_err(io_err("create", &idx))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_err("sync directory", &self.dir))?;
        inner.sealed.push(sealed);
        inner.active = Active {
            base,
            file,
            index_file,
            index_bytes: 0,
            cadence: IndexCadence::new(self.config.index_interval_bytes),
            bytes: 0,
            end: base,
            last_ingest: IngestTime(i64::MIN),
        };
        Ok(())
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if self.config.fsync != FsyncPolicy::Always
            && let Err(e) = self.sync()
        {
            // Nothing was acknowledged as durable under this policy, so nothing promised is
            // lost; still worth saying.
            tracing::error!(dir = %self.dir.display(), error = %e, "final sync of a partition failed");
        }
    }
}

/// Open a sealed (not last) segment: use its index if it checks out, else rebuild it; then
/// verify the frames after the last index entry to find where it ends.
fn open_sealed(
    storage: &dyn Storage,
    dir: &Path,
    base: Offset,
    file: &dyn StorageFile,
    len: u64,
    config: &PartitionConfig,
    report: &mut RecoveryReport,
) -> Result<SealedSegment> {
    let path = log_path(dir, base);
    let idx_path = index_path(dir, base);
    let index = read_index(storage, &idx_path, base, len).filter(|entries| {
        // Trust the index only if its last entry points at the start of the frame it names:
        // the scan below starts there.
        entries
            .last()
            .is_none_or(|last| segment::entry_is_frame_start(file, &path, len, last))
    });
    let (start_pos, start_off, cadence) = match index.as_ref().and_then(|e| e.last()) {
        Some(last) => (
            last.position,
            last.offset,
            IndexCadence::resume(config.index_interval_bytes, None),
        ),
        None => (0, base, IndexCadence::new(config.index_interval_bytes)),
    };
    let scan = segment::scan(file, &path, start_pos, start_off, cadence, |_, _| {})?;
    if let Some(torn) = scan.torn {
        // Only the last segment may end in a torn frame.
        return Err(LogError::Corrupt {
            file: path,
            position: torn.position,
            offset: scan.end,
            detail: format!("{} in a sealed segment", torn.defect),
        });
    }
    if index.is_none() {
        write_index(storage, &idx_path, &scan.index)?;
        report.rebuilt_indexes.push(idx_path);
    }
    Ok(SealedSegment {
        base,
        end: scan.end,
        bytes: len,
        last_ingest: scan.last_ingest,
    })
}

/// Open the last segment for appending: verify every frame, cut a torn tail, rebuild the
/// index from the scan.
fn open_active(
    storage: &dyn Storage,
    dir: &Path,
    base: Offset,
    config: &PartitionConfig,
    report: &mut RecoveryReport,
) -> Result<Active> {
    let path = log_path(dir, base);
    let file = storage.open(&path, true).map_err(io_err("open", &path))?;
    let scan = segment::scan(
        file.as_ref(),
        &path,
        0,
        base,
        IndexCadence::new(config.index_interval_bytes),
        |_, _| {},
    )?;
    if let Some(torn) = scan.torn {
        file.truncate(scan.valid_bytes)
            .map_err(io_err("truncate", &path))?;
        report.truncated = Some(torn);
    }
    let idx_path = index_path(dir, base);
    let on_disk = read_index(storage, &idx_path, base, scan.valid_bytes);
    if on_disk.as_deref() != Some(&scan.index[..]) {
        write_index(storage, &idx_path, &scan.index)?;
        if scan.frames > 0 {
            report.rebuilt_indexes.push(idx_path.clone());
        }
    }
    let index_file = storage
        .open(&idx_path, true)
        .map_err(io_err("open", &idx_path))?;
    let index_bytes = (scan.index.len() * segment::INDEX_ENTRY_BYTES) as u64;
    Ok(Active {
        base,
        file,
        index_file,
        index_bytes,
        cadence: IndexCadence::resume(
            config.index_interval_bytes,
            scan.index.last().map(|e| e.position),
        ),
        bytes: scan.valid_bytes,
        end: scan.end,
        last_ingest: scan.last_ingest,
    })
}

/// Cut the active segment at `from`'s frame and make the cut durable; its index loses the
/// entries past the cut.
fn cut_active(active: &mut Active, from: &Appended, dir: &Path) -> Result<()> {
    let path = log_path(dir, active.base);
    active
        .file
        .truncate(from.position)
        .and_then(|()| active.file.sync())
        .map_err(io_err("truncate", &path))?;
    active.bytes = from.position;
    active.end = from.base_offset;
    // The index is derived data (checked before use, rebuilt on open): a failure to read or
    // cut it does not fail the cut; an unreadable one is emptied.
    let mut bytes = vec![0; active.index_bytes as usize];
    if active.index_file.read_exact_at(0, &mut bytes).is_err() {
        bytes.clear();
    }
    let kept: Vec<u64> = bytes
        .chunks_exact(segment::INDEX_ENTRY_BYTES)
        .map(|e| u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")))
        .take_while(|&position| position < from.position)
        .collect();
    active.index_bytes = (kept.len() * segment::INDEX_ENTRY_BYTES) as u64;
    let _ = active.index_file.truncate(active.index_bytes);
    active.cadence = IndexCadence::resume(active.cadence.interval(), kept.last().copied());
    Ok(())
}

fn write_index(storage: &dyn Storage, path: &Path, entries: &[IndexEntry]) -> Result<()> {
    let file = storage.open(path, true).map_err(io_err("create", path))?;
    file.truncate(0).map_err(io_err("truncate", path))?;
    file.write_at(0, &encode_index(entries))
        .map_err(io_err("write", path))
}
