CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- HAVING over rows that change: a group is written while it qualifies and deleted in the
-- commit in which it stops qualifying (an average falling, an exact count passed, a maximum
-- rising past a bound); a NULL condition does not qualify.
CREATE VIEW cheap_channels AS
SELECT channel, COUNT(*) AS bids, AVG(price) AS mean
FROM bid GROUP BY channel
HAVING AVG(price) >= 40;

CREATE VIEW pairs AS
SELECT bidder, COUNT(*) AS bids, MAX(price) AS top
FROM bid GROUP BY bidder
HAVING COUNT(*) = 2 AND MAX(price) < 300;

-- A filter in a view over an unbounded GROUP BY view is the same HAVING, inlined.
CREATE VIEW auction_totals AS
SELECT auction, SUM(price) AS total FROM bid GROUP BY auction;
CREATE VIEW big_auctions AS
SELECT auction, total FROM auction_totals WHERE total BETWEEN 100 AND 400;

-- Provisional windows (emit = 'on_update'): a window written while it qualified is
-- deleted if its final row does not.
CREATE VIEW busy_windows WITH (emit = 'on_update', emit_interval = '1ms') AS
SELECT auction, window_start, window_end, COUNT(*) AS bids, MIN(price) AS low
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end
HAVING MIN(price) > 20;
