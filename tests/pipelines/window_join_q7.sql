CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Nexmark q7 style: the bids carrying the maximum price of their 10 s window, a join of
-- the windowed bids with the windowed maximum on the same window.
CREATE VIEW top_bids AS
SELECT b.auction, b.bidder, b.price, b.window_start, b.window_end
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b
JOIN (SELECT window_start, window_end, MAX(price) AS maxprice
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
      GROUP BY window_start, window_end) m
  ON b.window_start = m.window_start AND b.window_end = m.window_end
 AND b.price = m.maxprice;
