CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Running aggregates with SQL's default frame (ORDER BY and no frame means RANGE BETWEEN
-- UNBOUNDED PRECEDING AND CURRENT ROW): each bid gets the aggregates over every bid of its
-- auction up to its time, and bids at the same time (peers) all get them over each other.
CREATE VIEW auction_so_far AS
SELECT auction, bidder, price, date_time,
       COUNT(*) OVER w AS n, SUM(price) OVER w AS total, AVG(price) OVER w AS mean,
       MIN(price) OVER w AS low, MAX(channel) OVER w AS last_channel
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY date_time);

-- ROWS: peers are taken one at a time (ORDER BY price then tells them apart).
CREATE VIEW bidder_running AS
SELECT bidder, price, date_time,
       SUM(price) OVER (PARTITION BY bidder ORDER BY date_time, price
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS spent
FROM bid;

-- RANGE with a second ORDER BY key: peers are equal in both; no PARTITION BY: one group;
-- a filter over the results.
CREATE VIEW big_spenders AS
SELECT auction, price, total FROM (
  SELECT auction, price, SUM(price) OVER (ORDER BY date_time, channel
         RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total
  FROM bid WHERE channel IS NOT NULL)
WHERE total >= 50;

-- LAG: each bid's previous price in its auction (NULL where there is none) and the price
-- two back (0 where there is none), beside a running aggregate of the same OVER.
CREATE VIEW price_moves AS
SELECT auction, price, date_time,
       price - LAG(price) OVER w AS change, LAG(price, 2, 0) OVER w AS two_back,
       MAX(price) OVER w AS high
FROM bid WHERE channel IS NOT NULL
WINDOW w AS (PARTITION BY auction ORDER BY date_time, price);

-- A LAG reaching back further than the frame of the aggregate beside it.
CREATE VIEW pairs_and_lag AS
SELECT bidder, price, SUM(price) OVER w AS last_two, LAG(price, 3) OVER w AS three_back
FROM bid
WINDOW w AS (PARTITION BY bidder ORDER BY date_time, price
             ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);

-- LAG alone (SQL's default frame, no running aggregate): only the last rows are kept.
CREATE VIEW previous_bid AS
SELECT bidder, price, LAG(price) OVER (PARTITION BY bidder ORDER BY date_time, price) AS before
FROM bid;

-- RANGE over an interval of the event time: each bid with the bids of its auction in the
-- 3 s up to it, bids at the same time (peers) included.
CREATE VIEW recent_moves AS
SELECT auction, price, date_time,
       COUNT(*) OVER w AS recent, AVG(price) OVER w AS recent_mean, MAX(price) OVER w AS recent_high
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY date_time
             RANGE BETWEEN INTERVAL '3' SECOND PRECEDING AND CURRENT ROW);
