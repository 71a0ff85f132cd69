CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Sessions written as provisional while they are open (emit = 'on_update'): a session
-- that grows or merges with another deletes the row written under its old bounds.
CREATE VIEW live_sessions WITH (emit = 'on_update', emit_interval = '1ms') AS
SELECT bidder, window_start, window_end, COUNT(*) AS bids, SUM(price) AS spent
FROM SESSION(bid, date_time, INTERVAL '5' SECOND)
GROUP BY bidder, window_start, window_end;

-- Sessions written once the stream watermark completes them and amended by late events
-- within the lateness (late_data = 'update'): a late event that merges two written
-- sessions deletes both rows and writes the merged session.
CREATE VIEW amended_sessions WITH (allowed_lateness = '10s', late_data = 'update') AS
SELECT bidder, window_start, window_end, COUNT(*) AS bids
FROM SESSION(bid, date_time, INTERVAL '2' SECOND)
GROUP BY bidder, window_start, window_end;
