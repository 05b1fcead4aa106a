-- Version 6: retries for days, and requeueing failed messages.

-- When the current run of delivery attempts began: the first attempt, or the first after a
-- requeue. A temporary failure is retried until this plus the retry lifetime (`--retry-lifetime`).
ALTER TABLE messages ADD COLUMN first_attempt_at INTEGER;
-- When the message was marked failed or bounced (the requeue filter's time range).
ALTER TABLE messages ADD COLUMN failed_at INTEGER;
-- When the message was last put back in the queue by a requeue; its queue age counts from here.
ALTER TABLE messages ADD COLUMN requeued_at INTEGER;

-- A message that was being retried when this version was installed keeps its lifetime from its
-- creation (the nearest known time to its first attempt).
UPDATE messages SET first_attempt_at = created_at WHERE status = 'queued' AND attempts > 0;

-- The queue gauges (depth and oldest age per channel) read only the queued messages.
CREATE INDEX messages_queued_channel ON messages (channel, COALESCE(requeued_at, created_at))
    WHERE status = 'queued';
