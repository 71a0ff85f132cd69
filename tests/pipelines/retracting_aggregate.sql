CREATE STREAM auction (
    id        BIGINT NOT NULL,
    category  BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'id', idle_timeout = '5s');

CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    category  BIGINT,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- An aggregate over an unbounded GROUP BY's rows (Nexmark q4's second stage): when an
-- auction's top price rises, its old top is taken back out of its category before the new
-- one goes in; MIN, MAX and COUNT(DISTINCT) keep every top they hold. An auction of a NULL
-- category groups under NULL.
CREATE VIEW category_tops AS
SELECT category, COUNT(*) AS auctions, SUM(top) AS total, AVG(top) AS mean,
       MIN(top) AS low, MAX(top) AS high, COUNT(DISTINCT top) AS distinct_tops
FROM (SELECT auction, category, MAX(price) AS top FROM bid GROUP BY auction, category) t
GROUP BY category;

-- Rows that stop passing a HAVING are taken back: an auction leaves its category's count
-- at its third bid, and a category whose auctions have all left is deleted.
CREATE VIEW quiet_auctions_per_category AS
SELECT category, COUNT(*) AS quiet
FROM (SELECT auction, category, COUNT(*) AS bids FROM bid
      GROUP BY auction, category HAVING COUNT(*) < 3) q
GROUP BY category;

-- Three levels: how many categories have each number of auctions.
CREATE VIEW category_sizes AS
SELECT auctions, COUNT(*) AS categories
FROM (SELECT category, COUNT(*) AS auctions
      FROM (SELECT auction, category FROM bid GROUP BY auction, category) a
      GROUP BY category) c
GROUP BY auctions;

-- An aggregate over an outer join's rows: a bid written padded before its auction arrives
-- is taken back when its pair replaces it, so each bid counts once.
CREATE VIEW bids_per_bidder AS
SELECT b.bidder, COUNT(*) AS bids, COUNT(a.id) AS matched, SUM(a.category) AS categories
FROM bid b LEFT JOIN auction a ON b.auction = a.id
GROUP BY b.bidder;

-- An aggregate over ranked rows: a bid pushed out of its auction's top two is taken back.
CREATE VIEW top_two_total AS
SELECT auction, SUM(price) AS best_two, COUNT(*) AS bids FROM (
    SELECT auction, price,
           ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn
    FROM bid
) WHERE rn <= 2
GROUP BY auction;

-- Top-N over an unbounded GROUP BY's rows: the busiest auction of each category among
-- those with fewer than three bids. When auction 1 reaches three bids it leaves (deleted)
-- and auction 2, kept below the top, rises into it (written).
CREATE VIEW busiest_quiet_auction AS
SELECT category, auction, bids FROM (
    SELECT category, auction, bids,
           ROW_NUMBER() OVER (PARTITION BY category ORDER BY bids DESC, auction) AS rn
    FROM (SELECT category, auction, COUNT(*) AS bids FROM bid
          GROUP BY category, auction HAVING COUNT(*) < 3) q
) WHERE rn = 1;

-- A group that loses its last row (category 10 when its last quiet auction leaves) is
-- deleted by a row computed from the values it had with that row, so an expression over
-- it, here a division by its count, stays defined.
CREATE VIEW quiet_shares AS
SELECT share, COUNT(*) AS categories
FROM (SELECT category, 100 / COUNT(*) AS share
      FROM (SELECT auction, category FROM bid
            GROUP BY auction, category HAVING COUNT(*) < 3) q
      GROUP BY category) s
GROUP BY share;

-- UNION ALL of two unbounded GROUP BYs' rows, aggregated: each branch's changed groups
-- replace their old versions (the branch is folded into the identity, so a group of one
-- branch and one of the other with the same key stay apart: auction n + 6 meets bidder
-- n + 6).
CREATE VIEW activity AS
SELECT who, SUM(n) AS bids, COUNT(*) AS roles
FROM (SELECT auction + 6 AS who, COUNT(*) AS n FROM bid GROUP BY auction
      UNION ALL
      SELECT bidder AS who, COUNT(*) AS n FROM bid GROUP BY bidder) u
GROUP BY who;

-- The same union as a view's rows, with a filter over them (which the planner moves into
-- each branch, as a HAVING): a row is deleted when its group stops passing it.
CREATE VIEW busy_parties AS
SELECT who, n FROM (
    SELECT auction AS who, COUNT(*) AS n FROM bid GROUP BY auction
    UNION ALL
    SELECT bidder AS who, COUNT(*) AS n FROM bid GROUP BY bidder) u
WHERE n BETWEEN 2 AND 3;

-- A union of that union's rows with another GROUP BY's (the view is inlined under an
-- alias, so the unions stay nested): the inner union's folded identities fold again.
CREATE VIEW parties_and_categories AS
SELECT who, n FROM busy_parties
UNION ALL
SELECT category AS who, COUNT(*) AS n FROM bid GROUP BY category;

-- A union branch may be an unbounded GROUP BY over a join (its rows are its own): bids
-- per category of the auctions known, beside bids per bidder.
CREATE VIEW counts_by_kind AS
SELECT a.category AS k, COUNT(*) AS n FROM bid b JOIN auction a ON b.auction = a.id
GROUP BY a.category
UNION ALL
SELECT bidder AS k, COUNT(*) AS n FROM bid GROUP BY bidder;
