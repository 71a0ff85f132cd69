CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Nexmark q7 as Flink writes it: the bids at the highest price of each 10 s window, by a
-- time-bounded join with the aggregate's rows (identified by their window). A bid at a
-- window's end lies in both windows' ranges: it matches both where it ties both maxima.
CREATE VIEW highest AS
SELECT B.auction, B.price, B.bidder, B.date_time
FROM bid B
JOIN (SELECT MAX(price) AS maxprice, window_end AS date_time
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
      GROUP BY window_start, window_end) B1
ON B.price = B1.maxprice
WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time;

-- Two streams' rows within 5 s of each other: a bid outbid on its auction.
CREATE VIEW outbid AS
SELECT a.auction, a.bidder, b.bidder AS by_bidder, a.price, b.price AS new_price
FROM bid a JOIN bid b ON a.auction = b.auction
WHERE b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '5' SECOND
  AND b.price > a.price;

-- A semi join bounded in time: the bids followed within 3 s by a bid of the same bidder.
CREATE VIEW busy_bidders AS
SELECT a.bidder, a.auction, a.date_time
FROM bid a
WHERE EXISTS (SELECT 1 FROM bid b WHERE b.bidder = a.bidder
              AND b.date_time > a.date_time
              AND b.date_time <= a.date_time + INTERVAL '3' SECOND);

-- LEFT: each bid with the higher bids on its auction within 5 s, or NULLs: a bid's padded
-- row is provisional until a higher bid comes or the watermark passes its time + 5 s.
CREATE VIEW next_higher AS
SELECT a.auction, a.price, b.price AS higher
FROM bid a LEFT JOIN bid b ON a.auction = b.auction
  AND b.date_time > a.date_time AND b.date_time <= a.date_time + INTERVAL '5' SECOND
  AND b.price > a.price;

-- Anti: the bids no other bid on their auction followed within 5 s.
CREATE VIEW last_calls AS
SELECT a.auction, a.price, a.date_time FROM bid a
WHERE NOT EXISTS (SELECT 1 FROM bid b WHERE b.auction = a.auction
  AND b.date_time > a.date_time AND b.date_time <= a.date_time + INTERVAL '5' SECOND);
