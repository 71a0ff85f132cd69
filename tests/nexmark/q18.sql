-- status: runs
-- Find last bid: each bidder's latest bid on each auction (deduplication). Departs from
-- Flink by selecting only columns that bids tied on date_time cannot change (a batch run
-- breaks such ties its own way; the view keeps the last that arrived).
SELECT bidder, auction, date_time
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number
    FROM bid
)
WHERE rank_number <= 1
