//! NATS JetStream as a stream's log (docs/scale-out.md).
//!
//! A stream declared with `log = 'nats://...'` keeps its events in JetStream: one JetStream
//! stream per Freshet partition, partition `p` on subject `<subject>.<p>`, each message one
//! event as a JSON object, and a partition's offsets are its JetStream stream's sequence
//! numbers. Freshet's own ingest publishes the rows it accepted (re-encoded as JSON, after
//! the same validation as the embedded log's), waits for every publish acknowledgement and
//! sets `Nats-Msg-Id` from the request's idempotency key, so that a retried request is
//! stored once (within the JetStream stream's duplicate window). Other programs may publish
//! on the same subjects: readers decode every message with the stream's NDJSON decoder and
//! send the bad ones to the dead-letter stream with their subject and sequence.
//!
//! The client is async (`async-nats`); Freshet's log interfaces are blocking and are called
//! from view threads and blocking tasks, so every call runs on one small runtime of its own
//! and the caller waits for it ([`run`]).

mod input;

pub(crate) use input::DeadLetters;
pub use input::JetStreamInput;

use crate::def::{JetStreamDef, StreamDef};
use crate::error::{Result, StreamError};
use crate::outcome::PartitionRange;
use crate::payload;
use crate::stream::PreparedFrame;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How long a publisher may wait for the JetStream streams' acknowledgements, and any
/// other request for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages the process publishes without waiting for their acknowledgements, over every
/// request: below the client's own bound of 5,000 per connection, so that its publish never
/// waits for a permit that only another request's unread acknowledgement would free.
const PUBLISHES_IN_FLIGHT: usize = 4096;

/// One permit per message published and not yet acknowledged.
static IN_FLIGHT: LazyLock<Arc<tokio::sync::Semaphore>> =
    LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(PUBLISHES_IN_FLIGHT)));

/// The duplicate window of the JetStream streams Freshet creates: a request retried with
/// the same idempotency key within it is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("freshet-nats")
        .enable_all()
        .build()
        .expect("a runtime for the NATS client can be built")
});

/// One connection per server list, for the life of the process.
static CONNECTIONS: LazyLock<Mutex<HashMap<String, jetstream::Context>>> =
    LazyLock::new(Mutex::default);

/// Runs `fut` on the NATS runtime and waits for it; callable from any thread, including a
/// blocking task of another runtime.
pub(crate) fn run<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    RUNTIME.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("the NATS runtime runs every task it is given to the end")
}

/// A JetStream context on `servers` (`nats://a:4222,nats://b:4222`), connected once.
pub(crate) fn connect(servers: &str) -> Result<jetstream::Context> {
    let mut connections = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(js) = connections.get(servers) {
        return Ok(js.clone());
    }
    let addrs = servers
        .split(',')
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| StreamError::BadDdl(format!("log = '{servers}': {e}")))?;
    let js = run(async move {
        let client = async_nats::ConnectOptions::new()
            .name("freshet")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(addrs)
            .await?;
        // The context spawns a task of its own: made here, on the NATS runtime.
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        Ok::<_, async_nats::ConnectError>(js)
    })
    .map_err(|e| StreamError::JetStream(format!("cannot connect to {servers}: {e}")))?;
    connections.insert(servers.to_string(), js.clone());
    Ok(js)
}

fn failed(what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError::JetStream(format!("{what}: {e}"))
}

/// A stream's log on JetStream: its partitions' JetStream streams.
pub struct JetStreamLog {
    js: jetstream::Context,
    def: JetStreamDef,
    stream: String,
    partitions: u32,
}

impl JetStreamLog {
    /// Connects to the log of `def` (which must be on JetStream) and checks that every
    /// partition's JetStream stream is the one declared.
    pub fn open(def: &StreamDef) -> Result<JetStreamLog> {
        let log = JetStreamLog::connect(def)?;
        let created = log.ensure(false)?;
        if created != log.def.created {
            return Err(StreamError::LogChanged(format!(
                "stream `{}`: a JetStream stream of its log was deleted and created again \
                 since the stream was declared (creation times {:?}, declared {:?}); its \
                 offsets no longer mean what views committed. Drop and re-create the stream \
                 (and its views) to start over from what JetStream holds now",
                def.name, created, log.def.created
            )));
        }
        Ok(log)
    }

    /// Creates (or checks) every partition's JetStream stream for a new stream declaration,
    /// and returns `def` with their creation times recorded.
    pub fn declare(mut def: StreamDef) -> Result<StreamDef> {
        let created = JetStreamLog::connect(&def)?.ensure(true)?;
        if let Some(js) = def.options.jetstream.as_mut() {
            js.created = created;
        }
        Ok(def)
    }

    fn connect(def: &StreamDef) -> Result<JetStreamLog> {
        let js_def = *def
            .options
            .jetstream
            .clone()
            .expect("a JetStream log is opened only for a stream declared on JetStream");
        Ok(JetStreamLog {
            js: connect(&js_def.servers)?,
            def: js_def,
            stream: def.name.clone(),
            partitions: def.partitions,
        })
    }

    /// Each partition's JetStream stream's creation time; a missing one is created when
    /// `create`, else refused. An existing stream must hold exactly its partition's subject.
    fn ensure(&self, create: bool) -> Result<Vec<String>> {
        let mut created = Vec::new();
        for p in 0..self.partitions {
            let name = self.def.stream_name(p);
            let subject = self.def.partition_subject(p);
            let js = self.js.clone();
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                num_replicas: self.def.replicas as usize,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            };
            let info = run(async move {
                match js.get_stream(&config.name).await {
                    Ok(s) => Ok(s.cached_info().clone()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            jetstream::context::GetStreamErrorKind::JetStream(ref j)
                                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                        ) =>
                    {
                        if !create {
                            return Err(format!("stream {} is missing: {e}", config.name));
                        }
                        js.create_stream(config)
                            .await
                            .map(|s| s.cached_info().clone())
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            })
            .map_err(|e| failed(&format!("partition {p} of stream `{}`", self.stream), e))?;
            if info.config.subjects != [subject.clone()] {
                return Err(StreamError::LogChanged(format!(
                    "JetStream stream {name} holds subjects {:?}, but partition {p} of stream \
                     `{}` is subject {subject} alone; choose another subject",
                    info.config.subjects, self.stream
                )));
            }
            unsuitable(&info.config).map_or(Ok(()), |why| {
                Err(StreamError::LogChanged(format!(
                    "JetStream stream {name} (partition {p} of stream `{}`) {why}; Freshet \
                     needs limits retention, file storage and a duplicate window of at least \
                     {} s",
                    self.stream,
                    DUPLICATE_WINDOW.as_secs()
                )))
            })?;
            created.push(info.created.to_string());
        }
        Ok(created)
    }

    /// The declaration this log was opened with.
    pub fn def(&self) -> &JetStreamDef {
        &self.def
    }

    /// Publishes the rows of prepared frames, one message per row, and waits until
    /// JetStream acknowledged every one. With an idempotency key each message carries a
    /// `Nats-Msg-Id` made of the key, its partition and its place in the frame, so a retry
    /// of the same request is stored once. Returns the sequence range each frame took.
    pub fn publish(
        &self,
        frames: &[PreparedFrame],
        key: Option<&str>,
    ) -> Result<Vec<PartitionRange>> {
        let mut messages = Vec::new();
        for frame in frames {
            let subject = self.def.partition_subject(frame.partition);
            let mut i = 0u64;
            for batch in payload::decode(&frame.payload)? {
                for line in json_rows(&batch)? {
                    let mut publish = PublishMessage::build().payload(line.into());
                    if let Some(key) = key {
                        publish = publish.message_id(format!("{key}/{}/{i}", frame.partition));
                    }
                    messages.push((frame.partition, subject.clone(), publish));
                    i += 1;
                }
            }
        }
        let js = self.js.clone();
        let acks = run(async move {
            let mut acks = Vec::with_capacity(messages.len());
            let mut pending = std::collections::VecDeque::new();
            for (p, subject, publish) in messages {
                // Out of permits, a publisher first waits for its own oldest message: no
                // two wait on each other.
                let permit = loop {
                    if let Ok(permit) = IN_FLIGHT.clone().try_acquire_owned() {
                        break permit;
                    }
                    let Some((p, ack, permit)) = pending.pop_front() else {
                        break IN_FLIGHT
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed");
                    };
                    let ack: jetstream::context::PublishAckFuture = ack;
                    acks.push((p, ack.await.map_err(|e| failed("publish", e))?.sequence));
                    drop(permit);
                };
                let ack = js
                    .send_publish(subject, publish)
                    .await
                    .map_err(|e| failed("publish", e))?;
                pending.push_back((p, ack, permit));
            }
            for (p, ack, _permit) in pending {
                acks.push((p, ack.await.map_err(|e| failed("publish", e))?.sequence));
            }
            Ok::<_, StreamError>(acks)
        })?;
        Ok(frames
            .iter()
            .map(|f| {
                let seqs = acks.iter().filter(|(p, _)| *p == f.partition).map(|a| a.1);
                let (lo, hi) = seqs.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
                PartitionRange {
                    partition: f.partition,
                    start: lo.min(hi),
                    end: hi + 1,
                }
            })
            .collect())
    }

    /// One past each partition's last sequence, by partition.
    pub fn ends(&self) -> Result<Vec<u64>> {
        let names: Vec<String> = (0..self.partitions)
            .map(|p| self.def.stream_name(p))
            .collect();
        let js = self.js.clone();
        run(async move {
            let mut ends = Vec::with_capacity(names.len());
            for name in names {
                let stream = js.get_stream(&name).await.map_err(|e| failed(&name, e))?;
                ends.push(stream.cached_info().state.last_sequence + 1);
            }
            Ok(ends)
        })
    }

    /// A read-only reader of partition `p` of `def` (a scan: bad messages are skipped).
    pub fn reader(def: &StreamDef, p: u32) -> Result<JetStreamInput> {
        Ok(JetStreamLog::connect(def)?.input(def, p, None))
    }

    /// A reader of partition `p`; `dead_letters` takes the messages that do not decode
    /// (none for a read-only scan, which skips them).
    pub(crate) fn input(
        &self,
        stream: &StreamDef,
        p: u32,
        dead_letters: Option<Arc<dyn input::DeadLetters>>,
    ) -> JetStreamInput {
        JetStreamInput::new(self.js.clone(), stream, &self.def, p, dead_letters)
    }
}

/// Why an existing JetStream stream cannot hold a partition: its messages must stay until
/// its limits remove them (views read without acknowledging), survive a restart, and be
/// deduplicated as long as Freshet's publishers retry.
fn unsuitable(config: &stream::Config) -> Option<String> {
    if config.retention != stream::RetentionPolicy::Limits {
        return Some(format!(
            "has retention {:?}, which deletes messages once consumers took them",
            config.retention
        ));
    }
    if config.storage != stream::StorageType::File {
        return Some("keeps its messages in memory only".into());
    }
    if config.duplicate_window < DUPLICATE_WINDOW {
        return Some(format!(
            "deduplicates for {} s only",
            config.duplicate_window.as_secs()
        ));
    }
    None
}

/// The rows of `batch` as JSON objects, one per row: timestamps as epoch milliseconds,
/// which the NDJSON decoder reads back exactly.
fn json_rows(batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if matches!(f.data_type(), DataType::Timestamp(..)) {
            fields.push(Field::new(f.name(), DataType::Int64, f.is_nullable()));
            columns.push(arrow_cast::cast(c, &DataType::Int64)?);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mut text = Vec::new();
    {
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut text);
        writer.write(&batch)?;
        writer.finish()?;
    }
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The position of a JetStream message, as its dead letter's source names it.
pub(crate) fn source_of(subject: &str) -> String {
    format!("nats:{subject}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{StreamStatement, parse_stream_statement};
    use crate::decode::NdjsonDecoder;

    #[test]
    fn published_rows_decode_back_to_the_same_rows() {
        let sql = "CREATE STREAM t (id BIGINT NOT NULL, small SMALLINT, ok BOOLEAN, x DOUBLE, \
                   name VARCHAR, day DATE, amount DECIMAL(10,2), raw BYTEA, \
                   at TIMESTAMP WITH TIME ZONE, ts TIMESTAMP NOT NULL, \
                   WATERMARK FOR ts AS ts)";
        let Some(StreamStatement::Create { def, .. }) = parse_stream_statement(sql).unwrap() else {
            unreachable!()
        };
        let decoder = NdjsonDecoder::new(&def);
        let text = "{\"id\":1,\"small\":-3,\"ok\":true,\"x\":1.5,\"name\":\"a \\\"q\\\" \\n b\",\
                    \"day\":\"2026-12-06\",\"amount\":\"12.30\",\"raw\":\"6279746573\",\
                    \"at\":\"2026-12-06T10:00:00.123Z\",\"ts\":\"2026-12-06T10:00:00.001Z\"}\n\
                    {\"id\":2,\"ts\":1}\n";
        let original = decoder.decode(text.as_bytes(), 1).unwrap();
        assert!(original.rejects.is_empty(), "{:?}", original.rejects);
        let batch = original.batch.unwrap();
        let lines = json_rows(&batch).unwrap();
        assert_eq!(lines.len(), 2);
        let again = decoder.decode(&lines.join(&b'\n'), 1).unwrap();
        assert!(again.rejects.is_empty(), "{:?}", again.rejects);
        assert_eq!(again.batch.unwrap(), batch);
    }
}
