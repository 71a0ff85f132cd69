//! The oracle: on seeded random input with out-of-order and late events across several
//! partitions, a view's results after the final watermark equal DataFusion's batch result
//! over the same rows, minus the rows the view dead-lettered as late (which are checked to
//! be late by the watermark rule). The batch queries are written independently in plain
//! DataFusion SQL: `date_bin` for tumbling windows, a cross join for hopping windows, and
//! `lag` gap detection for sessions (a row more than a gap after the previous one opens a
//! session; exactly a gap after joins it, as in Flink), `CASE` for `FILTER (WHERE ...)`.
//! The same input then runs through the view's batch mode (DataFusion batch runs), whose
//! rows must equal the batch query over every row the runs did not set aside as late.

use crate::support::{Backend, Harness, lines};
use arrow_array::{Array, RecordBatch};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use freshet_engine::batch::{BatchSession, TimeRange, Views};
use freshet_engine::planner::{Mode, Plan};
use std::collections::HashSet;
use std::sync::Arc;

const STREAM: &str = "CREATE STREAM bid (auction BIGINT NOT NULL, bidder BIGINT NOT NULL, \
    price BIGINT NOT NULL, channel VARCHAR, date_time TIMESTAMP NOT NULL, \
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
    WITH (partitions = 3, partition_key = 'auction')";

struct Shape {
    name: &'static str,
    views: &'static str,
    /// The view whose results are compared, and the batch query giving the same columns.
    view: &'static str,
    batch: &'static str,
    /// Whether late rows may occur (hopping windows use a lateness that rules them out,
    /// because a hopping row can be late for some of its windows only).
    lateness_ms: i64,
    window_ms: i64,
}

/// The session shapes' batch query: `lag` gap detection, a row more than a gap after the
/// previous one of its bidder opening a session.
const SESSIONS_BATCH: &str = "WITH o AS (SELECT bidder, price, date_time, CASE WHEN lag(date_time) OVER \
            (PARTITION BY bidder ORDER BY date_time) IS NULL OR date_time - lag(date_time) OVER \
            (PARTITION BY bidder ORDER BY date_time) > INTERVAL '700 milliseconds' THEN 1 ELSE 0 \
            END AS fresh FROM bid), s AS (SELECT *, SUM(fresh) OVER (PARTITION BY bidder ORDER BY \
            date_time ROWS UNBOUNDED PRECEDING) AS sid FROM o) SELECT bidder, MIN(date_time) AS \
            window_start, MAX(date_time) + INTERVAL '700 milliseconds' AS window_end, COUNT(*) AS \
            n, SUM(price) AS s, MAX(price) AS hi FROM s GROUP BY bidder, sid";

const SHAPES: &[Shape] = &[
    Shape {
        name: "tumble",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT auction, window_start, \
            window_end, COUNT(*) AS n, SUM(price) AS s, MIN(price) AS lo, MAX(price) AS hi, \
            AVG(price) AS a, COUNT(DISTINCT bidder) AS d, MAX(channel) AS c, \
            COUNT(*) FILTER (WHERE price > 25) AS big, \
            MAX(price) FILTER (WHERE channel = 'ch1') AS ch1_hi \
            FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) GROUP BY auction, window_start, window_end",
        view: "v",
        batch: "SELECT auction, ws AS window_start, ws + INTERVAL '2 seconds' AS window_end, \
            COUNT(*) AS n, SUM(price) AS s, MIN(price) AS lo, MAX(price) AS hi, AVG(price) AS a, \
            COUNT(DISTINCT bidder) AS d, MAX(channel) AS c, \
            SUM(CASE WHEN price > 25 THEN 1 ELSE 0 END) AS big, \
            MAX(CASE WHEN channel = 'ch1' THEN price END) AS ch1_hi FROM (SELECT *, \
            date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01T00:00:00') AS ws \
            FROM bid) GROUP BY auction, ws",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        // Rows are written at the watermark and amended within the lateness; the final
        // rows must still equal the batch result.
        name: "tumble_update",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms', late_data = 'update') AS \
            SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS s, \
            COUNT(DISTINCT bidder) AS d FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) \
            GROUP BY auction, window_start, window_end",
        view: "v",
        batch: "SELECT auction, ws AS window_start, ws + INTERVAL '2 seconds' AS window_end, \
            COUNT(*) AS n, SUM(price) AS s, COUNT(DISTINCT bidder) AS d FROM (SELECT *, \
            date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01T00:00:00') AS ws \
            FROM bid) GROUP BY auction, ws",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        name: "hop",
        views: "CREATE VIEW v WITH (allowed_lateness = '1h') AS SELECT auction, window_start, \
            window_end, COUNT(*) AS n, SUM(price) AS s FROM HOP(bid, date_time, \
            INTERVAL '1' SECOND, INTERVAL '3' SECOND) GROUP BY auction, window_start, window_end",
        view: "v",
        batch: "SELECT auction, ws AS window_start, ws + INTERVAL '3 seconds' AS window_end, \
            COUNT(*) AS n, SUM(price) AS s FROM (SELECT b.*, date_bin(INTERVAL '1 second', \
            date_time, TIMESTAMP '1970-01-01T00:00:00') - k.k AS ws FROM bid b CROSS JOIN \
            (VALUES (INTERVAL '0 seconds'), (INTERVAL '1 second'), (INTERVAL '2 seconds')) AS k(k)) GROUP BY auction, ws",
        lateness_ms: 3_600_000,
        window_ms: 3000,
    },
    Shape {
        name: "session",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT bidder, window_start, \
            window_end, COUNT(*) AS n, SUM(price) AS s, MAX(price) AS hi \
            FROM SESSION(bid, date_time, INTERVAL '700' MILLISECOND) \
            GROUP BY bidder, window_start, window_end",
        view: "v",
        batch: SESSIONS_BATCH,
        lateness_ms: 500,
        window_ms: 700,
    },
    Shape {
        // Sessions written once complete and amended (merged, grown) within the lateness.
        name: "session_update",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms', late_data = 'update') AS SELECT bidder, window_start, \
            window_end, COUNT(*) AS n, SUM(price) AS s, MAX(price) AS hi \
            FROM SESSION(bid, date_time, INTERVAL '700' MILLISECOND) \
            GROUP BY bidder, window_start, window_end",
        view: "v",
        batch: SESSIONS_BATCH,
        lateness_ms: 500,
        window_ms: 700,
    },
    Shape {
        name: "unbounded",
        views: "CREATE VIEW v AS SELECT channel, COUNT(*) AS n, SUM(price) AS s, \
            MIN(auction) AS lo, COUNT(DISTINCT bidder) AS d FROM bid GROUP BY channel",
        view: "v",
        batch: "SELECT channel, COUNT(*) AS n, SUM(price) AS s, MIN(auction) AS lo, \
            COUNT(DISTINCT bidder) AS d FROM bid GROUP BY channel",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // HAVING over rows that change: groups flip in and out of the result at every
        // commit (an even sum), so rows are written, deleted and written again.
        name: "unbounded_having",
        views: "CREATE VIEW v AS SELECT bidder, COUNT(*) AS n, SUM(price) AS s FROM bid \
            GROUP BY bidder HAVING SUM(price) % 2 = 0",
        view: "v",
        batch: "SELECT bidder, COUNT(*) AS n, SUM(price) AS s FROM bid GROUP BY bidder \
            HAVING SUM(price) % 2 = 0",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An aggregate over an unbounded GROUP BY's rows (Nexmark q4's shape), whose HAVING
        // flips auctions in and out: every change takes the auction's old top back.
        name: "aggregate_of_updating_groups",
        views: "CREATE VIEW v AS SELECT channel, COUNT(*) AS n, SUM(top) AS s, MIN(top) AS lo, \
            MAX(top) AS hi, COUNT(DISTINCT top) AS d, AVG(top) AS a FROM (SELECT auction, \
            channel, MAX(price) AS top FROM bid GROUP BY auction, channel \
            HAVING COUNT(*) % 2 = 1) t GROUP BY channel",
        view: "v",
        batch: "SELECT channel, COUNT(*) AS n, SUM(top) AS s, MIN(top) AS lo, MAX(top) AS hi, \
            COUNT(DISTINCT top) AS d, AVG(top) AS a FROM (SELECT auction, channel, \
            MAX(price) AS top FROM bid GROUP BY auction, channel HAVING COUNT(*) % 2 = 1) t \
            GROUP BY channel",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // Running aggregates in SQL's default frame (RANGE BETWEEN UNBOUNDED PRECEDING AND
        // CURRENT ROW): bids at the same time are peers and share their values. A row is
        // late once the watermark passed its time.
        name: "running_totals",
        views: "CREATE VIEW v AS SELECT bidder, price, date_time, SUM(price) OVER w AS s, \
            COUNT(*) OVER w AS n, MAX(price) OVER w AS hi, AVG(price) OVER w AS a FROM bid \
            WINDOW w AS (PARTITION BY bidder ORDER BY date_time)",
        view: "v",
        batch: "SELECT bidder, price, date_time, SUM(price) OVER w AS s, COUNT(*) OVER w AS n, \
            MAX(price) OVER w AS hi, AVG(price) OVER w AS a FROM bid \
            WINDOW w AS (PARTITION BY bidder ORDER BY date_time)",
        lateness_ms: 0,
        window_ms: 1,
    },
    Shape {
        // An aggregate without GROUP BY over an unbounded GROUP BY's rows that flip in and
        // out of a HAVING: one row throughout, back to 0 and NULLs when no group passes.
        name: "global_aggregate_of_updating_groups",
        views: "CREATE VIEW v AS SELECT COUNT(*) AS n, SUM(s) AS s, MAX(s) AS hi, \
            COUNT(DISTINCT s) AS d FROM (SELECT bidder, SUM(price) AS s FROM bid \
            GROUP BY bidder HAVING COUNT(*) % 3 = 1) t",
        view: "v",
        batch: "SELECT COUNT(*) AS n, SUM(s) AS s, MAX(s) AS hi, COUNT(DISTINCT s) AS d \
            FROM (SELECT bidder, SUM(price) AS s FROM bid GROUP BY bidder \
            HAVING COUNT(*) % 3 = 1) t",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An aggregate over an outer join's rows: padded rows are replaced by their pairs.
        name: "aggregate_of_outer_join",
        views: "CREATE VIEW v AS SELECT a.auction, COUNT(*) AS n, COUNT(b.price) AS m, \
            MAX(b.price) AS hi FROM bid a LEFT JOIN bid b ON a.auction = b.auction \
            AND a.bidder = b.bidder AND b.price > a.price GROUP BY a.auction",
        view: "v",
        batch: "SELECT a.auction, COUNT(*) AS n, COUNT(b.price) AS m, MAX(b.price) AS hi \
            FROM bid a LEFT JOIN bid b ON a.auction = b.auction AND a.bidder = b.bidder \
            AND b.price > a.price GROUP BY a.auction",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An aggregate over ranked rows: a row pushed out of the top three is taken back
        // (the sum of the top three prices does not depend on how ties are ranked).
        name: "aggregate_of_top_n",
        views: "CREATE VIEW v AS SELECT auction, SUM(price) AS s, COUNT(*) AS n FROM (SELECT \
            auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn \
            FROM bid) WHERE rn <= 3 GROUP BY auction",
        view: "v",
        batch: "SELECT auction, SUM(price) AS s, COUNT(*) AS n FROM (SELECT auction, price, \
            ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) \
            WHERE rn <= 3 GROUP BY auction",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // Top-N over an unbounded GROUP BY's rows: a group overtaken leaves the top two, one
        // below rises into it (no ties: the bidder breaks them).
        name: "top_n_of_updating_groups",
        views: "CREATE VIEW v AS SELECT channel, bidder, n, rn FROM (SELECT channel, bidder, \
            n, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY n DESC, bidder) AS rn FROM \
            (SELECT channel, bidder, COUNT(*) AS n FROM bid GROUP BY channel, bidder) c) \
            WHERE rn <= 2",
        view: "v",
        batch: "SELECT channel, bidder, n, rn FROM (SELECT channel, bidder, n, ROW_NUMBER() \
            OVER (PARTITION BY channel ORDER BY n DESC, bidder) AS rn FROM (SELECT channel, \
            bidder, COUNT(*) AS n FROM bid GROUP BY channel, bidder) c) WHERE rn <= 2",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // UNION ALL of two unbounded GROUP BYs' rows (one with a HAVING that flips),
        // aggregated: each branch's changed groups replace their old versions.
        name: "union_of_updating_groups",
        views: "CREATE VIEW v AS SELECT who, SUM(n) AS s, COUNT(*) AS r FROM (SELECT auction \
            AS who, COUNT(*) AS n FROM bid GROUP BY auction UNION ALL SELECT bidder AS who, \
            COUNT(*) AS n FROM bid GROUP BY bidder HAVING COUNT(*) % 2 = 0) u GROUP BY who",
        view: "v",
        batch: "SELECT who, SUM(n) AS s, COUNT(*) AS r FROM (SELECT auction AS who, COUNT(*) \
            AS n FROM bid GROUP BY auction UNION ALL SELECT bidder AS who, COUNT(*) AS n FROM \
            bid GROUP BY bidder HAVING COUNT(*) % 2 = 0) u GROUP BY who",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // A stream joined with its own unbounded GROUP BY: a bid is paired while its price
        // is its auction's top; a higher bid takes the pairs back and makes new ones.
        name: "join_of_updating_groups",
        views: "CREATE VIEW v AS SELECT b.auction, b.bidder, b.price, t.n FROM bid b JOIN \
            (SELECT auction, MAX(price) AS top, COUNT(*) AS n FROM bid GROUP BY auction) t \
            ON b.auction = t.auction AND b.price = t.top",
        view: "v",
        batch: "SELECT b.auction, b.bidder, b.price, t.n FROM bid b JOIN (SELECT auction, \
            MAX(price) AS top, COUNT(*) AS n FROM bid GROUP BY auction) t ON b.auction = \
            t.auction AND b.price = t.top",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An outer join with groups that come and go (a HAVING that flips): a bid's pair
        // is deleted when its bidder's group stops qualifying, and it returns padded.
        name: "outer_join_of_updating_groups",
        views: "CREATE VIEW v AS SELECT b.bidder, b.price, c.n FROM bid b LEFT JOIN (SELECT \
            bidder, COUNT(*) AS n FROM bid WHERE channel = 'ch1' GROUP BY bidder HAVING \
            COUNT(*) % 2 = 1) c ON b.bidder = c.bidder",
        view: "v",
        batch: "SELECT b.bidder, b.price, c.n FROM bid b LEFT JOIN (SELECT bidder, COUNT(*) \
            AS n FROM bid WHERE channel = 'ch1' GROUP BY bidder HAVING COUNT(*) % 2 = 1) c ON \
            b.bidder = c.bidder",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // Enrichment with each auction's latest row (a dedup), aggregated: when a later
        // row arrives (or an out-of-order one does not), the auction's bids move group.
        // Rows tied on the order are equal in what the view selects.
        name: "aggregate_of_join_with_latest_rows",
        views: "CREATE VIEW v AS SELECT l.bidder AS last_bidder, COUNT(*) AS n, SUM(b.price) \
            AS s FROM bid b JOIN (SELECT auction, bidder FROM (SELECT auction, bidder, \
            ROW_NUMBER() OVER (PARTITION BY auction ORDER BY date_time DESC, bidder DESC) AS \
            rn FROM bid) WHERE rn = 1) l ON b.auction = l.auction GROUP BY l.bidder",
        view: "v",
        batch: "SELECT l.bidder AS last_bidder, COUNT(*) AS n, SUM(b.price) AS s FROM bid b \
            JOIN (SELECT auction, bidder FROM (SELECT auction, bidder, ROW_NUMBER() OVER \
            (PARTITION BY auction ORDER BY date_time DESC, bidder DESC) AS rn FROM bid) WHERE \
            rn = 1) l ON b.auction = l.auction GROUP BY l.bidder",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // Top-N: ranks move and rows leave the top at every commit. Ties in price are
        // broken differently by batch, so the view selects what ties cannot change.
        name: "top_n",
        views: "CREATE VIEW v AS SELECT auction, price, rn FROM (SELECT *, ROW_NUMBER() OVER \
            (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3",
        view: "v",
        batch: "SELECT auction, price, rn FROM (SELECT *, ROW_NUMBER() OVER \
            (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        name: "stateless",
        views: "CREATE VIEW v AS SELECT auction, price * 2 AS p2, upper(channel) AS c, date_time \
            FROM bid WHERE price % 3 = 0",
        view: "v",
        batch: "SELECT auction, price * 2 AS p2, upper(channel) AS c, date_time FROM bid \
            WHERE price % 3 = 0",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        name: "cascade",
        views: "CREATE VIEW c AS SELECT auction, window_start, window_end, COUNT(*) AS n \
            FROM HOP(bid, date_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND) \
            GROUP BY auction, window_start, window_end; \
            CREATE VIEW v WITH (allowed_lateness = '1h') AS SELECT window_start, window_end, \
            MAX(n) AS top, COUNT(*) AS k FROM c GROUP BY window_start, window_end",
        view: "v",
        batch: "SELECT ws AS window_start, ws + INTERVAL '2 seconds' AS window_end, MAX(n) AS \
            top, COUNT(*) AS k FROM (SELECT auction, ws, COUNT(*) AS n FROM (SELECT b.*, \
            date_bin(INTERVAL '1 second', date_time, TIMESTAMP '1970-01-01T00:00:00') - k.k \
            AS ws FROM bid b CROSS JOIN (VALUES (INTERVAL '0 seconds'), (INTERVAL '1 second')) AS k(k)) \
            GROUP BY auction, ws) GROUP BY ws",
        lateness_ms: 3_600_000,
        window_ms: 2000,
    },
    Shape {
        // A join of two unbounded inputs on keys, as rows arrive in any order across
        // partitions; equal result rows made from different bids must all be kept.
        name: "stream_join",
        views: "CREATE VIEW v AS SELECT a.auction, a.bidder, a.price AS hi, b.price AS lo, \
            a.channel FROM bid a JOIN bid b ON a.auction = b.auction AND a.bidder = b.bidder \
            WHERE a.price > b.price + 40",
        view: "v",
        batch: "SELECT a.auction, a.bidder, a.price AS hi, b.price AS lo, a.channel FROM bid a \
            JOIN bid b ON a.auction = b.auction AND a.bidder = b.bidder \
            WHERE a.price > b.price + 40",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An outer join: rows of both sides written padded while they match nothing, and
        // deleted when their first match arrives, in any order.
        name: "stream_full_join",
        views: "CREATE VIEW v AS SELECT a.auction, a.bidder, a.price AS hi, b.price AS lo \
            FROM bid a FULL JOIN bid b ON a.auction = b.auction AND a.bidder = b.bidder \
            AND a.price > b.price + 40",
        view: "v",
        batch: "SELECT a.auction, a.bidder, a.price AS hi, b.price AS lo FROM bid a \
            FULL JOIN bid b ON a.auction = b.auction AND a.bidder = b.bidder \
            AND a.price > b.price + 40",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // A semi join: each bid once, when a much cheaper bid of its bidder on its auction
        // is known, in either order.
        name: "stream_semi_join",
        views: "CREATE VIEW v AS SELECT a.auction, a.bidder, a.price FROM bid a WHERE EXISTS \
            (SELECT 1 FROM bid b WHERE b.auction = a.auction AND b.bidder = a.bidder \
            AND a.price > b.price + 40)",
        view: "v",
        batch: "SELECT a.auction, a.bidder, a.price FROM bid a WHERE EXISTS (SELECT 1 FROM bid \
            b WHERE b.auction = a.auction AND b.bidder = a.bidder AND a.price > b.price + 40)",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // An anti join: bids written while nothing matches them, deleted at the first match.
        name: "stream_anti_join",
        views: "CREATE VIEW v AS SELECT a.auction, a.bidder, a.price FROM bid a WHERE NOT \
            EXISTS (SELECT 1 FROM bid b WHERE b.auction = a.auction AND b.bidder = a.bidder \
            AND a.price > b.price + 40)",
        view: "v",
        batch: "SELECT a.auction, a.bidder, a.price FROM bid a WHERE NOT EXISTS (SELECT 1 FROM \
            bid b WHERE b.auction = a.auction AND b.bidder = a.bidder AND a.price > b.price + 40)",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // A window full join: each window's unmatched rows padded when it closes.
        name: "window_full_join",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT a.auction, \
            a.price AS hi, b.price AS lo, a.window_start AS aw, b.window_start AS bw \
            FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) a \
            FULL JOIN TUMBLE(bid, date_time, INTERVAL '2' SECOND) b \
            ON a.window_start = b.window_start AND a.window_end = b.window_end \
            AND a.auction = b.auction AND a.price > b.price + 40",
        view: "v",
        batch: "WITH w AS (SELECT *, date_bin(INTERVAL '2 seconds', date_time, \
            TIMESTAMP '1970-01-01T00:00:00') AS ws FROM bid) SELECT a.auction, a.price AS hi, \
            b.price AS lo, a.ws AS aw, b.ws AS bw FROM w a FULL JOIN w b ON a.ws = b.ws \
            AND a.auction = b.auction AND a.price > b.price + 40",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        name: "join",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT b.auction, b.bidder, \
            b.price, b.window_start, b.window_end FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) b \
            JOIN (SELECT window_start, window_end, MAX(price) AS maxprice FROM TUMBLE(bid, \
            date_time, INTERVAL '2' SECOND) GROUP BY window_start, window_end) m \
            ON b.window_start = m.window_start AND b.window_end = m.window_end \
            AND b.price = m.maxprice",
        view: "v",
        batch: "WITH w AS (SELECT *, date_bin(INTERVAL '2 seconds', date_time, \
            TIMESTAMP '1970-01-01T00:00:00') AS ws FROM bid), m AS (SELECT ws, MAX(price) AS mp \
            FROM w GROUP BY ws) SELECT w.auction, w.bidder, w.price, w.ws AS window_start, \
            w.ws + INTERVAL '2 seconds' AS window_end FROM w JOIN m ON w.ws = m.ws AND \
            w.price = m.mp",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        // Each window's final counts ranked when it closes (the hottest auctions), and the
        // distinct spreads and first bidders of each window.
        name: "ranked_window_counts",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT auction, \
            window_start, n, first_bidder, first_price, spread FROM (SELECT auction, \
            window_start, n, first_bidder, first_price, spread, ROW_NUMBER() OVER (PARTITION \
            BY window_start ORDER BY n DESC, auction) AS r FROM (SELECT auction, window_start, \
            window_end, COUNT(*) AS n, \
            FIRST_VALUE(bidder ORDER BY date_time, bidder) AS first_bidder, \
            LAST_VALUE(price ORDER BY date_time DESC, bidder DESC, price DESC) AS first_price, \
            SUM(DISTINCT price) - MIN(price) AS spread FROM TUMBLE(bid, date_time, \
            INTERVAL '2' SECOND) GROUP BY auction, window_start, window_end)) WHERE r <= 2",
        view: "v",
        batch: "SELECT auction, window_start, n, first_bidder, first_price, spread FROM (SELECT \
            auction, window_start, n, first_bidder, first_price, spread, ROW_NUMBER() OVER \
            (PARTITION BY window_start ORDER BY n DESC, auction) AS r FROM (SELECT auction, \
            ws AS window_start, \
            COUNT(*) AS n, FIRST_VALUE(bidder ORDER BY date_time, bidder) AS first_bidder, \
            LAST_VALUE(price ORDER BY date_time DESC, bidder DESC, price DESC) AS first_price, \
            SUM(DISTINCT price) - MIN(price) AS spread FROM (SELECT *, \
            date_bin(INTERVAL '2 seconds', date_time, TIMESTAMP '1970-01-01T00:00:00') AS ws \
            FROM bid) GROUP BY auction, ws)) WHERE r <= 2",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        // A windowed ROLLUP (NULL channels in the data look like the rolled-up ones) with
        // MEDIAN; the batch query is the union of its three GROUP BYs.
        name: "window_rollup",
        views: "CREATE VIEW v WITH (allowed_lateness = '500ms') AS SELECT window_start, \
            channel, auction, COUNT(*) AS n, SUM(price) AS s, MEDIAN(price) AS m, \
            GROUPING(auction) AS g FROM TUMBLE(bid, date_time, INTERVAL '2' SECOND) \
            GROUP BY window_start, window_end, ROLLUP(channel, auction)",
        view: "v",
        batch: "WITH w AS (SELECT *, date_bin(INTERVAL '2 seconds', date_time, \
            TIMESTAMP '1970-01-01T00:00:00') AS ws FROM bid) \
            SELECT ws AS window_start, channel, auction, COUNT(*) AS n, SUM(price) AS s, \
            MEDIAN(price) AS m, 0 AS g FROM w GROUP BY ws, channel, auction \
            UNION ALL SELECT ws, channel, NULL, COUNT(*), SUM(price), MEDIAN(price), 1 \
            FROM w GROUP BY ws, channel \
            UNION ALL SELECT ws, NULL, NULL, COUNT(*), SUM(price), MEDIAN(price), 1 \
            FROM w GROUP BY ws",
        lateness_ms: 500,
        window_ms: 2000,
    },
    Shape {
        // A CUBE over rows that change (each auction's top price per channel and bidder
        // class); the batch query is the union of its four GROUP BYs.
        name: "cube_of_updating_groups",
        views: "CREATE VIEW v AS SELECT channel, b, COUNT(*) AS n, SUM(top) AS s, \
            MEDIAN(top) AS m FROM (SELECT auction, channel, bidder % 3 AS b, MAX(price) AS top \
            FROM bid GROUP BY auction, channel, bidder % 3) t GROUP BY CUBE(channel, b)",
        view: "v",
        batch: "WITH t AS (SELECT auction, channel, bidder % 3 AS b, MAX(price) AS top FROM bid \
            GROUP BY auction, channel, bidder % 3) \
            SELECT channel, b, COUNT(*) AS n, SUM(top) AS s, MEDIAN(top) AS m FROM t \
            GROUP BY channel, b \
            UNION ALL SELECT channel, NULL, COUNT(*), SUM(top), MEDIAN(top) FROM t GROUP BY channel \
            UNION ALL SELECT NULL, b, COUNT(*), SUM(top), MEDIAN(top) FROM t GROUP BY b \
            UNION ALL SELECT NULL, NULL, COUNT(*), SUM(top), MEDIAN(top) FROM t",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // A scalar subquery: bids within a factor of two of the highest price so far, which
        // leave the view as the top rises; the batch query is a cross join.
        name: "scalar_subquery",
        views: "CREATE VIEW v AS SELECT auction, bidder, price FROM bid \
            WHERE price * 2 > (SELECT MAX(price) FROM bid)",
        view: "v",
        batch: "SELECT b.auction, b.bidder, b.price FROM bid b CROSS JOIN \
            (SELECT MAX(price) AS m FROM bid) t WHERE b.price * 2 > t.m",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // Aggregates over whole partitions (each bid with its auction's count, top price and
        // distinct bidders, and the channel's share), which the view runs as a join with a
        // GROUP BY and DataFusion's batch as a window.
        name: "whole_partition",
        views: "CREATE VIEW v AS SELECT auction, bidder, price, COUNT(*) OVER (PARTITION BY \
            auction) AS n, MAX(price) OVER (PARTITION BY auction) AS top, COUNT(DISTINCT \
            bidder) OVER (PARTITION BY auction) AS d, price * 1000 / SUM(price) OVER \
            (PARTITION BY channel) AS share FROM bid",
        view: "v",
        batch: "SELECT auction, bidder, price, COUNT(*) OVER (PARTITION BY auction) AS n, \
            MAX(price) OVER (PARTITION BY auction) AS top, COUNT(DISTINCT bidder) OVER \
            (PARTITION BY auction) AS d, price * 1000 / SUM(price) OVER (PARTITION BY \
            channel) AS share FROM bid",
        lateness_ms: -1,
        window_ms: 0,
    },
    Shape {
        // A join without an equal key, bounded in time: each bid with the lower bids of
        // the 500 ms before it, on any auction; rows behind the freeing watermark are late.
        name: "theta_interval_join",
        views: "CREATE VIEW v AS SELECT b.auction, b.bidder, b.price, a.auction AS lower, \
            a.bidder AS lower_bidder FROM bid b JOIN bid a ON a.price < b.price AND \
            a.date_time BETWEEN b.date_time - INTERVAL '500' MILLISECOND AND b.date_time",
        view: "v",
        batch: "SELECT b.auction, b.bidder, b.price, a.auction AS lower, a.bidder AS \
            lower_bidder FROM bid b JOIN bid a ON a.price < b.price AND a.date_time BETWEEN \
            b.date_time - INTERVAL '500 milliseconds' AND b.date_time",
        lateness_ms: 0,
        window_ms: 1,
    },
    Shape {
        // LEAD: each bid's next times in its bidder's order (only ORDER BY values are
        // selected, so rows tied in time give the same rows whichever way ties are taken).
        name: "lead_times",
        views: "CREATE VIEW v AS SELECT bidder, date_time, LEAD(date_time) OVER w AS next_t, \
            LEAD(date_time, 3) OVER w AS third_t, LAG(date_time, -2) OVER w AS second_t \
            FROM bid WINDOW w AS (PARTITION BY bidder ORDER BY date_time)",
        view: "v",
        batch: "SELECT bidder, date_time, LEAD(date_time) OVER w AS next_t, LEAD(date_time, 3) \
            OVER w AS third_t, LEAD(date_time, 2) OVER w AS second_t FROM bid \
            WINDOW w AS (PARTITION BY bidder ORDER BY date_time)",
        lateness_ms: 0,
        window_ms: 1,
    },
    Shape {
        // A RANGE frame over the event time: each bid with its bidder's bids of the 700 ms
        // up to it, peers included.
        name: "range_frame",
        views: "CREATE VIEW v AS SELECT bidder, date_time, COUNT(*) OVER w AS n, SUM(price) \
            OVER w AS s, MAX(price) OVER w AS hi, AVG(price) OVER w AS a FROM bid WINDOW w AS \
            (PARTITION BY bidder ORDER BY date_time RANGE BETWEEN INTERVAL '700' MILLISECOND \
            PRECEDING AND CURRENT ROW)",
        view: "v",
        batch: "SELECT bidder, date_time, COUNT(*) OVER w AS n, SUM(price) OVER w AS s, \
            MAX(price) OVER w AS hi, AVG(price) OVER w AS a FROM bid WINDOW w AS (PARTITION \
            BY bidder ORDER BY date_time RANGE BETWEEN INTERVAL '700 milliseconds' PRECEDING \
            AND CURRENT ROW)",
        lateness_ms: 0,
        window_ms: 1,
    },
];

/// xorshift64*: a tiny seeded generator, so the inputs are the same on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Input {
    /// (partition, offset, json, event time ms) in append order.
    rows: Vec<(u32, u64, String, i64)>,
    /// Frames: (partition, indices into rows); a `None` is a @run.
    frames: Vec<Option<(u32, Vec<usize>)>>,
}

fn generate(seed: u64, n: usize) -> Input {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let base = 1_436_918_400_000i64;
    let mut rows = Vec::new();
    let mut frames = Vec::new();
    let mut next_offset = [0u64; 3];
    let mut i = 0;
    while i < n {
        let p = rng.below(3) as u32;
        let len = 1 + rng.below(12) as usize;
        let mut idx = Vec::new();
        for _ in 0..len.min(n - i) {
            // Mostly in order, some up to 3 s out of order (late beyond the 1 s bound).
            let jitter = if rng.below(10) == 0 {
                rng.below(3000) as i64
            } else {
                rng.below(600) as i64
            };
            let t = base + (i as i64) * 40 - jitter;
            let auction = 3 * (rng.below(5) as i64) + i64::from(p); // auction % 3 == partition
            let bidder = rng.below(6) as i64;
            let price = 1 + rng.below(50) as i64;
            let channel = match rng.below(4) {
                0 => "null".to_string(),
                k => format!("\"ch{k}\""),
            };
            let ts = chrono::DateTime::from_timestamp_millis(t)
                .expect("random rows")
                .format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let json = format!(
                "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"channel\":{channel},\"date_time\":\"{ts}\"}}"
            );
            idx.push(rows.len());
            rows.push((p, next_offset[p as usize], json, t));
            next_offset[p as usize] += 1;
            i += 1;
        }
        frames.push(Some((p, idx)));
        if rng.below(15) == 0 {
            frames.push(None);
        }
    }
    Input { rows, frames }
}

fn run_shape(shape: &Shape, seed: u64, backend: Backend) {
    let input = generate(seed, 1500);
    let Some(h) = Harness::on(backend, &format!("{STREAM}; {}", shape.views)) else {
        return;
    };
    let mut runners = h.runners();
    for f in &input.frames {
        match f {
            Some((p, idx)) => {
                let jsons: Vec<String> = idx.iter().map(|&i| input.rows[i].2.clone()).collect();
                h.append("bid", *p, &jsons);
            }
            None => {
                for r in &mut runners {
                    r.drain(false).expect("drain");
                }
            }
        }
    }
    for r in &mut runners {
        r.drain(true).expect("drain to the end");
    }
    let late: HashSet<(u32, u64)> = h
        .late_events(shape.view)
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    if shape.lateness_ms > 1000 || shape.lateness_ms < 0 {
        assert!(
            late.is_empty(),
            "{}: no row can be late here, got {}",
            shape.name,
            late.len()
        );
    }
    // Each dead-lettered row must really be late: its window's end plus the lateness is at
    // or before the largest event time appended up to the end of its phase minus the 1 s
    // bound (an upper limit of the stream watermark when it was processed).
    let mut phase_of = vec![0usize; input.rows.len()];
    let mut phase = 0;
    for f in &input.frames {
        match f {
            Some((_, idx)) => idx.iter().for_each(|&i| phase_of[i] = phase),
            None => phase += 1,
        }
    }
    for &(p, o) in &late {
        let at = input
            .rows
            .iter()
            .position(|r| r.0 == p && r.1 == o)
            .expect("create the view");
        let t = input.rows[at].3;
        let max_seen = (0..input.rows.len())
            .filter(|&i| phase_of[i] <= phase_of[at])
            .map(|i| input.rows[i].3)
            .max()
            .expect("run the view");
        let end = if shape.name.starts_with("session") {
            t + shape.window_ms
        } else {
            t - t.rem_euclid(shape.window_ms) + shape.window_ms
        };
        assert!(
            end + shape.lateness_ms <= max_seen - 1000,
            "{}: row p{p}@{o} at {t} was dead-lettered but cannot be late",
            shape.name
        );
    }
    // Batch: DataFusion over the same rows minus the late ones.
    let all: Vec<&str> = input.rows.iter().map(|r| r.2.as_str()).collect();
    let kept: Vec<&str> = input
        .rows
        .iter()
        .filter(|r| !late.contains(&(r.0, r.1)))
        .map(|r| r.2.as_str())
        .collect();
    let expected = independent_batch(&h, shape, &kept);
    let columns: Vec<String> = expected[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let got = stored_lines(&h, shape, &columns);
    let want = lines(&expected, &columns);
    assert!(
        !want.is_empty(),
        "{}: the batch result is empty",
        shape.name
    );
    assert_eq!(
        got,
        want,
        "{} seed {seed}: streaming != batch ({} late rows)",
        shape.name,
        late.len()
    );

    // Batch mode: the view's own query run by DataFusion over the log reads every row, the
    // late ones included, so it must equal the independent batch query over all rows, and
    // the streaming result when nothing was late.
    if backend != Backend::Sqlite {
        return;
    }
    let catalog = h.views();
    let def = catalog.get(shape.view).expect("the view");
    let session = BatchSession::new(
        h.data.root(),
        &h.data.streams(),
        Views::Recomputed(&catalog.earlier_than(shape.view)),
        TimeRange::default(),
        &[],
    )
    .expect("a batch session");
    let (_, batch_mode) = session.query(&def.query).expect("the view runs in batch");
    let batch_mode = lines(&batch_mode, &columns);
    let all_rows = lines(&independent_batch(&h, shape, &all), &columns);
    assert_eq!(
        batch_mode, all_rows,
        "{} seed {seed}: batch mode != independent batch query",
        shape.name
    );
    if late.is_empty() {
        assert_eq!(
            batch_mode, got,
            "{} seed {seed}: batch mode != streaming",
            shape.name
        );
    }
    check_batch_runs(shape, seed, &input, &columns, &got, late.is_empty());
}

/// The view's final rows in the store, as lines of `columns`; every row must be final.
fn stored_lines(h: &Harness, shape: &Shape, columns: &[String]) -> Vec<String> {
    let store = h.store.open_read_only().expect("open the store");
    let rows = store
        .read_results(
            shape.view,
            &freshet_store::ResultQuery {
                limit: 10_000,
                ..Default::default()
            },
        )
        .expect("read results");
    assert!(!rows.has_more);
    let states = rows
        .batch
        .column_by_name("_state")
        .expect("a _state column")
        .clone();
    let states = states
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .expect("states are strings");
    assert!(
        states.iter().all(|s| s == Some("final")),
        "{}: every row is final after the end",
        shape.name
    );
    lines(&[rows.batch], columns)
}

/// A running view's batch mode on the same input, a DataFusion batch run at every phase
/// boundary: its rows equal the independent batch query over every row it did not set
/// aside as late, and streaming's rows when streaming set none aside (a batch run judges
/// lateness against the watermark before the run, so with late rows the two may differ).
fn check_batch_runs(
    shape: &Shape,
    seed: u64,
    input: &Input,
    columns: &[String],
    streamed: &[String],
    nothing_late: bool,
) {
    let h = Harness::new(&format!("{STREAM}; {}", shape.views));
    let mut runners = h.runners();
    let view = runners
        .iter()
        .find(|r| r.def().name == shape.view)
        .expect("the view");
    if view.batch_by_operators().is_some() {
        return;
    }
    // Period 0: a run is due at every turn.
    let batch = Plan {
        mode: Mode::Batch,
        period_ms: 0,
    };
    for f in &input.frames {
        match f {
            Some((p, idx)) => {
                let jsons: Vec<String> = idx.iter().map(|&i| input.rows[i].2.clone()).collect();
                h.append("bid", *p, &jsons);
            }
            None => {
                for r in &mut runners {
                    if r.batch_by_operators().is_some() {
                        r.drain(false).expect("drain");
                        continue;
                    }
                    let runs = r.stats().batch_runs;
                    r.set_plan(batch);
                    r.tick().expect("a batch run");
                    assert_eq!(r.stats().batch_runs, runs + 1, "{}", shape.name);
                }
            }
        }
    }
    for r in &mut runners {
        r.drain(true).expect("drain to the end");
    }
    let late: HashSet<(u32, u64)> = h
        .late_events(shape.view)
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect();
    let kept: Vec<&str> = input
        .rows
        .iter()
        .filter(|r| !late.contains(&(r.0, r.1)))
        .map(|r| r.2.as_str())
        .collect();
    let want = lines(&independent_batch(&h, shape, &kept), columns);
    let got = stored_lines(&h, shape, columns);
    assert_eq!(
        got,
        want,
        "{} seed {seed}: batch runs != batch over the rows they kept ({} late rows)",
        shape.name,
        late.len()
    );
    if nothing_late {
        assert_eq!(
            got, streamed,
            "{} seed {seed}: batch runs != streaming",
            shape.name
        );
    }
}

/// The shape's hand-written batch query over `rows` (NDJSON), in plain DataFusion.
fn independent_batch(h: &Harness, shape: &Shape, rows: &[&str]) -> Vec<RecordBatch> {
    let stream = h.data.stream("bid").expect("the bid stream");
    let decoded = stream
        .ndjson()
        .decode(rows.join("\n").as_bytes(), 1)
        .expect("decode the rows");
    let batch = decoded.batch.expect("decoded rows");
    let ctx = SessionContext::new();
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("a memory table");
    ctx.register_table("bid", Arc::new(table))
        .expect("register bid");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let expected: Vec<RecordBatch> = rt.block_on(async {
        ctx.sql(shape.batch)
            .await
            .expect("batch SQL runs")
            .collect()
            .await
            .expect("batch SQL runs")
    });
    expected
}

#[test]
fn streaming_equals_batch_for_every_query_shape() {
    for seed in [1, 2, 3] {
        for shape in SHAPES {
            run_shape(shape, seed, Backend::Sqlite);
        }
    }
}

#[test]
fn streaming_equals_batch_for_every_query_shape_with_postgres_results() {
    for seed in [1, 2] {
        for shape in SHAPES {
            run_shape(shape, seed, Backend::Postgres);
        }
    }
}
