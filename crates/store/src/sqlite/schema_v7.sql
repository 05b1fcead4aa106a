-- Version 7: data protection (export and erasure of a contact) and its audit log.

-- Who exported or erased what, and when. Holds ids and row counts only, never the personal
-- data itself; kept after an erasure (it is the proof that the request was honoured).
-- actor: `admin_token`, or `session:<hash prefix>` for the web app's session.
-- action: `contact.export` or `contact.erase`. detail: JSON counts.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    contact_id INTEGER,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_contact ON audit_log (contact_id) WHERE contact_id IS NOT NULL;

-- Addresses of erased contacts, kept only as a keyed one-way hash (HMAC-SHA-256 of
-- `channel:normalised address` under the installation's `erasure_key` in `meta`), so that an
-- erased person is not messaged again after a later import, while the address itself is gone.
-- reason: the suppression the address had (hard_bounce, complaint, ...) or `erased`.
CREATE TABLE erased_addresses (
    channel      TEXT NOT NULL,
    address_hash TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, address_hash)
) WITHOUT ROWID;

-- The installation-wide key of those hashes: random, created once, kept with the data it
-- protects (a backup of the database file restores both; a key kept elsewhere and lost would
-- silently lift every erased person's suppression).
INSERT OR IGNORE INTO meta (key, value) VALUES ('erasure_key', lower(hex(randomblob(32))));

-- Erasing a contact removes the order lines of its events.
CREATE INDEX order_products_seq ON order_products (seq);
