CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Partition 1 goes quiet: after idle_timeout (5 s) it no longer holds the watermark
-- back, and partition 0 alone closes windows.
CREATE VIEW counts AS
SELECT auction, window_start, window_end, COUNT(*) AS bids
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
