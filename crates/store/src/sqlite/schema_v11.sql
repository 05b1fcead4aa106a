-- Version 11: each segment's size over time (see concerns/audiences.rs, `SegmentHistory`).

-- How many contacts entered and left a segment in one hour (`hour_at`: the start of the UTC
-- hour, in milliseconds). Written in the transaction that changes a membership, as
-- increments only: the members at any time are the sum of every hour up to it, so a write
-- never reads the current size first. Counts only: nothing here says who.
CREATE TABLE segment_history (
    segment_id TEXT NOT NULL,
    hour_at    INTEGER NOT NULL,
    entered    INTEGER NOT NULL DEFAULT 0,
    exited     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (segment_id, hour_at)
) WITHOUT ROWID;

-- History starts with the members of today, each in the hour it entered; who entered and
-- left before this version is not known.
INSERT INTO segment_history (segment_id, hour_at, entered, exited)
SELECT segment_id, entered_at - entered_at % 3600000, COUNT(*), 0
FROM segment_members GROUP BY segment_id, entered_at - entered_at % 3600000;
