CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- LEAD: each bid's next price in its auction and the price two ahead (0 where there is
-- none), beside a LAG and a running total of the same OVER. A bid is written once the
-- watermark has passed the two bids after it in its auction, or at the end of the streams.
CREATE VIEW next_prices AS
SELECT auction, price, date_time,
       LEAD(price) OVER w - price AS rise, LEAD(price, 2, 0) OVER w AS two_ahead,
       LAG(price) OVER w AS before, SUM(price) OVER w AS so_far
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY date_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- A negative LAG reads ahead, as LEAD does; without PARTITION BY every bid is of one group.
CREATE VIEW next_bid AS
SELECT auction, bidder, LAG(bidder, -1) OVER (ORDER BY date_time, bidder) AS next_bidder
FROM bid;

-- With allowed lateness, the streams' end still writes each group's last rows.
CREATE VIEW next_price_late WITH (allowed_lateness = '2s') AS
SELECT auction, price, LEAD(price) OVER (PARTITION BY auction ORDER BY date_time) AS next
FROM bid;
