-- A tenant file: the records of one tenant and the log of their changes.

-- Records of every collection. The fields a client sends are kept as JSON in
-- data; the fields that lists filter and sort on are copied into columns so
-- that every documented filter is served by an index.
CREATE TABLE records (
	rid        INTEGER PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE,
	collection TEXT NOT NULL,
	-- Position in the tenant's change order: taken from change_seq on every
	-- create, update and delete, so lists in seq order run by last change.
	seq        INTEGER NOT NULL UNIQUE,
	source_id  TEXT,
	remote_id  TEXT,
	status     TEXT,
	type       TEXT,
	event_id   TEXT,
	data       TEXT NOT NULL,
	raw_data   TEXT,
	version    INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	deleted_at TEXT
) STRICT;

CREATE INDEX records_collection_seq ON records (collection, seq);
CREATE UNIQUE INDEX records_source_remote ON records (source_id, remote_id)
	WHERE source_id IS NOT NULL AND remote_id IS NOT NULL;

-- The next position in the change order.
CREATE TABLE change_seq (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	next INTEGER NOT NULL
) STRICT;
INSERT INTO change_seq (id, next) VALUES (1, 1);
