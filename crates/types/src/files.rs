//! Small files next to the log: catalogs and other metadata replaced whole, and the lock
//! files that keep two processes from changing them at once.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`lock`] pauses between two tries. Short, since a holder keeps a lock for a
/// small write and a sync; the wait as a whole is the caller's bound.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// An exclusive `flock` on `path`, held until the returned file is dropped (or the process
/// ends). The file is created if missing, readable and writable by its owner only (mode
/// 0600), and never truncated, so that what a holder wrote into it survives. While another
/// holder has it, tries again until `wait` has passed; a zero `wait` tries once. `None`:
/// another holder kept it all that time.
pub fn lock(path: &Path, wait: Duration) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Replaces `dir/name` with `bytes` atomically: a reader sees the old file or the new one,
/// never a mix, and a crash leaves one of them. Written to `name.tmp`, synced, renamed over
/// `name`, and the directory synced so that the rename is durable.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    replace(dir, name, bytes, &options, None)
}

/// Like [`write_atomically`], for files that hold secrets or their hashes: the file is
/// readable and writable by its owner only (mode 0600) from the moment it exists, whatever
/// the umask. A temporary left by a crash is removed first rather than reused, since it
/// could have been created with a wider mode.
///
/// The new file keeps the owner and group of the file it replaces, so that a rewrite by
/// another user (root) never leaves a file that its owner's processes can no longer read.
/// When this user may not give it to them (only root may give a file away), nothing is
/// replaced, and the error's inner error is an [`OwnerNotKept`].
pub fn write_atomically_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{name}.tmp"))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let owner = match std::fs::metadata(dir.join(name)) {
        Ok(meta) => Some((meta.uid(), meta.gid())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    replace(dir, name, bytes, &options, owner)
}

/// Why [`write_atomically_private`] replaced nothing: the new file could not be given the
/// owner and group of the one it would replace.
#[derive(Debug)]
pub struct OwnerNotKept {
    /// The owner of the file left in place.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Why `fchown` failed (not permitted, as a rule).
    pub source: std::io::Error,
}

impl std::fmt::Display for OwnerNotKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot give the new file to uid {} and gid {}, who own the file it would \
             replace ({}); nothing was replaced",
            self.uid, self.gid, self.source
        )
    }
}

impl std::error::Error for OwnerNotKept {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn replace(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    options: &std::fs::OpenOptions,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = options.open(&tmp)?;
        if let Some((uid, gid)) = owner {
            let created = file.metadata()?;
            if (created.uid(), created.gid()) != (uid, gid)
                && let Err(source) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            {
                drop(file);
                // The temporary is ours and holds nothing yet; a failure to remove it is
                // not worth hiding the reason behind.
                let _ = std::fs::remove_file(&tmp);
                return Err(std::io::Error::new(
                    source.kind(),
                    OwnerNotKept { uid, gid, source },
                ));
            }
        }
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_atomically(dir.path(), "x.json", b"first, longer").expect("write");
        write_atomically(dir.path(), "x.json", b"second").expect("replace");
        assert_eq!(
            std::fs::read(dir.path().join("x.json")).expect("read"),
            b"second"
        );
        assert!(!dir.path().join("x.json.tmp").exists());
    }

    #[test]
    fn private_files_are_the_owners_only_even_over_a_leftover_temporary() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let leftover = dir.path().join("s.json.tmp");
        std::fs::write(&leftover, b"left by a crash").expect("write");
        std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically_private(dir.path(), "s.json", b"secret").expect("write");
        let path = dir.path().join("s.json");
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        assert!(!leftover.exists());
    }

    /// Only root can give a file away, so only as root does this test see a rewrite keep
    /// another user's ownership; as anyone else it says it skipped that part.
    #[test]
    fn a_private_file_keeps_the_owner_of_the_file_it_replaces() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("s.json");
        write_atomically_private(dir.path(), "s.json", b"first").expect("write");
        let mine = std::fs::metadata(&path).expect("stat");
        write_atomically_private(dir.path(), "s.json", b"second").expect("rewrite");
        let after = std::fs::metadata(&path).expect("stat");
        assert_eq!((after.uid(), after.gid()), (mine.uid(), mine.gid()));
        match std::os::unix::fs::chown(&path, Some(4242), Some(4343)) {
            Ok(()) => {
                write_atomically_private(dir.path(), "s.json", b"third").expect("as root");
                let after = std::fs::metadata(&path).expect("stat");
                assert_eq!((after.uid(), after.gid()), (4242, 4343));
                assert_eq!(after.permissions().mode() & 0o777, 0o600);
                assert_eq!(std::fs::read(&path).expect("read"), b"third");
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("SKIPPED the part that needs root: a rewrite keeping another owner");
            }
            Err(e) => panic!("chown: {e}"),
        }
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped_and_a_waiter_gets_it_then() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("x.lock");
        let held = lock(&path, Duration::ZERO)
            .expect("lock")
            .expect("a free lock");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        assert!(lock(&path, Duration::ZERO).expect("try").is_none(), "held");
        assert!(
            lock(&path, Duration::from_millis(30))
                .expect("try for a while")
                .is_none(),
            "still held"
        );
        std::thread::scope(|s| {
            // The waiter gets the lock once it is released, before or while it waits.
            let waiter = s.spawn(|| lock(&path, Duration::from_secs(60)));
            drop(held);
            let got = waiter.join().expect("the waiter").expect("lock");
            assert!(got.is_some(), "the waiter got the lock");
        });
    }
}
