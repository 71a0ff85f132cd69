CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    channel   VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Window joins whose left input is an aggregate, keyed by its GROUP BY columns.
-- Each auction's bid count per 10 s window next to the window's busiest count (q5).
CREATE VIEW hottest AS
SELECT c.auction, c.n, m.top, c.window_start
FROM (SELECT auction, window_start, window_end, COUNT(*) AS n
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
      GROUP BY auction, window_start, window_end) c
JOIN (SELECT window_start, window_end, MAX(n) AS top FROM (
        SELECT auction, window_start, window_end, COUNT(*) AS n
        FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
        GROUP BY auction, window_start, window_end)
      GROUP BY window_start, window_end) m
ON c.window_start = m.window_start AND c.window_end = m.window_end AND c.n >= m.top;

-- LEFT: every auction's web count per hopping window, with its app count or NULL.
CREATE VIEW web_and_app AS
SELECT w.auction, w.window_start, w.n AS web, a.n AS app
FROM (SELECT auction, window_start, window_end, COUNT(*) AS n
      FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
      WHERE channel = 'web' GROUP BY auction, window_start, window_end) w
LEFT JOIN (SELECT auction, window_start, window_end, COUNT(*) AS n
      FROM HOP(bid, date_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
      WHERE channel = 'app' GROUP BY auction, window_start, window_end) a
ON w.auction = a.auction AND w.window_start = a.window_start AND w.window_end = a.window_end;

-- Semi join with streams' rows: auctions whose window had a bid of 100 or more.
CREATE VIEW big_windows AS
SELECT c.auction, c.window_start, c.window_end, c.n
FROM (SELECT auction, window_start, window_end, COUNT(*) AS n
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
      GROUP BY auction, window_start, window_end) c
WHERE EXISTS (SELECT 1 FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b
              WHERE b.auction = c.auction AND b.window_start = c.window_start
                AND b.window_end = c.window_end AND b.price >= 100);
