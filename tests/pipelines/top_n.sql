CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Top 2 bids per auction (Nexmark q19's shape): a bid that enters the top pushes the last
-- one out (deleted) and moves the ranks below it; final at the end of the streams.
CREATE VIEW top_bids AS
SELECT auction, bidder, price, rn FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid
) WHERE rn <= 2;

-- The latest bid of each bidder (Nexmark q18's shape: deduplication by rn = 1), with a
-- condition on the ranked rows that deletes a row that stops meeting it.
CREATE VIEW latest_big_bid AS
SELECT bidder, auction, price, date_time FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY date_time DESC) AS rn FROM bid
) WHERE rn = 1 AND price >= 20;

-- The cheapest bid per auction and 10 s window: final, and evicted, when the window closes.
CREATE VIEW cheapest_per_window AS
SELECT auction, window_start, window_end, bidder, price FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY auction, window_end ORDER BY price ASC) AS r
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
) WHERE r < 2;

-- Per window by window_start alone (the scan drops window_end, the end is start + size):
-- the first bid of each auction and window, final when the window closes.
CREATE VIEW first_per_window AS
SELECT auction, window_start, bidder FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY auction, window_start ORDER BY date_time) AS r
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
) WHERE r = 1;
