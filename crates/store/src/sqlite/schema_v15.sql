-- Version 15: broadcast reports (see concerns/reporting.rs and docs/reports.md, "Broadcasts").

-- Hourly roll-ups per broadcast and template (an A/B test's variants), kept current in the
-- transactions that change what they count, as `journey_rollups` is for journeys: a report
-- reads a few hundred rows, never a million messages. `hour_at`: the start of the UTC hour
-- the activity happened in (ms). `entered`: messages written (each recipient's one, suppressed
-- ones too); `converted` / `revenue`: recipients whose goal event came within the goal's
-- window after their message was sent, in the hour of the event. The other counters are the
-- journey roll-ups'.
CREATE TABLE broadcast_rollups (
    broadcast_id  TEXT NOT NULL,
    hour_at       INTEGER NOT NULL,
    template      TEXT NOT NULL,
    entered       INTEGER NOT NULL DEFAULT 0,
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
    converted     INTEGER NOT NULL DEFAULT 0,
    revenue       REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, hour_at, template)
) WITHOUT ROWID;

-- One row per converted recipient of a broadcast with a goal: the goal event, the message it
-- is credited to and its revenue as the event stated it. Erased with the contact.
CREATE TABLE broadcast_conversions (
    broadcast_id TEXT NOT NULL,
    contact_id   INTEGER NOT NULL,
    message_id   INTEGER NOT NULL,
    template     TEXT NOT NULL,
    event_seq    INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    revenue      REAL,
    currency     TEXT,
    PRIMARY KEY (broadcast_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_conversions_contact ON broadcast_conversions (contact_id);

-- The broadcasts' messages so far, each counted in the hour it happened.
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, entered)
SELECT broadcast_id, created_at - created_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND TRUE
GROUP BY broadcast_id, created_at - created_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET entered = broadcast_rollups.entered + excluded.entered;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, suppressed)
SELECT broadcast_id, created_at - created_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND status = 'suppressed'
GROUP BY broadcast_id, created_at - created_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET suppressed = broadcast_rollups.suppressed + excluded.suppressed;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, sent)
SELECT broadcast_id, sent_at - sent_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND sent_at IS NOT NULL
GROUP BY broadcast_id, sent_at - sent_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET sent = broadcast_rollups.sent + excluded.sent;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, delivered)
SELECT broadcast_id, sent_at - sent_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND sent_at IS NOT NULL AND status = 'sent'
GROUP BY broadcast_id, sent_at - sent_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET delivered = broadcast_rollups.delivered + excluded.delivered;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, failed)
SELECT broadcast_id, COALESCE(failed_at, created_at) - COALESCE(failed_at, created_at) % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND (status = 'failed' OR (status = 'bounced' AND sent_at IS NULL))
GROUP BY broadcast_id, COALESCE(failed_at, created_at) - COALESCE(failed_at, created_at) % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET failed = broadcast_rollups.failed + excluded.failed;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, bounced)
SELECT broadcast_id, COALESCE(failed_at, created_at) - COALESCE(failed_at, created_at) % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND status = 'bounced'
GROUP BY broadcast_id, COALESCE(failed_at, created_at) - COALESCE(failed_at, created_at) % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET bounced = broadcast_rollups.bounced + excluded.bounced;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, opened)
SELECT broadcast_id, opened_at - opened_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND opened_at IS NOT NULL
GROUP BY broadcast_id, opened_at - opened_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET opened = broadcast_rollups.opened + excluded.opened;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, clicked)
SELECT broadcast_id, clicked_at - clicked_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND clicked_at IS NOT NULL
GROUP BY broadcast_id, clicked_at - clicked_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET clicked = broadcast_rollups.clicked + excluded.clicked;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, human_opened)
SELECT broadcast_id, human_opened_at - human_opened_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND human_opened_at IS NOT NULL
GROUP BY broadcast_id, human_opened_at - human_opened_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET human_opened = broadcast_rollups.human_opened + excluded.human_opened;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, human_clicked)
SELECT broadcast_id, human_clicked_at - human_clicked_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND human_clicked_at IS NOT NULL
GROUP BY broadcast_id, human_clicked_at - human_clicked_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET human_clicked = broadcast_rollups.human_clicked + excluded.human_clicked;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, unsubscribed)
SELECT broadcast_id, unsubscribed_at - unsubscribed_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND unsubscribed_at IS NOT NULL
GROUP BY broadcast_id, unsubscribed_at - unsubscribed_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET unsubscribed = broadcast_rollups.unsubscribed + excluded.unsubscribed;
INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, complained)
SELECT broadcast_id, complained_at - complained_at % 3600000, template, COUNT(*) FROM messages
WHERE broadcast_id IS NOT NULL AND complained_at IS NOT NULL
GROUP BY broadcast_id, complained_at - complained_at % 3600000, template
ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET complained = broadcast_rollups.complained + excluded.complained;
