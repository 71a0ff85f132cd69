//! The NDJSON decoder (the HTTP ingest body, `freshet ingest` of .ndjson files) on arbitrary
//! bytes: it must not panic, must not fail as a whole (that would be a 500), and must
//! account for every non-blank line exactly once, as accepted or as rejected.
#![no_main]

#[path = "common.rs"]
mod common;

use freshet_streams::decode::NdjsonDecoder;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static DECODER: LazyLock<NdjsonDecoder> =
    LazyLock::new(|| NdjsonDecoder::new(&common::every_type()));

fuzz_target!(|text: &[u8]| {
    let decoded = DECODER
        .decode(text, 1)
        .expect("decoding reports bad rows, never fails");
    assert_eq!(
        decoded.accepted() + decoded.rejects.len(),
        common::rows(text, true),
        "every row is accepted or rejected once: {:?}",
        decoded.rejects
    );
});
