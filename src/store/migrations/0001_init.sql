-- cordon store schema, version 1. Written for SQLite and kept to the subset PostgreSQL also
-- accepts (docs/store.md lists the few differences the PG backend translates). Times are ms
-- since the Unix epoch, UTC; NULL means "not yet". JSON documents are kept as text.

CREATE TABLE tenants (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	max_trust_level TEXT NOT NULL,
	limits_json TEXT NOT NULL DEFAULT '{}',
	max_concurrent INTEGER NOT NULL DEFAULT 0,
	monthly_exec_seconds INTEGER NOT NULL DEFAULT 0,
	rate_rps INTEGER NOT NULL DEFAULT 0,
	rate_burst INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);

-- Only the sha256 of a key is stored; lookups go by that hash.
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants (id),
	hash_hex TEXT NOT NULL UNIQUE,
	prefix TEXT NOT NULL,
	is_admin INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE executions (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants (id),
	status TEXT NOT NULL
		CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	created_at INTEGER NOT NULL,
	started_at INTEGER,
	finished_at INTEGER,
	error_code TEXT,
	error_message TEXT,
	request_json TEXT NOT NULL,
	result_json TEXT,
	logs_json TEXT,
	callback_url TEXT
);
-- Keyset pagination of a tenant's list, newest first.
CREATE INDEX executions_tenant_created ON executions (tenant_id, created_at, id);
-- Counting a tenant's queued/running ones; crash recovery.
CREATE INDEX executions_status ON executions (status, tenant_id);
-- Retention.
CREATE INDEX executions_finished ON executions (finished_at);

-- Outputs apart from the record, so listing and status reads never load them.
CREATE TABLE execution_outputs (
	execution_id TEXT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
	stdout BLOB NOT NULL,
	stderr BLOB NOT NULL
);

CREATE TABLE execution_events (
	execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	seq INTEGER NOT NULL,
	type TEXT NOT NULL,
	data TEXT NOT NULL,
	at INTEGER NOT NULL,
	PRIMARY KEY (execution_id, seq)
);

CREATE TABLE callback_attempts (
	execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	at INTEGER NOT NULL,
	http_status INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (execution_id, attempt)
);

CREATE TABLE usage (
	tenant_id TEXT NOT NULL REFERENCES tenants (id),
	period TEXT NOT NULL,
	exec_ms INTEGER NOT NULL DEFAULT 0,
	executions INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, period)
);
