-- A tenant file: the records of one tenant and the log of their changes.

-- Records of every collection. The fields a client sets are kept as a JSON
-- object in data (sourceRawData apart, in raw_data); the fields that lists
-- filter on are copied into columns so that every documented filter is
-- served by an index. A deleted record stays as a tombstone: deleted_at set,
-- its filter columns cleared.
CREATE TABLE records (
	rid        INTEGER PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE,
	collection TEXT NOT NULL,
	-- Position in the tenant's change order, renewed on every change, so
	-- that lists in seq order run from the least to the most recently
	-- changed record. updated_at never decreases as seq grows.
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

CREATE INDEX records_all ON records (collection, seq);
CREATE INDEX records_live ON records (collection, seq) WHERE deleted_at IS NULL;
CREATE INDEX records_status ON records (collection, status, seq) WHERE status IS NOT NULL;
CREATE INDEX records_type ON records (collection, type, seq) WHERE type IS NOT NULL;
CREATE INDEX records_source ON records (collection, source_id, seq) WHERE source_id IS NOT NULL;
CREATE INDEX records_remote ON records (collection, remote_id, seq) WHERE remote_id IS NOT NULL;
CREATE INDEX records_updated ON records (updated_at, seq);
-- A sourceId and remoteId pair names one record in the tenant.
CREATE UNIQUE INDEX records_source_remote ON records (source_id, remote_id)
	WHERE source_id IS NOT NULL AND remote_id IS NOT NULL;

-- Links between records, from relationships.linked*Ids and sessions.eventId.
-- Each link a record declares is stored in both directions, so that a
-- linked*Id filter finds records from either side with one index lookup.
-- owner_id is the record that declared the link.
CREATE TABLE links (
	a_id     TEXT NOT NULL,
	b_coll   TEXT NOT NULL,
	b_id     TEXT NOT NULL,
	owner_id TEXT NOT NULL,
	PRIMARY KEY (a_id, b_coll, b_id, owner_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX links_owner ON links (owner_id);

-- Full-text search over names and e-mail addresses; rowid is records.rid.
CREATE VIRTUAL TABLE records_fts USING fts5 (
	text,
	content = '',
	contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);

-- The outbox: every change event, written in the same transaction as the
-- change. Webhook delivery and the event stream read from here.
CREATE TABLE changes (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	event_type TEXT NOT NULL,
	record_id  TEXT NOT NULL,
	event_ids  TEXT NOT NULL DEFAULT '[]',
	at         TEXT NOT NULL,
	data       TEXT NOT NULL
) STRICT;

-- Responses to POST requests sent with an Idempotency-Key, kept for 24 hours.
CREATE TABLE idempotency (
	key_id       TEXT NOT NULL,
	idem_key     TEXT NOT NULL,
	request_hash TEXT NOT NULL,
	status       INTEGER NOT NULL,
	headers      TEXT NOT NULL,
	body         BLOB NOT NULL,
	created_at   TEXT NOT NULL,
	PRIMARY KEY (key_id, idem_key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_created_at ON idempotency (created_at);

-- The tenant's clock: the next change position and the latest change time,
-- which keeps updated_at from going backwards when the system clock does.
CREATE TABLE change_seq (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	next    INTEGER NOT NULL,
	last_at TEXT NOT NULL
) STRICT;
INSERT INTO change_seq (id, next, last_at) VALUES (1, 1, '');
