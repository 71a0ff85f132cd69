CREATE STREAM auction (
    id        BIGINT NOT NULL,
    category  BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 1, partition_key = 'id', idle_timeout = '5s');

CREATE STREAM bid (
    auction   BIGINT NOT NULL,
    price     BIGINT NOT NULL,
    date_time TIMESTAMP NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
) WITH (partitions = 1, partition_key = 'auction', idle_timeout = '5s');

-- An unbounded join whose state state_ttl bounds: each side's rows are forgotten once the
-- streams' watermark is 10 s past the one they arrived at. A bid arriving after its
-- auction was forgotten is written padded, and stays so (final) once forgotten itself; an
-- auction forgotten unmatched is written final.
CREATE VIEW recent_enriched WITH (state_ttl = '10s') AS
SELECT b.auction, b.price, a.category
FROM bid b LEFT JOIN auction a ON b.auction = a.id;

-- The same join without a TTL keeps everything: the late bid finds its auction.
CREATE VIEW enriched AS
SELECT b.auction, b.price, a.category
FROM bid b LEFT JOIN auction a ON b.auction = a.id;
