-- status: runs
-- User sessions: bids per bidder per session (10 s of inactivity ends one).
SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
FROM SESSION(bid, date_time, INTERVAL '10' SECOND)
GROUP BY bidder, window_start, window_end
