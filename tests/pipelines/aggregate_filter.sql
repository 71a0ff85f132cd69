CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- FILTER (WHERE ...) on every aggregate function: a row for which the condition is false
-- or NULL (a NULL channel) does not reach that aggregate, but still makes its group; a
-- group no filtered row reached has COUNT 0 and NULL for the others (as in batch).
CREATE VIEW per_auction AS
SELECT auction, window_start, window_end,
       COUNT(*) AS bids,
       COUNT(*) FILTER (WHERE channel = 'web') AS web_bids,
       SUM(price) FILTER (WHERE price > 100) AS big_total,
       MIN(price) FILTER (WHERE channel <> 'web') AS low_not_web,
       MAX(price) FILTER (WHERE channel = 'app') AS top_app,
       AVG(price) FILTER (WHERE channel IS NULL) AS mean_unknown,
       COUNT(DISTINCT bidder) FILTER (WHERE price >= 50) AS bidders_50
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;

-- The same over session windows and with no window at all (rows updated at each commit).
CREATE VIEW sessions AS
SELECT bidder, window_start, window_end, COUNT(*) AS bids,
       COUNT(*) FILTER (WHERE price >= 100) AS big_bids
FROM SESSION(bid, date_time, INTERVAL '5' SECOND)
GROUP BY bidder, window_start, window_end;

CREATE VIEW per_channel AS
SELECT channel, COUNT(*) AS bids, SUM(price) FILTER (WHERE auction = 1) AS auction_1_total
FROM bid
GROUP BY channel;
