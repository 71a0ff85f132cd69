CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    category  BIGINT,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Per 10 s window: per category and auction, per category, and the window's total. A bid
-- without a category makes a per-category row (category NULL) that looks like the total
-- row; GROUPING() tells them apart, and each is a row of its own.
CREATE VIEW window_rollup AS
SELECT window_start, category, auction, COUNT(*) AS bids, SUM(price) AS volume,
       GROUPING(category) AS all_categories, GROUPING(auction) AS all_auctions
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY window_start, window_end, ROLLUP(category, auction);

-- Every combination of category and bidder, over all time (rows change as bids arrive).
CREATE VIEW bidder_cube AS
SELECT category, bidder, COUNT(*) AS bids, MAX(price) AS top
FROM bid
GROUP BY CUBE(category, bidder);

-- Over rows that change (each auction's top price): per category and overall, the same
-- set twice (two copies of each row, as in batch), and a HAVING that deletes a row when
-- it stops qualifying.
CREATE VIEW top_sets AS
SELECT category, COUNT(*) AS auctions, SUM(top) AS tops
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY GROUPING SETS ((category), (), (category))
HAVING SUM(top) < 300;

-- A ROLLUP over no rows yet (no bid above 180 until the last run): its grand total is there
-- from the first commit, counting 0, as batch gives it over no rows.
CREATE VIEW rare_rollup AS
SELECT category, COUNT(*) AS bids, SUM(price) AS volume
FROM bid WHERE price > 180
GROUP BY ROLLUP(category);
