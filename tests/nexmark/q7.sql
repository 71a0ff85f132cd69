-- status: runs
-- Highest bid: the bids at the highest price of each 10 s window, joined as Flink writes
-- it (a time-bounded join with BETWEEN: each side's rows are freed once the other side's
-- watermark passes them; the aggregate's rows are identified by their window).
SELECT B.auction, B.price, B.bidder, B.date_time, B.extra
FROM bid B
JOIN (
    SELECT MAX(price) AS maxprice, window_end AS date_time
    FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
    GROUP BY window_start, window_end
) B1 ON B.price = B1.maxprice
WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time
