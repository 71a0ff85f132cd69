//! At-most-once application of HTTP ingest requests that carry an `Idempotency-Key`.
//!
//! Each stream remembers the outcome of its last `limits::IDEMPOTENCY_KEYS_MAX` keyed
//! requests in memory and in `<stream>/idempotency.jsonl` (one JSON line per completed
//! request, written and synced after the request's frames are durable and before it is
//! acknowledged). A retry with a known key returns the stored outcome without appending.
//! A retry while the first attempt is still running is refused as retriable.
//!
//! Every frame a keyed request writes also carries the key's hash as its producer tag, so
//! the log itself records which request wrote what.

use crate::error::{Result, StreamError, io_err};
use crate::stream::AppendOutcome;
use freshet_types::limits::IDEMPOTENCY_KEYS_MAX;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    outcome: AppendOutcome,
}

enum State {
    InFlight,
    Done(Box<AppendOutcome>),
}

/// The remembered keys of one stream.
pub struct IdempotencyTable {
    path: PathBuf,
    states: HashMap<String, State>,
    order: VecDeque<String>,
    file: std::fs::File,
    lines: usize,
}

/// What to do with a keyed request.
pub enum Claim {
    /// First time: apply it, then call [`IdempotencyTable::complete`] or `abandon`.
    Apply,
    /// Seen and done: answer with this.
    Replay(Box<AppendOutcome>),
}

impl IdempotencyTable {
    /// Load the table of the stream directory `dir`.
    pub fn open(dir: &Path) -> Result<IdempotencyTable> {
        let path = dir.join("idempotency.jsonl");
        let mut states = HashMap::new();
        let mut order = VecDeque::new();
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                // A torn last line (crash mid-write) belongs to a request that was never
                // acknowledged; skip it.
                let Ok(entry) = serde_json::from_str::<Entry>(line) else {
                    continue;
                };
                lines += 1;
                if states
                    .insert(entry.key.clone(), State::Done(Box::new(entry.outcome)))
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
        };
        if table.lines > 2 * IDEMPOTENCY_KEYS_MAX {
            table.compact()?;
        }
        Ok(table)
    }

    /// Claim `key` for a request.
    pub fn claim(&mut self, key: &str) -> Result<Claim> {
        match self.states.get(key) {
            Some(State::Done(outcome)) => {
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
    pub fn abandon(&mut self, key: &str) {
        if matches!(self.states.get(key), Some(State::InFlight)) {
            self.states.remove(key);
        }
    }

    /// The request's frames are durable: record its outcome durably, then remember it.
    pub fn complete(&mut self, key: &str, outcome: &AppendOutcome) -> Result<()> {
        let mut line = serde_json::to_vec(&Entry {
            key: key.to_string(),
            outcome: outcome.clone(),
        })
        .expect("an outcome always serializes");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err("write", &self.path))?;
        self.lines += 1;
        self.states
            .insert(key.to_string(), State::Done(Box::new(outcome.clone())));
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
            if let Some(State::Done(outcome)) = self.states.get(key) {
                serde_json::to_writer(
                    &mut out,
                    &Entry {
                        key: key.clone(),
                        outcome: (**outcome).clone(),
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
