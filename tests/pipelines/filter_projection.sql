CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Stateless: a filter and computed columns (q1/q2 style); rows are keyed by source
-- position, so re-processing after a crash rewrites the same rows.
CREATE VIEW euro_bids AS
SELECT auction, bidder, CAST(price AS DOUBLE) * 0.908 AS price_eur, upper(channel) AS channel,
       date_time
FROM bid WHERE auction % 2 = 1 AND price > 10;
