CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- An unbounded GROUP BY: rows are provisional and updated at every commit, final at the
-- end of the stream.
CREATE VIEW per_channel AS
SELECT channel, COUNT(*) AS bids, SUM(price) AS total, MAX(auction) AS last_auction
FROM bid GROUP BY channel;
