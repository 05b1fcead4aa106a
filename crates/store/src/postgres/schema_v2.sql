-- Several processes share the engine's work: it is partitioned by contact (32 partitions, a
-- contact's partition is its id modulo 32), and each process leases some of the partitions.
-- See `postgres/cluster.rs` and docs/scaling.md.

-- The partition an event or a message belongs to, fixed when it is written: a merge may move
-- a contact's rows to a contact of another partition, and an event must still be processed
-- behind its partition's cursor, a message delivered by one process only.
ALTER TABLE events ADD COLUMN partition SMALLINT NOT NULL DEFAULT 0;
UPDATE events SET partition = (COALESCE(contact_id, 0) % 32)::SMALLINT;
CREATE INDEX events_partition ON events (partition, seq);

ALTER TABLE messages ADD COLUMN partition SMALLINT NOT NULL DEFAULT 0;
UPDATE messages SET partition = (contact_id % 32)::SMALLINT;

-- Each partition's processed mark (replaces meta `processed_seq`, where it starts from).
CREATE TABLE partition_cursors (
    partition     SMALLINT PRIMARY KEY,
    processed_seq BIGINT NOT NULL
);
INSERT INTO partition_cursors (partition, processed_seq)
SELECT p, COALESCE((SELECT value::BIGINT FROM meta WHERE key = 'processed_seq'), 0)
FROM generate_series(0, 31) AS p;

-- The processes running the engine, and when each was last heard from (the database's clock,
-- so that machines whose clocks differ agree on whose lease ran out).
-- `node` names where a process runs (its host and data directory): one process at a time
-- per node, so a process starting on a node may take over its dead predecessor's partitions
-- at once.
CREATE TABLE processes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    node         TEXT COLLATE "C" NOT NULL,
    host         TEXT COLLATE "C" NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Who runs each partition. A lease lasts while its owner's heartbeat is fresh; an engine
-- transaction holds its partitions' rows FOR SHARE, so that a takeover waits for it to end.
CREATE TABLE partition_leases (
    partition   SMALLINT PRIMARY KEY,
    owner       TEXT COLLATE "C",
    acquired_at TIMESTAMPTZ
);
INSERT INTO partition_leases (partition) SELECT p FROM generate_series(0, 31) AS p;
