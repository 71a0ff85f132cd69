CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- late_data = 'update': a window is written as provisional as soon as the watermark passes
-- its end, amended by events within the allowed lateness, and final once the watermark minus
-- the lateness passes its end; events later than that are dead-lettered.
CREATE VIEW counts WITH (allowed_lateness = '5s', late_data = 'update') AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, MAX(price) AS top
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;

-- The same with HAVING: a written window that an amendment stops qualifying is deleted.
CREATE VIEW low_tops WITH (allowed_lateness = '5s', late_data = 'update') AS
SELECT auction, window_start, window_end, MAX(price) AS top
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end
HAVING MAX(price) < 5;
