CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Session windows per bidder with a 5 s gap; a late-arriving bid bridges two sessions.
CREATE VIEW sessions AS
SELECT bidder, window_start, window_end, COUNT(*) AS bids, SUM(price) AS spent
FROM SESSION(bid, date_time, INTERVAL '5' SECOND)
GROUP BY bidder, window_start, window_end;
