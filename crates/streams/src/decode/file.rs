//! Files decoded a piece at a time, pulled by the reader: NDJSON and CSV a line-aligned
//! chunk of `limits::INGEST_CHUNK_BYTES` at a time, Parquet a batch of
//! `limits::INGEST_BATCH_ROWS` rows at a time. File ingest cuts its input with
//! [`LineChunks`]; batch queries read history files through [`FileDecoder`]. Memory stays at
//! one chunk (plus at most one oversized line's first `ROW_BYTES_MAX` bytes).

use super::Format;
use super::{CsvDecoder, Decoded, NdjsonDecoder, ParquetDecoder};
use crate::def::StreamDef;
use crate::error::{Result, StreamError, io_err};
use freshet_types::limits::{INGEST_CHUNK_BYTES, ROW_BYTES_MAX};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A text file cut into chunks of whole lines.
pub(crate) struct LineChunks {
    file: File,
    path: PathBuf,
    /// The line number of the next chunk's first line (1-based).
    line: u64,
    /// The incomplete last line of the previous chunk.
    carry: Vec<u8>,
    /// Whether `carry` is the kept prefix of a line longer than the row limit whose rest
    /// is being skipped (the decoder rejects it as `row_too_large`).
    skipping: bool,
    done: bool,
    /// Bytes read from the file.
    pub bytes_read: u64,
}

impl LineChunks {
    /// Chunks of `file` (at `path`) from where it is now, whose first line is `line`.
    pub fn new(file: File, path: &Path, line: u64) -> LineChunks {
        LineChunks {
            file,
            path: path.to_path_buf(),
            line,
            carry: Vec::new(),
            skipping: false,
            done: false,
            bytes_read: 0,
        }
    }

    /// Carries `partial`, the start of a line the next chunk ends. A line already over the
    /// limit is kept as its first bytes only and its rest skipped: two bytes past the
    /// limit, so that with a trailing `\r` cut it is still over it, rejected as too large.
    fn carry_partial(&mut self, mut partial: Vec<u8>) {
        if partial.len() > ROW_BYTES_MAX + 2 {
            partial.truncate(ROW_BYTES_MAX + 2);
            self.skipping = true;
        }
        self.carry = partial;
    }

    /// The next chunk of whole lines and the number of its first line; `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<(Vec<u8>, u64)>> {
        while !self.done {
            // The file is read straight into the chunk, after the carried partial line.
            let mut buf = std::mem::take(&mut self.carry);
            let start = buf.len();
            buf.reserve_exact(INGEST_CHUNK_BYTES);
            let filled = (&mut self.file)
                .take(INGEST_CHUNK_BYTES as u64)
                .read_to_end(&mut buf)
                .map_err(io_err("read", &self.path))?;
            self.bytes_read += filled as u64;
            let eof = filled < INGEST_CHUNK_BYTES;
            if self.skipping {
                match memchr::memchr(b'\n', &buf[start..]) {
                    Some(nl) => {
                        buf.drain(start..start + nl);
                        self.skipping = false;
                    }
                    None if eof => buf.truncate(start),
                    None => {
                        buf.truncate(start);
                        self.carry = buf;
                        continue;
                    }
                }
            }
            if eof {
                self.done = true;
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(nl) => {
                        let partial = buf.split_off(nl + 1);
                        self.carry_partial(partial);
                    }
                    None => {
                        self.carry_partial(buf);
                        continue;
                    }
                }
            }
            if buf.is_empty() {
                continue;
            }
            let first = self.line;
            self.line += memchr::memchr_iter(b'\n', &buf).count() as u64;
            return Ok(Some((buf, first)));
        }
        Ok(None)
    }
}

/// Reads a CSV file's header line (the file is left just after it).
pub(crate) fn read_header_line(file: &mut File, path: &Path) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = file.read(&mut byte).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
        if line.len() > ROW_BYTES_MAX {
            return Err(StreamError::BadInput(format!(
                "{}: the CSV header line is longer than {ROW_BYTES_MAX} bytes",
                path.display()
            )));
        }
    }
    if line.is_empty() {
        return Err(StreamError::BadInput(format!(
            "{}: empty CSV file (no header line)",
            path.display()
        )));
    }
    Ok(line)
}

/// A whole file decoded against a stream's schema, one piece per [`FileDecoder::next`].
pub struct FileDecoder {
    source: Source,
}

enum Source {
    Text {
        chunks: LineChunks,
        csv: Option<Box<CsvDecoder>>,
        ndjson: Box<NdjsonDecoder>,
        header_bytes: u64,
    },
    Parquet {
        decoder: Box<ParquetDecoder>,
        bytes: u64,
        done: bool,
    },
}

impl FileDecoder {
    /// Opens `path` as `format` for `def` (a CSV file's header is read now).
    pub fn open(def: &StreamDef, path: &Path, format: Format) -> Result<FileDecoder> {
        let source = match format {
            Format::Parquet => Source::Parquet {
                decoder: Box::new(ParquetDecoder::open(def, path)?),
                bytes: std::fs::metadata(path).map_err(io_err("stat", path))?.len(),
                done: false,
            },
            Format::Ndjson | Format::Csv => {
                let mut file = File::open(path).map_err(io_err("open", path))?;
                let (csv, header_bytes, first_line) = if format == Format::Csv {
                    let header = read_header_line(&mut file, path)?;
                    (
                        Some(Box::new(CsvDecoder::new(def, &header)?)),
                        header.len() as u64,
                        2,
                    )
                } else {
                    (None, 0, 1)
                };
                Source::Text {
                    chunks: LineChunks::new(file, path, first_line),
                    csv,
                    ndjson: Box::new(NdjsonDecoder::new(def)),
                    header_bytes,
                }
            }
        };
        Ok(FileDecoder { source })
    }

    /// The next decoded piece (good rows and rejects, with their line or row numbers);
    /// `None` at the end of the file.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Decoded>> {
        match &mut self.source {
            Source::Text {
                chunks,
                csv,
                ndjson,
                ..
            } => match chunks.next_chunk()? {
                None => Ok(None),
                Some((text, first_line)) => Ok(Some(match csv {
                    Some(csv) => csv.decode(&text, first_line)?,
                    None => ndjson.decode(&text, first_line)?,
                })),
            },
            Source::Parquet { decoder, done, .. } => {
                let next = decoder.next_batch()?;
                *done = next.is_none();
                Ok(next)
            }
        }
    }

    /// Bytes of the file consumed so far (a Parquet file counts whole once read).
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Text {
                chunks,
                header_bytes,
                ..
            } => header_bytes + chunks.bytes_read,
            Source::Parquet { bytes, done, .. } => {
                if *done {
                    *bytes
                } else {
                    0
                }
            }
        }
    }
}
