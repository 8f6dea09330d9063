-- Change events: webhook subscriptions and their deliveries, the log that
-- puts the change events of every tenant into one order, and what the
-- dispatcher needs to find undelivered changes without opening every
-- tenant file. Record data stays in the tenant files: the catalog keeps
-- ids, types and positions only.

-- A webhook subscription. tenant_id NULL hears every tenant (platform
-- admins only). The owner columns are the creating key as it was, so that
-- delivery can check the owner may read each change; owner_key_id is NULL
-- for the operator's root key.
CREATE TABLE webhooks (
	id              TEXT PRIMARY KEY,
	tenant_id       TEXT REFERENCES tenants (id) ON DELETE CASCADE,
	url             TEXT NOT NULL,
	event_types     TEXT NOT NULL,
	description     TEXT NOT NULL DEFAULT '',
	-- The signing secret sealed with AES-256-GCM under the server's webhook
	-- key (<data-dir>/webhook.key), base64; never the secret itself.
	secret          TEXT NOT NULL,
	owner_key_id    TEXT,
	owner_tenant_id TEXT,
	owner_role      TEXT NOT NULL CHECK (owner_role IN ('admin', 'event_manager', 'read_only')),
	owner_event_ids TEXT NOT NULL DEFAULT '[]',
	status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
	disabled_reason TEXT,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL
) STRICT;

CREATE INDEX webhooks_tenant_id ON webhooks (tenant_id);

-- The change log: every change event of every tenant, in the order the
-- dispatcher took them from the tenant files (and from tenant_changes).
-- gseq is the position the event stream resumes from. The event itself is
-- read from where it was written: the tenant file's changes table at
-- source_seq, or tenant_changes at source_seq when from_catalog is 1.
CREATE TABLE change_log (
	gseq         INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id    TEXT NOT NULL,
	from_catalog INTEGER NOT NULL DEFAULT 0 CHECK (from_catalog IN (0, 1)),
	source_seq   INTEGER NOT NULL,
	change_id    TEXT NOT NULL,
	event_type   TEXT NOT NULL,
	event_ids    TEXT NOT NULL DEFAULT '[]',
	at           TEXT NOT NULL
) STRICT;

CREATE INDEX change_log_tenant_id ON change_log (tenant_id, gseq);
CREATE INDEX change_log_at ON change_log (at);

-- One delivery of one change event to one webhook. id is also the
-- webhook-id header, the same on every attempt. claimed is set while this
-- server holds the delivery in memory to send it; a start clears it.
CREATE TABLE webhook_deliveries (
	id              TEXT PRIMARY KEY,
	webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	tenant_id       TEXT NOT NULL,
	gseq            INTEGER NOT NULL,
	change_id       TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT,
	last_attempt_at TEXT,
	response_status INTEGER,
	last_error      TEXT,
	claimed         INTEGER NOT NULL DEFAULT 0,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL,
	UNIQUE (webhook_id, change_id)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
	WHERE status = 'pending' AND claimed = 0;
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (claimed) WHERE claimed = 1;
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);

-- Per tenant: how far the dispatcher has taken the tenant file's changes
-- into change_log (cursor, and the change id there, to notice a file that
-- was replaced), and marked_at, set before a write to the tenant and
-- cleared once the dispatcher has caught up and the tenant has been quiet.
-- The dispatcher reads only the marked rows, so finding work costs the
-- number of recently written tenants, never the number of tenants.
CREATE TABLE change_feeds (
	tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	cursor    INTEGER NOT NULL DEFAULT 0,
	cursor_id TEXT,
	marked_at TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX change_feeds_marked_at ON change_feeds (marked_at) WHERE marked_at IS NOT NULL;

-- The outbox of tenant.created, tenant.updated and tenant.deleted, written
-- by the triggers below in the same transaction as the change to tenants.
CREATE TABLE tenant_changes (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	event_type TEXT NOT NULL,
	tenant_id  TEXT NOT NULL,
	at         TEXT NOT NULL,
	data       TEXT NOT NULL
) STRICT;

-- How far the dispatcher has taken tenant_changes into change_log.
CREATE TABLE change_state (
	id                    INTEGER PRIMARY KEY CHECK (id = 1),
	tenant_changes_cursor INTEGER NOT NULL
) STRICT;
INSERT INTO change_state (id, tenant_changes_cursor) VALUES (1, 0);

-- A random UUID (version 4) for the id of each tenant change event.
CREATE VIEW new_change_id AS SELECT
	lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
	substr(lower(hex(randomblob(2))), 2) || '-' ||
	substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
	lower(hex(randomblob(6))) AS id;

CREATE TRIGGER tenants_created AFTER INSERT ON tenants BEGIN
	INSERT INTO tenant_changes (id, event_type, tenant_id, at, data)
	SELECT id, 'tenant.created', new.id, new.updated_at,
		json_object('id', new.id, 'name', new.name, 'status', new.status,
			'createdAt', new.created_at, 'updatedAt', new.updated_at)
	FROM new_change_id;
	-- A new tenant's file has no changes yet: its feed starts at the start.
	INSERT OR IGNORE INTO change_feeds (tenant_id, cursor) VALUES (new.id, 0);
END;

CREATE TRIGGER tenants_updated AFTER UPDATE OF name, status, updated_at ON tenants
WHEN old.name IS NOT new.name OR old.status IS NOT new.status OR old.updated_at IS NOT new.updated_at
BEGIN
	INSERT INTO tenant_changes (id, event_type, tenant_id, at, data)
	SELECT id, 'tenant.updated', new.id, new.updated_at,
		json_object('id', new.id, 'name', new.name, 'status', new.status,
			'createdAt', new.created_at, 'updatedAt', new.updated_at)
	FROM new_change_id;
END;

CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants BEGIN
	INSERT INTO tenant_changes (id, event_type, tenant_id, at, data)
	SELECT id, 'tenant.deleted', old.id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
		json_object('id', old.id, 'name', old.name, 'status', old.status,
			'createdAt', old.created_at, 'updatedAt', old.updated_at)
	FROM new_change_id;
END;
