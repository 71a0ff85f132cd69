CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Nexmark q5 style: per-auction counts in sliding windows, then a view over that view
-- with the top count per window (a windowed aggregation of a windowed aggregation).
CREATE VIEW auction_counts AS
SELECT auction, window_start, window_end, COUNT(*) AS bids
FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;
CREATE VIEW hot_items AS
SELECT window_start, window_end, MAX(bids) AS top_bids, COUNT(*) AS auctions
FROM auction_counts GROUP BY window_start, window_end;
