//! The token file, `<data dir>/tokens.json`: each token's name, role, creation time and
//! SHA-256 hash, never the token. It is replaced whole (written to a temporary, synced,
//! renamed), readable by its owner only (mode 0600), so a server can read it at any moment
//! without a lock and sees one version or the next. A rewrite keeps the file's owner and
//! group, and is refused when it cannot (a user other than root rewriting another user's
//! file): a server running as the owner must be able to read every version.
//!
//! `token create` and `token revoke` read, change and write it under `tokens.lock`, an
//! flock of its own, so that two of them at once never lose each other's change. They do
//! not take the data directory's `LOCK`: tokens are managed while `freshet serve` runs.
//!
//! ```json
//! {"version": 1, "tokens": [{"name": "query-1", "role": "query",
//!   "created": "2026-12-06T06:44:00.000Z", "sha256": "5e88…"}]}
//! ```

use super::error::{TokenError, io_err};
use super::role::Role;
use super::secret::{Secret, TokenHash};
use freshet_types::files::OwnerNotKept;
use freshet_types::limits::{
    TOKEN_NAME_BYTES_MAX, TOKENS_FILE_BYTES_MAX, TOKENS_LOCK_WAIT, TOKENS_MAX,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The token file's name in the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// The lock `token create` and `token revoke` hold while they change the token file.
pub const TOKENS_LOCK_FILE: &str = "tokens.lock";

/// The token file format this version reads and writes.
const VERSION: u32 = 1;

/// One token as the file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: String,
    pub role: Role,
    /// When it was created, RFC 3339 UTC with milliseconds.
    pub created: String,
    /// SHA-256 of the token, hex.
    pub sha256: TokenHash,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    version: u32,
    tokens: Vec<Record>,
}

/// What identifies one version of the token file: a server re-reads the file when this
/// changes. Each write renames a new file into place, so a new version has a new inode as
/// well as a new modification time, unless the file system reuses the old inode within
/// one tick of its clock; the server's occasional unconditional re-read covers that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified_ns: i128,
    len: u64,
    inode: u64,
}

/// The token file's stamp now; `None` if there is no file (or it cannot be seen).
pub fn stamp(data_dir: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(data_dir.join(TOKENS_FILE)).ok()?;
    Some(Stamp {
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Every token in the file; none if there is no file. A file larger than
/// [`TOKENS_FILE_BYTES_MAX`] is refused unread, and so is one with more than [`TOKENS_MAX`]
/// tokens or a name `token create` would refuse: a file that breaks the rules the commands
/// keep was not written by them.
pub fn read(data_dir: &Path) -> Result<Vec<Record>, TokenError> {
    let path = data_dir.join(TOKENS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let mut text = Vec::new();
    file.take(TOKENS_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut text)
        .map_err(io_err("read", &path))?;
    let bad = |problem: String| TokenError::BadFile {
        path: path.clone(),
        problem,
    };
    if text.len() > TOKENS_FILE_BYTES_MAX {
        return Err(bad(format!(
            "it is larger than {TOKENS_FILE_BYTES_MAX} bytes (TOKENS_FILE_BYTES_MAX)"
        )));
    }
    let file: TokenFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if file.version != VERSION {
        return Err(bad(format!(
            "it has version {}; this freshet reads version {VERSION}",
            file.version
        )));
    }
    if file.tokens.len() > TOKENS_MAX {
        return Err(bad(format!(
            "it holds {} tokens; at most {TOKENS_MAX} (TOKENS_MAX)",
            file.tokens.len()
        )));
    }
    let mut names = HashSet::new();
    for (i, record) in file.tokens.iter().enumerate() {
        if let Some(problem) = name_problem(&record.name) {
            return Err(bad(format!(
                "token {} is named {}: {problem}",
                i + 1,
                quoted(&record.name)
            )));
        }
        if !names.insert(record.name.as_str()) {
            return Err(bad(format!("the name '{}' appears twice", record.name)));
        }
    }
    Ok(file.tokens)
}

/// Create a token: a new secret whose hash is stored under `name` (default: the role and
/// the next number, such as `query-3`). The secret is returned to be shown once.
pub fn create(
    data_dir: &Path,
    role: Role,
    name: Option<&str>,
    created: String,
) -> Result<(Record, Secret), TokenError> {
    if let Some(name) = name {
        check_name(name)?;
    }
    let _lock = lock(data_dir)?;
    let mut tokens = read(data_dir)?;
    if tokens.len() >= TOKENS_MAX {
        return Err(TokenError::Limit {
            what: "tokens in one data directory; revoke unused ones",
            max: TOKENS_MAX,
            limit: "TOKENS_MAX",
        });
    }
    let name = match name {
        Some(name) if tokens.iter().any(|t| t.name == name) => {
            return Err(TokenError::NameTaken(name.to_string()));
        }
        Some(name) => name.to_string(),
        None => default_name(&tokens, role),
    };
    let secret = Secret::generate()?;
    let record = Record {
        name,
        role,
        created,
        sha256: secret.hash(),
    };
    tokens.push(record.clone());
    write(data_dir, tokens)?;
    Ok((record, secret))
}

/// Remove `record`, just made by [`create`], if the file still holds it (the same name and
/// hash): for a token that could not be shown, so that none stays valid that nobody saw.
pub fn withdraw(data_dir: &Path, record: &Record) -> Result<(), TokenError> {
    let _lock = lock(data_dir)?;
    let mut tokens = read(data_dir)?;
    let before = tokens.len();
    tokens.retain(|t| !(t.name == record.name && t.sha256.matches(&record.sha256)));
    if tokens.len() == before {
        return Ok(());
    }
    write(data_dir, tokens)
}

/// Remove the token named `name`; an error if there is none.
pub fn revoke(data_dir: &Path, name: &str) -> Result<Record, TokenError> {
    let _lock = lock(data_dir)?;
    let mut tokens = read(data_dir)?;
    let Some(at) = tokens.iter().position(|t| t.name == name) else {
        return Err(TokenError::UnknownName {
            name: name.to_string(),
            path: data_dir.join(TOKENS_FILE),
        });
    };
    let record = tokens.remove(at);
    write(data_dir, tokens)?;
    Ok(record)
}

fn write(data_dir: &Path, tokens: Vec<Record>) -> Result<(), TokenError> {
    let file = TokenFile {
        version: VERSION,
        tokens,
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("a token file always serializes");
    bytes.push(b'\n');
    let path = data_dir.join(TOKENS_FILE);
    freshet_types::files::write_atomically_private(data_dir, TOKENS_FILE, &bytes).map_err(|e| {
        match e.get_ref().and_then(|e| e.downcast_ref::<OwnerNotKept>()) {
            Some(owner) => TokenError::OwnerNotKept {
                path: path.clone(),
                uid: owner.uid,
                gid: owner.gid,
            },
            None => io_err("write", &path)(e),
        }
    })
}

/// `role-N` with N one more than the largest number a `role-N` name has, so that a revoked
/// name is not handed out again; if that number would not fit (a name such as
/// `query-18446744073709551615`, written by hand), the smallest N whose name is free.
fn default_name(tokens: &[Record], role: Role) -> String {
    let prefix = format!("{role}-");
    let last = tokens
        .iter()
        .filter_map(|t| t.name.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let free = |n: &u64| !tokens.iter().any(|t| t.name == format!("{prefix}{n}"));
    // At most TOKENS_MAX names are taken, so one of the first TOKENS_MAX + 1 is free.
    let n = last
        .checked_add(1)
        .filter(free)
        .or_else(|| (1..).find(free))
        .expect("fewer names are taken than there are numbers");
    format!("{prefix}{n}")
}

/// Names are short and plain, so that they print and pass through shells and URLs as
/// they are; `env-` names belong to `FRESHET_TOKENS`.
fn check_name(name: &str) -> Result<(), TokenError> {
    match name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(TokenError::BadName {
            name: name.to_string(),
            problem,
        }),
    }
}

/// What is wrong with `name`, if anything (see [`check_name`]).
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > TOKEN_NAME_BYTES_MAX {
        return Some(format!(
            "a name has 1 to {TOKEN_NAME_BYTES_MAX} characters (TOKEN_NAME_BYTES_MAX)"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("use letters, digits, '-', '_' and '.' only".into());
    }
    if name.starts_with("env-") {
        return Some("names starting with 'env-' are those of FRESHET_TOKENS".into());
    }
    None
}

/// A name from the file, quoted and escaped, cut after [`TOKEN_NAME_BYTES_MAX`] characters:
/// it may be anything a hand edit left.
fn quoted(name: &str) -> String {
    match name.char_indices().nth(TOKEN_NAME_BYTES_MAX) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}…", &name[..cut]),
    }
}

/// The token file's lock, held until dropped. Waits at most [`TOKENS_LOCK_WAIT`].
fn lock(data_dir: &Path) -> Result<std::fs::File, TokenError> {
    std::fs::create_dir_all(data_dir).map_err(io_err("create", data_dir))?;
    let path = data_dir.join(TOKENS_LOCK_FILE);
    freshet_types::files::lock(&path, TOKENS_LOCK_WAIT)
        .map_err(io_err("lock", &path))?
        .ok_or(TokenError::Locked {
            path,
            waited_s: TOKENS_LOCK_WAIT.as_secs(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NOW: &str = "2026-12-06T06:44:00.000Z";

    #[test]
    fn the_file_keeps_the_hash_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (record, secret) = create(&data, Role::Query, None, NOW.into()).expect("create");
        assert_eq!(record.name, "query-1");
        let path = data.join(TOKENS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(secret.expose()), "{text}");
        assert!(!text.contains(&secret.expose()[4..]), "{text}");
        assert!(text.contains(&secret.hash().to_hex()), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let back = read(&data).expect("read");
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].name.as_str(), back[0].role),
            ("query-1", Role::Query)
        );
        assert_eq!(back[0].created, NOW);
        assert!(back[0].sha256.matches(&secret.hash()));
    }

    #[test]
    fn names_are_unique_and_default_to_the_role_and_the_next_number() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let name = |role, name| create(d, role, name, NOW.into()).map(|(r, _)| r.name);
        assert_eq!(name(Role::Query, None).unwrap(), "query-1");
        assert_eq!(name(Role::Query, None).unwrap(), "query-2");
        assert_eq!(name(Role::Admin, None).unwrap(), "admin-1");
        assert_eq!(name(Role::Ingest, Some("feeder")).unwrap(), "feeder");
        assert!(matches!(
            name(Role::Admin, Some("feeder")),
            Err(TokenError::NameTaken(n)) if n == "feeder"
        ));
        assert!(matches!(
            name(Role::Admin, Some("query-1")),
            Err(TokenError::NameTaken(_))
        ));
        // A revoked number is not handed out again while a later one exists.
        revoke(d, "query-1").unwrap();
        assert_eq!(name(Role::Query, None).unwrap(), "query-3");
        for bad in [
            "",
            "a b",
            "env-1",
            "x/y",
            &"n".repeat(TOKEN_NAME_BYTES_MAX + 1),
        ] {
            assert!(
                matches!(
                    name(Role::Query, Some(bad)),
                    Err(TokenError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        let names: Vec<String> = read(d).unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["query-2", "admin-1", "feeder", "query-3"]);
    }

    /// The largest number a default name can have is taken: the next default name is a
    /// free one, not an overflow.
    #[test]
    fn a_default_name_after_the_largest_number_is_a_free_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["query-18446744073709551615", "query-1", "query-3"] {
            create(d, Role::Query, Some(name), NOW.into()).unwrap();
        }
        let name = |role| create(d, role, None, NOW.into()).map(|(r, _)| r.name);
        assert_eq!(name(Role::Query).unwrap(), "query-2");
        assert_eq!(name(Role::Query).unwrap(), "query-4");
        assert_eq!(name(Role::Admin).unwrap(), "admin-1");
    }

    #[test]
    fn revoke_removes_one_token_and_refuses_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_, kept) = create(d, Role::Admin, None, NOW.into()).unwrap();
        create(d, Role::Ingest, None, NOW.into()).unwrap();
        let gone = revoke(d, "ingest-1").expect("revoke");
        assert_eq!(gone.role, Role::Ingest);
        let left = read(d).unwrap();
        assert_eq!(left.len(), 1);
        assert!(left[0].sha256.matches(&kept.hash()));
        let e = revoke(d, "ingest-1").expect_err("revoked already");
        assert!(matches!(e, TokenError::UnknownName { .. }), "{e}");
        assert!(e.to_string().contains("no token named 'ingest-1'"), "{e}");
    }

    #[test]
    fn withdraw_removes_only_the_very_token_made() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (first, _) = create(d, Role::Query, Some("a"), NOW.into()).unwrap();
        revoke(d, "a").unwrap();
        let (again, _) = create(d, Role::Admin, Some("a"), NOW.into()).unwrap();
        withdraw(d, &first).expect("nothing to do");
        assert_eq!(read(d).unwrap().len(), 1, "another token named a stays");
        withdraw(d, &again).expect("withdraw");
        assert!(read(d).unwrap().is_empty());
    }

    #[test]
    fn concurrent_creates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..5 {
                        create(d, Role::Query, None, NOW.into()).expect("create");
                    }
                });
            }
        });
        let mut names: Vec<String> = read(d).unwrap().into_iter().map(|r| r.name).collect();
        names.sort_by_key(|n| n[6..].parse::<u32>().unwrap());
        let expected: Vec<String> = (1..=40).map(|i| format!("query-{i}")).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_damaged_or_newer_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(read(d).unwrap().is_empty(), "no file: no tokens");
        assert!(stamp(d).is_none());
        for text in [
            "{",
            r#"{"version": 2, "tokens": []}"#,
            r#"{"version": 1, "tokens": [{"name": "a", "role": "root", "created": "", "sha256": ""}]}"#,
            r#"{"version": 1, "tokens": [], "extra": 1}"#,
        ] {
            std::fs::write(d.join(TOKENS_FILE), text).unwrap();
            let e = read(d).expect_err(text);
            assert!(matches!(e, TokenError::BadFile { .. }), "{text}: {e}");
        }
    }

    #[test]
    fn a_file_beyond_the_bounds_or_the_name_rules_is_refused_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let record = |name: &str| {
            format!(
                r#"{{"name": "{name}", "role": "query", "created": "{NOW}", "sha256": "{}"}}"#,
                TokenHash::of(name.as_bytes()).to_hex()
            )
        };
        let file = |records: Vec<String>| {
            format!(r#"{{"version": 1, "tokens": [{}]}}"#, records.join(","))
        };
        let refused = |text: &str, says: &str| {
            std::fs::write(d.join(TOKENS_FILE), text).unwrap();
            let e = read(d).expect_err(says);
            assert!(matches!(e, TokenError::BadFile { .. }), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        };
        // Valid JSON, padded past the bound: refused without being parsed.
        let small = file(vec![record("a")]);
        let padded = format!(
            "{small}{}",
            " ".repeat(TOKENS_FILE_BYTES_MAX + 1 - small.len())
        );
        refused(&padded, "TOKENS_FILE_BYTES_MAX");
        std::fs::write(d.join(TOKENS_FILE), &padded[..TOKENS_FILE_BYTES_MAX]).unwrap();
        assert_eq!(read(d).expect("at the bound").len(), 1);
        let many: Vec<String> = (0..=TOKENS_MAX).map(|i| record(&format!("q{i}"))).collect();
        refused(&file(many), "TOKENS_MAX");
        for (name, says) in [
            ("", "1 to 64"),
            ("a b", "letters, digits"),
            ("env-1", "FRESHET_TOKENS"),
            (
                &"n".repeat(TOKEN_NAME_BYTES_MAX + 1),
                "TOKEN_NAME_BYTES_MAX",
            ),
        ] {
            refused(&file(vec![record("ok"), record(name)]), says);
        }
        refused(
            &file(vec![record(r"a\u0007b")]),
            r#"token 1 is named "a\u{7}b""#,
        );
    }

    /// The most tokens, each with the longest name, make a file well within the bound on
    /// what is read.
    #[test]
    fn the_most_tokens_fit_in_the_largest_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tokens: Vec<Record> = (0..TOKENS_MAX)
            .map(|i| Record {
                name: format!("{i:0>width$}", width = TOKEN_NAME_BYTES_MAX),
                role: Role::Ingest,
                created: NOW.into(),
                sha256: TokenHash::of(&i.to_le_bytes()),
            })
            .collect();
        write(d, tokens).unwrap();
        let bytes = std::fs::metadata(d.join(TOKENS_FILE)).unwrap().len();
        assert!(bytes < TOKENS_FILE_BYTES_MAX as u64 / 2, "{bytes} bytes");
        assert_eq!(read(d).unwrap().len(), TOKENS_MAX);
        let e = create(d, Role::Query, None, NOW.into()).expect_err("full");
        assert!(e.to_string().contains("TOKENS_MAX"), "{e}");
    }

    #[test]
    fn every_write_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        create(d, Role::Query, Some("a1"), NOW.into()).unwrap();
        let first = stamp(d).expect("a file");
        create(d, Role::Query, Some("a2"), NOW.into()).unwrap();
        let second = stamp(d).expect("a file");
        assert_ne!(second, first);
        revoke(d, "a1").unwrap();
        assert_ne!(stamp(d).expect("a file"), second);
    }
}
