CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- emit = on_update: open windows get provisional rows at commits, then the final row.
CREATE VIEW counts WITH (emit = 'on_update', emit_interval = '1ms') AS
SELECT auction, window_start, window_end, COUNT(*) AS bids
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
