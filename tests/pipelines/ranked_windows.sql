CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- The hottest auctions of each 10 s window (Nexmark q5's question as most people write
-- it): the windowed counts are final when their window closes, and ranked then; ties in the
-- count go to the lower auction.
CREATE VIEW hot_auctions AS
SELECT auction, window_start, bids FROM (
    SELECT auction, window_start, bids,
           ROW_NUMBER() OVER (PARTITION BY window_start ORDER BY bids DESC, auction) AS r
    FROM (SELECT auction, window_start, window_end, COUNT(*) AS bids
          FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
          GROUP BY auction, window_start, window_end)
) WHERE r <= 2;

-- The same ranked in the aggregate's own SELECT, with RANK (ties share a place).
CREATE VIEW top_spenders AS
SELECT bidder, window_start, spent, place FROM (
    SELECT bidder, window_start, SUM(price) AS spent,
           RANK() OVER (PARTITION BY window_start ORDER BY SUM(price) DESC) AS place
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
    GROUP BY bidder, window_start
) WHERE place <= 1;

-- Across all windows: the two busiest (auction, window) pairs so far, over hopping
-- windows; a pair pushed out is deleted.
CREATE VIEW busiest_ever AS
SELECT auction, window_start, bids
FROM (SELECT auction, window_start, COUNT(*) AS bids
      FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
      GROUP BY auction, window_start)
ORDER BY bids DESC, window_start, auction LIMIT 2;

-- The longest bidding session ending at each moment (a deduplication per session end,
-- keyed by it).
CREATE VIEW longest_session AS
SELECT window_end, bidder, bids FROM (
    SELECT window_end, bidder, bids,
           ROW_NUMBER() OVER (PARTITION BY window_end ORDER BY bids DESC, bidder) AS r
    FROM (SELECT bidder, window_start, window_end, COUNT(*) AS bids
          FROM SESSION(bid, date_time, INTERVAL '3' SECOND)
          GROUP BY bidder, window_start, window_end)
) WHERE r = 1;
