//! Registered consumers of a partition and the offset each still needs. Retention never
//! removes a segment holding an offset at or after the smallest of them.
//!
//! Stored as `consumers` in the partition directory, one `name offset` line per consumer,
//! replaced atomically (write a temporary file, sync, rename).

use crate::error::{LogError, Result, io_err};
use crate::storage::Storage;
use freshet_types::Offset;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The consumer registry of one partition.
pub struct Consumers {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    offsets: Mutex<BTreeMap<String, Offset>>,
}

const FILE: &str = "consumers";

impl Consumers {
    pub(crate) fn load(storage: Arc<dyn Storage>, dir: &Path) -> Result<Consumers> {
        let path = dir.join(FILE);
        let mut offsets = BTreeMap::new();
        // Only a missing file means no consumers: reading it as empty after any other
        // error would let retention remove what the consumers still need.
        let file = match storage.open(&path, false) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        if let Some(file) = file {
            let len = file.len().map_err(io_err("stat", &path))? as usize;
            let mut bytes = vec![0; len];
            file.read_exact_at(0, &mut bytes)
                .map_err(io_err("read", &path))?;
            let mut position = 0u64;
            for (n, raw) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
                let line_start = position;
                position += raw.len() as u64;
                let line = String::from_utf8_lossy(raw.strip_suffix(b"\n").unwrap_or(raw));
                let parsed = std::str::from_utf8(raw).ok().and_then(|_| {
                    let (name, off) = line.rsplit_once(' ')?;
                    Some((name.to_string(), Offset(off.parse().ok()?)))
                });
                match parsed {
                    Some((name, off)) => {
                        offsets.insert(name, off);
                    }
                    None => {
                        return Err(LogError::Corrupt {
                            file: path.clone(),
                            position: line_start,
                            offset: Offset(0),
                            detail: format!("malformed consumer line {}: {line:?}", n + 1),
                        });
                    }
                }
            }
        }
        Ok(Consumers {
            storage,
            dir: dir.to_path_buf(),
            offsets: Mutex::new(offsets),
        })
    }

    /// Register `name` (or move it) at `offset`: it still needs every offset from there on.
    pub fn set(&self, name: &str, offset: Offset) -> Result<()> {
        if name.is_empty() || name.contains(['\n', ' ']) {
            return Err(LogError::Invalid(format!(
                "consumer name {name:?} must be non-empty without spaces or newlines"
            )));
        }
        let mut offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        // Change the registry in memory only once the change is on disk: retention honours
        // the in-memory offsets, and after a restart the consumer resumes from the file.
        let mut next = offsets.clone();
        next.insert(name.to_string(), offset);
        self.persist(&next)?;
        *offsets = next;
        Ok(())
    }

    /// Forget `name`; it no longer pins anything.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        if offsets.contains_key(name) {
            let mut next = offsets.clone();
            next.remove(name);
            self.persist(&next)?;
            *offsets = next;
        }
        Ok(())
    }

    /// Every registered consumer and its offset.
    pub fn list(&self) -> Vec<(String, Offset)> {
        let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        offsets.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The smallest offset any consumer still needs.
    pub fn min_offset(&self) -> Option<Offset> {
        let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        offsets.values().min().copied()
    }

    /// Run `f` with the smallest pinned offset while holding the registry, so that no
    /// consumer can register a lower offset until `f` (a retention pass) is done.
    pub(crate) fn while_pinned<R>(&self, f: impl FnOnce(Option<Offset>) -> R) -> R {
        let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        f(offsets.values().min().copied())
    }

    fn persist(&self, offsets: &BTreeMap<String, Offset>) -> Result<()> {
        let mut text = String::new();
        for (name, off) in offsets {
            text.push_str(&format!("{name} {}\n", off.0));
        }
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let path = self.dir.join(FILE);
        let _ = self.storage.remove(&tmp);
        let file = self
            .storage
            .open(&tmp, true)
            .map_err(io_err("create", &tmp))?;
        file.write_at(0, text.as_bytes())
            .map_err(io_err("write", &tmp))?;
        file.sync().map_err(io_err("fsync", &tmp))?;
        self.storage
            .rename(&tmp, &path)
            .map_err(io_err("rename", &tmp))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_err("sync directory", &self.dir))
    }
}
