-- status: runs
-- Processing-time windows: bids per bidder per 10 s. Departs from Flink, which windows by
-- processing time (PROCTIME()): a view's result must not depend on when it runs, so
-- Freshet windows by event time.
SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY bidder, window_start, window_end
