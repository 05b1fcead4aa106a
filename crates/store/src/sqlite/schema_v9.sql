-- Version 9: delivery lanes and priorities.
--
-- The dispatcher delivers each channel separately (a slow webhook receiver does not hold up
-- email) and, within a channel, transactional messages (double opt-in confirmations, test
-- sends: priority 0) before journey messages (1) before bulk sends (2).
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
UPDATE messages SET priority = 0 WHERE journey_id IS NULL;

DROP INDEX messages_due;
-- By channel, priority, journey (none for transactional and bulk messages) and due time: the
-- journeys' messages are read per journey, so that the journeys take turns and a burst of one
-- (a segment entering at once) does not hold up the others' messages behind it.
CREATE INDEX messages_due ON messages (channel, priority, journey_id, next_attempt_at)
    WHERE status = 'queued';
-- When the next message of any channel is due (the dispatcher's sleep).
CREATE INDEX messages_next_attempt ON messages (next_attempt_at) WHERE status = 'queued';
