//! Where `freshet query` and `COPY` put their result, batch by batch: a table (at the end), CSV or JSON
//! on stdout or in a file, or a Parquet or Arrow IPC file. A file is written beside its
//! final name and renamed once the whole result is in it, so a failed query leaves no
//! partial file.

use crate::cli::QueryFormat;
use crate::output;
use anyhow::Context;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Rows a table shows; beyond them, the other formats carry every row.
const TABLE_ROWS_MAX: usize = 10_000;

/// Writes result batches as they come.
pub struct Printer {
    format: QueryFormat,
    file: Option<OutFile>,
    text: Box<dyn Write>,
    binary: Option<Binary>,
    header_done: bool,
    rows: usize,
    table: Vec<Vec<String>>,
    header: Vec<String>,
}

enum Binary {
    Parquet(parquet::arrow::ArrowWriter<BufWriter<File>>),
    Arrow(arrow_ipc::writer::FileWriter<BufWriter<File>>),
}

/// A file being written under a temporary name beside `path`.
struct OutFile {
    temp: PathBuf,
    path: PathBuf,
    done: bool,
}

impl OutFile {
    fn create(path: &Path) -> anyhow::Result<(OutFile, File)> {
        let name = path
            .file_name()
            .with_context(|| format!("--out {} names no file", path.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file =
            File::create(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        Ok((
            OutFile {
                temp,
                path: path.to_path_buf(),
                done: false,
            },
            file,
        ))
    }

    fn commit(mut self) -> anyhow::Result<()> {
        File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", self.temp.display()))?;
        std::fs::rename(&self.temp, &self.path)
            .with_context(|| format!("cannot rename to {}", self.path.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Printer {
    /// A printer of `format` to stdout, or to `out`.
    pub fn new(format: QueryFormat, out: Option<&Path>) -> anyhow::Result<Printer> {
        let (file, text): (Option<OutFile>, Box<dyn Write>) = match (format, out) {
            (QueryFormat::Table, Some(_)) => {
                anyhow::bail!("--out needs --format csv, json, parquet or arrow")
            }
            (QueryFormat::Parquet | QueryFormat::Arrow, None) => {
                anyhow::bail!("--format parquet and arrow write a file: give it with --out FILE")
            }
            (_, None) => (None, Box::new(std::io::stdout())),
            (QueryFormat::Csv | QueryFormat::Json, Some(path)) => {
                let (out, file) = OutFile::create(path)?;
                (Some(out), Box::new(BufWriter::new(file)))
            }
            (QueryFormat::Parquet | QueryFormat::Arrow, Some(path)) => {
                let (out, _) = OutFile::create(path)?;
                (Some(out), Box::new(std::io::sink()))
            }
        };
        Ok(Printer {
            format,
            file,
            text,
            binary: None,
            header_done: false,
            rows: 0,
            table: Vec::new(),
            header: Vec::new(),
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Write one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        match self.format {
            QueryFormat::Table => {
                if self.header.is_empty() {
                    self.header = names;
                }
                let room = TABLE_ROWS_MAX - self.table.len();
                self.table.extend(output::cells(batch, room)?);
            }
            QueryFormat::Csv => {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(!self.header_done)
                    .build(&mut self.text);
                writer.write(batch)?;
            }
            QueryFormat::Json => {
                self.open_json(&names)?;
                for (i, row) in crate::rows_json::rows(batch)?.iter().enumerate() {
                    let comma = if self.rows + i == 0 { "" } else { "," };
                    write!(self.text, "{comma}\n  {row}")?;
                }
            }
            QueryFormat::Parquet | QueryFormat::Arrow => match &mut self.binary {
                Some(Binary::Parquet(w)) => w.write(batch)?,
                Some(Binary::Arrow(w)) => w.write(batch)?,
                None => {
                    let mut writer = self.binary_writer(&batch.schema())?;
                    match &mut writer {
                        Binary::Parquet(w) => w.write(batch)?,
                        Binary::Arrow(w) => w.write(batch)?,
                    }
                    self.binary = Some(writer);
                }
            },
        }
        self.header_done = true;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// The JSON document's start, before its first row.
    fn open_json(&mut self, names: &[String]) -> anyhow::Result<()> {
        if !self.header_done {
            write!(
                self.text,
                "{{\"columns\": {}, \"rows\": [",
                serde_json::to_string(names)?
            )?;
        }
        Ok(())
    }

    fn binary_writer(&self, schema: &SchemaRef) -> anyhow::Result<Binary> {
        let out = self.file.as_ref().expect("binary formats write a file");
        let file = BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&out.temp)
                .with_context(|| format!("cannot open {}", out.temp.display()))?,
        );
        Ok(match self.format {
            QueryFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                Binary::Parquet(parquet::arrow::ArrowWriter::try_new(
                    file,
                    schema.clone(),
                    Some(props),
                )?)
            }
            _ => Binary::Arrow(arrow_ipc::writer::FileWriter::try_new(file, schema)?),
        })
    }

    /// Finish the output: the table, the closing of CSV and JSON, the footer of Parquet and
    /// Arrow (a result without rows still has its schema); then the file takes its name.
    pub fn finish(mut self, schema: &SchemaRef) -> anyhow::Result<()> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        match self.format {
            QueryFormat::Table => {
                let header: Vec<&str> = names.iter().map(String::as_str).collect();
                output::table(&header, &self.table);
                let shown = self.table.len();
                if self.rows > shown {
                    output::line(format!(
                        "({} rows; the first {shown} shown: use --format csv or json for all)",
                        self.rows
                    ));
                } else {
                    output::line(format!("({} rows)", self.rows));
                }
            }
            QueryFormat::Csv => {
                if !self.header_done {
                    writeln!(self.text, "{}", names.join(","))?;
                }
            }
            QueryFormat::Json => {
                self.open_json(&names)?;
                writeln!(self.text, "\n]}}")?;
            }
            QueryFormat::Parquet | QueryFormat::Arrow => {
                let writer = match self.binary.take() {
                    Some(writer) => writer,
                    None => self.binary_writer(schema)?,
                };
                match writer {
                    Binary::Parquet(w) => w.into_inner()?.flush()?,
                    Binary::Arrow(mut w) => {
                        w.finish()?;
                        w.into_inner()?.flush()?;
                    }
                }
            }
        }
        self.text.flush()?;
        drop(self.text);
        if let Some(file) = self.file.take() {
            file.commit()?;
        }
        Ok(())
    }
}
