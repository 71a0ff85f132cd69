-- status: runs
-- Auction top-10 price. Departs from Flink by selecting only columns that bids tied on
-- price cannot change.
SELECT auction, price, rank_number
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
    FROM bid
)
WHERE rank_number <= 10
