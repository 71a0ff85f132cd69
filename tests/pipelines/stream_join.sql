CREATE STREAM person (
    id        BIGINT NOT NULL,
    name      VARCHAR NOT NULL,
    state     VARCHAR,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 2, partition_key = 'id', idle_timeout = '5s');

CREATE STREAM auction (
    id        BIGINT NOT NULL,
    seller    BIGINT,
    category  BIGINT NOT NULL,
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

-- Nexmark q20's shape: bids on category-10 auctions with their auction's fields, a join of
-- two unbounded streams on a key; a bid may arrive before or after its auction.
CREATE VIEW bid_auction AS
SELECT b.auction, b.bidder, b.price, a.seller, a.category
FROM bid b JOIN auction a ON b.auction = a.id
WHERE a.category = 10;

-- Nexmark q3's shape, with a residual condition across both sides: a NULL seller matches
-- no one.
CREATE VIEW local_sellers AS
SELECT p.name, p.state, a.id AS auction
FROM auction a JOIN person p ON a.seller = p.id
WHERE p.state IN ('or', 'id') AND a.date_time >= p.date_time;

-- Three streams: each result row is keyed by the positions of all three of its rows.
CREATE VIEW bid_seller AS
SELECT b.auction, b.price, p.name AS seller
FROM bid b JOIN auction a ON b.auction = a.id JOIN person p ON a.seller = p.id;

-- A window join where one bid matches several bids of its window (issue 16: such rows
-- used to share one key, the left bid's position, and all but one were lost).
CREATE VIEW same_window_pairs AS
SELECT x.auction, x.bidder AS first_bidder, y.bidder AS other_bidder, x.window_start
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) x
JOIN TUMBLE(bid, date_time, INTERVAL '10' SECOND) y
  ON x.window_start = y.window_start AND x.window_end = y.window_end
 AND x.auction = y.auction;

-- A window semi join (EXISTS): bids with another bidder on their auction in their window,
-- each bid once, keyed by its own position. (TUMBLE cannot take a correlated subquery's
-- column, so the windowed bids are a view of their own.)
CREATE VIEW windowed_bids AS
SELECT auction, bidder, window_start, window_end
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND);

CREATE VIEW contested AS
SELECT x.auction, x.bidder, x.window_start
FROM windowed_bids x
WHERE EXISTS (
    SELECT 1 FROM windowed_bids y
    WHERE y.window_start = x.window_start AND y.window_end = x.window_end
      AND y.auction = x.auction AND y.bidder <> x.bidder
);

-- Outer joins retract: a bid whose auction has not arrived yet is written with NULLs and
-- replaced by its pair when the auction arrives.
CREATE VIEW bid_with_auction AS
SELECT b.auction, b.price, a.seller
FROM bid b LEFT JOIN auction a ON b.auction = a.id;

-- Every auction with its seller's name: a NULL seller matches no one (final at once), a
-- seller who arrives later replaces the padded row.
CREATE VIEW auction_seller AS
SELECT a.id AS auction, p.name
FROM person p RIGHT JOIN auction a ON p.id = a.seller;

-- Both sides kept, and a condition beyond the keys: a pair must pass all of ON to match,
-- so a small bid and its auction both stay padded.
CREATE VIEW auction_big_bids AS
SELECT a.id, a.category, b.bidder, b.price
FROM auction a FULL JOIN bid b ON a.id = b.auction AND b.price > 50;

-- IN over a stream: each bid once, final, as soon as its auction is known to be in
-- category 10, whichever arrives first.
CREATE VIEW bids_in_category_10 AS
SELECT auction, bidder, price FROM bid
WHERE auction IN (SELECT id FROM auction WHERE category = 10);

-- NOT EXISTS: the auctions without a bid so far; an auction leaves at its first bid.
CREATE VIEW auctions_without_bids AS
SELECT a.id, a.seller FROM auction a
WHERE NOT EXISTS (SELECT 1 FROM bid b WHERE b.auction = a.id);

-- A window outer join: each bid with the other bidders on its auction in its window; a bid
-- alone in its window is written with NULLs when the window closes (final: no retraction).
CREATE VIEW window_partners AS
SELECT x.auction, x.bidder, y.bidder AS partner, x.window_start
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) x
LEFT JOIN TUMBLE(bid, date_time, INTERVAL '10' SECOND) y
  ON x.window_start = y.window_start AND x.window_end = y.window_end
 AND x.auction = y.auction AND x.bidder <> y.bidder;

-- A window anti join: the bids no other bidder contested in their window.
CREATE VIEW uncontested AS
SELECT x.auction, x.bidder, x.window_start
FROM windowed_bids x
WHERE NOT EXISTS (
    SELECT 1 FROM windowed_bids y
    WHERE y.window_start = x.window_start AND y.window_end = x.window_end
      AND y.auction = x.auction AND y.bidder <> x.bidder
);

-- A LEFT window join with an aggregate of the same window: the bids below their auction's
-- top price in their window get it; the top bids themselves match nothing (NULL).
CREATE VIEW bid_below_top AS
SELECT b.auction, b.bidder, b.price, m.top
FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) b
LEFT JOIN (SELECT auction, window_start, window_end, MAX(price) AS top
           FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
           GROUP BY auction, window_start, window_end) m
  ON b.window_start = m.window_start AND b.window_end = m.window_end
 AND b.auction = m.auction AND b.price < m.top;

-- Padded rows (NULL positions) joined further: their positions stay part of the key.
CREATE VIEW partners_with_seller AS
SELECT p.auction, p.bidder, p.partner, a.seller
FROM (SELECT x.auction, x.bidder, y.bidder AS partner
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) x
      LEFT JOIN TUMBLE(bid, date_time, INTERVAL '10' SECOND) y
        ON x.window_start = y.window_start AND x.window_end = y.window_end
       AND x.auction = y.auction AND x.bidder <> y.bidder) p
JOIN auction a ON p.auction = a.id;

-- NOT IN over columns that cannot be NULL is an anti join: bids on auctions not seen yet.
CREATE VIEW bids_on_unknown_auctions AS
SELECT auction, bidder FROM bid WHERE auction NOT IN (SELECT id FROM auction);

-- EXISTS against an aggregate of the same window writes each bid once, so it need not
-- compare every GROUP BY column: the bids of windows where some auction had two bids.
CREATE VIEW bids_in_busy_windows AS
SELECT b.auction, b.bidder, b.window_start FROM windowed_bids b
WHERE EXISTS (
    SELECT 1 FROM (SELECT auction, window_start, window_end, COUNT(*) AS n
                   FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
                   GROUP BY auction, window_start, window_end) c
    WHERE c.window_start = b.window_start AND c.window_end = b.window_end AND c.n >= 2
);
