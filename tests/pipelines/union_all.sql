CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

CREATE STREAM ask (
    auction   BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- UNION ALL of two streams, and a second branch over the same stream: every row is kept
-- once per branch, keyed by its log position and branch.
CREATE VIEW offers AS
SELECT auction, price, 'bid' AS side FROM bid
UNION ALL
SELECT auction, price, 'ask' AS side FROM ask
UNION ALL
SELECT auction, price * 2 AS price, 'big bid' AS side FROM bid WHERE price > 50;

-- An aggregate over a union of windowed streams: windows close when both streams'
-- watermarks pass them.
CREATE VIEW per_window AS
SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS total FROM (
    SELECT auction, price, window_start, window_end
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
    UNION ALL
    SELECT auction, price, window_start, window_end
    FROM TUMBLE(ask, date_time, INTERVAL '10' SECOND)
) GROUP BY auction, window_start, window_end;

-- Hopping windows copy each row (_copy 0 and 1 before the branch is folded in): every
-- copy of every branch keeps a key of its own.
CREATE VIEW hops AS
SELECT auction, window_start, window_end, 'bid' AS side
FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
UNION ALL
SELECT auction, window_start, window_end, 'ask' AS side
FROM HOP(ask, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND);
