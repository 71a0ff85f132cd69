CREATE STREAM auction (
    id        BIGINT NOT NULL,
    category  BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'id', idle_timeout = '5s');

CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT,
    category  BIGINT,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- DISTINCT sums and averages, variances and standard deviations per auction and 10 s
-- window: a repeated price counts once in the DISTINCT ones, a NULL price in none; a
-- sample's variance over one price is NULL, the population's 0. Square roots are rounded
-- so that the last bits, which depend on the order the values arrive in, do not show.
CREATE VIEW price_spread AS
SELECT auction, window_start, COUNT(price) AS prices,
       SUM(DISTINCT price) AS distinct_total, AVG(DISTINCT price) AS distinct_mean,
       ROUND(VAR_SAMP(price), 6) AS var_samp, ROUND(VAR_POP(price), 6) AS var_pop,
       ROUND(STDDEV(price), 6) AS sd, ROUND(STDDEV_POP(price), 6) AS sd_pop
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start;

-- The same over sessions per bidder (a bid that bridges two sessions merges their
-- moments and their distinct values).
CREATE VIEW session_spread AS
SELECT bidder, window_start, window_end, SUM(DISTINCT price) AS distinct_total,
       ROUND(VAR(price), 6) AS var_samp, ROUND(STDDEV_POP(price), 6) AS sd_pop
FROM SESSION(bid, date_time, INTERVAL '5' SECOND)
GROUP BY bidder, window_start, window_end;

-- Over rows that change (each auction's top price, which rises): the old top is taken
-- back out of its category's moments and distinct values before the new one goes in.
CREATE VIEW category_spread AS
SELECT category, COUNT(*) AS auctions, SUM(DISTINCT top) AS distinct_tops,
       AVG(DISTINCT top) AS mean_distinct_top, ROUND(VAR_POP(top), 6) AS var_pop,
       ROUND(STDDEV_SAMP(top), 6) AS sd
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY category;

-- One row over every bid.
CREATE VIEW overall_spread AS
SELECT COUNT(*) AS bids, SUM(DISTINCT bidder) AS bidders_total,
       ROUND(STDDEV_POP(price), 6) AS sd_pop, ROUND(VAR_SAMP(price), 6) AS var_samp
FROM bid;

-- The first and last rows in an order of the query's choosing: each auction's first bidder
-- and last price of each window, and its highest bidder (the later of tied prices).
CREATE VIEW window_firsts AS
SELECT auction, window_start,
       FIRST_VALUE(bidder ORDER BY date_time) AS first_bidder,
       LAST_VALUE(price ORDER BY date_time) AS last_price,
       FIRST_VALUE(bidder ORDER BY price DESC, date_time DESC) AS top_bidder,
       LAST_VALUE(price ORDER BY price NULLS FIRST) AS highest_or_null
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start;

-- Over sessions (merged sessions keep the first of both) and over rows that change (the
-- auction with the highest top price of each category moves when a top rises).
CREATE VIEW session_firsts AS
SELECT bidder, window_start, window_end, LAST_VALUE(auction ORDER BY date_time) AS last_auction
FROM SESSION(bid, date_time, INTERVAL '5' SECOND)
GROUP BY bidder, window_start, window_end;

CREATE VIEW category_leader AS
SELECT category, FIRST_VALUE(auction ORDER BY top DESC, auction DESC) AS leader
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY category;

-- The middle price of each auction's window, and of each category's tops (which change):
-- of an even number of values, the mean of the middle two (DataFusion takes an integer
-- argument as a double: price / 3 over 13, 20, 33, 33 gives 26.5).
CREATE VIEW middle_prices AS
SELECT auction, window_start, MEDIAN(price) AS median_price,
       MEDIAN(price / 3) AS median_third, MEDIAN(CAST(bidder AS REAL)) AS median_bidder
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start;

CREATE VIEW category_median AS
SELECT category, MEDIAN(top) AS median_top
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY category;

-- Values in an order of the query's choosing: each auction's bidders of a window, latest
-- first (a NULL channel is skipped by STRING_AGG, kept by ARRAY_AGG), its distinct prices
-- in order, and each category's tops in auction order, which change as tops rise.
CREATE VIEW window_lists AS
SELECT auction, window_start,
       STRING_AGG(CAST(bidder AS VARCHAR), ',' ORDER BY date_time DESC) AS latest_bidders,
       array_to_string(ARRAY_AGG(DISTINCT price ORDER BY price), '/') AS distinct_prices,
       cardinality(ARRAY_AGG(price ORDER BY date_time)) AS prices_held
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
GROUP BY auction, window_start;

CREATE VIEW category_lists AS
SELECT category, STRING_AGG(CAST(top AS VARCHAR), ' ' ORDER BY auction) AS tops
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY category;
