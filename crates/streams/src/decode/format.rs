//! The input formats Freshet decodes.

use serde::Serialize;
use std::path::Path;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Newline-delimited JSON objects.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Guess from a file extension (`.ndjson`, `.jsonl`, `.json`, `.csv`, `.parquet`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "pq" => Some(Format::Parquet),
            ext => Format::parse(ext),
        }
    }

    /// Parse a `--format` value.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}
