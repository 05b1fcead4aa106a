-- Waymark schema, version 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE contacts (
    id         INTEGER PRIMARY KEY,
    user_id    TEXT UNIQUE,
    email      TEXT,
    phone      TEXT,
    timezone   TEXT,
    traits     TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX contacts_email ON contacts (email) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone ON contacts (phone) WHERE phone IS NOT NULL;

-- Anonymous ids seen for a contact (before or after they identified).
CREATE TABLE anonymous_ids (
    anonymous_id TEXT PRIMARY KEY,
    contact_id   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX anonymous_ids_contact ON anonymous_ids (contact_id);

-- Every accepted event, in ingest order (seq). contact_id is set when the engine processes it.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    message_id   TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    user_id      TEXT,
    anonymous_id TEXT,
    previous_id  TEXT,
    properties   TEXT NOT NULL,
    timestamp    INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    contact_id   INTEGER
);
CREATE INDEX events_contact ON events (contact_id, name, seq) WHERE contact_id IS NOT NULL;

CREATE TABLE lists (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE list_members (
    list_id    INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (list_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX list_members_contact ON list_members (contact_id);

CREATE TABLE templates (
    id         TEXT PRIMARY KEY,
    channel    TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE journeys (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL,
    draft             TEXT NOT NULL,
    live_version      INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    first_activity_at INTEGER,
    last_activity_at  INTEGER
) WITHOUT ROWID;

CREATE TABLE journey_versions (
    journey_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    document     TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version)
) WITHOUT ROWID;

-- One contact's trip through one journey version. wake_at is the durable timer.
CREATE TABLE enrollments (
    id          INTEGER PRIMARY KEY,
    journey_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    contact_id  INTEGER NOT NULL,
    key         TEXT,
    node        TEXT NOT NULL,
    status      TEXT NOT NULL,
    wake_at     INTEGER,
    entered_at  INTEGER NOT NULL,
    entered_seq INTEGER NOT NULL,
    consumed_seq INTEGER NOT NULL DEFAULT 0,
    visits      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX enrollments_contact ON enrollments (contact_id, journey_id);
CREATE INDEX enrollments_wake ON enrollments (wake_at) WHERE wake_at IS NOT NULL;
-- Serves the per-journey counts by status and the "waiting now" count per node.
CREATE INDEX enrollments_journey ON enrollments (journey_id, status, node);

-- What each step did, for the contact timeline.
CREATE TABLE steps (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    node          TEXT NOT NULL,
    action        TEXT NOT NULL,
    detail        TEXT
);
CREATE INDEX steps_enrollment ON steps (enrollment_id);

-- The outbox: every message, written with the step that caused it, dispatched afterwards.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    contact_id      INTEGER NOT NULL,
    enrollment_id   INTEGER,
    journey_id      TEXT,
    node            TEXT,
    template        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT,
    subject         TEXT,
    html            TEXT,
    text            TEXT,
    status          TEXT NOT NULL,
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    opened_at       INTEGER,
    clicked_at      INTEGER,
    -- Marketing email: the signed one-click unsubscribe URL (List-Unsubscribe, RFC 8058).
    unsubscribe_url TEXT
);
CREATE INDEX messages_contact ON messages (contact_id, id);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_enrollment ON messages (enrollment_id, node);

-- Per-node counters, updated in the same transaction as the steps they count.
CREATE TABLE node_stats (
    journey_id TEXT NOT NULL,
    node       TEXT NOT NULL,
    entered    INTEGER NOT NULL DEFAULT 0,
    completed  INTEGER NOT NULL DEFAULT 0,
    exited     INTEGER NOT NULL DEFAULT 0,
    converted  INTEGER NOT NULL DEFAULT 0,
    sent       INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0,
    -- Unique opens and clicks of the node's messages (the first of each per message).
    opened     INTEGER NOT NULL DEFAULT 0,
    clicked    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, node)
) WITHOUT ROWID;

-- Addresses (email, lower-cased) and numbers (E.164) that must not receive messages on a
-- channel. reason: hard_bounce, complaint, unsubscribe, manual. source: where it came from
-- (smtp, ses, postmark, webhook, twilio, api).
CREATE TABLE suppressions (
    channel    TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
) WITHOUT ROWID;

-- Consent per contact, channel and topic (`*` is all marketing on the channel). status:
-- subscribed, pending (double opt-in not confirmed) or unsubscribed. No row is consent
-- (imported and identified contacts); transactional messages ignore this table.
CREATE TABLE subscriptions (
    contact_id INTEGER NOT NULL,
    channel    TEXT NOT NULL,
    topic      TEXT NOT NULL,
    status     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (contact_id, channel, topic)
) WITHOUT ROWID;
