CREATE STREAM auction (
    id        BIGINT NOT NULL,
    category  BIGINT,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'id', idle_timeout = '5s');

CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    bidder    BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'auction', idle_timeout = '5s');

-- Enrichment with rows that change: each bid with its auction's latest category (an
-- auction may be sent again). When an auction's newer row arrives, the pairs its old row
-- made are deleted and its bids written again with the new category.
CREATE VIEW enriched_bids AS
SELECT b.auction, b.bidder, b.price, a.category
FROM bid b JOIN (
    SELECT id, category FROM (
        SELECT id, category,
               ROW_NUMBER() OVER (PARTITION BY id ORDER BY date_time DESC) AS rn
        FROM auction
    ) WHERE rn = 1
) a ON b.auction = a.id;

-- The same, aggregated: an auction's bids move to its new category.
CREATE VIEW category_revenue AS
SELECT a.category, SUM(b.price) AS revenue, COUNT(*) AS bids
FROM bid b JOIN (
    SELECT id, category FROM (
        SELECT id, category,
               ROW_NUMBER() OVER (PARTITION BY id ORDER BY date_time DESC) AS rn
        FROM auction
    ) WHERE rn = 1
) a ON b.auction = a.id
GROUP BY a.category;

-- A stream joined with its own unbounded GROUP BY on two keys: the bids at their
-- auction's current top price. A bid leaves when a higher one comes.
CREATE VIEW bids_at_top AS
SELECT b.auction, b.bidder, b.price
FROM bid b JOIN (SELECT auction, MAX(price) AS top FROM bid GROUP BY auction) t
  ON b.auction = t.auction AND b.price = t.top;

-- An outer join whose partner goes: an auction is paired with its bid count while it has
-- fewer than three bids; at its third, the pair is deleted and the auction comes back
-- padded with NULLs.
CREATE VIEW auctions_while_quiet AS
SELECT a.id, a.category, q.bids
FROM auction a LEFT JOIN (
    SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction HAVING COUNT(*) < 3
) q ON a.id = q.auction;

-- Both sides change: two unbounded GROUP BYs joined on their key.
CREATE VIEW auction_stats AS
SELECT c.auction, c.bids, m.top
FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction) c
JOIN (SELECT auction, MAX(price) AS top FROM bid GROUP BY auction) m
  ON c.auction = m.auction;

-- The changing side preserved: quiet auctions' counts with their category, padded while
-- the auction is unknown; a count that stops qualifying takes its row with it.
CREATE VIEW quiet_counts AS
SELECT q.auction, q.bids, a.category
FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction HAVING COUNT(*) < 3) q
FULL JOIN auction a ON q.auction = a.id;

-- Semi and anti joins against rows that change: bids of busy auctions (three bids or
-- more) appear when their auction becomes busy; auctions without a busy count leave.
CREATE VIEW busy_bids AS
SELECT auction, bidder, price FROM bid
WHERE auction IN (SELECT auction FROM bid GROUP BY auction HAVING COUNT(*) >= 3);

CREATE VIEW idle_auctions AS
SELECT id, category FROM auction
WHERE id NOT IN (SELECT auction FROM bid GROUP BY auction HAVING COUNT(*) >= 3);
