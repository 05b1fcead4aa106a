-- Version 13: what journeys earn, over time (see concerns/reporting.rs and docs/reports.md).

-- Hourly roll-ups per journey, version and node, kept current in the transactions that change
-- what they count, so that a report reads a few hundred rows, never the messages.
-- `hour_at`: the start of the UTC hour the activity happened in (ms). Counters as in
-- `node_stats`, plus: `human_opened` / `human_clicked` (unique opens and clicks not made by a
-- machine: privacy proxies, link scanners), `unsubscribed` and `complained` (messages whose
-- recipient unsubscribed through them or reported them as spam), and `attributed` /
-- `revenue`: conversions credited to this node as the last touch, and their revenue in the
-- journey goal's currency. `delivered` of a message that bounces later is taken back in the
-- hour it was sent.
CREATE TABLE journey_rollups (
    journey_id    TEXT NOT NULL,
    hour_at       INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    node          TEXT NOT NULL,
    entered       INTEGER NOT NULL DEFAULT 0,
    completed     INTEGER NOT NULL DEFAULT 0,
    exited        INTEGER NOT NULL DEFAULT 0,
    converted     INTEGER NOT NULL DEFAULT 0,
    sent          INTEGER NOT NULL DEFAULT 0,
    delivered     INTEGER NOT NULL DEFAULT 0,
    bounced       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    opened        INTEGER NOT NULL DEFAULT 0,
    clicked       INTEGER NOT NULL DEFAULT 0,
    human_opened  INTEGER NOT NULL DEFAULT 0,
    human_clicked INTEGER NOT NULL DEFAULT 0,
    unsubscribed  INTEGER NOT NULL DEFAULT 0,
    complained    INTEGER NOT NULL DEFAULT 0,
    attributed    INTEGER NOT NULL DEFAULT 0,
    revenue       REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, hour_at, version, node)
) WITHOUT ROWID;
-- The overview across journeys reads a range of hours of every journey.
CREATE INDEX journey_rollups_hour ON journey_rollups (hour_at);

-- Reaction times (from a message's send to its first human open or click, or to the
-- conversion it is credited with), as counts per logarithmic bucket: `bucket` b holds times
-- from 2^(b/4) - 1 seconds up to 2^((b+1)/4) - 1, so a median read from it is within 19%.
CREATE TABLE reaction_rollups (
    journey_id TEXT NOT NULL,
    hour_at    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    node       TEXT NOT NULL,
    reaction   TEXT NOT NULL,
    bucket     INTEGER NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, hour_at, version, node, reaction, bucket)
) WITHOUT ROWID;

-- One row per converted enrollment: the goal event that converted it (while the enrollment
-- ran, or after it ended within the conversion window), the node and message credited with
-- it (last touch) and its revenue as the event stated it.
CREATE TABLE conversions (
    enrollment_id INTEGER PRIMARY KEY,
    contact_id    INTEGER NOT NULL,
    journey_id    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    node          TEXT,
    message_id    INTEGER,
    event_seq     INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    revenue       REAL,
    currency      TEXT
);
CREATE INDEX conversions_contact ON conversions (contact_id);
CREATE INDEX conversions_journey ON conversions (journey_id, at);

-- A message's first open and click by a person (not a machine), and when its recipient
-- unsubscribed through it or complained about it.
ALTER TABLE messages ADD COLUMN human_opened_at INTEGER;
ALTER TABLE messages ADD COLUMN human_clicked_at INTEGER;
ALTER TABLE messages ADD COLUMN unsubscribed_at INTEGER;
ALTER TABLE messages ADD COLUMN complained_at INTEGER;

-- The counts so far, in the hour of each journey's last activity (when they happened was not
-- kept); every open and click so far counts as a person's. Conversions so far are credited to
-- the node the enrollment ended at, in the hour it ended.
INSERT INTO journey_rollups (journey_id, hour_at, version, node, entered, completed, exited,
                             converted, sent, delivered, bounced, failed, suppressed, opened,
                             clicked, human_opened, human_clicked)
SELECT n.journey_id, COALESCE(j.last_activity_at, 0) - COALESCE(j.last_activity_at, 0) % 3600000,
       n.version, n.node, n.entered, n.completed, n.exited, n.converted, n.sent, n.delivered,
       n.bounced, n.failed, n.suppressed, n.opened, n.clicked, n.opened, n.clicked
FROM node_stats n LEFT JOIN journeys j ON j.id = n.journey_id;

INSERT INTO conversions (enrollment_id, contact_id, journey_id, version, node, event_seq, at)
SELECT id, contact_id, journey_id, version, node, 0, updated_at FROM enrollments
WHERE status = 'converted';

INSERT INTO journey_rollups (journey_id, hour_at, version, node, attributed)
SELECT journey_id, at - at % 3600000, version, node, COUNT(*) FROM conversions
GROUP BY journey_id, at - at % 3600000, version, node
ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET attributed = excluded.attributed;

UPDATE messages SET human_opened_at = opened_at, human_clicked_at = clicked_at
WHERE opened_at IS NOT NULL;
