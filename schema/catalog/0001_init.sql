-- The catalog: the control plane of one Runmerge server.

CREATE TABLE tenants (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
	created_at     TEXT NOT NULL,
	updated_at     TEXT NOT NULL,
	-- When the tenant's records last changed, so that work across tenants
	-- (lists, backups, deliveries) can skip tenants without opening them.
	changed_at     TEXT,
	-- The tenant file's schema version as last seen, and the last migration error.
	schema_version INTEGER NOT NULL DEFAULT 0,
	migrate_error  TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX tenants_changed_at ON tenants (changed_at) WHERE changed_at IS NOT NULL;

CREATE TABLE keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,
	role         TEXT NOT NULL CHECK (role IN ('admin', 'event_manager', 'read_only')),
	event_ids    TEXT NOT NULL DEFAULT '[]',
	-- Hex SHA-256 of the secret; the secret itself is never stored.
	hash         TEXT NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	expires_at   TEXT,
	revoked_at   TEXT,
	last_used_at TEXT
) STRICT;

CREATE INDEX keys_tenant_id ON keys (tenant_id);

-- The collections in which each tenant has ever had a record, so that a
-- list across tenants opens only the files that may hold matches.
CREATE TABLE tenant_collections (
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	collection TEXT NOT NULL,
	PRIMARY KEY (collection, tenant_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX tenant_collections_tenant_id ON tenant_collections (tenant_id);
