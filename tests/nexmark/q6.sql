-- status: refused other than ROW_NUMBER()
-- Average selling price by seller: the average of each seller's last 10 winning prices
-- (a running aggregate over the last 10 rows; the winning bids are simplified to bids).
SELECT auction, bidder,
       AVG(price) OVER (PARTITION BY bidder ORDER BY date_time
                        ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) AS avg_price
FROM bid
