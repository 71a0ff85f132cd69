//! Modes are schedules over the same operators: a view moved between streaming,
//! micro-batch and batch while it runs ends with exactly the rows of a view drained
//! straight through. (The manual clock jumps by whole periods, so partitions are never
//! declared idle here: idleness depends on time, not on the mode.)

use crate::support::Harness;
use freshet_engine::planner::{Mode, Plan};

const SQL: &str = "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
    date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
    WITH (partitions = 2, partition_key = 'auction', idle_timeout = '7d'); \
    CREATE VIEW counts WITH (freshness = '1s') AS SELECT auction, window_start, window_end, \
    COUNT(*) AS n, SUM(price) AS total FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) \
    GROUP BY auction, window_start, window_end";

/// Bids over 40 seconds of event time, a few per 100 ms, for five auctions.
fn bids() -> Vec<(u32, String)> {
    (0..400)
        .map(|i: i64| {
            let auction = i % 5;
            let ms = 1_436_918_400_000 + i * 100;
            let time = chrono::DateTime::from_timestamp_millis(ms)
                .expect("a valid time")
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            (
                (auction % 2) as u32,
                format!(
                    r#"{{"auction":{auction},"price":{},"date_time":"{time}"}}"#,
                    i * 7 % 13
                ),
            )
        })
        .collect()
}

fn append(h: &Harness, rows: &[(u32, String)]) {
    for (partition, line) in rows {
        h.append("bid", *partition, std::slice::from_ref(line));
    }
}

#[test]
fn switching_modes_mid_run_loses_and_repeats_nothing() {
    let rows = bids();
    let straight = Harness::new(SQL);
    append(&straight, &rows);
    for r in &mut straight.runners() {
        r.drain(true).expect("drain");
    }
    let expected = straight.dump("counts");
    assert!(expected.lines().count() > 20, "{expected}");

    let h = Harness::new(SQL);
    let mut runners = h.runners();
    let plans = [
        Plan {
            mode: Mode::Streaming,
            period_ms: 250,
        },
        Plan {
            mode: Mode::MicroBatch,
            period_ms: 5_000,
        },
        Plan {
            mode: Mode::Batch,
            period_ms: 900_000,
        },
        Plan {
            mode: Mode::Streaming,
            period_ms: 250,
        },
        Plan {
            mode: Mode::MicroBatch,
            period_ms: 1_000,
        },
    ];
    for (chunk, plan) in rows.chunks(rows.len() / plans.len()).zip(plans) {
        append(&h, chunk);
        for r in &mut runners {
            r.set_plan(plan);
            // Past the period, so that a periodic run is due; then a few turns.
            h.clock.advance(plan.period_ms as i64 + 1);
            for _ in 0..20 {
                r.tick().expect("a turn of the view");
            }
        }
    }
    for r in &mut runners {
        assert_eq!(
            r.stats().mode_switches,
            4,
            "every change of mode is counted"
        );
        r.drain(true).expect("drain");
    }
    assert_eq!(h.dump("counts"), expected);
}
