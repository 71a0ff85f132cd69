//! Whole-crate properties: determinism, split equivalence, the reference arithmetic as seen
//! in the generated batches, and the NDJSON encoding of them. The `#[ignore]`d `*_throughput`
//! tests report generator and encoder rates (run it in release with `--ignored --nocapture`).

use crate::model::{
    COLD_CHANNELS, HOT_CHANNELS, IN_FLIGHT_AUCTIONS, TOTAL_PROPORTION, last_auction, last_person,
};
use crate::{BASE_TIME_MS, Batches, EventKind, Generator, GeneratorConfig, write_ndjson};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use std::collections::{BTreeSet, HashMap};

fn bounded(max_events: u64) -> GeneratorConfig {
    GeneratorConfig {
        max_events: Some(max_events),
        ..GeneratorConfig::default()
    }
}

/// Every batch of every call, per kind (person, auction, bid), in generation order.
fn generate_split(
    config: &GeneratorConfig,
    split: (u64, u64),
    chunk: usize,
    only: Option<EventKind>,
) -> [Vec<RecordBatch>; 3] {
    let mut generator = Generator::new(config.clone(), split.0, split.1);
    let mut out: [Vec<RecordBatch>; 3] = Default::default();
    while let Some(batches) = generator.next_batches(chunk, only) {
        for (kind, batch) in batches.iter() {
            assert!(batch.num_rows() > 0, "no empty batches");
            out[kind as usize].push(batch.clone());
        }
    }
    out
}

fn generate(config: &GeneratorConfig, chunk: usize) -> [Vec<RecordBatch>; 3] {
    generate_split(config, (0, 1), chunk, None)
}

/// The NDJSON lines of `batches`, in order.
fn lines(kind: EventKind, batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        write_ndjson(kind, batch, &mut out);
    }
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ints(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).unwrap();
            match array.data_type() {
                arrow_schema::DataType::Int64 => {
                    array.as_primitive::<Int64Type>().values().to_vec()
                }
                _ => array
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec(),
            }
        })
        .collect()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).unwrap().as_string::<i32>();
            (0..array.len())
                .map(|i| array.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Event number of the `row`-th event of `kind` in an in-order, unsplit generation.
fn event_number(kind: EventKind, row: usize) -> u64 {
    let (first, per_epoch) = match kind {
        EventKind::Person => (0, 1),
        EventKind::Auction => (1, 3),
        EventKind::Bid => (4, 46),
    };
    let row = row as u64;
    TOTAL_PROPORTION * (row / per_epoch) + first + row % per_epoch
}

#[test]
fn defaults_are_the_reference_ones() {
    let config = GeneratorConfig::default();
    assert_eq!(config.seed, 0);
    assert_eq!(config.base_time_ms, BASE_TIME_MS);
    assert_eq!(config.events_per_second, 10_000);
    assert_eq!(config.out_of_order_group, 1);
    assert_eq!(config.max_events, None);
    assert_eq!(config.event_time_ms(0), BASE_TIME_MS);
    assert_eq!(config.event_time_ms(9), BASE_TIME_MS);
    assert_eq!(config.event_time_ms(10), BASE_TIME_MS + 1);
    assert_eq!(
        config.event_time_ms(u64::MAX),
        BASE_TIME_MS + 1_844_674_407_370_955_161
    );
}

#[test]
fn same_seed_gives_identical_batches() {
    let config = bounded(3000);
    assert_eq!(generate(&config, 700), generate(&config, 700));
}

#[test]
fn different_seeds_give_different_batches() {
    let a = generate(&bounded(3000), 3000);
    let b = generate(
        &GeneratorConfig {
            seed: 1,
            ..bounded(3000)
        },
        3000,
    );
    for kind in 0..3 {
        assert_ne!(a[kind], b[kind]);
        // Only the randomness changes: ids and times are the same.
        assert_eq!(a[kind][0].num_rows(), b[kind][0].num_rows());
    }
    assert_eq!(ints(&a[2], "date_time"), ints(&b[2], "date_time"));
    assert_ne!(ints(&a[2], "price"), ints(&b[2], "price"));
}

#[test]
fn chunk_size_does_not_change_the_events() {
    let config = bounded(5000);
    let whole = generate(&config, 5000);
    let pieces = generate(&config, 37);
    for kind in EventKind::ALL {
        let i = kind as usize;
        assert_eq!(whole[i].len(), 1);
        assert_eq!(lines(kind, &whole[i]), lines(kind, &pieces[i]));
    }
}

/// Union of the events of `splits` interleaved generators, sorted, per kind.
fn union_of_splits(config: &GeneratorConfig, splits: u64, chunk: usize) -> [Vec<String>; 3] {
    let mut union: [Vec<String>; 3] = Default::default();
    for split in 0..splits {
        let batches = generate_split(config, (split, splits), chunk, None);
        for kind in EventKind::ALL {
            union[kind as usize].extend(lines(kind, &batches[kind as usize]));
        }
    }
    for rows in &mut union {
        rows.sort();
    }
    union
}

#[test]
fn three_splits_together_equal_one_generator() {
    for group in [1, 100] {
        let config = GeneratorConfig {
            out_of_order_group: group,
            seed: 7,
            ..bounded(20_000)
        };
        let single = union_of_splits(&config, 1, 4096);
        let split = union_of_splits(&config, 3, 777);
        for kind in EventKind::ALL {
            let i = kind as usize;
            assert_eq!(single[i].len(), 20_000 * [1, 3, 46][i] / 50, "{kind:?}");
            assert!(single[i] == split[i], "{kind:?} with G = {group}");
        }
    }
}

#[test]
fn any_event_can_be_generated_on_its_own() {
    let config = GeneratorConfig {
        seed: 3,
        out_of_order_group: 7,
        ..bounded(2000)
    };
    let all = union_of_splits(&config, 1, 2000);
    for n in [0, 1, 4, 49, 50, 53, 1234, 1999] {
        // Split n of n + 1 starts at event number n.
        let mut alone = Generator::new(config.clone(), n, n + 1);
        let batches = alone.next_batches(1, None).unwrap();
        let (kind, batch) = batches.iter().next().unwrap();
        assert_eq!(batch.num_rows(), 1);
        let line = lines(kind, std::slice::from_ref(batch)).remove(0);
        assert!(all[kind as usize].binary_search(&line).is_ok(), "event {n}");
    }
}

#[test]
fn split_counts_and_exhaustion() {
    let config = bounded(1000);
    let mut counts = Vec::new();
    for split in 0..3 {
        let mut generator = Generator::new(config.clone(), split, 3);
        assert_eq!(generator.events_generated(), 0);
        let mut rows = 0;
        while let Some(batches) = generator.next_batches(100, None) {
            rows += batches.num_rows();
        }
        assert_eq!(generator.events_generated(), rows as u64);
        assert_eq!(generator.events_remaining(), Some(0));
        assert!(generator.next_batches(100, None).is_none());
        counts.push(rows);
    }
    assert_eq!(counts, [334, 333, 333]);

    // More splits than events: the extra splits are empty from the start.
    let mut idle = Generator::new(bounded(2), 5, 8);
    assert!(idle.next_batches(10, None).is_none());

    let mut unbounded = Generator::new(GeneratorConfig::default(), 0, 1);
    assert_eq!(unbounded.events_remaining(), None);
    for _ in 0..3 {
        assert_eq!(unbounded.next_batches(1000, None).unwrap().num_rows(), 1000);
    }
    assert_eq!(unbounded.events_generated(), 3000);
}

#[test]
#[should_panic(expected = "split index")]
fn split_index_must_be_below_split_count() {
    Generator::new(GeneratorConfig::default(), 3, 3);
}

#[test]
fn proportions_are_exactly_1_3_46_per_50() {
    let mut generator = Generator::new(bounded(5000), 0, 1);
    let mut totals = [0; 3];
    while let Some(batches) = generator.next_batches(50, None) {
        let counts = EventKind::ALL.map(|k| batches.get(k).map_or(0, RecordBatch::num_rows));
        assert_eq!(counts, [1, 3, 46]);
        for i in 0..3 {
            totals[i] += counts[i];
        }
    }
    assert_eq!(totals, [100, 300, 4600]);
}

#[test]
fn ids_are_dense_from_1000() {
    let all = generate(&bounded(5000), 5000);
    let persons = ints(&all[0], "id");
    let auctions = ints(&all[1], "id");
    assert_eq!(persons, (1000..1100).collect::<Vec<_>>());
    assert_eq!(auctions, (1000..1300).collect::<Vec<_>>());
}

#[test]
fn foreign_keys_are_hot_or_recent() {
    let all = generate(&bounded(50_000), 50_000);
    let in_range = |v: i64, lo: i64, hi: i64| (lo..=hi).contains(&v);
    let mut hot_auctions = 0;
    let mut hot_bidders = 0;
    let bids = ints(&all[2], "auction");
    let bidders = ints(&all[2], "bidder");
    for (row, (&auction, &bidder)) in bids.iter().zip(&bidders).enumerate() {
        let n = event_number(EventKind::Bid, row);
        let newest = last_auction(n);
        let hot = 1000 + newest / 100 * 100;
        let cold = in_range(
            auction,
            (newest - IN_FLIGHT_AUCTIONS).max(0) + 1000,
            newest + 1010,
        );
        assert!(
            auction == hot || cold,
            "bid {row}: auction {auction}, newest {newest}"
        );
        hot_auctions += i64::from(auction == hot);

        let people = last_person(n) + 1;
        let active = people.min(1000);
        let hot = 1000 + last_person(n) / 100 * 100 + 1;
        let cold = in_range(bidder, 1000 + people - active, 1000 + people + 9);
        assert!(bidder == hot || cold, "bid {row}: bidder {bidder}");
        hot_bidders += i64::from(bidder == hot);
    }
    let share = |hot: i64| hot as f64 / bids.len() as f64;
    // P(hot) is 1/2 (auctions) and 3/4 (bidders), plus the cold picks that land on it.
    assert!(
        (0.49..0.53).contains(&share(hot_auctions)),
        "{}",
        share(hot_auctions)
    );
    assert!(
        (0.74..0.77).contains(&share(hot_bidders)),
        "{}",
        share(hot_bidders)
    );

    for (row, &seller) in ints(&all[1], "seller").iter().enumerate() {
        let n = event_number(EventKind::Auction, row);
        let people = last_person(n) + 1;
        let active = people.min(1000);
        let hot = 1000 + last_person(n) / 100 * 100;
        let cold = in_range(seller, 1000 + people - active, 1000 + people + 9);
        assert!(seller == hot || cold, "auction {row}: seller {seller}");
    }
}

#[test]
fn auction_values_follow_the_reference() {
    let config = bounded(50_000);
    let all = generate(&config, 50_000);
    let auctions = &all[1];
    let categories: BTreeSet<i64> = ints(auctions, "category").into_iter().collect();
    assert_eq!(categories, (10..=14).collect());

    let initial = ints(auctions, "initial_bid");
    let reserve = ints(auctions, "reserve");
    let date_time = ints(auctions, "date_time");
    let expires = ints(auctions, "expires");
    for row in 0..initial.len() {
        assert!((100..=100_000_000).contains(&initial[row]));
        assert!(reserve[row] >= initial[row] + 100);
        let n = event_number(EventKind::Auction, row);
        let horizon = config.event_time_ms(n + 1666) - config.event_time_ms(n);
        assert!(expires[row] > date_time[row]);
        assert!(expires[row] <= date_time[row] + 2 * horizon);
    }
    for text in strings(auctions, "item_name")
        .iter()
        .chain(&strings(auctions, "description"))
    {
        assert!(
            text.bytes().all(|c| c == b' ' || c.is_ascii_lowercase()),
            "{text}"
        );
        assert_eq!(text.trim(), text);
    }
}

#[test]
fn prices_are_log_uniform_in_cents() {
    let all = generate(&bounded(50_000), 50_000);
    let prices = ints(&all[2], "price");
    assert!(prices.iter().all(|p| (100..=100_000_000).contains(p)));
    // log10(price / 100) is uniform on [0, 6): each decade holds about a sixth.
    let mut decades = [0usize; 6];
    for p in &prices {
        decades[((*p as f64 / 100.0).log10() as usize).min(5)] += 1;
    }
    for count in decades {
        let share = count as f64 / prices.len() as f64;
        assert!((0.15..0.183).contains(&share), "{decades:?}");
    }
}

#[test]
fn bid_channels_and_urls_have_the_reference_shapes() {
    let all = generate(&bounded(20_000), 20_000);
    let channels = strings(&all[2], "channel");
    let urls = strings(&all[2], "url");
    let mut url_of: HashMap<&str, &str> = HashMap::new();
    let mut hot = 0;
    for (channel, url) in channels.iter().zip(&urls) {
        if HOT_CHANNELS.contains(&channel.as_str()) {
            hot += 1;
        } else {
            let i: u64 = channel.strip_prefix("channel-").unwrap().parse().unwrap();
            assert!(i < COLD_CHANNELS);
        }
        assert!(url.starts_with("https://www.nexmark.com/"), "{url}");
        assert!(url.contains("/item.htm?query=1"), "{url}");
        // A channel always has the same URL.
        assert_eq!(*url_of.entry(channel).or_insert(url), url.as_str());
    }
    let share = hot as f64 / channels.len() as f64;
    assert!((0.48..0.52).contains(&share), "{share}");
}

#[test]
fn people_have_the_reference_shapes() {
    let all = generate(&bounded(50_000), 50_000);
    let people = &all[0];
    for state in strings(people, "state") {
        assert!(["AZ", "CA", "ID", "OR", "WA", "WY"].contains(&state.as_str()));
    }
    for card in strings(people, "credit_card") {
        let groups: Vec<&str> = card.split(' ').collect();
        assert_eq!(groups.len(), 4, "{card}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|c| c.is_ascii_digit()))
        );
    }
    for email in strings(people, "email_address") {
        assert!(email.ends_with(".com") && email.contains('@'), "{email}");
    }
    for name in strings(people, "name") {
        assert_eq!(name.split(' ').count(), 2, "{name}");
    }
}

#[test]
fn rows_average_the_reference_sizes() {
    let all = generate(&bounded(100_000), 100_000);
    let mean = |values: Vec<String>| {
        values.iter().map(String::len).sum::<usize>() as f64 / values.len() as f64
    };
    // A bid's other fields count 32 bytes, so its extra averages about 68.
    let bid_extra = mean(strings(&all[2], "extra"));
    assert!((66.0..70.0).contains(&bid_extra), "{bid_extra}");
    // Person and auction rows, counted as Beam counts them, average 200 and 500 bytes.
    let size = |batches: &[RecordBatch], text: &[&str], fixed: usize| {
        let columns: Vec<Vec<String>> = text.iter().map(|c| strings(batches, c)).collect();
        let rows = columns[0].len();
        let total: usize = columns.iter().flatten().map(String::len).sum();
        (total + fixed * rows) as f64 / rows as f64
    };
    let person = size(
        &all[0],
        &[
            "name",
            "email_address",
            "credit_card",
            "city",
            "state",
            "extra",
        ],
        8,
    );
    assert!((195.0..205.0).contains(&person), "{person}");
    let auction = size(&all[1], &["item_name", "description", "extra"], 48);
    assert!((490.0..510.0).contains(&auction), "{auction}");
}

#[test]
fn event_times_follow_ts_in_order() {
    let config = GeneratorConfig {
        events_per_second: 3,
        base_time_ms: 5,
        ..bounded(5000)
    };
    let all = generate(&config, 999);
    for kind in EventKind::ALL {
        let times = ints(&all[kind as usize], "date_time");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{kind:?}");
        for (row, &time) in times.iter().enumerate() {
            let n = event_number(kind, row);
            assert_eq!(time, 5 + (n * 1000 / 3) as i64);
        }
    }
}

#[test]
fn out_of_order_groups_permute_within_each_group() {
    let config = GeneratorConfig {
        out_of_order_group: 100,
        ..bounded(10_000)
    };
    for n in [0, 1, 99, 100, 12_345] {
        let e = config.event_id(n);
        assert_eq!(e / 100, n / 100);
        assert_eq!(e % 100, n * 953 % 100);
    }
    let shuffled = generate(&config, 10_000);
    let times = ints(&shuffled[2], "date_time");
    assert!(
        times.windows(2).any(|w| w[0] > w[1]),
        "some bids are out of order"
    );
    let ordered = union_of_splits(&bounded(10_000), 1, 10_000);
    for kind in EventKind::ALL {
        let mut rows = lines(kind, &shuffled[kind as usize]);
        rows.sort();
        assert!(rows == ordered[kind as usize], "{kind:?}");
    }
}

#[test]
fn only_one_kind_equals_that_kind_of_the_full_generation() {
    let config = bounded(10_000);
    let full = generate(&config, 1000);
    for kind in EventKind::ALL {
        let mut generator = Generator::new(config.clone(), 0, 1);
        let mut batches = Vec::new();
        while let Some(Batches {
            person,
            auction,
            bid,
        }) = generator.next_batches(1000, Some(kind))
        {
            let present: Vec<_> = [person, auction, bid].into_iter().flatten().collect();
            assert_eq!(present.len(), 1);
            batches.extend(present);
        }
        assert_eq!(generator.events_generated(), 10_000);
        assert_eq!(batches, full[kind as usize], "{kind:?}");
    }
}

#[test]
fn ndjson_lines_parse_with_the_schema_fields() {
    let all = generate(&bounded(2000), 2000);
    for kind in EventKind::ALL {
        let batches = &all[kind as usize];
        let schema = kind.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let rows = lines(kind, batches);
        assert_eq!(
            rows.len(),
            batches.iter().map(RecordBatch::num_rows).sum::<usize>()
        );
        let times = ints(batches, "date_time");
        for (row, line) in rows.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line).expect(line);
            let object = value.as_object().unwrap();
            assert_eq!(
                object.keys().map(String::as_str).collect::<Vec<_>>().len(),
                names.len()
            );
            // Fields appear in schema order.
            let mut at = 0;
            for name in &names {
                let key = format!("\"{name}\":");
                at += line[at..].find(&key).expect(&key);
                assert!(object.contains_key(*name));
            }
            for field in schema.fields() {
                let v = &object[field.name()];
                match field.data_type() {
                    arrow_schema::DataType::Int64 => assert!(v.is_i64(), "{line}"),
                    arrow_schema::DataType::Utf8 => assert!(v.is_string(), "{line}"),
                    _ => {
                        let text = v.as_str().unwrap();
                        assert_eq!(text.len(), 24, "{text}");
                        assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.', "{text}");
                        let parsed = chrono::DateTime::parse_from_rfc3339(text).unwrap();
                        if field.name() == "date_time" {
                            assert_eq!(parsed.timestamp_millis(), times[row]);
                        }
                    }
                }
            }
        }
    }
    let first = lines(EventKind::Person, &all[0]).remove(0);
    assert!(first.starts_with("{\"id\":1000,\"name\":\""), "{first}");
    assert!(
        first.contains("\"date_time\":\"2015-07-15T00:00:00.000Z\""),
        "{first}"
    );
    let first_bid = lines(EventKind::Bid, &all[2]).remove(0);
    assert!(first_bid.contains("\"date_time\":\"2015-07-15T00:00:00.000Z\""));
}

/// How long each throughput measurement runs.
const BENCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `step` (which returns units of work done) repeatedly for [`BENCH_BUDGET`]; returns
/// units per second overall, and in the median and the fastest tenth of the steps. The
/// build machines are shared, so the fast steps say more about per-core speed than the
/// average does.
fn measure(mut step: impl FnMut() -> usize) -> [f64; 3] {
    let start = std::time::Instant::now();
    let mut rates = Vec::new();
    let mut units = 0;
    while start.elapsed() < BENCH_BUDGET {
        let step_start = std::time::Instant::now();
        let done = step();
        rates.push(done as f64 / step_start.elapsed().as_secs_f64());
        units += done;
    }
    rates.sort_by(f64::total_cmp);
    let overall = units as f64 / start.elapsed().as_secs_f64();
    [overall, rates[rates.len() / 2], rates[rates.len() * 9 / 10]]
}

fn report(what: &str, unit: &str, scale: f64, [overall, median, p90]: [f64; 3]) {
    println!(
        "{what}: {:.2} {unit}/s overall, {:.2} median, {:.2} at the 90th percentile",
        overall / scale,
        median / scale,
        p90 / scale
    );
}

/// Reports how fast batches are generated; it asserts nothing about speed.
#[test]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
fn generator_throughput() {
    let mut generator = Generator::new(GeneratorConfig::default(), 0, 1);
    let rate = measure(|| {
        let batches = generator.next_batches(8192, Some(EventKind::Bid)).unwrap();
        batches.bid.map_or(0, |b| b.num_rows())
    });
    report("generator, bids only", "M bids", 1e6, rate);

    let mut generator = Generator::new(GeneratorConfig::default(), 0, 1);
    let rate = measure(|| generator.next_batches(8192, None).unwrap().num_rows());
    report("generator, all kinds", "M events", 1e6, rate);
}

/// Reports how fast generated batches are encoded as NDJSON; it asserts nothing about speed.
#[test]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
fn ndjson_throughput() {
    let batches = generate(&bounded(50 * 8192), 8192);
    for kind in EventKind::ALL {
        let batches = &batches[kind as usize];
        let mut out = Vec::new();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut next = batches.iter().cycle();
        let bytes = measure(|| {
            out.clear();
            write_ndjson(kind, next.next().unwrap(), &mut out);
            out.len()
        });
        let bytes_per_row = {
            out.clear();
            batches.iter().for_each(|b| write_ndjson(kind, b, &mut out));
            out.len() as f64 / rows as f64
        };
        report(&format!("ndjson, {}", kind.stream_name()), "MB", 1e6, bytes);
        let rows = bytes.map(|b| b / bytes_per_row);
        report(
            &format!("ndjson, {} ({bytes_per_row:.0} B/row)", kind.stream_name()),
            "M rows",
            1e6,
            rows,
        );
    }
}
