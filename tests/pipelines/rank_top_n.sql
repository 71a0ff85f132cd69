CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- RANK: bids tied on price share a rank, so a group keeps every bid tied within the top 2
-- and the rows kept do not depend on how ties are broken.
CREATE VIEW ranked_bids AS
SELECT auction, bidder, price, r FROM (
    SELECT *, RANK() OVER (PARTITION BY auction ORDER BY price DESC) AS r FROM bid
) WHERE r <= 2;

-- DENSE_RANK: the bids at the two highest prices of each auction.
CREATE VIEW two_best_prices AS
SELECT auction, bidder, price, r FROM (
    SELECT *, DENSE_RANK() OVER (PARTITION BY auction ORDER BY price DESC) AS r FROM bid
) WHERE r <= 2;

-- Over an unbounded GROUP BY's rows, which change: every auction tied for the most bids.
CREATE VIEW busiest_auctions AS
SELECT auction, n FROM (
    SELECT auction, n, RANK() OVER (ORDER BY n DESC) AS r
    FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) c
) WHERE r = 1;

-- Per window: the cheapest bids of each 10 s window, ties included; final at its close.
CREATE VIEW cheapest_per_window AS
SELECT window_start, window_end, auction, price FROM (
    SELECT *, DENSE_RANK() OVER (PARTITION BY window_end ORDER BY price) AS r
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
) WHERE r = 1;
