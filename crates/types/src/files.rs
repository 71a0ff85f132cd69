//! Small files replaced whole: catalogs and other metadata next to the log.

use std::io::Write;
use std::path::Path;

/// Replaces `dir/name` with `bytes` atomically: a reader sees the old file or the new one,
/// never a mix, and a crash leaves one of them. Written to `name.tmp`, synced, renamed over
/// `name`, and the directory synced so that the rename is durable.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
