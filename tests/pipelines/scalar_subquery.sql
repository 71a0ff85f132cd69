CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Bids above the average of every bid so far: the subquery's one row changes with each
-- bid, and a bid's row is written or deleted as the average moves past its price.
CREATE VIEW above_average AS
SELECT auction, bidder, price FROM bid WHERE price > (SELECT AVG(price) FROM bid);

-- In the SELECT list: each bid's distance below the highest price so far (every row is
-- rewritten when the top rises).
CREATE VIEW below_top AS
SELECT auction, price, (SELECT MAX(price) FROM bid) - price AS below FROM bid;

-- Correlated: bids above their own auction's average.
CREATE VIEW above_auction_average AS
SELECT auction, bidder, price FROM bid b
WHERE price > (SELECT AVG(price) FROM bid b2 WHERE b2.auction = b.auction);
