//! File ingest: NDJSON and CSV through a bounded pipeline (a reader thread cuts the file
//! into line-aligned chunks, decoding workers turn chunks into encoded frames, the calling
//! thread appends them in file order and syncs each chunk); Parquet batch by batch.
//!
//! Memory is bounded by `limits::INGEST_PIPELINE_DEPTH` chunks of
//! `limits::INGEST_CHUNK_BYTES` in each stage.

pub use crate::decode::Format;
use crate::decode::{CsvDecoder, LineChunks, decode_parquet_file, read_header_line};
use crate::error::{Result, io_err};
use crate::stream::{Prepared, RejectSummary, Stream};
use freshet_types::limits::{HTTP_REJECTS_LISTED_MAX, INGEST_PIPELINE_DEPTH};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Progress of a running ingest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Input bytes processed.
    pub bytes_done: u64,
    /// Input size (0 if unknown).
    pub bytes_total: u64,
    /// Rows accepted so far.
    pub accepted: u64,
    /// Rows rejected so far.
    pub rejected: u64,
}

/// The result of ingesting a file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    /// The stream.
    pub stream: String,
    /// The file.
    pub source: String,
    /// Input bytes.
    pub bytes: u64,
    /// Rows appended.
    pub accepted: u64,
    /// Rows sent to the dead-letter stream.
    pub rejected: u64,
    /// The first rejected rows.
    pub rejects: Vec<RejectSummary>,
    /// Wall time in seconds.
    pub seconds: f64,
}

struct Chunk {
    seq: u64,
    text: Vec<u8>,
    first_line: u64,
}

/// Ingest a whole file into `stream`. `progress` is called after each committed chunk.
pub fn ingest_file(
    stream: &Stream,
    path: &Path,
    format: Format,
    progress: &mut dyn FnMut(Progress),
) -> Result<IngestSummary> {
    let started = Instant::now();
    let source = path.display().to_string();
    let total = std::fs::metadata(path).map_err(io_err("stat", path))?.len();
    let mut summary = IngestSummary {
        stream: stream.def().name.clone(),
        source: source.clone(),
        bytes: total,
        ..IngestSummary::default()
    };
    // A CSV file's first line is its header; read it before the pipeline starts.
    let mut file = None;
    let mut csv = None;
    let mut first_line = 1;
    let mut header_bytes = 0;
    if format != Format::Parquet {
        let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
        if format == Format::Csv {
            let header = read_header_line(&mut f, path)?;
            header_bytes = header.len() as u64;
            first_line = 2;
            csv = Some(CsvDecoder::new(stream.def(), &header)?);
        }
        file = Some(f);
    }
    let mut state = Progress {
        bytes_total: total,
        bytes_done: header_bytes,
        ..Progress::default()
    };
    let mut record = |prepared: Prepared, bytes: u64, summary: &mut IngestSummary| -> Result<()> {
        let remaining = HTTP_REJECTS_LISTED_MAX.saturating_sub(summary.rejects.len());
        let outcome = stream.commit(prepared, None)?;
        summary.accepted += outcome.accepted;
        summary.rejected += outcome.rejected;
        summary
            .rejects
            .extend(outcome.rejects.into_iter().take(remaining));
        state.bytes_done = (state.bytes_done + bytes).min(total);
        state.accepted = summary.accepted;
        state.rejected = summary.rejected;
        progress(state);
        Ok(())
    };
    match file {
        None => {
            // Parquet progress counts rows; the byte share is reported once at the end.
            decode_parquet_file(stream.def(), path, |decoded| {
                let prepared = stream.prepare(decoded, &source)?;
                record(prepared, 0, &mut summary)
            })?;
        }
        Some(file) => {
            run_pipeline(
                stream,
                file,
                first_line,
                &source,
                |chunk: &Chunk| match &csv {
                    Some(csv) => csv.decode(&chunk.text, chunk.first_line),
                    None => stream.ndjson().decode(&chunk.text, chunk.first_line),
                },
                |prepared, bytes| record(prepared, bytes, &mut summary),
            )?;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

type Decode<'a> = dyn Fn(&Chunk) -> Result<crate::decode::Decoded> + Sync + 'a;

fn run_pipeline(
    stream: &Stream,
    file: std::fs::File,
    first_line: u64,
    source: &str,
    decode: impl Fn(&Chunk) -> Result<crate::decode::Decoded> + Sync,
    mut commit: impl FnMut(Prepared, u64) -> Result<()>,
) -> Result<()> {
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(INGEST_PIPELINE_DEPTH);
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let (done_tx, done_rx) = sync_channel::<(u64, u64, Result<Prepared>)>(INGEST_PIPELINE_DEPTH);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let decode: &Decode<'_> = &decode;
    std::thread::scope(|s| -> Result<()> {
        let reader = s.spawn(move || read_chunks(file, Path::new(source), first_line, chunk_tx));
        for _ in 0..workers {
            let rx = chunk_rx.clone();
            let tx = done_tx.clone();
            s.spawn(move || worker(stream, source, decode, rx, tx));
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, (u64, Result<Prepared>)> = BTreeMap::new();
        let mut next = 0u64;
        let mut failure = None;
        for (seq, bytes, prepared) in done_rx.iter() {
            pending.insert(seq, (bytes, prepared));
            while let Some((bytes, prepared)) = pending.remove(&next) {
                next += 1;
                if failure.is_some() {
                    continue;
                }
                if let Err(e) = prepared.and_then(|p| commit(p, bytes)) {
                    failure = Some(e);
                    // Stop the reader: dropping the receiver ends its sends.
                    chunk_rx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .try_iter()
                        .for_each(drop);
                }
            }
            if failure.is_some() {
                break;
            }
        }
        drop(done_rx);
        let read = reader.join().expect("the reader thread does not panic");
        if let Some(e) = failure {
            return Err(e);
        }
        read
    })
}

fn read_chunks(file: std::fs::File, path: &Path, line: u64, tx: SyncSender<Chunk>) -> Result<()> {
    let mut chunks = LineChunks::new(file, path, line);
    let mut seq = 0;
    while let Some((text, first_line)) = chunks.next_chunk()? {
        if tx
            .send(Chunk {
                seq,
                text,
                first_line,
            })
            .is_err()
        {
            return Ok(()); // the consumer stopped (it reports why)
        }
        seq += 1;
    }
    Ok(())
}

fn worker(
    stream: &Stream,
    source: &str,
    decode: &Decode<'_>,
    rx: Arc<Mutex<Receiver<Chunk>>>,
    tx: SyncSender<(u64, u64, Result<Prepared>)>,
) {
    loop {
        // The reader closing the channel ends the worker.
        let chunk = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(chunk) = chunk else { return };
        let bytes = chunk.text.len() as u64;
        let prepared = decode(&chunk).and_then(|d| stream.prepare(d, source));
        if tx.send((chunk.seq, bytes, prepared)).is_err() {
            return;
        }
    }
}
