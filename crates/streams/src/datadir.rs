//! The data directory: the catalog, one directory per stream, and the lock that makes one
//! process its only writer.
//!
//! ```text
//! <data dir>/LOCK                      held (flock) by the one process that writes
//! <data dir>/catalog.json              declared streams
//! <data dir>/streams/<name>/<p>/       partition p of the stream (segments + indexes)
//! <data dir>/streams/<name>/dlq/       the stream's dead-letter log
//! <data dir>/streams/<name>/idempotency.jsonl
//! ```
//!
//! Readers (`streams`, `dlq`, `log verify`) need no lock: they read the catalog and the
//! segment files directly and never change them.
//!
//! A worker (`freshet worker`) opens a directory of its own (for its dead letters) with
//! the catalog of another ([`DataDir::open_worker`]): the data directory where streams and
//! views are declared, read again on every [`DataDir::reload_catalog`], never written. It
//! reads only streams on a shared log (JetStream); the embedded log of that directory
//! belongs to the process that holds its lock.

use crate::catalog::Catalog;
use crate::def::StreamDef;
use crate::error::{Result, StreamError, io_err};
use crate::stream::Stream;
use freshet_log::{FileStorage, Storage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A data directory opened for writing.
pub struct DataDir {
    root: PathBuf,
    /// A worker's: the data directory whose catalog it reads.
    catalog_root: Option<PathBuf>,
    storage: Arc<dyn Storage>,
    _lock: std::fs::File,
    catalog: Mutex<Catalog>,
    open: Mutex<HashMap<String, Arc<Stream>>>,
}

/// The directory of stream `name` under data directory `root`.
pub fn stream_dir(root: &Path, name: &str) -> PathBuf {
    root.join("streams").join(name)
}

/// Writes who holds the lock into the lock file, for the error another process gets: the
/// process id and its command line, with passwords in URLs and `password=` parameters
/// masked (the file outlives the process, and the text is shown to others).
fn record_holder(mut lock: &std::fs::File) -> std::io::Result<()> {
    use std::io::Write;
    let command: Vec<String> = std::env::args_os()
        .map(|a| mask_password(&a.to_string_lossy()))
        .collect();
    lock.set_len(0)?;
    writeln!(lock, "pid {}: {}", std::process::id(), command.join(" "))
}

/// `text` with the password of a `scheme://user:password@host` URL and the value of any
/// `password=` parameter replaced by `***`.
fn mask_password(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        if let Some(at) = out[rest..].find('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(p) = out.find("password=") {
        let value = p + "password=".len();
        let end = out[value..].find('&').map_or(out.len(), |i| value + i);
        out.replace_range(value..end, "***");
    }
    out
}

impl DataDir {
    /// Open `root` for writing, creating it if needed. Fails if another process has it.
    pub fn open(root: impl Into<PathBuf>) -> Result<DataDir> {
        let root = root.into();
        let lock = lock_root(&root)?;
        let catalog = Catalog::load(&root)?;
        Ok(DataDir {
            root,
            catalog_root: None,
            storage: Arc::new(FileStorage),
            _lock: lock,
            catalog: Mutex::new(catalog),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Opens `own` for writing (a worker's directory, created if needed) with the catalog
    /// of the data directory `catalog_root`, which it only reads. Fails if another process
    /// has `own`.
    pub fn open_worker(
        own: impl Into<PathBuf>,
        catalog_root: impl Into<PathBuf>,
    ) -> Result<DataDir> {
        let root = own.into();
        let catalog_root = catalog_root.into();
        let lock = lock_root(&root)?;
        let catalog = Catalog::load(&catalog_root)?;
        Ok(DataDir {
            root,
            catalog_root: Some(catalog_root),
            storage: Arc::new(FileStorage),
            _lock: lock,
            catalog: Mutex::new(catalog),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Where the catalogs of streams and views live: this directory, or for a worker the
    /// data directory it reads them from.
    pub fn catalog_root(&self) -> &Path {
        self.catalog_root.as_deref().unwrap_or(&self.root)
    }

    /// Reads the catalog again (a worker following the data directory it serves): streams
    /// dropped or declared again are closed, so their next use opens them as they are now.
    pub fn reload_catalog(&self) -> Result<()> {
        let fresh = Catalog::load(self.catalog_root())?;
        let mut catalog = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, stream| fresh.get(name) == Some(stream.def()));
        *catalog = fresh;
        Ok(())
    }

    /// A worker never changes the catalog it reads.
    fn check_catalog_writable(&self) -> Result<()> {
        match &self.catalog_root {
            None => Ok(()),
            Some(root) => Err(StreamError::BadDdl(format!(
                "a worker does not change streams: run the statement with `freshet sql` on \
                 the data directory {}",
                root.display()
            ))),
        }
    }
}

/// Creates `root` if needed and takes its lock. No wait: a writer keeps the directory for
/// as long as it runs.
fn lock_root(root: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(root.join("streams")).map_err(io_err("create", root))?;
    let lock_path = root.join("LOCK");
    let Some(lock) = freshet_types::files::lock(&lock_path, Duration::ZERO)
        .map_err(io_err("lock", &lock_path))?
    else {
        let holder = std::fs::read_to_string(&lock_path)
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "holder unknown".to_owned());
        return Err(StreamError::Locked {
            path: root.display().to_string(),
            holder,
        });
    };
    record_holder(&lock).map_err(io_err("write", &lock_path))?;
    Ok(lock)
}

impl DataDir {
    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every declared stream.
    pub fn streams(&self) -> Vec<StreamDef> {
        self.catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .streams
            .clone()
    }

    /// The open stream `name`, opening (and recovering) it on first use.
    pub fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.get(name) {
            return Ok(s.clone());
        }
        let def = self
            .catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| StreamError::UnknownStream(name.to_string()))?;
        if let Some(catalog_root) = &self.catalog_root
            && def.options.jetstream.is_none()
        {
            return Err(StreamError::BadInput(format!(
                "stream '{name}' is on the embedded log of {}, which only the process                  holding that directory reads; workers read streams on a shared log                  (WITH (log = 'nats://...'))",
                catalog_root.display()
            )));
        }
        let (stream, reports) =
            Stream::open(self.storage.clone(), def, stream_dir(&self.root, name))?;
        for (dir, report) in &reports {
            if let Some(torn) = &report.truncated {
                tracing::warn!(
                    partition = %dir.display(),
                    file = %torn.file.display(),
                    position = torn.position,
                    bytes = torn.bytes,
                    defect = %torn.defect,
                    "truncated a torn tail left by an unclean shutdown (never acknowledged)"
                );
            }
        }
        let stream = Arc::new(stream);
        open.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// Create a stream. Returns false if it existed and `if_not_exists` was set.
    pub fn create_stream(&self, def: StreamDef, if_not_exists: bool) -> Result<bool> {
        self.check_catalog_writable()?;
        let mut catalog = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        if catalog.get(&def.name).is_some() {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(StreamError::StreamExists(def.name))
            };
        }
        let dir = stream_dir(&self.root, &def.name);
        if dir.exists() {
            // Leftovers of a stream dropped while its files were in use; start clean.
            std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        }
        // A stream on JetStream gets its JetStream streams (created or checked) first.
        let def = match def.options.jetstream {
            Some(_) => crate::jetstream::JetStreamLog::declare(def)?,
            None => def,
        };
        let mut next = catalog.clone();
        next.streams.push(def);
        next.save(&self.root)?;
        *catalog = next;
        Ok(true)
    }

    /// Drop a stream and delete its data. Returns false if absent and `if_exists` was set.
    pub fn drop_stream(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.check_catalog_writable()?;
        let mut catalog = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        if catalog.get(name).is_none() {
            return if if_exists {
                Ok(false)
            } else {
                Err(StreamError::UnknownStream(name.to_string()))
            };
        }
        let mut next = catalog.clone();
        next.streams.retain(|s| s.name != name);
        next.save(&self.root)?;
        *catalog = next;
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let dir = stream_dir(&self.root, name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        }
        Ok(true)
    }

    /// Sync the open streams whose policy is `fsync = 'interval'` (called periodically).
    pub fn sync_interval_streams(&self) -> Result<()> {
        self.sync_open(|s| s.def().options.fsync == crate::def::FsyncMode::Interval)
    }

    /// Apply retention to every declared stream (opening those not yet open).
    pub fn apply_retention(&self) -> Result<Vec<(String, usize, u64)>> {
        let mut out = Vec::new();
        for def in self.streams() {
            let (segments, bytes) = self.stream(&def.name)?.apply_retention()?;
            out.push((def.name, segments, bytes));
        }
        Ok(out)
    }

    /// Sync every open stream (shutdown).
    pub fn sync_all(&self) -> Result<()> {
        self.sync_open(|_| true)
    }

    fn sync_open(&self, which: impl Fn(&Stream) -> bool) -> Result<()> {
        let open: Vec<Arc<Stream>> = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| which(s))
            .cloned()
            .collect();
        for s in open {
            s.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_record_masks_passwords() {
        assert_eq!(
            mask_password("postgres://me:secret@127.0.0.1/db?schema=s"),
            "postgres://me:***@127.0.0.1/db?schema=s"
        );
        assert_eq!(
            mask_password("postgres://h/db?password=secret&schema=s"),
            "postgres://h/db?password=***&schema=s"
        );
        assert_eq!(mask_password("--data-dir"), "--data-dir");
        assert_eq!(mask_password("postgres://me@h/db"), "postgres://me@h/db");
    }
}
