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
