CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Hopping windows: 10 s long, every 5 s; each bid counts in two windows.
CREATE VIEW hop_counts AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
