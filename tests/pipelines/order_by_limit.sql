CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- ORDER BY ... LIMIT n: the first n rows in that order, kept as bids come (a top-N of one
-- group): a bid pushed out of the top three is deleted.
CREATE VIEW top_bids AS
SELECT auction, bidder, price FROM bid ORDER BY price DESC, bidder LIMIT 3;

-- Over an unbounded GROUP BY's rows, which change: the two busiest auctions.
CREATE VIEW busiest AS
SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction
ORDER BY bids DESC, auction LIMIT 2;

-- A filter over the first rows applies after the limit.
CREATE VIEW cheap_among_first AS
SELECT * FROM (SELECT auction, price FROM bid ORDER BY date_time, price LIMIT 4) t
WHERE price < 50;
