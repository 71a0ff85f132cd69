CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- A running aggregate over each bidder's last 3 bids (2 preceding and the current one),
-- in event-time order: a bid waits for the watermark, then is written once, final.
CREATE VIEW running WITH (late_data = 'dead_letter') AS
SELECT bidder, auction, price, date_time,
       COUNT(*) OVER w AS n, SUM(price) OVER w AS total, AVG(price) OVER w AS mean,
       MIN(price) OVER w AS low, MAX(price) OVER w AS high
FROM bid
WINDOW w AS (PARTITION BY bidder ORDER BY date_time, price
             ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);

-- Filtered input, and a filter over the results.
CREATE VIEW web_highs AS
SELECT auction, bidder, high FROM (
  SELECT auction, bidder, MAX(price) OVER (PARTITION BY auction ORDER BY date_time
         ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS high
  FROM bid WHERE channel = 'web')
WHERE high >= 20;

-- Without PARTITION BY every row is of one group.
CREATE VIEW overall AS
SELECT price, date_time, SUM(price) OVER (ORDER BY date_time, price
       ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS pair
FROM bid;
