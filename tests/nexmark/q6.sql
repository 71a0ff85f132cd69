-- status: runs
-- Average selling price by seller: the average of each seller's last 10 winning prices
-- (a running aggregate over the last 10 rows; the winning bids are simplified to bids).
-- Departs from the Flink text: `ORDER BY date_time, auction, price` rather than
-- `ORDER BY date_time`. Many bids share a millisecond, and a frame over rows tied in its
-- ORDER BY holds whichever of them a run takes first (Flink takes arrival order); the
-- further keys make every run, streaming or batch, frame the same rows.
SELECT auction, bidder,
       AVG(price) OVER (PARTITION BY bidder ORDER BY date_time, auction, price
                        ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) AS avg_price
FROM bid
