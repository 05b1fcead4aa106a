-- Version 10: broadcasts, one message to a whole audience (see concerns/broadcasts.rs).

CREATE TABLE broadcasts (
    id               TEXT NOT NULL PRIMARY KEY,
    -- The BroadcastDocument (JSON) as saved.
    document         TEXT NOT NULL,
    status           TEXT NOT NULL,
    template_version INTEGER,
    audience_size    INTEGER,
    processed        INTEGER NOT NULL DEFAULT 0,
    released         INTEGER NOT NULL DEFAULT 0,
    -- The audience is gone through in contact-id order: the last id reached.
    cursor           INTEGER NOT NULL DEFAULT 0,
    audience_done    INTEGER NOT NULL DEFAULT 0,
    -- Recipients reached whose message waits for its time (rows of broadcast_recipients).
    waiting          INTEGER NOT NULL DEFAULT 0,
    send_at          INTEGER,
    rate_since       INTEGER,
    rate_base        INTEGER NOT NULL DEFAULT 0,
    next_run_at      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    -- An A/B test's winning template, when and why it was chosen.
    winner           TEXT,
    winner_at        INTEGER,
    winner_reason    TEXT
);
CREATE INDEX broadcasts_due ON broadcasts (next_run_at) WHERE status IN ('scheduled', 'sending');

-- Recipients reached whose message waits for its time (a local time, the end of quiet hours).
CREATE TABLE broadcast_recipients (
    broadcast_id TEXT NOT NULL,
    contact_id   INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_recipients_due ON broadcast_recipients (broadcast_id, due_at);

ALTER TABLE messages ADD COLUMN broadcast_id TEXT;
CREATE INDEX messages_broadcast ON messages (broadcast_id, status) WHERE broadcast_id IS NOT NULL;

-- A broadcast's messages belong to no enrollment: the index of a journey's messages by
-- enrollment leaves them out (one index fewer to write per broadcast message).
DROP INDEX messages_enrollment;
CREATE INDEX messages_enrollment ON messages (enrollment_id, node) WHERE enrollment_id IS NOT NULL;
