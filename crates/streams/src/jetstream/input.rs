//! A partition on JetStream read through the input seam: an ordered consumer from the
//! offset asked for, each message decoded with the stream's NDJSON decoder.

use super::{RUNTIME, failed, run};
use crate::decode::{NdjsonDecoder, Reject, RejectCode};
use crate::def::{JetStreamDef, StreamDef};
use crate::error::{Result, StreamError};
use crate::input::{Chunk, ChunkReader, OffsetBatch, PartitionInput};
use async_nats::jetstream::{self, consumer};
use freshet_types::{EventTime, IngestTime, Offset, RowOffsets};
use futures_util::StreamExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages one read returns at most.
const READ_MESSAGES_MAX: u64 = 8192;

/// How long one fetch waits for the first message the stream's bounds say is there.
const READ_WAIT: Duration = Duration::from_secs(2);

/// How long a read waits, over fetches, before it reports that JetStream does not deliver
/// messages its bounds say it holds.
const READ_GIVE_UP: Duration = Duration::from_secs(60);

/// How long the partition's bounds, as last asked, answer [`PartitionInput::end`].
const BOUNDS_FRESH: Duration = Duration::from_millis(50);

/// Where a partition's messages that do not decode go.
pub(crate) trait DeadLetters: Send + Sync {
    /// Records `rejects` of partition `partition` (each reject's `line` is its sequence),
    /// each once however many readers meet it.
    fn dead_letter(&self, partition: u32, subject: &str, rejects: Vec<Reject>) -> Result<()>;
}

/// A partition of a stream whose log is JetStream.
pub struct JetStreamInput {
    js: jetstream::Context,
    /// The JetStream stream holding the partition.
    name: String,
    /// Its creation time as declared, if recorded: a stream created again is refused.
    created: Option<String>,
    subject: String,
    stream: String,
    partition: u32,
    /// The partition key's column and the partition count, if the stream has a key: a row
    /// whose key hashes to another partition is dead-lettered.
    key: Option<(usize, u32)>,
    event_time: usize,
    decoder: NdjsonDecoder,
    schema: arrow_schema::SchemaRef,
    dead_letters: Option<std::sync::Arc<dyn DeadLetters>>,
    /// The consumer reading on from the sequence it holds (in a mutex only to be `Sync`).
    consumer: Mutex<Option<(u64, consumer::pull::Ordered)>>,
    /// The partition's first and last sequence, and when they were asked.
    bounds: Mutex<Option<(Instant, u64, u64)>>,
}

impl JetStreamInput {
    pub(super) fn new(
        js: jetstream::Context,
        stream: &StreamDef,
        def: &JetStreamDef,
        partition: u32,
        dead_letters: Option<std::sync::Arc<dyn DeadLetters>>,
    ) -> JetStreamInput {
        JetStreamInput {
            js,
            name: def.stream_name(partition),
            created: def.created.get(partition as usize).cloned(),
            subject: def.partition_subject(partition),
            stream: stream.name.clone(),
            partition,
            key: stream
                .partition_key
                .as_deref()
                .and_then(|k| stream.column_index(k))
                .map(|k| (k, stream.partitions)),
            event_time: stream.event_time_index(),
            decoder: NdjsonDecoder::new(stream),
            schema: stream.schema(),
            dead_letters,
            consumer: Mutex::new(None),
            bounds: Mutex::new(None),
        }
    }

    /// The partition's first and last sequence now (0 and 0 while it never held any).
    fn bounds_now(&self) -> Result<(u64, u64)> {
        let js = self.js.clone();
        let name = self.name.clone();
        let (state, created) = run(async move {
            let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            let info = stream.cached_info();
            Ok::<_, String>((info.state.clone(), info.created.to_string()))
        })
        .map_err(|e| failed(&format!("stream {}", self.name), e))?;
        if self.created.as_ref().is_some_and(|c| *c != created) {
            return Err(StreamError::LogChanged(format!(
                "stream `{}` partition {}: JetStream stream {} was deleted and created again \
                 since the stream was declared; its sequences no longer mean what was read",
                self.stream, self.partition, self.name
            )));
        }
        let bounds = (state.first_sequence, state.last_sequence);
        *self.bounds.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), bounds.0, bounds.1));
        Ok(bounds)
    }

    /// The partition's bounds, as asked at most `BOUNDS_FRESH` ago.
    fn bounds(&self) -> Result<(u64, u64)> {
        if let Some((at, first, last)) = *self.bounds.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < BOUNDS_FRESH
        {
            return Ok((first, last));
        }
        self.bounds_now()
    }

    /// Up to `upto` (a sequence the stream holds), about `bytes_max` bytes of messages from
    /// sequence `from` on: each message's sequence, payload and publish time.
    fn fetch(
        &mut self,
        from: u64,
        upto: u64,
        bytes_max: usize,
    ) -> Result<Vec<(u64, Vec<u8>, i64)>> {
        let held = self
            .consumer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // A consumer elsewhere in the stream is dropped on the runtime, where it can
        // unsubscribe.
        let (consumer, stale) = match held {
            Some((next, consumer)) if next == from => (Some(consumer), None),
            other => (None, other),
        };
        let js = self.js.clone();
        let name = self.name.clone();
        let (consumer, got) = run(async move {
            drop(stale);
            let mut messages = match consumer {
                Some(c) => c,
                None => {
                    let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
                    let config = consumer::pull::OrderedConfig {
                        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: from,
                        },
                        ..Default::default()
                    };
                    let c = stream
                        .create_consumer(config)
                        .await
                        .map_err(|e| e.to_string())?;
                    c.messages().await.map_err(|e| e.to_string())?
                }
            };
            let deadline = tokio::time::Instant::now() + READ_WAIT;
            let mut got = Vec::new();
            let mut bytes = 0;
            while let Ok(next) = tokio::time::timeout_at(deadline, messages.next()).await {
                let Some(message) = next else { break };
                let message = message.map_err(|e| e.to_string())?;
                let info = message.info().map_err(|e| e.to_string())?;
                let seq = info.stream_sequence;
                let published = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                let caught_up = info.pending == 0;
                bytes += message.payload.len();
                got.push((seq, message.payload.to_vec(), published));
                if seq >= upto || bytes >= bytes_max || caught_up {
                    break;
                }
            }
            Ok::<_, String>((messages, got))
        })
        .map_err(|e| failed(&format!("reading stream {}", self.name), e))?;
        // Kept even when nothing came: it is still at `from` (and dropping it here, off its
        // runtime, could not unsubscribe).
        let next = got.last().map_or(from, |&(last, _, _)| last + 1);
        *self.consumer.get_mut().unwrap_or_else(|e| e.into_inner()) = Some((next, consumer));
        Ok(got)
    }

    /// The rows whose partition key hashes to this partition, with their sequences; the
    /// others (published here by another program) are added to `rejects`. Freshet's own
    /// publishers hash every key, so views that split by partition may rely on it.
    fn own_rows(
        &self,
        batch: arrow_array::RecordBatch,
        good: Vec<u64>,
        messages: &[(u64, Vec<u8>, i64)],
        rejects: &mut Vec<Reject>,
    ) -> Result<(arrow_array::RecordBatch, Vec<u64>)> {
        let Some((key, partitions)) = self.key.filter(|&(_, n)| n > 1) else {
            return Ok((batch, good));
        };
        let column = batch.column(key);
        let owners = crate::partitioner::assign(column, partitions);
        if owners.iter().all(|&p| p == self.partition) {
            return Ok((batch, good));
        }
        let mine: arrow_array::BooleanArray =
            owners.iter().map(|&p| Some(p == self.partition)).collect();
        let name = self.schema.field(key).name();
        for (row, &owner) in owners.iter().enumerate() {
            if owner == self.partition {
                continue;
            }
            let seq = good[row];
            let value = arrow_cast::display::array_value_to_string(column, row)
                .unwrap_or_else(|e| format!("(unprintable: {e})"));
            rejects.push(Reject {
                code: RejectCode::WrongPartition,
                reason: format!(
                    "its partition key {name} = {value} belongs to partition {owner} of \
                     {partitions}, but it was published to {}: publish it to the subject \
                     of partition {owner}",
                    self.subject
                ),
                line: seq,
                raw: messages
                    .iter()
                    .find(|m| m.0 == seq)
                    .map(|m| m.1.clone())
                    .unwrap_or_default(),
            });
        }
        let kept = arrow_select::filter::filter_record_batch(&batch, &mine)?;
        let good = good
            .into_iter()
            .zip(&owners)
            .filter(|&(_, &p)| p == self.partition)
            .map(|(seq, _)| seq)
            .collect();
        Ok((kept, good))
    }

    /// Decodes fetched messages into a chunk; bad ones go to the dead letters.
    fn chunk(&self, messages: Vec<(u64, Vec<u8>, i64)>) -> Result<Chunk> {
        let mut text = Vec::new();
        let mut rejects = Vec::new();
        let mut lines = Vec::with_capacity(messages.len());
        for (i, (seq, payload, _)) in messages.iter().enumerate() {
            if payload.iter().all(u8::is_ascii_whitespace) {
                rejects.push(Reject {
                    code: RejectCode::BadJson,
                    reason: "the message is empty: an event is one JSON object".into(),
                    line: *seq,
                    raw: payload.to_vec(),
                });
                continue;
            }
            // One line per message: a line break inside a JSON object is whitespace.
            text.extend(payload.iter().map(|&b| match b {
                b'\n' | b'\r' => b' ',
                b => b,
            }));
            text.push(b'\n');
            lines.push((i as u64 + 1, *seq));
        }
        // Lines are numbered from 1 in the order of `lines`; map them back to sequences.
        let decoded = self.decoder.decode(&text, 1)?;
        let line_seq = |line: u64| lines[(line - 1) as usize].1;
        let rejected: std::collections::HashSet<u64> =
            decoded.rejects.iter().map(|r| r.line).collect();
        for mut r in decoded.rejects {
            r.line = line_seq(r.line);
            rejects.push(r);
        }
        let good: Vec<u64> = (1..=lines.len() as u64)
            .filter(|l| !rejected.contains(l))
            .map(line_seq)
            .collect();
        let batch = decoded
            .batch
            .unwrap_or_else(|| arrow_array::RecordBatch::new_empty(self.schema.clone()));
        debug_assert_eq!(batch.num_rows(), good.len());
        let (batch, good) = self.own_rows(batch, good, &messages, &mut rejects)?;
        if !rejects.is_empty()
            && let Some(dl) = &self.dead_letters
        {
            rejects.sort_by_key(|r| r.line);
            dl.dead_letter(self.partition, &self.subject, rejects)?;
        }
        let first = messages.first().map_or(0, |m| m.0);
        let next = messages.last().map_or(0, |m| m.0) + 1;
        let published = messages.iter().map(|m| m.2).max().unwrap_or(0);
        let bytes = messages.iter().map(|m| m.1.len() as u64).sum();
        Ok(Chunk::decoded(
            Offset(first),
            Offset(next),
            OffsetBatch {
                offsets: RowOffsets::listed(good),
                batch,
            },
            self.event_time,
            IngestTime(published),
            bytes,
        ))
    }
}

impl Drop for JetStreamInput {
    fn drop(&mut self) {
        // The consumer's subscription unsubscribes on a task of its runtime when dropped.
        if let Some(held) = self
            .consumer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _runtime = RUNTIME.enter();
            drop(held);
        }
    }
}

impl ChunkReader for JetStreamInput {
    fn start(&mut self) -> Result<Offset> {
        // Sequences start at 1: offset 0 is "nothing removed yet", as in the embedded log.
        let (first, _) = self.bounds_now()?;
        Ok(Offset(if first <= 1 { 0 } else { first }))
    }

    fn read(&mut self, from: Offset, bytes_max: usize) -> Result<Vec<Chunk>> {
        let (first, last) = self.bounds_now()?;
        let from = from.0.max(1);
        if from > last + 1 {
            return Err(StreamError::LogChanged(format!(
                "stream `{}` partition {}: JetStream stream {} ends at sequence {last}, but \
                 sequence {} was already read: it lost acknowledged messages (or was deleted \
                 and created again); refusing to read on as if nothing happened",
                self.stream,
                self.partition,
                self.name,
                from - 1
            )));
        }
        if from < first {
            return Err(StreamError::LogChanged(format!(
                "stream `{}` partition {}: JetStream stream {} removed sequences {from} to {} \
                 (its retention) before they were read",
                self.stream,
                self.partition,
                self.name,
                first - 1
            )));
        }
        if from > last {
            return Ok(Vec::new());
        }
        let upto = last.min(from + READ_MESSAGES_MAX - 1);
        // The stream holds `from..=last`: an empty fetch is a slow server (a consumer being
        // made, a leader being elected), not the end, which callers would take it for.
        let give_up = Instant::now() + READ_GIVE_UP;
        loop {
            let messages = self.fetch(from, upto, bytes_max)?;
            if !messages.is_empty() {
                return Ok(vec![self.chunk(messages)?]);
            }
            if Instant::now() >= give_up {
                return Err(StreamError::JetStream(format!(
                    "stream {} holds sequences up to {last} but delivered none from {from} \
                     within {} s",
                    self.name,
                    READ_GIVE_UP.as_secs()
                )));
            }
        }
    }

    fn earliest_event_time(&mut self) -> Result<Option<EventTime>> {
        let mut at = self.start()?;
        let mut earliest: Option<EventTime> = None;
        loop {
            let chunks = self.read(at, 1 << 20)?;
            let Some(last) = chunks.last() else {
                return Ok(earliest);
            };
            at = last.next;
            for c in &chunks {
                if c.events_within(c.first, c.next) > 0 {
                    earliest = Some(earliest.map_or(c.min_event_time, |e| e.min(c.min_event_time)));
                }
            }
        }
    }
}

impl PartitionInput for JetStreamInput {
    fn end_known(&self) -> Offset {
        let known = *self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        Offset(known.map_or(1, |b| b.2 + 1))
    }

    fn end(&self) -> Offset {
        // A failed ask keeps the last bounds known: `read` reports the failure.
        match self.bounds() {
            Ok((_, last)) => Offset(last + 1),
            Err(_) => {
                let known = *self.bounds.lock().unwrap_or_else(|e| e.into_inner());
                Offset(known.map_or(1, |b| b.2 + 1))
            }
        }
    }

    fn wait_beyond(&self, offset: Offset, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.bounds_now().is_ok_and(|(_, last)| last >= offset.0) {
                return;
            }
            std::thread::sleep(
                BOUNDS_FRESH.min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    fn pin(&self, _consumer: &str, _from: Offset) -> Result<()> {
        // JetStream applies the stream's own retention; a view that falls behind it is
        // refused when it reads (see `read`).
        Ok(())
    }
}
