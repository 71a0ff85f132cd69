-- status: runs
-- Calculation: bids in a price band, with their euro price and the time of day. Departs
-- from Flink by leaving out the count_char UDF (Freshet has no user functions yet).
SELECT auction, bidder, 0.908 * price AS price,
       CASE
           WHEN date_part('hour', date_time) >= 8 AND date_part('hour', date_time) <= 18
               THEN 'dayTime'
           WHEN date_part('hour', date_time) <= 6 OR date_part('hour', date_time) >= 20
               THEN 'nightTime'
           ELSE 'otherTime'
       END AS bid_time_type,
       date_time, extra
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000
