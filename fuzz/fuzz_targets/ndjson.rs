//! The NDJSON decoder (the HTTP ingest body, `freshet ingest` of .ndjson files) on arbitrary
//! bytes: it must not panic, must not fail as a whole (that would be a 500), and must
//! account for every non-blank line exactly once, as accepted or as rejected. Its fast path
//! must give exactly what the general path alone gives.
#![no_main]

#[path = "common.rs"]
mod common;

use freshet_streams::decode::NdjsonDecoder;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static DECODER: LazyLock<NdjsonDecoder> =
    LazyLock::new(|| NdjsonDecoder::new(&common::every_type()));
static FAST: LazyLock<NdjsonDecoder> =
    LazyLock::new(|| NdjsonDecoder::new(&common::fast_path_types()));
static GENERAL: LazyLock<NdjsonDecoder> =
    LazyLock::new(|| NdjsonDecoder::new(&common::fast_path_types()).without_fast_path());

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
    let fast = FAST.decode(text, 1).expect("decodes");
    let general = GENERAL.decode(text, 1).expect("decodes");
    assert_eq!(
        fast.accepted() + fast.rejects.len(),
        common::rows(text, true),
        "every row is accepted or rejected once by the fast path's stream"
    );
    assert_eq!(fast.batch, general.batch, "the fast path's rows");
    assert_eq!(fast.rejects, general.rejects, "the fast path's rejects");
});
