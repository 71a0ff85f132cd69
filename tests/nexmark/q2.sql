-- status: runs
-- Selection: bids on some auctions (Flink's MOD(auction, 123) is auction % 123).
SELECT auction, price FROM bid WHERE auction % 123 = 0
