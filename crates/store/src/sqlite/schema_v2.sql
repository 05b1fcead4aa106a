-- Version 2: segments (kept current by the engine) and experiments.

-- A segment: a condition over contacts, stored in its JSON form (the text form is printed
-- from it).
CREATE TABLE segments (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    condition  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE segment_members (
    segment_id TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    entered_at INTEGER NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
) WITHOUT ROWID;

-- When time alone may change a contact's membership (a window edge, an anniversary): the
-- engine re-evaluates then. One row per segment and contact at most.
CREATE TABLE segment_checks (
    segment_id TEXT NOT NULL,
    contact_id INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX segment_checks_due ON segment_checks (due_at);

-- Experiment counts per journey, node and variant (all versions together).
CREATE TABLE experiment_variants (
    journey_id TEXT NOT NULL,
    node       TEXT NOT NULL,
    variant    TEXT NOT NULL,
    entered    INTEGER NOT NULL DEFAULT 0,
    converted  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, node, variant)
) WITHOUT ROWID;

-- A declared winner is final: new entrants take it.
CREATE TABLE experiment_winners (
    journey_id TEXT NOT NULL,
    node       TEXT NOT NULL,
    winner     TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    verdict    TEXT NOT NULL,
    PRIMARY KEY (journey_id, node)
) WITHOUT ROWID;

