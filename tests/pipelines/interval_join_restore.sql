CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- A semi join bounded in time under an aggregate: a row written at its first match must
-- not be written again after a restart when its partner was freed before the commit
-- restored (the join checkpoints which kept rows have matched).
CREATE VIEW busy AS
SELECT a.bidder, COUNT(*) AS bids
FROM bid a
WHERE EXISTS (SELECT 1 FROM bid b WHERE b.bidder = a.bidder
              AND b.date_time > a.date_time
              AND b.date_time <= a.date_time + INTERVAL '3' SECOND)
GROUP BY a.bidder;
