-- Version 6: what journeys earn, over time (see concerns/reporting.rs and docs/reports.md).

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
    journey_id    TEXT COLLATE "C" NOT NULL,
    hour_at       BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    node          TEXT COLLATE "C" NOT NULL,
    entered       BIGINT NOT NULL DEFAULT 0,
    completed     BIGINT NOT NULL DEFAULT 0,
    exited        BIGINT NOT NULL DEFAULT 0,
    converted     BIGINT NOT NULL DEFAULT 0,
    sent          BIGINT NOT NULL DEFAULT 0,
    delivered     BIGINT NOT NULL DEFAULT 0,
    bounced       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    suppressed    BIGINT NOT NULL DEFAULT 0,
    opened        BIGINT NOT NULL DEFAULT 0,
    clicked       BIGINT NOT NULL DEFAULT 0,
    human_opened  BIGINT NOT NULL DEFAULT 0,
    human_clicked BIGINT NOT NULL DEFAULT 0,
    unsubscribed  BIGINT NOT NULL DEFAULT 0,
    complained    BIGINT NOT NULL DEFAULT 0,
    attributed    BIGINT NOT NULL DEFAULT 0,
    revenue       DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, hour_at, version, node)
);
-- The overview across journeys reads a range of hours of every journey.
CREATE INDEX journey_rollups_hour ON journey_rollups (hour_at);

-- Reaction times (from a message's send to its first human open or click, or to the
-- conversion it is credited with), as counts per logarithmic bucket: `bucket` b holds times
-- from 2^(b/4) - 1 seconds up to 2^((b+1)/4) - 1, so a median read from it is within 19%.
CREATE TABLE reaction_rollups (
    journey_id TEXT COLLATE "C" NOT NULL,
    hour_at    BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    node       TEXT COLLATE "C" NOT NULL,
    reaction   TEXT COLLATE "C" NOT NULL,
    bucket     BIGINT NOT NULL,
    count      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, hour_at, version, node, reaction, bucket)
);

-- One row per converted enrollment: the goal event that converted it (while the enrollment
-- ran, or after it ended within the conversion window), the node and message credited with
-- it (last touch) and its revenue as the event stated it.
CREATE TABLE conversions (
    enrollment_id BIGINT PRIMARY KEY,
    contact_id    BIGINT NOT NULL,
    journey_id    TEXT COLLATE "C" NOT NULL,
    version       BIGINT NOT NULL,
    node          TEXT COLLATE "C",
    message_id    BIGINT,
    event_seq     BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    revenue       DOUBLE PRECISION,
    currency      TEXT COLLATE "C"
);
CREATE INDEX conversions_contact ON conversions (contact_id);
CREATE INDEX conversions_journey ON conversions (journey_id, at);

-- A message's first open and click by a person (not a machine), and when its recipient
-- unsubscribed through it or complained about it.
ALTER TABLE messages ADD COLUMN human_opened_at BIGINT, ADD COLUMN human_clicked_at BIGINT,
                     ADD COLUMN unsubscribed_at BIGINT, ADD COLUMN complained_at BIGINT;

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
