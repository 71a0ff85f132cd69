//! `verify_partition`: counts on a clean log, fatal problems for damage, non-fatal ones
//! for what the next open repairs.

use super::common::{flip_byte, index_path, segment_path};
use super::recovery::{FRAME, fixture, storage};
use freshet_log::{inspect_partition, verify_partition};
use freshet_types::Offset;

#[test]
fn clean_log_verifies_with_the_right_counts() {
    let (_tmp, dir, w) = fixture(20);
    let report = verify_partition(storage().as_ref(), &dir).expect("verify");
    assert!(report.is_ok());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.segments, 3);
    assert_eq!(report.frames, 20);
    assert_eq!(
        report.records,
        w.iter().map(|f| u64::from(f.count)).sum::<u64>()
    );
    assert_eq!(report.bytes, 20 * FRAME);
    assert_eq!(report.start, Offset(0));
    assert_eq!(report.end, Offset(w[19].end()));
}

#[test]
fn flipped_byte_is_a_fatal_problem_with_its_position() {
    for (segment_frame, frame_in_segment) in [(0, 4), (16, 1)] {
        let (_tmp, dir, w) = fixture(20);
        let file = segment_path(&dir, w[segment_frame].base);
        let position = frame_in_segment * FRAME;
        flip_byte(&file, position + 70);
        let report = verify_partition(storage().as_ref(), &dir).expect("verify");
        assert!(!report.is_ok());
        assert_eq!(
            report.problems.len(),
            1,
            "one damage, one problem: {:?}",
            report.problems
        );
        let problem = &report.problems[0];
        assert!(problem.fatal);
        assert_eq!(problem.file, file);
        assert_eq!(problem.position, position);
        let damaged = segment_frame + frame_in_segment as usize;
        assert_eq!(problem.offset, Offset(w[damaged].base));
        assert_eq!(report.segments, 3);
    }
}

#[test]
fn torn_tail_is_a_problem_the_next_open_repairs() {
    let (_tmp, dir, w) = fixture(19);
    let last = segment_path(&dir, w[16].base);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    file.set_len(2 * FRAME + 30).expect("cut");
    drop(file);
    let report = verify_partition(storage().as_ref(), &dir).expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
    let torn = report
        .problems
        .iter()
        .find(|p| p.file == last)
        .expect("the torn tail is reported");
    assert!(!torn.fatal);
    assert_eq!(torn.position, 2 * FRAME);
    assert_eq!(torn.offset, Offset(w[18].base));
    assert_eq!(report.frames, 18);
    assert_eq!(report.end, Offset(w[17].end()));
}

#[test]
fn missing_index_is_a_problem_the_next_open_repairs() {
    let (_tmp, dir, _w) = fixture(20);
    std::fs::remove_file(index_path(&dir, 0)).expect("remove");
    let report = verify_partition(storage().as_ref(), &dir).expect("verify");
    assert!(report.is_ok());
    assert_eq!(report.problems.len(), 1);
    assert!(!report.problems[0].fatal);
    assert_eq!(report.problems[0].file, index_path(&dir, 0));
}

#[test]
fn verify_after_retention_starts_at_the_first_segment() {
    let (_tmp, dir, w) = fixture(20);
    std::fs::remove_file(segment_path(&dir, 0)).expect("remove");
    std::fs::remove_file(index_path(&dir, 0)).expect("remove");
    let report = verify_partition(storage().as_ref(), &dir).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.start, Offset(w[8].base));
    assert_eq!(report.end, Offset(w[19].end()));
}

#[test]
fn inspect_ignores_a_wrong_index_entry() {
    let (_tmp, dir, w) = fixture(12);
    // The last segment holds frames 8..12 at bytes 0, 264, 528, 792; a well-formed index
    // whose last entry points between frames must not shorten the partition.
    let mut index = w[8].base.to_le_bytes().to_vec();
    index.extend_from_slice(&0u64.to_le_bytes());
    index.extend_from_slice(&w[10].base.to_le_bytes());
    index.extend_from_slice(&(2 * FRAME + 40).to_le_bytes());
    std::fs::write(index_path(&dir, w[8].base), index).expect("write");
    let stats = inspect_partition(storage().as_ref(), &dir).expect("inspect");
    assert_eq!(stats.start, Offset(0));
    assert_eq!(stats.end, Offset(w[11].end()));
    assert_eq!(stats.segments, 2);
    assert_eq!(stats.bytes, 12 * FRAME);
}
