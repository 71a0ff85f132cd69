CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Late events beyond allowed lateness are kept in freshet_late_events with the reason;
-- an event within the lateness still changes its (not yet final) window.
CREATE VIEW counts WITH (allowed_lateness = '2s', late_data = 'dead_letter') AS
SELECT auction, window_start, window_end, COUNT(*) AS bids
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
