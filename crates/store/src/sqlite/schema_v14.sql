-- Version 14: who left each node by which output, and the sends quiet hours deferred (see
-- concerns/reporting.rs and docs/reports.md).

-- Enrollments that left a node by one of its outputs, per journey, UTC hour and version, kept
-- in the step's transaction like `journey_rollups`.
CREATE TABLE output_rollups (
    journey_id TEXT NOT NULL,
    hour_at    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    node       TEXT NOT NULL,
    output     TEXT NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, hour_at, version, node, output)
) WITHOUT ROWID;

-- Sends that waited at their node for the end of quiet hours or a blocked date.
ALTER TABLE journey_rollups ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;

-- What the step log already says of the past.
INSERT INTO output_rollups (journey_id, hour_at, version, node, output, count)
SELECT e.journey_id, s.at - s.at % 3600000, e.version, s.node,
       COALESCE(json_extract(s.detail, '$.output'), 'next'), COUNT(*)
FROM steps s JOIN enrollments e ON e.id = s.enrollment_id
WHERE s.action = 'left' AND json_valid(s.detail)
GROUP BY 1, 2, 3, 4, 5;
