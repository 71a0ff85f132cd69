//! At-most-once application of HTTP ingest requests that carry an `Idempotency-Key`.
//!
//! Each stream remembers the outcome of its last `limits::IDEMPOTENCY_KEYS_MAX` keyed
//! requests in memory and in `<stream>/idempotency.jsonl` (one JSON line per completed
//! request, written and synced after the request's frames are durable and before it is
//! acknowledged). A retry with a known key returns the stored outcome without appending.
//! A retry while the first attempt is still running is refused as retriable.
//!
//! Every frame a keyed request writes also carries the key's hash as its producer tag, so
//! the log itself records which request wrote what. On open, the stream reads the tags of
//! its newest frames ([`RecoveredTag`]): a request whose frames reached the log but whose
//! journal line did not (a crash between the two) is then still recognised: if all its
//! frames are there, a retry replays; if only some are, a retry writes only the missing
//! ones.

use crate::error::{Result, StreamError, io_err};
use crate::outcome::{AppendOutcome, PartitionRange, RejectSummary};
use freshet_types::limits::IDEMPOTENCY_KEYS_MAX;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    outcome: AppendOutcome,
    /// Hash of the request body, to refuse a key reused for a different request.
    #[serde(default)]
    fingerprint: Option<u64>,
}

/// The hash of an idempotency key carried by frames as their producer tag; never 0.
pub fn tag_id(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes()).max(1)
}

/// What the newest frames of a stream say about one tagged request.
#[derive(Debug, Clone, Default)]
pub struct RecoveredTag {
    /// Frames the request wrote in all (from the tag).
    pub parts: u16,
    /// Its frames found in the stream's partitions.
    pub data: Vec<PartitionRange>,
    /// Its dead-letter frame, if found: range, total rows, the first rows' reasons.
    pub dead_letters: Option<(PartitionRange, u64, Vec<RejectSummary>)>,
}

impl RecoveredTag {
    /// Whether every frame of the request is in the log.
    pub fn complete(&self) -> bool {
        self.data.len() + usize::from(self.dead_letters.is_some()) >= usize::from(self.parts)
    }

    /// The outcome of a complete request, rebuilt from its frames.
    fn outcome(&self) -> AppendOutcome {
        let (dead_letters, rejected, rejects) = match &self.dead_letters {
            Some((range, n, rejects)) => (Some(*range), *n, rejects.clone()),
            None => (None, 0, Vec::new()),
        };
        AppendOutcome {
            accepted: self.data.iter().map(|d| d.end - d.start).sum(),
            rejected,
            rejects_truncated: rejected > rejects.len() as u64,
            rejects,
            partitions: self.data.clone(),
            dead_letters,
            replayed: true,
        }
    }
}

enum State {
    InFlight,
    Done(Box<AppendOutcome>, Option<u64>),
}

/// The remembered keys of one stream.
pub struct IdempotencyTable {
    path: PathBuf,
    states: HashMap<String, State>,
    order: VecDeque<String>,
    file: std::fs::File,
    lines: usize,
    recovered: HashMap<u128, RecoveredTag>,
}

/// What to do with a keyed request.
pub enum Claim {
    /// First time: apply it, then call [`IdempotencyTable::complete`] or `abandon`.
    Apply,
    /// Seen and done: answer with this.
    Replay(Box<AppendOutcome>),
    /// Some of its frames reached the log before a crash: write only the others, then
    /// complete it.
    Resume(RecoveredTag),
}

impl IdempotencyTable {
    /// Load the table of the stream directory `dir`.
    pub fn open(dir: &Path) -> Result<IdempotencyTable> {
        let path = dir.join("idempotency.jsonl");
        let mut states = HashMap::new();
        let mut order = VecDeque::new();
        let mut lines = 0;
        if let Ok(bytes) = std::fs::read(&path) {
            // A crash mid-write leaves a partial last line (its request was never
            // acknowledged): cut it, so the next record starts on a line of its own.
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if keep < bytes.len() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                f.set_len(keep as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err("truncate", &path))?;
            }
            let text = String::from_utf8_lossy(&bytes[..keep]);
            for line in text.lines() {
                let Ok(entry) = serde_json::from_str::<Entry>(line) else {
                    continue;
                };
                lines += 1;
                if states
                    .insert(
                        entry.key.clone(),
                        State::Done(Box::new(entry.outcome), entry.fingerprint),
                    )
                    .is_none()
                {
                    order.push_back(entry.key);
                }
                while order.len() > IDEMPOTENCY_KEYS_MAX {
                    if let Some(old) = order.pop_front() {
                        states.remove(&old);
                    }
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let mut table = IdempotencyTable {
            path,
            states,
            order,
            file,
            lines,
            recovered: HashMap::new(),
        };
        if table.lines > 2 * IDEMPOTENCY_KEYS_MAX {
            table.compact()?;
        }
        Ok(table)
    }

    /// Tags found in the newest frames. Those whose key the journal already holds are
    /// dropped; the rest are matched to keys when a retry arrives.
    pub fn add_recovered(&mut self, mut tags: HashMap<u128, RecoveredTag>) {
        for key in self.states.keys() {
            tags.remove(&tag_id(key));
        }
        self.recovered = tags;
    }

    /// Claim `key` for a request whose body hashes to `fingerprint`.
    pub fn claim(&mut self, key: &str, fingerprint: Option<u64>) -> Result<Claim> {
        if !self.states.contains_key(key)
            && let Some(tag) = self.recovered.remove(&tag_id(key))
        {
            if tag.complete() {
                let outcome = tag.outcome();
                self.complete(key, &outcome, fingerprint)?;
                return Ok(Claim::Replay(Box::new(outcome)));
            }
            self.states.insert(key.to_string(), State::InFlight);
            return Ok(Claim::Resume(tag));
        }
        match self.states.get(key) {
            Some(State::Done(_, Some(stored))) if fingerprint.is_some_and(|f| f != *stored) => {
                Err(StreamError::IdempotencyKeyReused(key.to_string()))
            }
            Some(State::Done(outcome, _)) => {
                let mut outcome = outcome.clone();
                outcome.replayed = true;
                Ok(Claim::Replay(outcome))
            }
            Some(State::InFlight) => Err(StreamError::IdempotencyInFlight(key.to_string())),
            None => {
                self.states.insert(key.to_string(), State::InFlight);
                Ok(Claim::Apply)
            }
        }
    }

    /// The request failed before anything was acknowledged: a retry may apply it.
    /// A resumed request's frames from before the crash are still in the log: `resumed`
    /// puts them back, so that the next retry resumes again rather than writing them twice.
    pub fn abandon(&mut self, key: &str, resumed: Option<RecoveredTag>) {
        if matches!(self.states.get(key), Some(State::InFlight)) {
            self.states.remove(key);
        }
        if let Some(tag) = resumed {
            self.recovered.insert(tag_id(key), tag);
        }
    }

    /// The request's frames are durable: record its outcome durably, then remember it.
    pub fn complete(
        &mut self,
        key: &str,
        outcome: &AppendOutcome,
        fingerprint: Option<u64>,
    ) -> Result<()> {
        let mut stored = outcome.clone();
        stored.replayed = false;
        let mut line = serde_json::to_vec(&Entry {
            key: key.to_string(),
            outcome: stored,
            fingerprint,
        })
        .expect("an outcome always serializes");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err("write", &self.path))?;
        self.lines += 1;
        self.states.insert(
            key.to_string(),
            State::Done(Box::new(outcome.clone()), fingerprint),
        );
        self.order.push_back(key.to_string());
        while self.order.len() > IDEMPOTENCY_KEYS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.states.remove(&old);
            }
        }
        if self.lines > 2 * IDEMPOTENCY_KEYS_MAX {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = Vec::new();
        for key in &self.order {
            if let Some(State::Done(outcome, fingerprint)) = self.states.get(key) {
                serde_json::to_writer(
                    &mut out,
                    &Entry {
                        key: key.clone(),
                        outcome: (**outcome).clone(),
                        fingerprint: *fingerprint,
                    },
                )
                .expect("an outcome always serializes");
                out.push(b'\n');
            }
        }
        std::fs::write(&tmp, &out)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(io_err("compact", &self.path))?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err("open", &self.path))?;
        self.lines = self.order.len();
        Ok(())
    }
}
