//! The catalog: every declared stream, persisted as `catalog.json` in the data directory.
//! Replaced atomically (temporary file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old or the new catalog, never a torn one.

use crate::def::StreamDef;
use crate::error::{Result, StreamError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file name inside the data directory.
pub const FILE: &str = "catalog.json";
const VERSION: u32 = 1;

/// Every declared stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version of the file.
    pub version: u32,
    /// Streams in creation order.
    pub streams: Vec<StreamDef>,
}

impl Catalog {
    /// Load the catalog of `root`; an absent file is an empty catalog.
    pub fn load(root: &Path) -> Result<Catalog> {
        let path = root.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog {
                    version: VERSION,
                    streams: Vec::new(),
                });
            }
            Err(e) => return Err(catalog_err(&path, e.to_string())),
        };
        Catalog::parse(text.as_bytes()).map_err(|detail| catalog_err(&path, detail))
    }

    /// Reads the contents of a catalog file (one published to a result store, say),
    /// checking its format version; what is wrong if it cannot.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Catalog, String> {
        let catalog: Catalog = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if catalog.version != VERSION {
            return Err(format!(
                "format version {} is not supported by this build (expects {VERSION})",
                catalog.version
            ));
        }
        Ok(catalog)
    }

    /// Write the catalog to `root` atomically.
    pub fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(FILE);
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| catalog_err(&path, e.to_string()))?;
        freshet_types::files::write_atomically(root, FILE, &text)
            .map_err(|e| catalog_err(&path, e.to_string()))
    }

    /// A stream by name.
    pub fn get(&self, name: &str) -> Option<&StreamDef> {
        self.streams.iter().find(|s| s.name == name)
    }
}

fn catalog_err(path: &Path, detail: String) -> StreamError {
    StreamError::Catalog {
        path: path.display().to_string(),
        detail,
    }
}
