-- Version 5: journey statistics per journey version, with delivered and bounced messages
-- (see concerns/reporting.rs).

-- `version`: the journey version of the enrollments counted (0: counted before statistics
-- were kept per version, when the journey had more than one version: which one is not
-- known). `delivered`: messages accepted by the receiving side and not bounced since.
-- `bounced`: messages the receiving side refused, at once (also counted in `failed`) or
-- after accepting them (counted in `sent`, no longer in `delivered`).
ALTER TABLE node_stats ADD COLUMN version BIGINT NOT NULL DEFAULT 0,
                       ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0,
                       ADD COLUMN bounced BIGINT NOT NULL DEFAULT 0;

-- The counts so far belong to the journey's only version when it has one; else to 0. Until
-- now no bounce was recorded after a message was sent: every sent message was delivered.
-- Bounced ones are counted from the messages still kept.
UPDATE node_stats n SET version = v.only_version
FROM (SELECT journey_id, MAX(version) AS only_version FROM journey_versions
      GROUP BY journey_id HAVING COUNT(*) = 1) v
WHERE v.journey_id = n.journey_id;
UPDATE node_stats SET delivered = sent;
UPDATE node_stats n SET bounced = b.bounced
FROM (SELECT journey_id, node, COUNT(*) AS bounced FROM messages
      WHERE status = 'bounced' AND journey_id IS NOT NULL GROUP BY journey_id, node) b
WHERE b.journey_id = n.journey_id AND b.node = n.node;

ALTER TABLE node_stats DROP CONSTRAINT node_stats_pkey,
                       ADD PRIMARY KEY (journey_id, version, node);

