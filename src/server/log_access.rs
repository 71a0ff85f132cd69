//! What a server knows of the log: the data directory it holds for writing (role `all`),
//! or, for a query-only server (role `query`), the same directory read without taking it:
//! the stream and view catalogs and the partitions' extents, as `freshet streams` reads
//! them while another process writes.

use axum::http::StatusCode;
use freshet_streams::catalog::Catalog;
use freshet_streams::{DataDir, StreamDef};
use std::path::{Path, PathBuf};

use super::error::ApiError;

/// The log, as this server may use it.
pub enum LogAccess {
    /// The data directory, held for writing: ingest, views and DDL run here.
    Writer(DataDir),
    /// The data directory of another process, read only.
    Reader(PathBuf),
}

/// End offsets of one stream's partitions and of its dead-letter log.
pub struct StreamEnds {
    pub partitions: Vec<u64>,
    pub dead_letters: u64,
}

impl LogAccess {
    pub fn root(&self) -> &Path {
        match self {
            LogAccess::Writer(dir) => dir.root(),
            LogAccess::Reader(root) => root,
        }
    }

    /// The data directory for writing, or a 403 naming what a query-only server refuses.
    pub fn writer(&self, what: &str) -> Result<&DataDir, ApiError> {
        match self {
            LogAccess::Writer(dir) => Ok(dir),
            LogAccess::Reader(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "query_only",
                format!(
                    "this server runs with --role query and does not accept {what}; send it \
                     to the server that writes the data directory"
                ),
            )),
        }
    }

    /// The data directory if this server writes it.
    pub fn writer_dir(&self) -> Option<&DataDir> {
        match self {
            LogAccess::Writer(dir) => Some(dir),
            LogAccess::Reader(_) => None,
        }
    }

    pub fn is_writer(&self) -> bool {
        matches!(self, LogAccess::Writer(_))
    }

    /// Every declared stream.
    pub fn streams(&self) -> Vec<StreamDef> {
        match self {
            LogAccess::Writer(dir) => dir.streams(),
            LogAccess::Reader(root) => Catalog::load(root).map(|c| c.streams).unwrap_or_default(),
        }
    }

    /// The extents of stream `def`, if it can be read.
    pub fn ends(&self, def: &StreamDef) -> Option<StreamEnds> {
        match self {
            LogAccess::Writer(dir) => {
                let stream = dir.stream(&def.name).ok()?;
                Some(StreamEnds {
                    partitions: stream.partition_ends().ok()?,
                    dead_letters: stream.dead_letters().visible_end().0,
                })
            }
            LogAccess::Reader(root) => {
                let info = freshet_streams::inspect::stream_info(root, def).ok()?;
                Some(StreamEnds {
                    partitions: info.partition_info.iter().map(|p| p.end).collect(),
                    dead_letters: info.dlq_info.end,
                })
            }
        }
    }

    /// The end offset of one partition of stream `name`.
    pub fn end_offset(&self, name: &str, partition: u32) -> Option<u64> {
        match self {
            LogAccess::Writer(dir) => dir
                .stream(name)
                .ok()?
                .partition_ends()
                .ok()?
                .get(partition as usize)
                .copied(),
            LogAccess::Reader(_) => {
                let def = self.streams().into_iter().find(|d| d.name == name)?;
                self.ends(&def)?.partitions.get(partition as usize).copied()
            }
        }
    }
}
