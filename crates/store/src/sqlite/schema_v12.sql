-- Version 12: journey statistics per journey version, with delivered and bounced messages
-- (see concerns/reporting.rs).

-- `version`: the journey version of the enrollments counted (0: counted before statistics
-- were kept per version, when the journey had more than one version: which one is not
-- known). `delivered`: messages accepted by the receiving side and not bounced since.
-- `bounced`: messages the receiving side refused, at once (also counted in `failed`) or
-- after accepting them (counted in `sent`, no longer in `delivered`).
CREATE TABLE node_stats_v12 (
    journey_id TEXT NOT NULL,
    node       TEXT NOT NULL,
    entered    INTEGER NOT NULL DEFAULT 0,
    completed  INTEGER NOT NULL DEFAULT 0,
    exited     INTEGER NOT NULL DEFAULT 0,
    converted  INTEGER NOT NULL DEFAULT 0,
    sent       INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0,
    opened     INTEGER NOT NULL DEFAULT 0,
    clicked    INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    bounced    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, version, node)
) WITHOUT ROWID;

-- The counts so far belong to the journey's only version when it has one; else to 0. Until
-- now no bounce was recorded after a message was sent: every sent message was delivered.
-- Bounced ones are counted from the messages still kept.
INSERT INTO node_stats_v12 (journey_id, node, entered, completed, exited, converted, sent,
                            failed, suppressed, opened, clicked, version, delivered, bounced)
SELECT n.journey_id, n.node, n.entered, n.completed, n.exited, n.converted, n.sent, n.failed,
       n.suppressed, n.opened, n.clicked, COALESCE(v.only_version, 0), n.sent,
       COALESCE(b.bounced, 0)
FROM node_stats n
LEFT JOIN (SELECT journey_id, MAX(version) AS only_version FROM journey_versions
           GROUP BY journey_id HAVING COUNT(*) = 1) v ON v.journey_id = n.journey_id
LEFT JOIN (SELECT journey_id, node, COUNT(*) AS bounced FROM messages
           WHERE status = 'bounced' AND journey_id IS NOT NULL GROUP BY journey_id, node) b
       ON b.journey_id = n.journey_id AND b.node = n.node;

DROP TABLE node_stats;
ALTER TABLE node_stats_v12 RENAME TO node_stats;

