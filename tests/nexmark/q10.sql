-- status: runs
-- Log to file system: bids with the day and minute they belong to (Flink's
-- DATE_FORMAT is DataFusion's to_char; the file sink is the view's table).
SELECT auction, bidder, price, date_time, extra,
       to_char(date_time, '%Y-%m-%d') AS dt, to_char(date_time, '%H:%M') AS hm
FROM bid
