-- Version 8: template versions, pinned by the journey versions that send them.
--
-- Every change of a template's definition makes a new, immutable version; `templates` holds
-- the current one (its number in `version`). Publishing a journey pins the current version of
-- each template it sends (`journey_version_templates`), so that contacts finish on the copy of
-- the version they entered, whatever is edited later. A deleted template keeps its versions:
-- the journey versions that pinned them still send them.
ALTER TABLE templates ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE template_versions (
    template_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (template_id, version)
) WITHOUT ROWID;

INSERT INTO template_versions (template_id, version, definition, created_at)
SELECT id, 1, definition, updated_at FROM templates;

CREATE TABLE journey_version_templates (
    journey_id       TEXT NOT NULL,
    version          INTEGER NOT NULL,
    template_id      TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version, template_id)
) WITHOUT ROWID;

-- Versions published before this migration pin the templates as they are now (their only
-- version). A document that cannot be read, or a node that is not an object, pins nothing
-- (the CASEs keep the JSON functions from failing on them).
INSERT OR IGNORE INTO journey_version_templates (journey_id, version, template_id, template_version)
SELECT v.journey_id, v.version, json_extract(CASE WHEN n.type = 'object' THEN n.value END, '$.template'), 1
FROM journey_versions v,
     json_each(CASE WHEN json_valid(v.document) AND json_type(v.document, '$.nodes') = 'array'
                    THEN v.document ELSE '{"nodes": []}' END, '$.nodes') n
WHERE json_extract(CASE WHEN n.type = 'object' THEN n.value END, '$.type') IN ('send_email', 'send_sms')
  AND json_extract(CASE WHEN n.type = 'object' THEN n.value END, '$.template') IN (SELECT id FROM templates);
