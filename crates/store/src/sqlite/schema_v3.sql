-- Version 3: which orders contain which products, for "frequently bought together"
-- recommendations (see waymark_core::recommend).

-- One row per `Order Completed` event and product id in its `properties.products` (the
-- `product_id`, or the `sku` when there is none; entries without either are left out).
-- Kept by the trigger below for every inserted event, so no code path can forget it; the
-- product lists themselves stay in `events.properties`.
CREATE TABLE order_products (
    product_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (product_id, seq)
) WITHOUT ROWID;

-- Entries that are not objects are skipped (json_extract of a plain string would fail the
-- insert of the event itself).
CREATE TRIGGER events_order_products AFTER INSERT ON events
WHEN NEW.name = 'Order Completed' AND json_valid(NEW.properties)
BEGIN
    INSERT OR IGNORE INTO order_products (product_id, seq)
    SELECT id, NEW.seq FROM (
        SELECT COALESCE(NULLIF(TRIM(json_extract(p.value, '$.product_id')), ''),
                        NULLIF(TRIM(json_extract(p.value, '$.sku')), '')) AS id
        FROM json_each(NEW.properties, '$.products') AS p
        WHERE p.type = 'object'
    ) WHERE id IS NOT NULL;
END;

-- Orders recorded before this version.
INSERT OR IGNORE INTO order_products (product_id, seq)
SELECT id, seq FROM (
    SELECT e.seq AS seq,
           COALESCE(NULLIF(TRIM(json_extract(p.value, '$.product_id')), ''),
                    NULLIF(TRIM(json_extract(p.value, '$.sku')), '')) AS id
    FROM events e, json_each(e.properties, '$.products') AS p
    WHERE e.name = 'Order Completed' AND json_valid(e.properties) AND p.type = 'object'
) WHERE id IS NOT NULL;
