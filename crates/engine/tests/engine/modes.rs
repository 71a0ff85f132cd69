//! Modes are schedules over the same operators: a view moved between streaming,
//! micro-batch and batch while it runs ends with exactly the rows of a view drained
//! straight through. (The manual clock jumps by whole periods, so partitions are never
//! declared idle here: idleness depends on time, not on the mode.)

use crate::support::{Backend, Harness};
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

/// The stream, a tumbling and a hopping view that DataFusion runs in batch mode, and a
/// session view whose batch mode the operators run; every view's mode is `{mode}`.
fn batch_sql(mode: &str) -> String {
    format!(
        "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
         date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
         WITH (partitions = 2, partition_key = 'auction', idle_timeout = '7d'); \
         CREATE VIEW counts WITH (freshness = '1h', mode = '{mode}') AS SELECT auction, \
         window_start, window_end, COUNT(*) AS n, SUM(price) AS total \
         FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) GROUP BY auction, window_start, window_end; \
         CREATE VIEW hops WITH (freshness = '1h', mode = '{mode}', allowed_lateness = '1s') AS \
         SELECT window_start, window_end, MAX(price) AS top, COUNT(*) AS n \
         FROM HOP(bid, date_time, INTERVAL '1' SECOND, INTERVAL '4' SECOND) \
         GROUP BY window_start, window_end; \
         CREATE VIEW busiest WITH (freshness = '1h', mode = '{mode}') AS \
         SELECT window_start, window_end, MAX(n) AS most FROM counts \
         GROUP BY window_start, window_end; \
         CREATE VIEW sessions WITH (freshness = '1h', mode = '{mode}') AS \
         SELECT auction, window_start, window_end, COUNT(*) AS n \
         FROM SESSION(bid, date_time, INTERVAL '1' SECOND) GROUP BY auction, window_start, window_end"
    )
}

/// A bid of `auction` at `ms` after the start, on the partition the tests use for it.
fn bid(auction: i64, ms: i64, price: i64) -> (u32, String) {
    let time = chrono::DateTime::from_timestamp_millis(1_436_918_400_000 + ms)
        .expect("a valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (
        (auction % 2) as u32,
        format!(r#"{{"auction":{auction},"price":{price},"date_time":"{time}"}}"#),
    )
}

/// Three rounds of bids; the second holds two events whose windows were final after the
/// first round, so they are late in every mode.
fn rounds() -> Vec<Vec<(u32, String)>> {
    let span = |from: i64, to: i64| -> Vec<(u32, String)> {
        (from..to)
            .map(|i| bid(i % 5, i * 100, i * 7 % 13))
            .collect()
    };
    let mut second = span(200, 300);
    second.insert(40, bid(1, 500, 99));
    second.push(bid(2, 700, 98));
    second.extend(span(300, 400));
    vec![span(0, 200), second, span(400, 500)]
}

/// Every view's rows and late events, as text.
fn outcome(h: &Harness, runners: &[freshet_engine::ViewRunner]) -> String {
    let mut out = String::new();
    for r in runners {
        let view = &r.def().name;
        out.push_str(&h.dump(view));
        let s = r.stats();
        out.push_str(&format!(
            "late dropped {} dead-lettered {}\n",
            s.late_dropped, s.late_dead_lettered
        ));
        // The reason ends with the watermark the event was judged against: a batch run
        // judges the events it claims against the watermark before the run, streaming
        // against the watermark when it reads them.
        for (p, o, reason) in h.late_events(view) {
            let window = reason
                .split(" was already final")
                .next()
                .unwrap_or_default();
            out.push_str(&format!("late p{p}@{o}: {window}\n"));
        }
    }
    out
}

#[test]
fn batch_runs_by_datafusion_equal_streaming_across_restarts_and_late_events() {
    batch_runs_equal_streaming(Backend::Sqlite);
}

#[test]
fn batch_runs_by_datafusion_equal_streaming_on_postgres() {
    batch_runs_equal_streaming(Backend::Postgres);
}

fn batch_runs_equal_streaming(backend: Backend) {
    let Some(streaming) = Harness::on(backend, &batch_sql("streaming")) else {
        return;
    };
    let mut runners = streaming.runners();
    for round in rounds() {
        append(&streaming, &round);
        for r in &mut runners {
            r.drain(false).expect("drain");
        }
    }
    for r in &mut runners {
        r.drain(true).expect("drain to the end");
    }
    let expected = outcome(&streaming, &runners);
    assert!(expected.contains("late p1@"), "{expected}");

    let h = Harness::on(backend, &batch_sql("batch")).expect("the backend is configured");
    let mut runners = h.runners();
    for r in &runners {
        assert_eq!(r.plan().mode, Mode::Batch);
        let by_operators = r.batch_by_operators();
        match r.def().name.as_str() {
            "sessions" => assert!(
                by_operators.is_some_and(|why| why.contains("SESSION")),
                "{by_operators:?}"
            ),
            _ => assert_eq!(by_operators, None),
        }
    }
    for (n, round) in rounds().into_iter().enumerate() {
        append(&h, &round);
        if n == 2 {
            // A restart while the state is in the log: the runs go on from the store.
            assert!(runners[0].stats().state_in_log);
            drop(runners);
            runners = h.runners();
        }
        h.clock.advance(86_400_000);
        for r in &mut runners {
            for _ in 0..3 {
                r.tick().expect("a turn of the view");
            }
            r.flush().expect("the commit lands");
        }
        if n == 0 {
            assert_eq!(h.state_entries("counts"), 0, "batch runs keep no state");
            assert!(
                h.state_entries("sessions") > 0,
                "the operators keep state: {:?} {}",
                runners[3].stats(),
                h.dump("sessions")
            );
            assert!(
                !h.dump("counts").trim().is_empty(),
                "the first run wrote rows"
            );
        }
    }
    for r in &runners {
        let runs = r.stats().batch_runs;
        match r.def().name.as_str() {
            "sessions" => assert_eq!(runs, 0),
            _ => {
                assert_eq!(runs, 3, "{}", r.def().name);
                // What the planner weighs against the memory budget.
                assert!(r.stats().batch_run_memory_bytes > 0, "{:?}", r.stats());
                assert!(r.stats().batch_run_events > 0, "{:?}", r.stats());
                assert!(r.measured_costs().batch_bytes_per_event > 0.0);
            }
        }
    }
    // The end of the streams runs the operators: their state is rebuilt from the log.
    for r in &mut runners {
        r.drain(true).expect("drain to the end");
        assert!(!r.stats().state_in_log);
    }
    assert_eq!(outcome(&h, &runners), expected);
}

#[test]
fn leaving_batch_runs_rebuilds_the_operators_state_from_the_log() {
    let rows = bids();
    let straight = Harness::new(SQL);
    append(&straight, &rows);
    for r in &mut straight.runners() {
        r.drain(true).expect("drain");
    }
    let expected = straight.dump("counts");

    let h = Harness::new(SQL);
    let mut runners = h.runners();
    // Short periods: the clock stays within the planner's 10 s, which would otherwise
    // re-plan the view (to streaming, for its 1 s SLA).
    let batch = Plan {
        mode: Mode::Batch,
        period_ms: 100,
    };
    let streaming = Plan {
        mode: Mode::Streaming,
        period_ms: 50,
    };
    let chunks: Vec<_> = rows.chunks(rows.len() / 4).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        append(&h, chunk);
        let plan = if i % 2 == 0 { batch } else { streaming };
        for r in &mut runners {
            r.set_plan(plan);
            h.clock.advance(plan.period_ms as i64 + 1);
            for _ in 0..5 {
                r.tick().expect("a turn of the view");
            }
            r.flush().expect("the commit lands");
            assert_eq!(r.stats().state_in_log, plan.mode == Mode::Batch);
        }
        let stored = h.state_entries("counts");
        if plan.mode == Mode::Batch {
            assert_eq!(stored, 0);
        } else {
            assert!(stored > 0, "the rebuilt state is committed");
        }
    }
    for r in &mut runners {
        assert_eq!(r.stats().batch_runs, 2);
        r.drain(true).expect("drain");
    }
    assert_eq!(h.dump("counts"), expected);
}

#[test]
fn views_datafusion_cannot_run_in_batch_say_why() {
    let h = Harness::new(
        "CREATE STREAM bid (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
         date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND); \
         CREATE STREAM ask (auction BIGINT NOT NULL, price BIGINT NOT NULL, \
         date_time TIMESTAMP NOT NULL, WATERMARK FOR date_time AS date_time - INTERVAL '9' SECOND); \
         CREATE VIEW spread WITH (mode = 'batch') AS SELECT b.window_start, b.window_end, \
         MAX(b.price) AS top_bid, MIN(a.price) AS low_ask \
         FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b \
         JOIN TUMBLE(ask, date_time, INTERVAL '10' SECOND) a \
         ON b.window_start = a.window_start AND b.window_end = a.window_end \
         AND b.auction = a.auction GROUP BY b.window_start, b.window_end; \
         CREATE VIEW totals WITH (mode = 'batch') AS SELECT auction, COUNT(*) AS n FROM bid \
         GROUP BY auction; \
         CREATE VIEW rows_out WITH (mode = 'batch') AS SELECT auction, price, window_start, \
         window_end FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) WHERE price > 10; \
         CREATE VIEW provisional WITH (mode = 'batch', emit = 'on_update') AS \
         SELECT window_start, window_end, COUNT(*) AS n \
         FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
    );
    let reasons: Vec<(String, String)> = h
        .runners()
        .iter()
        .map(|r| {
            (
                r.def().name.clone(),
                r.batch_by_operators().unwrap_or("DataFusion").to_owned(),
            )
        })
        .collect();
    let expect = [
        ("spread", "2 streams"),
        ("totals", "without a window"),
        ("rows_out", "keyed by input position"),
        ("provisional", "emit = 'on_update'"),
    ];
    for ((view, reason), (name, part)) in reasons.iter().zip(expect) {
        assert_eq!(view, name);
        assert!(reason.contains(part), "{view}: {reason}");
    }
}
