CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Tumbling windows with every supported aggregate; windows close as the watermark
-- (the minimum over both partitions) passes their end.
CREATE VIEW per_auction AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, SUM(price) AS total,
       MIN(price) AS low, MAX(price) AS top, AVG(price) AS mean,
       COUNT(DISTINCT bidder) AS bidders, MAX(channel) AS last_channel
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;

-- Flink's spelling of the window table function reads the same.
CREATE VIEW per_window_flink AS
SELECT window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
