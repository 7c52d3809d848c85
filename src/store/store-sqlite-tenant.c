/* SQLite backend: tenants with their plans, API keys (sha256 only) and monthly usage. */
#include "store-sqlite.h"

#include <stdio.h>
#include <string.h>

int sq_col_copy(sqlite3_stmt *st, int col, char *buf, size_t size, struct cdn_err *err)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (!t) {
		buf[0] = 0;
		return 0;
	}
	if (n >= size)
		return err_set(err, EIO, "store: a stored value is longer than its field");
	memcpy(buf, t, n);
	buf[n] = 0;
	return 0;
}

int sq_col_dup(sqlite3_stmt *st, int col, char **ret, struct cdn_err *err)
{
	*ret = NULL;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (!t)
		return err_set(err, ENOMEM, "store: reading a column");
	char *d = malloc(n + 1);
	if (!d)
		return err_set(err, ENOMEM, "store: reading a column");
	memcpy(d, t, n);
	d[n] = 0;
	*ret = d;
	return 0;
}

int64_t sq_col_time(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

int sq_bind_time(sqlite3_stmt *st, int col, int64_t ms)
{
	return ms ? sqlite3_bind_int64(st, col, ms) : sqlite3_bind_null(st, col);
}

/* ---- tenants ---- */

#define TENANT_COLS                                                                                \
	"id, name, max_trust_level, limits_json, max_concurrent, monthly_exec_seconds, rate_rps,"  \
	" rate_burst, created_at, default_trust_level"

static void bind_plan(sqlite3_stmt *st, int first, const struct store_plan *p)
{
	sqlite3_bind_text(st, first, p->max_trust_level, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, first + 1, p->limits_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, first + 2, p->max_concurrent);
	sqlite3_bind_int64(st, first + 3, (int64_t)p->monthly_exec_seconds);
	sqlite3_bind_int64(st, first + 4, p->rate_rps);
	sqlite3_bind_int64(st, first + 5, p->rate_burst);
	if (p->default_trust_level[0])
		sqlite3_bind_text(st, first + 6, p->default_trust_level, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, first + 6);
}

static int read_tenant(sqlite3_stmt *st, struct store_tenant *t, struct cdn_err *err)
{
	int r;
	memset(t, 0, sizeof(*t));
	if ((r = sq_col_copy(st, 0, t->id, sizeof(t->id), err)) < 0 ||
	    (r = sq_col_copy(st, 1, t->name, sizeof(t->name), err)) < 0 ||
	    (r = sq_col_copy(st, 2, t->plan.max_trust_level, sizeof(t->plan.max_trust_level), err)) < 0 ||
	    (r = sq_col_copy(st, 3, t->plan.limits_json, sizeof(t->plan.limits_json), err)) < 0)
		return r;
	t->plan.max_concurrent = (uint32_t)sqlite3_column_int64(st, 4);
	t->plan.monthly_exec_seconds = (uint64_t)sqlite3_column_int64(st, 5);
	t->plan.rate_rps = (uint32_t)sqlite3_column_int64(st, 6);
	t->plan.rate_burst = (uint32_t)sqlite3_column_int64(st, 7);
	t->created_at_ms = sqlite3_column_int64(st, 8);
	return sq_col_copy(st, 9, t->plan.default_trust_level, sizeof(t->plan.default_trust_level),
			   err);
}

int sq_tenant_create(struct store *s, const struct store_tenant *t, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_TENANT_INSERT,
			"INSERT INTO tenants (id, name, max_trust_level, limits_json, max_concurrent,"
			" monthly_exec_seconds, rate_rps, rate_burst, default_trust_level, created_at)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
	bind_plan(st, 3, &t->plan);
	sqlite3_bind_int64(st, 10, t->created_at_ms);
	r = sq_step(c, st, "creating a tenant", err);
	return r < 0 ? r : 0;
}

int sq_tenant_get(struct store *s, const char *id, struct store_tenant *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_TENANT_GET, "SELECT " TENANT_COLS " FROM tenants WHERE id = ?1", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((r = sq_step(c, st, "reading a tenant", err)) < 0)
		return r;
	if (r == 0)
		return err_set(err, ENOENT, "store: tenant \"%s\" not found", id);
	return read_tenant(st, ret, err);
}

int sq_tenant_set_plan(struct store *s, const char *id, const struct store_plan *p,
		       struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_TENANT_SET_PLAN,
			"UPDATE tenants SET max_trust_level = ?2, limits_json = ?3, max_concurrent = ?4,"
			" monthly_exec_seconds = ?5, rate_rps = ?6, rate_burst = ?7,"
			" default_trust_level = ?8 WHERE id = ?1",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bind_plan(st, 2, p);
	if ((r = sq_step(c, st, "setting a tenant's plan", err)) < 0)
		return r;
	if (sqlite3_changes(c->db) == 0)
		return err_set(err, ENOENT, "store: tenant \"%s\" not found", id);
	return 0;
}

/* Grow *items (of elem bytes each) to hold one more; limits the total to STORE_LIST_MAX*16 so
 * a runaway table cannot exhaust memory in one call. */
static int grow(void **items, size_t n, size_t *cap, size_t elem, struct cdn_err *err)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > (size_t)STORE_LIST_MAX * 16)
		return err_set(err, E2BIG, "store: more than %d rows", STORE_LIST_MAX * 16);
	void *p = realloc(*items, ncap * elem);
	if (!p)
		return err_set(err, ENOMEM, "store: allocating a list");
	*items = p;
	*cap = ncap;
	return 0;
}

int sq_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_TENANT_LIST,
			"SELECT " TENANT_COLS " FROM tenants ORDER BY created_at, id", &st, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct store_tenant *items = NULL;
	size_t n = 0, cap = 0;
	while ((r = sq_step(c, st, "listing tenants", err)) == 1) {
		if ((r = grow((void **)&items, n, &cap, sizeof(*items), err)) < 0 ||
		    (r = read_tenant(st, &items[n], err)) < 0)
			return r;
		n++;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(items);
	*ret_n = n;
	return 0;
}

/* ---- keys ---- */

#define KEY_COLS "id, tenant_id, hash_hex, prefix, is_admin, created_at, revoked_at"

static int read_key(sqlite3_stmt *st, struct store_key *k, struct cdn_err *err)
{
	int r;
	memset(k, 0, sizeof(*k));
	if ((r = sq_col_copy(st, 0, k->id, sizeof(k->id), err)) < 0 ||
	    (r = sq_col_copy(st, 1, k->tenant_id, sizeof(k->tenant_id), err)) < 0 ||
	    (r = sq_col_copy(st, 2, k->hash_hex, sizeof(k->hash_hex), err)) < 0 ||
	    (r = sq_col_copy(st, 3, k->prefix, sizeof(k->prefix), err)) < 0)
		return r;
	k->is_admin = sqlite3_column_int(st, 4) != 0;
	k->created_at_ms = sqlite3_column_int64(st, 5);
	k->revoked = sqlite3_column_type(st, 6) != SQLITE_NULL;
	k->revoked_at_ms = sq_col_time(st, 6);
	return 0;
}

int sq_key_create(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_KEY_INSERT,
			"INSERT INTO api_keys (" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st,
			err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, k->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k->tenant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->hash_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, k->prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, k->is_admin ? 1 : 0);
	sqlite3_bind_int64(st, 6, k->created_at_ms);
	if (k->revoked)
		sqlite3_bind_int64(st, 7, k->revoked_at_ms);
	else
		sqlite3_bind_null(st, 7);
	r = sq_step(c, st, "creating a key", err);
	return r < 0 ? r : 0;
}

int sq_key_lookup_hash(struct store *s, const char *hash_hex, struct store_key *ret,
		       struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	/* revoked_at IS NULL in the query itself: a revoked key never comes back from here. */
	int r = sq_stmt(c, SQ_KEY_BY_HASH,
			"SELECT " KEY_COLS " FROM api_keys WHERE hash_hex = ?1 AND revoked_at IS NULL",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, hash_hex, -1, SQLITE_STATIC);
	if ((r = sq_step(c, st, "looking up a key", err)) < 0)
		return r;
	if (r == 0)
		return err_set(err, ENOENT, "store: no such key");
	return read_key(st, ret, err);
}

int sq_key_revoke(struct store *s, const char *id, int64_t now_ms, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_KEY_REVOKE,
			"UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", &st,
			err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms ? now_ms : 1);
	if ((r = sq_step(c, st, "revoking a key", err)) < 0)
		return r;
	if (sqlite3_changes(c->db) == 0)
		return err_set(err, ENOENT, "store: key \"%s\" not found or already revoked", id);
	return 0;
}

int sq_key_list(struct store *s, const char *tenant_id, struct store_key **ret, size_t *ret_n,
		struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = tenant_id ? sq_stmt(c, SQ_KEY_LIST_TENANT,
				    "SELECT " KEY_COLS " FROM api_keys WHERE tenant_id = ?1"
				    " ORDER BY created_at, id",
				    &st, err)
			  : sq_stmt(c, SQ_KEY_LIST,
				    "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id", &st, err);
	if (r < 0)
		return r;
	if (tenant_id)
		sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
	_cleanup_free_ struct store_key *items = NULL;
	size_t n = 0, cap = 0;
	while ((r = sq_step(c, st, "listing keys", err)) == 1) {
		if ((r = grow((void **)&items, n, &cap, sizeof(*items), err)) < 0 ||
		    (r = read_key(st, &items[n], err)) < 0)
			return r;
		n++;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(items);
	*ret_n = n;
	return 0;
}

int sq_key_count(struct store *s, bool admin_only, uint64_t *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_KEY_COUNT,
			"SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (?1 = 0 OR is_admin)",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, admin_only ? 1 : 0);
	if ((r = sq_step(c, st, "counting keys", err)) < 0)
		return r;
	*ret = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

/* ---- usage ---- */

int sq_usage_add_on(struct sq_conn *c, const char *tenant_id, const char *period,
		    uint64_t exec_ms, uint64_t executions, struct cdn_err *err)
{
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	/* One statement: the read-add-write happens under the write lock, so concurrent adds
	 * from several threads or processes never lose one. */
	int r = sq_stmt(c, SQ_USAGE_ADD,
			"INSERT INTO usage (tenant_id, period, exec_ms, executions) VALUES (?1, ?2, ?3, ?4)"
			" ON CONFLICT (tenant_id, period) DO UPDATE SET"
			" exec_ms = exec_ms + excluded.exec_ms,"
			" executions = executions + excluded.executions",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, period, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)exec_ms);
	sqlite3_bind_int64(st, 4, (int64_t)executions);
	r = sq_step(c, st, "adding usage", err);
	return r < 0 ? r : 0;
}

int sq_usage_add(struct store *s, const char *tenant_id, const char *period, uint64_t exec_ms,
		 uint64_t executions, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	return sq_usage_add_on(c, tenant_id, period, exec_ms, executions, err);
}

#define USAGE_COLS "tenant_id, period, exec_ms, executions"

static int read_usage(sqlite3_stmt *st, struct store_usage *u, struct cdn_err *err)
{
	int r;
	memset(u, 0, sizeof(*u));
	if ((r = sq_col_copy(st, 0, u->tenant_id, sizeof(u->tenant_id), err)) < 0 ||
	    (r = sq_col_copy(st, 1, u->period, sizeof(u->period), err)) < 0)
		return r;
	u->exec_ms = (uint64_t)sqlite3_column_int64(st, 2);
	u->executions = (uint64_t)sqlite3_column_int64(st, 3);
	return 0;
}

int sq_usage_get(struct store *s, const char *tenant_id, const char *period,
		 struct store_usage *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_USAGE_GET,
			"SELECT " USAGE_COLS " FROM usage WHERE tenant_id = ?1 AND period = ?2", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, period, -1, SQLITE_STATIC);
	if ((r = sq_step(c, st, "reading usage", err)) < 0)
		return r;
	if (r == 0) {
		memset(ret, 0, sizeof(*ret));
		snprintf(ret->tenant_id, sizeof(ret->tenant_id), "%s", tenant_id);
		snprintf(ret->period, sizeof(ret->period), "%s", period);
		return 0;
	}
	return read_usage(st, ret, err);
}

int sq_usage_list(struct store *s, const char *tenant_id, const char *period,
		  struct store_usage_list *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_USAGE_LIST,
			"SELECT " USAGE_COLS " FROM usage WHERE (?1 IS NULL OR tenant_id = ?1)"
			" AND (?2 IS NULL OR period = ?2) ORDER BY period, tenant_id",
			&st, err);
	if (r < 0)
		return r;
	if (tenant_id)
		sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
	if (period)
		sqlite3_bind_text(st, 2, period, -1, SQLITE_STATIC);
	_cleanup_free_ struct store_usage *items = NULL;
	size_t n = 0, cap = 0;
	while ((r = sq_step(c, st, "listing usage", err)) == 1) {
		if ((r = grow((void **)&items, n, &cap, sizeof(*items), err)) < 0 ||
		    (r = read_usage(st, &items[n], err)) < 0)
			return r;
		n++;
	}
	if (r < 0)
		return r;
	ret->items = TAKE_PTR(items);
	ret->n = n;
	return 0;
}
