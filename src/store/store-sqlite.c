/* The SQLite store backend: one database file in WAL mode.
 *
 * Concurrency: a small pool of connections, each used by one thread at a time (so each may be
 * opened SQLITE_OPEN_NOMUTEX). Readers run in parallel (WAL lets readers and one writer work
 * at once); every write begins with BEGIN IMMEDIATE, which takes the write lock up front, so
 * two writers queue on the busy timeout instead of failing with SQLITE_BUSY_SNAPSHOT when a
 * read transaction would have to be upgraded. Several daemons on one file work the same way.
 *
 * Durability: journal_mode=WAL with synchronous=FULL: a transaction is synced to the WAL
 * before COMMIT returns, so an acknowledged record survives kill -9 and power loss.
 *
 * Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT) and reset after each
 * use. Schema migrations (src/store/migrations/NNNN_*.sql, embedded at build time) are applied
 * at open, each in its own IMMEDIATE transaction that re-reads the version first, so two
 * processes opening a fresh file at once apply each migration exactly once. */
#include "store-sqlite.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct migration migrations[] = {
#include "store-migrations.inc"
};

int sq_latest_version(void)
{
	return (int)ARRAY_SIZE(migrations);
}

static const char *const stmt_sql[SQ_NSTMT] = {
	[SQ_BEGIN] = "BEGIN",
	[SQ_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[SQ_COMMIT] = "COMMIT",
	[SQ_ROLLBACK] = "ROLLBACK",
	[SQ_PING] = "SELECT 1",
	[SQ_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_version",
};

/* Map an SQLite result code to an errno and a message naming the step. */
int sq_fail(struct sq_conn *c, int rc, const char *what, struct cdn_err *err)
{
	int e;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: e = EBUSY; break;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			e = EEXIST;
		else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			e = ENOENT; /* the record it refers to (tenant, execution) does not exist */
		else
			e = EINVAL;
		break;
	case SQLITE_NOMEM: e = ENOMEM; break;
	case SQLITE_FULL: e = ENOSPC; break;
	case SQLITE_TOOBIG: e = EFBIG; break;
	case SQLITE_READONLY: e = EROFS; break;
	case SQLITE_PERM:
	case SQLITE_AUTH: e = EACCES; break;
	case SQLITE_CANTOPEN: {
		int sys = c && c->db ? sqlite3_system_errno(c->db) : 0;
		e = sys > 0 ? sys : EACCES;
		break;
	}
	default: e = EIO; break;
	}
	const char *msg = c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
	return err_set(err, e, "store: %s: %s", what, msg);
}

int sq_stmt(struct sq_conn *c, int id, const char *sql, sqlite3_stmt **ret, struct cdn_err *err)
{
	if (!c->stmts[id]) {
		int rc = sqlite3_prepare_v3(c->db, sql ? sql : stmt_sql[id], -1,
					    SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(c, rc, "preparing a statement", err);
	}
	*ret = c->stmts[id];
	return 0;
}

void sq_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}

int sq_step(struct sq_conn *c, sqlite3_stmt *st, const char *what, struct cdn_err *err)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	/* The error belongs to the statement; reset returns the same extended code. */
	rc = sqlite3_reset(st);
	return sq_fail(c, rc, what, err);
}

static int run_simple(struct sq_conn *c, int id, const char *what, struct cdn_err *err)
{
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, id, NULL, &st, err);
	if (r < 0)
		return r;
	r = sq_step(c, st, what, err);
	return r < 0 ? r : 0;
}

int sq_begin(struct sq_conn *c, bool write, struct cdn_err *err)
{
	return run_simple(c, write ? SQ_BEGIN_IMMEDIATE : SQ_BEGIN, "beginning a transaction", err);
}

int sq_commit(struct sq_conn *c, struct cdn_err *err)
{
	return run_simple(c, SQ_COMMIT, "committing", err);
}

/* ---- the connection pool ---- */

struct sq_conn *sq_get(struct sq_store *s)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (size_t i = 0; i < SQ_POOL; i++) {
			if (!s->conns[i].in_use) {
				s->conns[i].in_use = true;
				pthread_mutex_unlock(&s->mu);
				return &s->conns[i];
			}
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

void sq_putp(struct sq_conn **cp)
{
	struct sq_conn *c = *cp;
	if (!c)
		return;
	/* An operation that failed half-way left its transaction open: undo it here, so the
	 * next user of this connection starts clean and no partial write is ever committed. */
	if (!sqlite3_get_autocommit(c->db))
		(void)run_simple(c, SQ_ROLLBACK, "rolling back", NULL);
	pthread_mutex_lock(&c->owner->mu);
	c->in_use = false;
	pthread_cond_signal(&c->owner->cv);
	pthread_mutex_unlock(&c->owner->mu);
}

static void conn_close(struct sq_conn *c)
{
	for (size_t i = 0; i < SQ_NSTMT; i++) {
		sqlite3_finalize(c->stmts[i]);
		c->stmts[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

static int conn_open(struct sq_store *s, struct sq_conn *c, struct cdn_err *err)
{
	c->owner = s;
	int rc = sqlite3_open_v2(s->path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		int r = sq_fail(c, rc, "opening the database", err);
		err_wrap(err, "\"%s\"", s->path);
		return r;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	/* Stored JSON and outputs are capped by store.c; this is a second fence. The limit is per
	 * row too: an outputs row holds stdout and stderr, each up to STORE_OUTPUT_MAX. */
	sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, 2 * (int)STORE_OUTPUT_MAX + (1 << 20));
	/* foreign_keys: deleting an execution takes its outputs, events and attempts with it, and
	 * a key or execution can never name a tenant that does not exist. trusted_schema=OFF: the
	 * schema cannot make us run functions with side effects. */
	static const char pragmas[] = "PRAGMA foreign_keys = ON;"
				      "PRAGMA synchronous = FULL;"
				      "PRAGMA trusted_schema = OFF;";
	char *msg = NULL;
	rc = sqlite3_exec(c->db, pragmas, NULL, NULL, &msg);
	sqlite3_free(msg);
	if (rc != SQLITE_OK)
		return sq_fail(c, rc, "setting pragmas", err);
	return 0;
}

/* journal_mode=WAL is persistent in the file; set it once from the first connection. */
static int set_wal(struct sq_conn *c, struct cdn_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, rc, "setting journal_mode", err);
	rc = sqlite3_step(st);
	bool wal = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	if (!wal)
		return err_set(err, EIO, "store: the database refused journal_mode=WAL");
	return 0;
}

static int read_version(struct sq_conn *c, int *ret, struct cdn_err *err)
{
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_VERSION, NULL, &st, err);
	if (r < 0)
		return r;
	if ((r = sq_step(c, st, "reading the schema version", err)) < 0)
		return r;
	*ret = r ? sqlite3_column_int(st, 0) : 0;
	return 0;
}

static int migrate(struct sq_conn *c, struct cdn_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(c->db,
			      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
			      " name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
			      NULL, NULL, &msg);
	sqlite3_free(msg);
	if (rc != SQLITE_OK)
		return sq_fail(c, rc, "creating schema_version", err);
	for (size_t i = 0; i < ARRAY_SIZE(migrations); i++) {
		if (migrations[i].version != (int)i + 1)
			return err_set(err, EINVAL, "store: migration \"%s\" is not number %zu",
				       migrations[i].name, i + 1);
	}
	int cur = 0, r;
	if ((r = read_version(c, &cur, err)) < 0)
		return r;
	if (cur > sq_latest_version())
		return err_set(err, EPROTO,
			       "store: database schema version %d is newer than this cordon's %d", cur,
			       sq_latest_version());
	for (size_t i = (size_t)cur; i < ARRAY_SIZE(migrations); i++) {
		const struct migration *m = &migrations[i];
		if ((r = sq_begin(c, true, err)) < 0)
			return r;
		/* Another process may have applied it while we waited for the lock. */
		if ((r = read_version(c, &cur, err)) < 0)
			goto rollback;
		if (cur >= m->version) {
			if ((r = sq_commit(c, err)) < 0)
				goto rollback;
			continue;
		}
		rc = sqlite3_exec(c->db, m->sql, NULL, NULL, &msg);
		sqlite3_free(msg);
		if (rc != SQLITE_OK) {
			r = sq_fail(c, rc, "applying a migration", err);
			err_wrap(err, "\"%s\"", m->name);
			goto rollback;
		}
		char ins[256];
		snprintf(ins, sizeof(ins),
			 "INSERT INTO schema_version (version, name, applied_at) VALUES (%d, '%s',"
			 " CAST(strftime('%%s', 'now') AS INTEGER) * 1000)",
			 m->version, m->name);
		rc = sqlite3_exec(c->db, ins, NULL, NULL, &msg);
		sqlite3_free(msg);
		if (rc != SQLITE_OK) {
			r = sq_fail(c, rc, "recording a migration", err);
			goto rollback;
		}
		if ((r = sq_commit(c, err)) < 0)
			goto rollback;
	}
	return 0;
rollback:
	(void)run_simple(c, SQ_ROLLBACK, "rolling back", NULL);
	return r;
}

static void sq_close(struct store *st)
{
	struct sq_store *s = (struct sq_store *)st;
	for (size_t i = 0; i < SQ_POOL; i++)
		conn_close(&s->conns[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

static int sq_ping(struct store *st, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get((struct sq_store *)st);
	return run_simple(c, SQ_PING, "ping", err);
}

static int sq_schema_version(struct store *st, int *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get((struct sq_store *)st);
	return read_version(c, ret, err);
}

static const struct store_ops sq_ops = {
	.name = "sqlite",
	.close = sq_close,
	.ping = sq_ping,
	.schema_version = sq_schema_version,
	.tenant_create = sq_tenant_create,
	.tenant_get = sq_tenant_get,
	.tenant_set_plan = sq_tenant_set_plan,
	.tenant_list = sq_tenant_list,
	.key_create = sq_key_create,
	.key_lookup_hash = sq_key_lookup_hash,
	.key_revoke = sq_key_revoke,
	.key_list = sq_key_list,
	.key_count = sq_key_count,
	.exec_insert = sq_exec_insert,
	.exec_get = sq_exec_get,
	.exec_update = sq_exec_update,
	.exec_list = sq_exec_list,
	.exec_delete = sq_exec_delete,
	.exec_count = sq_exec_count,
	.exec_fail_unfinished = sq_exec_fail_unfinished,
	.exec_prune = sq_exec_prune,
	.event_append = sq_event_append,
	.event_list = sq_event_list,
	.callback_add = sq_callback_add,
	.callback_list = sq_callback_list,
	.usage_add = sq_usage_add,
	.usage_get = sq_usage_get,
	.usage_list = sq_usage_list,
};

int store_sqlite_open(const char *path, struct store **ret, struct cdn_err *err)
{
	*ret = NULL;
	if (!sqlite3_threadsafe())
		return err_set(err, ENOTSUP, "store: this sqlite3 library is built without threads");
	size_t plen = strlen(path);
	if (plen >= 4096)
		return err_set(err, ENAMETOOLONG, "store: database path too long");
	/* Create the file ourselves: mode 0600, since it holds outputs and request bodies (the -wal
	 * and -shm files SQLite creates take the same mode). O_NOFOLLOW: a planted symlink in the
	 * state dir must not redirect the database. */
	{
		/* Closed again before SQLite opens the file: closing any fd of a file drops every
		 * POSIX lock the process holds on it, including SQLite's. */
		_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return err_set(err, errno, "store: opening \"%s\"", path);
		struct stat stt;
		if (fstat(fd, &stt) < 0)
			return err_set(err, errno, "store: stat \"%s\"", path);
		if (!S_ISREG(stt.st_mode))
			return err_set(err, EINVAL, "store: \"%s\" is not a regular file", path);
	}

	struct sq_store *s = calloc(1, sizeof(*s) + plen + 1);
	if (!s)
		return err_set(err, ENOMEM, "store: allocating");
	s->base.ops = &sq_ops;
	memcpy(s->path, path, plen + 1);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	int r = 0;
	for (size_t i = 0; i < SQ_POOL && r == 0; i++)
		r = conn_open(s, &s->conns[i], err);
	if (r == 0)
		r = set_wal(&s->conns[0], err);
	if (r == 0)
		r = migrate(&s->conns[0], err);
	if (r < 0) {
		sq_close(&s->base);
		return r;
	}
	*ret = &s->base;
	return 0;
}
