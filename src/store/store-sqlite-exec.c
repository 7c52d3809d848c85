/* SQLite backend: executions (record, outputs apart), their events and callback attempts.
 *
 * Tenant scoping: every statement that takes a tenant compares it in SQL, so a record of
 * another tenant is indistinguishable from a missing one (-ENOENT) at every call.
 *
 * Lists use keyset pagination on (created_at, id), newest first. The cursor is
 * "c1.<created_at>.<id>": the position of the last row returned; the next page starts strictly
 * below it, so rows inserted or deleted meanwhile never repeat or skip one. */
#include "store-sqlite.h"

#include <stdio.h>
#include <string.h>

static const char *const status_sql_name[STORE_EXEC_NSTATUS] = {
	"queued", "running", "succeeded", "failed", "cancelled",
};

/* status IN (?a, ..., ?a+4): bind the names in the mask, leave the rest NULL (never equal). */
static void bind_status_mask(sqlite3_stmt *st, int first, unsigned mask)
{
	for (int i = 0; i < STORE_EXEC_NSTATUS; i++)
		if (mask & STORE_STATUS_BIT(i))
			sqlite3_bind_text(st, first + i, status_sql_name[i], -1, SQLITE_STATIC);
}

#define EXEC_COLS                                                                                  \
	"e.id, e.tenant_id, e.status, e.created_at, e.started_at, e.finished_at, e.error_code,"   \
	" e.error_message, e.request_json, e.result_json, e.logs_json, e.callback_url"
/* Outputs only when ?1 is true: SQLite reads a blob's pages only when the column is used. */
#define EXEC_FROM                                                                                  \
	", CASE WHEN ?1 THEN o.stdout END, CASE WHEN ?1 THEN o.stderr END"                          \
	" FROM executions e LEFT JOIN execution_outputs o ON o.execution_id = e.id"

static int col_blob(sqlite3_stmt *st, int col, char **ret, size_t *ret_len, struct cdn_err *err)
{
	*ret = NULL;
	*ret_len = 0;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	const void *b = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *d = malloc(n + 1);
	if (!d || (!b && n))
		return free(d), err_set(err, ENOMEM, "store: reading an output");
	if (n)
		memcpy(d, b, n);
	d[n] = 0;
	*ret = d;
	*ret_len = n;
	return 0;
}

static int read_exec(sqlite3_stmt *st, bool outputs, struct store_exec *e, struct cdn_err *err)
{
	int r;
	memset(e, 0, sizeof(*e));
	char status[16];
	if ((r = sq_col_copy(st, 0, e->id, sizeof(e->id), err)) < 0 ||
	    (r = sq_col_copy(st, 1, e->tenant_id, sizeof(e->tenant_id), err)) < 0 ||
	    (r = sq_col_copy(st, 2, status, sizeof(status), err)) < 0)
		return r;
	if (store_exec_status_parse(status, &e->status) < 0)
		return err_set(err, EIO, "store: execution \"%s\" has unknown status", e->id);
	e->created_at_ms = sqlite3_column_int64(st, 3);
	e->started_at_ms = sq_col_time(st, 4);
	e->finished_at_ms = sq_col_time(st, 5);
	if ((r = sq_col_copy(st, 6, e->error_code, sizeof(e->error_code), err)) < 0 ||
	    (r = sq_col_copy(st, 7, e->error_message, sizeof(e->error_message), err)) < 0 ||
	    (r = sq_col_dup(st, 8, &e->request_json, err)) < 0 ||
	    (r = sq_col_dup(st, 9, &e->result_json, err)) < 0 ||
	    (r = sq_col_dup(st, 10, &e->logs_json, err)) < 0 ||
	    (r = sq_col_dup(st, 11, &e->callback_url, err)) < 0)
		goto fail;
	if (outputs) {
		if ((r = col_blob(st, 12, &e->stdout_data, &e->stdout_len, err)) < 0 ||
		    (r = col_blob(st, 13, &e->stderr_data, &e->stderr_len, err)) < 0)
			goto fail;
		/* No outputs row yet (not finished): empty outputs, not NULL, for the caller. */
		if (!e->stdout_data && !(e->stdout_data = calloc(1, 1)))
			goto nomem;
		if (!e->stderr_data && !(e->stderr_data = calloc(1, 1)))
			goto nomem;
	}
	return 0;
nomem:
	r = err_set(err, ENOMEM, "store: reading an execution");
fail:
	store_exec_release(e);
	return r;
}

int sq_exec_insert(struct store *s, const struct store_exec_new *e, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EXEC_INSERT,
			"INSERT INTO executions (id, tenant_id, status, created_at, request_json,"
			" callback_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->tenant_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, status_sql_name[e->status], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, e->created_at_ms);
	sqlite3_bind_text(st, 5, e->request_json, -1, SQLITE_STATIC);
	if (e->callback_url)
		sqlite3_bind_text(st, 6, e->callback_url, -1, SQLITE_STATIC);
	r = sq_step(c, st, "inserting an execution", err);
	return r < 0 ? r : 0;
}

int sq_exec_get(struct store *s, const char *tenant_id, const char *id, unsigned flags,
		struct store_exec *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EXEC_GET,
			"SELECT " EXEC_COLS EXEC_FROM " WHERE e.id = ?2 AND (?3 IS NULL OR e.tenant_id = ?3)",
			&st, err);
	if (r < 0)
		return r;
	bool outputs = flags & STORE_WITH_OUTPUTS;
	sqlite3_bind_int(st, 1, outputs);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (tenant_id)
		sqlite3_bind_text(st, 3, tenant_id, -1, SQLITE_STATIC);
	/* One statement, so the record and its outputs come from one snapshot. */
	if ((r = sq_step(c, st, "reading an execution", err)) < 0)
		return r;
	if (r == 0)
		return err_set(err, ENOENT, "store: execution \"%s\" not found", id);
	return read_exec(st, outputs, ret, err);
}

static void bind_opt_text(sqlite3_stmt *st, int col, const char *s)
{
	if (s && *s)
		sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

int sq_exec_update(struct store *s, const char *tenant_id, const char *id,
		   const struct store_exec_update *u, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	char owner[STORE_ID_MAX];
	int r = sq_begin(c, true, err);
	if (r < 0)
		return r;
	{
		sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
		if ((r = sq_stmt(c, SQ_EXEC_STATUS,
				 "SELECT status, tenant_id FROM executions"
				 " WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)",
				 &st, err)) < 0)
			return r;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (tenant_id)
			sqlite3_bind_text(st, 2, tenant_id, -1, SQLITE_STATIC);
		if ((r = sq_step(c, st, "reading an execution's status", err)) < 0)
			return r;
		if (r == 0)
			return err_set(err, ENOENT, "store: execution \"%s\" not found", id);
		enum store_exec_status cur;
		if (store_exec_status_parse((const char *)sqlite3_column_text(st, 0), &cur) < 0)
			return err_set(err, EIO, "store: execution \"%s\" has unknown status", id);
		if (u->expect_status && !(u->expect_status & STORE_STATUS_BIT(cur)))
			return err_set(err, ESTALE, "store: execution \"%s\" is %s", id,
				       store_exec_status_name(cur));
		if ((r = sq_col_copy(st, 1, owner, sizeof(owner), err)) < 0)
			return r;
	}
	{
		/* One statement for every combination of fields: ?N is a flag, ?N+1 the value. */
		sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
		if ((r = sq_stmt(c, SQ_EXEC_UPDATE,
				 "UPDATE executions SET"
				 " status = CASE WHEN ?2 THEN ?3 ELSE status END,"
				 " started_at = CASE WHEN ?4 THEN ?5 ELSE started_at END,"
				 " finished_at = CASE WHEN ?6 THEN ?7 ELSE finished_at END,"
				 " error_code = CASE WHEN ?8 THEN ?9 ELSE error_code END,"
				 " error_message = CASE WHEN ?8 THEN ?10 ELSE error_message END,"
				 " result_json = CASE WHEN ?11 THEN ?12 ELSE result_json END,"
				 " logs_json = CASE WHEN ?13 THEN ?14 ELSE logs_json END"
				 " WHERE id = ?1",
				 &st, err)) < 0)
			return r;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, !!(u->set & STORE_SET_STATUS));
		if (u->set & STORE_SET_STATUS)
			sqlite3_bind_text(st, 3, status_sql_name[u->status], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, !!(u->set & STORE_SET_STARTED));
		sq_bind_time(st, 5, u->started_at_ms);
		sqlite3_bind_int(st, 6, !!(u->set & STORE_SET_FINISHED));
		sq_bind_time(st, 7, u->finished_at_ms);
		sqlite3_bind_int(st, 8, !!(u->set & STORE_SET_ERROR));
		bind_opt_text(st, 9, u->error_code);
		bind_opt_text(st, 10, u->error_message);
		sqlite3_bind_int(st, 11, !!(u->set & STORE_SET_RESULT));
		if (u->result_json)
			sqlite3_bind_text(st, 12, u->result_json, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 13, !!(u->set & STORE_SET_LOGS));
		if (u->logs_json)
			sqlite3_bind_text(st, 14, u->logs_json, -1, SQLITE_STATIC);
		if ((r = sq_step(c, st, "updating an execution", err)) < 0)
			return r;
	}
	if (u->set & STORE_SET_OUTPUTS) {
		sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
		if ((r = sq_stmt(c, SQ_EXEC_OUTPUTS_SET,
				 "INSERT INTO execution_outputs (execution_id, stdout, stderr)"
				 " VALUES (?1, ?2, ?3) ON CONFLICT (execution_id) DO UPDATE SET"
				 " stdout = excluded.stdout, stderr = excluded.stderr",
				 &st, err)) < 0)
			return r;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		/* zeroblob(0) for an empty output: a NULL pointer would bind SQL NULL. */
		if (u->stdout_len)
			sqlite3_bind_blob64(st, 2, u->stdout_data, u->stdout_len, SQLITE_STATIC);
		else
			sqlite3_bind_zeroblob(st, 2, 0);
		if (u->stderr_len)
			sqlite3_bind_blob64(st, 3, u->stderr_data, u->stderr_len, SQLITE_STATIC);
		else
			sqlite3_bind_zeroblob(st, 3, 0);
		if ((r = sq_step(c, st, "storing outputs", err)) < 0)
			return r;
	}
	if ((u->set & STORE_SET_USAGE) &&
	    (r = sq_usage_add_on(c, owner, u->usage_period, u->usage_exec_ms, 1, err)) < 0)
		return r;
	return sq_commit(c, err);
}

/* "c1.<ms>.<id>" -> its parts; -EINVAL for anything else (the cursor comes from a URL). */
static int cursor_parse(const char *cur, int64_t *ret_ms, char ret_id[STORE_ID_MAX])
{
	if (strncmp(cur, "c1.", 3))
		return -EINVAL;
	const char *p = cur + 3, *dot = strchr(p, '.');
	if (!dot || dot == p || dot - p > 20)
		return -EINVAL;
	char num[24];
	memcpy(num, p, (size_t)(dot - p));
	num[dot - p] = 0;
	uint64_t v;
	if (parse_u64(num, &v) < 0 || v > INT64_MAX)
		return -EINVAL;
	const char *id = dot + 1;
	size_t n = strlen(id);
	if (n == 0 || n >= STORE_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return -EINVAL;
	}
	*ret_ms = (int64_t)v;
	memcpy(ret_id, id, n + 1);
	return 0;
}

int sq_exec_list(struct store *s, const char *tenant_id, unsigned status_mask, size_t limit,
		 const char *cursor, unsigned flags, struct store_exec_list *ret, struct cdn_err *err)
{
	int64_t cur_ms = 0;
	char cur_id[STORE_ID_MAX] = "";
	if (cursor && cursor_parse(cursor, &cur_ms, cur_id) < 0)
		return err_set(err, EINVAL, "store: not a list cursor");
	/* Four statements rather than "?x IS NULL OR ...", so each one can walk the index. */
	static const char *const where[4] = {
		"",
		" AND e.tenant_id = ?9",
		" AND (e.created_at, e.id) < (?10, ?11)",
		" AND e.tenant_id = ?9 AND (e.created_at, e.id) < (?10, ?11)",
	};
	int variant = (tenant_id ? 1 : 0) + (cursor ? 2 : 0);
	char sql[1024];
	int len = snprintf(sql, sizeof(sql),
			   "SELECT " EXEC_COLS EXEC_FROM " WHERE e.status IN (?3, ?4, ?5, ?6, ?7)%s"
			   " ORDER BY e.created_at DESC, e.id DESC LIMIT ?2",
			   where[variant]);
	if (len < 0 || (size_t)len >= sizeof(sql))
		return err_set(err, EOVERFLOW, "store: list statement too long");
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EXEC_LIST + variant, sql, &st, err);
	if (r < 0)
		return r;
	bool outputs = flags & STORE_WITH_OUTPUTS;
	sqlite3_bind_int(st, 1, outputs);
	/* One more than asked: whether it exists says if there is a next page. */
	sqlite3_bind_int64(st, 2, (int64_t)limit + 1);
	bind_status_mask(st, 3, status_mask ? status_mask : STORE_STATUS_ANY);
	if (tenant_id)
		sqlite3_bind_text(st, 9, tenant_id, -1, SQLITE_STATIC);
	if (cursor) {
		sqlite3_bind_int64(st, 10, cur_ms);
		sqlite3_bind_text(st, 11, cur_id, -1, SQLITE_STATIC);
	}
	struct store_exec_list l = {0};
	l.items = calloc(limit, sizeof(*l.items));
	if (!l.items)
		return err_set(err, ENOMEM, "store: allocating a list");
	bool more = false;
	while ((r = sq_step(c, st, "listing executions", err)) == 1) {
		if (l.n == limit) {
			more = true;
			break;
		}
		if ((r = read_exec(st, outputs, &l.items[l.n], err)) < 0)
			break;
		l.n++;
	}
	if (r < 0) {
		store_exec_list_release(&l);
		return r;
	}
	if (more) {
		const struct store_exec *last = &l.items[l.n - 1];
		snprintf(l.next_cursor, sizeof(l.next_cursor), "c1.%lld.%s",
			 (long long)last->created_at_ms, last->id);
	}
	*ret = l;
	return 0;
}

int sq_exec_delete(struct store *s, const char *tenant_id, const char *id, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	/* ON DELETE CASCADE takes outputs, events and callback attempts in the same statement. */
	int r = sq_stmt(c, SQ_EXEC_DELETE,
			"DELETE FROM executions WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)", &st,
			err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (tenant_id)
		sqlite3_bind_text(st, 2, tenant_id, -1, SQLITE_STATIC);
	if ((r = sq_step(c, st, "deleting an execution", err)) < 0)
		return r;
	if (sqlite3_changes(c->db) == 0)
		return err_set(err, ENOENT, "store: execution \"%s\" not found", id);
	return 0;
}

int sq_exec_count(struct store *s, const char *tenant_id, unsigned status_mask, uint64_t *ret,
		  struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EXEC_COUNT,
			"SELECT COUNT(*) FROM executions WHERE status IN (?1, ?2, ?3, ?4, ?5)"
			" AND (?6 IS NULL OR tenant_id = ?6)",
			&st, err);
	if (r < 0)
		return r;
	bind_status_mask(st, 1, status_mask);
	if (tenant_id)
		sqlite3_bind_text(st, 6, tenant_id, -1, SQLITE_STATIC);
	if ((r = sq_step(c, st, "counting executions", err)) < 0)
		return r;
	*ret = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

struct id_pair {
	char tenant_id[STORE_ID_MAX];
	char id[STORE_ID_MAX];
};

int sq_exec_fail_unfinished(struct store *s, int64_t now_ms, const char *message,
			    void (*fn)(void *ud, const char *tenant_id, const char *id), void *ud,
			    uint64_t *ret_n, struct cdn_err *err)
{
	_cleanup_free_ struct id_pair *ids = NULL;
	size_t n = 0, cap = 0;
	{
		struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
		int r = sq_begin(c, true, err);
		if (r < 0)
			return r;
		{
			sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
			if ((r = sq_stmt(c, SQ_EXEC_UNFINISHED,
					 "SELECT tenant_id, id FROM executions"
					 " WHERE status IN ('queued', 'running') ORDER BY created_at, id",
					 &st, err)) < 0)
				return r;
			while ((r = sq_step(c, st, "listing unfinished executions", err)) == 1) {
				if (n == cap) {
					size_t ncap = cap ? cap * 2 : 64;
					struct id_pair *p = realloc(ids, ncap * sizeof(*ids));
					if (!p)
						return err_set(err, ENOMEM, "store: allocating");
					ids = p;
					cap = ncap;
				}
				if ((r = sq_col_copy(st, 0, ids[n].tenant_id, STORE_ID_MAX, err)) < 0 ||
				    (r = sq_col_copy(st, 1, ids[n].id, STORE_ID_MAX, err)) < 0)
					return r;
				n++;
			}
			if (r < 0)
				return r;
		}
		{
			sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
			if ((r = sq_stmt(c, SQ_EXEC_FAIL_UNFINISHED,
					 "UPDATE executions SET status = 'failed',"
					 " error_code = 'SANDBOX_INTERNAL', error_message = ?1,"
					 " finished_at = ?2 WHERE status IN ('queued', 'running')",
					 &st, err)) < 0)
				return r;
			sqlite3_bind_text(st, 1, message, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, now_ms);
			if ((r = sq_step(c, st, "failing unfinished executions", err)) < 0)
				return r;
		}
		if ((r = sq_commit(c, err)) < 0)
			return r;
	}
	/* After the commit and with the connection given back: fn may call the store. */
	for (size_t i = 0; fn && i < n; i++)
		fn(ud, ids[i].tenant_id, ids[i].id);
	*ret_n = n;
	return 0;
}

int sq_exec_prune(struct store *s, int64_t finished_before_ms, uint64_t *ret_n,
		  struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EXEC_PRUNE,
			"DELETE FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?1"
			" AND status NOT IN ('queued', 'running')",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, finished_before_ms);
	if ((r = sq_step(c, st, "pruning executions", err)) < 0)
		return r;
	*ret_n = (uint64_t)sqlite3_changes64(c->db);
	return 0;
}

int sq_event_append(struct store *s, const char *exec_id, const char *type, const char *data_json,
		    int64_t at_ms, uint64_t *ret_seq, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	/* One statement under the write lock: two appenders never get the same seq. */
	int r = sq_stmt(c, SQ_EVENT_APPEND,
			"INSERT INTO execution_events (execution_id, seq, type, data, at)"
			" SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM execution_events"
			" WHERE execution_id = ?1 RETURNING seq",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, data_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, at_ms);
	if ((r = sq_step(c, st, "appending an event", err)) < 0)
		return r;
	if (r == 0)
		return err_set(err, EIO, "store: appending an event returned no seq");
	uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
	/* Run the statement to its end: that is when the row is written. */
	if ((r = sq_step(c, st, "appending an event", err)) < 0)
		return r;
	*ret_seq = seq;
	return 0;
}

int sq_event_list(struct store *s, const char *exec_id, uint64_t after_seq, size_t limit,
		  struct store_event_list *ret, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_EVENT_LIST,
			"SELECT seq, type, data, at FROM execution_events WHERE execution_id = ?1"
			" AND seq > ?2 ORDER BY seq LIMIT ?3",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)after_seq);
	sqlite3_bind_int64(st, 3, (int64_t)limit);
	struct store_event_list l = {0};
	l.items = calloc(limit, sizeof(*l.items));
	if (!l.items)
		return err_set(err, ENOMEM, "store: allocating a list");
	while (l.n < limit && (r = sq_step(c, st, "listing events", err)) == 1) {
		struct store_event *ev = &l.items[l.n];
		ev->seq = (uint64_t)sqlite3_column_int64(st, 0);
		ev->at_ms = sqlite3_column_int64(st, 3);
		if ((r = sq_col_copy(st, 1, ev->type, sizeof(ev->type), err)) < 0 ||
		    (r = sq_col_dup(st, 2, &ev->data, err)) < 0)
			break;
		l.n++;
	}
	if (r < 0) {
		store_event_list_release(&l);
		return r;
	}
	*ret = l;
	return 0;
}

int sq_callback_add(struct store *s, const struct store_callback_attempt *a, struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_CALLBACK_ADD,
			"INSERT INTO callback_attempts (execution_id, attempt, at, http_status, error)"
			" VALUES (?1, ?2, ?3, ?4, ?5)",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, a->exec_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a->attempt);
	sqlite3_bind_int64(st, 3, a->at_ms);
	sqlite3_bind_int(st, 4, a->http_status);
	sqlite3_bind_text(st, 5, a->error, -1, SQLITE_STATIC);
	r = sq_step(c, st, "recording a callback attempt", err);
	return r < 0 ? r : 0;
}

int sq_callback_list(struct store *s, const char *exec_id, struct store_callback_list *ret,
		     struct cdn_err *err)
{
	struct sq_conn *c SQ_CLEANUP_CONN = sq_get(SQ_STORE(s));
	sqlite3_stmt *st SQ_CLEANUP_STMT = NULL;
	int r = sq_stmt(c, SQ_CALLBACK_LIST,
			"SELECT attempt, at, http_status, error FROM callback_attempts"
			" WHERE execution_id = ?1 ORDER BY attempt LIMIT 1000",
			&st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC);
	_cleanup_free_ struct store_callback_attempt *items = NULL;
	size_t n = 0;
	items = calloc(STORE_LIST_MAX, sizeof(*items));
	if (!items)
		return err_set(err, ENOMEM, "store: allocating a list");
	while (n < STORE_LIST_MAX && (r = sq_step(c, st, "listing callback attempts", err)) == 1) {
		struct store_callback_attempt *a = &items[n];
		snprintf(a->exec_id, sizeof(a->exec_id), "%s", exec_id);
		a->attempt = (uint32_t)sqlite3_column_int64(st, 0);
		a->at_ms = sqlite3_column_int64(st, 1);
		a->http_status = sqlite3_column_int(st, 2);
		if ((r = sq_col_copy(st, 3, a->error, sizeof(a->error), err)) < 0)
			return r;
		n++;
	}
	if (r < 0)
		return r;
	ret->items = TAKE_PTR(items);
	ret->n = n;
	return 0;
}
