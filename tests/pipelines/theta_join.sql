CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Each bid with the lower bids of the 2 s before it, on any auction: no equal key, so
-- every kept row is a candidate; the time bound lets the watermark free rows.
CREATE VIEW outbid AS
SELECT b.auction, b.price, a.auction AS lower_auction, a.price AS lower_price
FROM bid b JOIN bid a
  ON a.price < b.price AND a.date_time BETWEEN b.date_time - INTERVAL '2' SECOND AND b.date_time;

-- The same as an outer join: a bid without a lower one in the 2 s before it is written
-- with NULLs, and deleted if one arrives (out of order) later.
CREATE VIEW first_highs AS
SELECT b.auction, b.price, a.price AS lower_price
FROM bid b LEFT JOIN bid a
  ON a.price < b.price AND a.date_time BETWEEN b.date_time - INTERVAL '2' SECOND AND b.date_time;
