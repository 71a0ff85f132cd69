-- status: runs
-- Bounded side-input join: bids enriched from a side table. Freshet has no side-input
-- tables; the auction stream stands in for one.
SELECT B.auction, B.bidder, B.price, B.date_time, A.item_name
FROM bid B JOIN auction A ON B.auction = A.id
