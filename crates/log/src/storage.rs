//! The storage backend seam: every byte the log reads or writes goes through [`Storage`].
//!
//! [`FileStorage`] is the real backend (positional reads and writes on `std::fs::File`).
//! [`MemStorage`] keeps files in memory and injects the faults a disk can produce: a failed
//! write (a full disk), a failed fsync, a crash that loses everything not yet synced, and torn writes (a crash that keeps
//! only part of the unsynced bytes, possibly garbled). Tests use it to prove that nothing
//! acknowledged is ever lost.
//!
//! Model of [`MemStorage`]: each file has the bytes a reader sees now and the bytes that a
//! sync made durable. Creating and removing files is durable at once (the log syncs its
//! directory after both, so this matches the real backend after those syncs).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A directory tree of files the log can create, read, append to, sync and delete.
pub trait Storage: Send + Sync + 'static {
    /// Create `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files directly inside `dir` (not sorted). Missing `dir` is an error.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Open an existing file, or create an empty one when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Delete a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically replace `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make the directory's entries (created, removed, renamed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file. All methods take `&self` so that a sync can run while another thread
/// appends (group commit).
pub trait StorageFile: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Read up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `data` at `pos`.
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()>;
    /// Make everything written so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Cut the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;

    /// Read exactly `buf.len()` bytes at `pos`, or fail with `UnexpectedEof`.
    fn read_exact_at(&self, mut pos: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(pos, buf)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file"));
            }
            pos += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// The real backend: files on the local file system.
#[derive(Debug, Default, Clone)]
pub struct FileStorage;

struct RealFile(File);

impl StorageFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, pos)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, pos)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
}

impl Storage for FileStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// How a simulated crash treats the bytes written since the last successful sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything not synced is lost.
    LoseUnsynced,
    /// A prefix of the unsynced bytes survives (a torn write); `keep_per_mille` of them.
    Torn {
        /// How much of the unsynced tail survives, in thousandths.
        keep_per_mille: u16,
        /// Whether the last surviving 512-byte block is garbled (a sector half written).
        garble_last_block: bool,
    },
}

#[derive(Debug, Default, Clone)]
struct MemFileState {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct MemShared {
    files: BTreeMap<PathBuf, Arc<Mutex<MemFileState>>>,
    dirs: std::collections::BTreeSet<PathBuf>,
    fail_syncs: u32,
    full_dir: Option<PathBuf>,
}

/// An in-memory, fault-injecting backend for tests.
#[derive(Clone, Default)]
pub struct MemStorage {
    shared: Arc<Mutex<MemShared>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock only happens in a failing test; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemStorage {
    /// An empty in-memory file system.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Make the next `n` file syncs fail with an I/O error. A failed sync, like on Linux,
    /// leaves it unknown whether the data reached the disk: the unsynced bytes are dropped
    /// from the durable image.
    pub fn fail_next_syncs(&self, n: u32) {
        lock(&self.shared).fail_syncs = n;
    }

    /// Make every write to a file under `dir` fail as on a full disk (nothing of it is
    /// written), until called with `None`.
    pub fn fail_writes_under(&self, dir: Option<&Path>) {
        lock(&self.shared).full_dir = dir.map(Path::to_path_buf);
    }

    /// Simulate a power loss: every file keeps its durable bytes plus, depending on `mode`,
    /// part of what was written after the last sync. Handles opened before the crash keep
    /// working on the old state, so callers must reopen the log.
    pub fn crash(&self, mode: CrashMode) -> MemStorage {
        let shared = lock(&self.shared);
        let mut files = BTreeMap::new();
        for (path, file) in &shared.files {
            let state = lock(file);
            let mut image = state.durable.clone();
            if let CrashMode::Torn {
                keep_per_mille,
                garble_last_block,
            } = mode
            {
                // Bytes beyond the durable image that were appended after the last sync.
                if state.data.len() > image.len() && state.data.starts_with(&image) {
                    let extra = state.data.len() - image.len();
                    let keep = extra * usize::from(keep_per_mille.min(1000)) / 1000;
                    let from = image.len();
                    image.extend_from_slice(&state.data[from..from + keep]);
                    if garble_last_block && keep > 0 {
                        let start = from + keep - keep.min(512);
                        for (i, b) in image[start..].iter_mut().enumerate() {
                            *b = b.wrapping_mul(31).wrapping_add(i as u8 | 1);
                        }
                    }
                }
            }
            files.insert(
                path.clone(),
                Arc::new(Mutex::new(MemFileState {
                    data: image.clone(),
                    durable: image,
                })),
            );
        }
        MemStorage {
            shared: Arc::new(Mutex::new(MemShared {
                files,
                dirs: shared.dirs.clone(),
                fail_syncs: 0,
                full_dir: None,
            })),
        }
    }

    /// The current bytes of a file, for tests that corrupt or inspect it.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let shared = lock(&self.shared);
        shared.files.get(path).map(|f| lock(f).data.clone())
    }

    /// Overwrite a file's bytes (current and durable), for tests that corrupt it.
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut shared = lock(&self.shared);
        shared.files.insert(
            path.to_path_buf(),
            Arc::new(Mutex::new(MemFileState {
                data: bytes.clone(),
                durable: bytes,
            })),
        );
    }
}

struct MemFile {
    path: PathBuf,
    state: Arc<Mutex<MemFileState>>,
    shared: Arc<Mutex<MemShared>>,
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.state).data.len() as u64)
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = lock(&self.state);
        let pos = pos as usize;
        if pos >= state.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(state.data.len() - pos);
        buf[..n].copy_from_slice(&state.data[pos..pos + n]);
        Ok(n)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let full = lock(&self.shared)
            .full_dir
            .as_ref()
            .is_some_and(|dir| self.path.starts_with(dir));
        if full {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let mut state = lock(&self.state);
        let pos = pos as usize;
        let end = pos + data.len();
        if state.data.len() < end {
            state.data.resize(end, 0);
        }
        state.data[pos..end].copy_from_slice(data);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        {
            let mut shared = lock(&self.shared);
            if shared.fail_syncs > 0 {
                shared.fail_syncs -= 1;
                return Err(io::Error::other("injected fsync failure"));
            }
        }
        let mut state = lock(&self.state);
        state.durable = state.data.clone();
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.data.truncate(len as usize);
        state.durable.truncate(len as usize);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut shared = lock(&self.shared);
        for ancestor in dir.ancestors() {
            shared.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let shared = lock(&self.shared);
        if !shared.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(shared
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut shared = lock(&self.shared);
        let parent = path.parent().unwrap_or(Path::new(""));
        if !shared.dirs.contains(parent) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        let state = match shared.files.get(path) {
            Some(state) => state.clone(),
            None if create => {
                let state = Arc::new(Mutex::new(MemFileState::default()));
                shared.files.insert(path.to_path_buf(), state.clone());
                state
            }
            None => return Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        };
        Ok(Arc::new(MemFile {
            path: path.to_path_buf(),
            state,
            shared: self.shared.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.shared)
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut shared = lock(&self.shared);
        let state = shared
            .files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        shared.files.insert(to.to_path_buf(), state);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loses_unsynced_bytes() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).unwrap();
        let f = storage.open(Path::new("/d/a"), true).unwrap();
        f.write_at(0, b"hello").unwrap();
        f.sync().unwrap();
        f.write_at(5, b" world").unwrap();
        let after = storage.crash(CrashMode::LoseUnsynced);
        assert_eq!(after.file_bytes(Path::new("/d/a")).unwrap(), b"hello");
    }

    #[test]
    fn failed_sync_is_not_durable() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).unwrap();
        let f = storage.open(Path::new("/d/a"), true).unwrap();
        f.write_at(0, b"hello").unwrap();
        storage.fail_next_syncs(1);
        assert!(f.sync().is_err());
        let after = storage.crash(CrashMode::LoseUnsynced);
        assert_eq!(after.file_bytes(Path::new("/d/a")).unwrap(), b"");
    }
}
