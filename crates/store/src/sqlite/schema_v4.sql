-- Version 4: time-based triggers and score decay.

-- When a date, inactivity or schedule trigger is next due: per contact (date, inactivity) or
-- for the whole journey (schedule: contact_id 0).
CREATE TABLE trigger_schedule (
    journey_id TEXT NOT NULL,
    node       TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    PRIMARY KEY (journey_id, node, contact_id)
) WITHOUT ROWID;
CREATE INDEX trigger_schedule_due ON trigger_schedule (due_at);

-- Score decay: points a `score` node gave, to be taken back at `due_at`.
CREATE TABLE score_expiries (
    id         INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL,
    score_trait TEXT NOT NULL,
    points     INTEGER NOT NULL,
    due_at     INTEGER NOT NULL
);
CREATE INDEX score_expiries_due ON score_expiries (due_at);
