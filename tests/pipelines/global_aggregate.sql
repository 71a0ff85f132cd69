CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- An aggregate without GROUP BY has one row, there from the first commit: before any bid
-- it counts 0 and its other aggregates are NULL, as a batch query over no rows gives.
CREATE VIEW totals AS
SELECT COUNT(*) AS bids, SUM(price) AS volume, MAX(price) AS top, AVG(price) AS mean,
       COUNT(DISTINCT bidder) AS bidders, BOOL_AND(price >= 100) AS all_100,
       BOOL_OR(bidder = 9) AS any_from_9
FROM bid;

-- Over the rows of an unbounded GROUP BY with a HAVING: auctions leave the count at their
-- third bid; when the last one leaves, the row stays, counting 0 (not deleted).
CREATE VIEW quiet AS
SELECT COUNT(*) AS auctions, SUM(bids) AS bids, MIN(auction) AS first,
       BOOL_OR(bids = 1) AS some_single
FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction HAVING COUNT(*) < 3) q;

-- A HAVING over the one row: written once it qualifies (deleted while it does not).
CREATE VIEW busy AS
SELECT COUNT(*) AS bids FROM bid HAVING COUNT(*) > 3;

-- A filter before the aggregate, an aggregate's FILTER, and an expression over the row.
CREATE VIEW big_bids AS
SELECT COUNT(*) AS n, MAX(price) FILTER (WHERE bidder = 7) AS top_of_7,
       COALESCE(SUM(price), 0) * 2 AS doubled
FROM bid WHERE price > 100;
