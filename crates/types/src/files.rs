//! Small files next to the log: catalogs and other metadata replaced whole, and the lock
//! files that keep two processes from changing them at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
    replace(dir, name, bytes, &options)
}

/// Like [`write_atomically`], for files that hold secrets or their hashes: the file is
/// readable and writable by its owner only (mode 0600) from the moment it exists, whatever
/// the umask. A temporary left by a crash is removed first rather than reused, since it
/// could have been created with a wider mode.
pub fn write_atomically_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{name}.tmp"))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    replace(dir, name, bytes, &options)
}

fn replace(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    options: &std::fs::OpenOptions,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = options.open(&tmp)?;
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
