-- Version 3: broadcasts, one message to a whole audience (see concerns/broadcasts.rs).

CREATE TABLE broadcasts (
    id               TEXT COLLATE "C" PRIMARY KEY,
    -- The BroadcastDocument (JSON) as saved.
    document         TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    template_version BIGINT,
    audience_size    BIGINT,
    processed        BIGINT NOT NULL DEFAULT 0,
    released         BIGINT NOT NULL DEFAULT 0,
    -- The audience is gone through in contact-id order: the last id reached.
    cursor           BIGINT NOT NULL DEFAULT 0,
    audience_done    BIGINT NOT NULL DEFAULT 0,
    -- Recipients reached whose message waits for its time (rows of broadcast_recipients).
    waiting          BIGINT NOT NULL DEFAULT 0,
    send_at          BIGINT,
    rate_since       BIGINT,
    rate_base        BIGINT NOT NULL DEFAULT 0,
    next_run_at      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    -- An A/B test's winning template, when and why it was chosen.
    winner           TEXT COLLATE "C",
    winner_at        BIGINT,
    winner_reason    TEXT COLLATE "C"
);
CREATE INDEX broadcasts_due ON broadcasts (next_run_at) WHERE status IN ('scheduled', 'sending');

-- Recipients reached whose message waits for its time (a local time, the end of quiet hours).
CREATE TABLE broadcast_recipients (
    broadcast_id TEXT COLLATE "C" NOT NULL,
    contact_id   BIGINT NOT NULL,
    due_at       BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, contact_id)
);
CREATE INDEX broadcast_recipients_due ON broadcast_recipients (broadcast_id, due_at);

ALTER TABLE messages ADD COLUMN broadcast_id TEXT COLLATE "C";
CREATE INDEX messages_broadcast ON messages (broadcast_id, status) WHERE broadcast_id IS NOT NULL;

-- A broadcast's messages belong to no enrollment: the index of a journey's messages by
-- enrollment leaves them out (one index fewer to write per broadcast message).
DROP INDEX messages_enrollment;
CREATE INDEX messages_enrollment ON messages (enrollment_id, node) WHERE enrollment_id IS NOT NULL;
