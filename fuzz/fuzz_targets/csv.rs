//! The CSV decoder (`freshet ingest` of .csv files) on arbitrary bytes: the first line is
//! the header, the rest the records. Neither may panic; a header naming no column is
//! refused as a whole, and otherwise every non-blank record line is accepted or rejected
//! exactly once.
#![no_main]

#[path = "common.rs"]
mod common;

use freshet_streams::decode::CsvDecoder;
use freshet_streams::def::StreamDef;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static DEF: LazyLock<StreamDef> = LazyLock::new(common::every_type);

fuzz_target!(|text: &[u8]| {
    let split = text
        .iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |i| i + 1);
    let (header, records) = text.split_at(split);
    let Ok(decoder) = CsvDecoder::new(&DEF, header) else {
        return;
    };
    let decoded = decoder
        .decode(records, 2)
        .expect("decoding reports bad rows, never fails");
    assert_eq!(
        decoded.accepted() + decoded.rejects.len(),
        common::rows(records, false),
        "every row is accepted or rejected once: {:?}",
        decoded.rejects
    );
});
