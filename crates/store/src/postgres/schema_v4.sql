-- Version 4: each segment's size over time (see concerns/audiences.rs, `SegmentHistory`).

-- How many contacts entered and left a segment in one hour (`hour_at`: the start of the UTC
-- hour, in milliseconds). Written when the transaction that changes memberships commits, as
-- increments only: the members at any time are the sum of every hour up to it, so a write
-- never reads the current size first, and transactions of several processes add to the same
-- hour without losing each other's counts. Counts only: nothing here says who.
CREATE TABLE segment_history (
    segment_id TEXT COLLATE "C" NOT NULL,
    hour_at    BIGINT NOT NULL,
    entered    BIGINT NOT NULL DEFAULT 0,
    exited     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (segment_id, hour_at)
);

-- History starts with the members of today, each in the hour it entered; who entered and
-- left before this version is not known.
INSERT INTO segment_history (segment_id, hour_at, entered, exited)
SELECT segment_id, entered_at - entered_at % 3600000, COUNT(*), 0
FROM segment_members GROUP BY segment_id, entered_at - entered_at % 3600000;
