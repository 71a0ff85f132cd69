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

-- A restart between a forgotten auction and the forgetting of the bid it matched: the bid
-- must still count as matched (its flag is checkpointed, since restore cannot work it out
-- from an auction that is gone), so it is never written padded next to its pair.
CREATE VIEW recent_enriched WITH (state_ttl = '10s') AS
SELECT b.auction, b.price, a.category
FROM bid b LEFT JOIN auction a ON b.auction = a.id;
