-- Version 5: a contact that only ever came through the double opt-in form has consented to
-- nothing until it confirms. Until now it held a `pending` row for its topic alone, so
-- marketing without a topic (decided by the `*` row) still reached it. Such contacts (no user
-- id, an anonymous id from the form, no `*` row) get a `pending` `*` row.
INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at)
SELECT c.id, 'email', '*', 'pending', c.updated_at
FROM contacts c
WHERE c.user_id IS NULL
  AND EXISTS (SELECT 1 FROM anonymous_ids a
              WHERE a.contact_id = c.id AND a.anonymous_id LIKE 'subscribe:%')
  AND NOT EXISTS (SELECT 1 FROM anonymous_ids a
                  WHERE a.contact_id = c.id AND a.anonymous_id NOT LIKE 'subscribe:%')
  AND NOT EXISTS (SELECT 1 FROM subscriptions s
                  WHERE s.contact_id = c.id AND s.channel = 'email' AND s.topic = '*');
