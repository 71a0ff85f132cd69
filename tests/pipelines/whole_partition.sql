CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Each bid with its auction's bid count and its share of the auction's volume: every row
-- of an auction is rewritten when the auction gains a bid.
CREATE VIEW auction_share AS
SELECT auction, bidder, price, COUNT(*) OVER (PARTITION BY auction) AS bids,
       price * 100 / SUM(price) OVER (PARTITION BY auction) AS pct
FROM bid;

-- Over every row (no PARTITION BY), and the auction's top bids only (a bid leaves when a
-- higher one arrives).
CREATE VIEW against_all AS
SELECT auction, price, MAX(price) OVER () AS top, COUNT(DISTINCT bidder) OVER () AS bidders
FROM bid;

CREATE VIEW top_bids AS
SELECT auction, bidder, price FROM (
    SELECT auction, bidder, price, MAX(price) OVER (PARTITION BY auction) AS top FROM bid
) t WHERE price = top;

-- Per window: each bid with its auction's count in that window, final when it closes.
CREATE VIEW window_share AS
SELECT auction, window_start, price,
       COUNT(*) OVER (PARTITION BY auction, window_start, window_end) AS bids
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND);

-- Over a running total's rows: each bid's running total and its auction's final count.
CREATE VIEW running_and_whole AS
SELECT auction, price, SUM(price) OVER (PARTITION BY auction ORDER BY date_time) AS so_far,
       COUNT(*) OVER (PARTITION BY auction) AS bids
FROM bid;

-- An ordered list over the whole partition keeps the window's order.
CREATE VIEW auction_prices AS
SELECT auction, price,
       array_to_string(ARRAY_AGG(price) OVER (PARTITION BY auction ORDER BY date_time
           ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING), ',') AS prices
FROM bid;
