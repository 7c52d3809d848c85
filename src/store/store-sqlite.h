/* Internals of the SQLite backend, shared by its files: store-sqlite.c (pool, transactions,
 * migrations), store-sqlite-tenant.c (tenants, keys, usage), store-sqlite-exec.c (executions,
 * events, callback attempts). Not for callers: they use store.h. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"

#define SQ_POOL 4                 /* connections: parallel readers, one writer at a time */
#define SQ_BUSY_TIMEOUT_MS 10000  /* how long a writer waits for the lock before -EBUSY */

/* Every prepared statement has a slot; a slot is always prepared with the same SQL text. */
enum sq_stmt_id {
	SQ_BEGIN,
	SQ_BEGIN_IMMEDIATE,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_PING,
	SQ_VERSION,
	SQ_TENANT_INSERT,
	SQ_TENANT_GET,
	SQ_TENANT_SET_PLAN,
	SQ_TENANT_LIST,
	SQ_KEY_INSERT,
	SQ_KEY_BY_HASH,
	SQ_KEY_REVOKE,
	SQ_KEY_LIST,
	SQ_KEY_LIST_TENANT,
	SQ_KEY_COUNT,
	SQ_USAGE_ADD,
	SQ_USAGE_GET,
	SQ_USAGE_LIST,
	SQ_EXEC_INSERT,
	SQ_EXEC_GET,
	SQ_EXEC_STATUS,
	SQ_EXEC_UPDATE,
	SQ_EXEC_OUTPUTS_SET,
	SQ_EXEC_LIST,        /* + 0..3: (tenant ? 1 : 0) + (cursor ? 2 : 0) */
	SQ_EXEC_LIST_T,
	SQ_EXEC_LIST_C,
	SQ_EXEC_LIST_TC,
	SQ_EXEC_DELETE,
	SQ_EXEC_COUNT,
	SQ_EXEC_UNFINISHED,
	SQ_EXEC_FAIL_UNFINISHED,
	SQ_EXEC_PRUNE,
	SQ_EVENT_APPEND,
	SQ_EVENT_LIST,
	SQ_CALLBACK_ADD,
	SQ_CALLBACK_LIST,
	SQ_NSTMT,
};

struct sq_store;

struct sq_conn {
	struct sq_store *owner;
	sqlite3 *db;
	bool in_use;
	sqlite3_stmt *stmts[SQ_NSTMT];
};

struct sq_store {
	struct store base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sq_conn conns[SQ_POOL];
	char path[];
};

/* Take a free connection (waits for one); give it back with sq_putp, which rolls back a
 * transaction the operation left open. Use as
 *   struct sq_conn *c SQ_CLEANUP_CONN = sq_get(s); */
struct sq_conn *sq_get(struct sq_store *s);
void sq_putp(struct sq_conn **cp);
#define SQ_CLEANUP_CONN __attribute__((cleanup(sq_putp)))
#define SQ_STORE(st) ((struct sq_store *)(st))

/* The statement in slot id, prepared from sql on first use (sql NULL: the slot's built-in
 * text). Reset it after use with sq_resetp: sqlite3_stmt *st SQ_CLEANUP_STMT = NULL; */
int sq_stmt(struct sq_conn *c, int id, const char *sql, sqlite3_stmt **ret, struct cdn_err *err);
void sq_resetp(sqlite3_stmt **st);
#define SQ_CLEANUP_STMT __attribute__((cleanup(sq_resetp)))
/* Step: 1 for a row, 0 when done, -errno (message in err) on failure. */
int sq_step(struct sq_conn *c, sqlite3_stmt *st, const char *what, struct cdn_err *err);
int sq_fail(struct sq_conn *c, int rc, const char *what, struct cdn_err *err);
/* write: BEGIN IMMEDIATE (takes the write lock now), else a deferred read transaction. */
int sq_begin(struct sq_conn *c, bool write, struct cdn_err *err);
int sq_commit(struct sq_conn *c, struct cdn_err *err);
int sq_latest_version(void);

/* Column helpers: copy text into a fixed buffer (-EIO when it does not fit: the store only
 * holds what store.c let in), or duplicate it (NULL for SQL NULL; -ENOMEM). */
int sq_col_copy(sqlite3_stmt *st, int col, char *buf, size_t size, struct cdn_err *err);
int sq_col_dup(sqlite3_stmt *st, int col, char **ret, struct cdn_err *err);
/* A time column: SQL NULL reads as 0. Binding 0 writes NULL. */
int64_t sq_col_time(sqlite3_stmt *st, int col);
int sq_bind_time(sqlite3_stmt *st, int col, int64_t ms);

int sq_tenant_create(struct store *s, const struct store_tenant *t, struct cdn_err *err);
int sq_tenant_get(struct store *s, const char *id, struct store_tenant *ret, struct cdn_err *err);
int sq_tenant_set_plan(struct store *s, const char *id, const struct store_plan *p,
		       struct cdn_err *err);
int sq_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n, struct cdn_err *err);
int sq_key_create(struct store *s, const struct store_key *k, struct cdn_err *err);
int sq_key_lookup_hash(struct store *s, const char *hash_hex, struct store_key *ret,
		       struct cdn_err *err);
int sq_key_revoke(struct store *s, const char *id, int64_t now_ms, struct cdn_err *err);
int sq_key_list(struct store *s, const char *tenant_id, struct store_key **ret, size_t *ret_n,
		struct cdn_err *err);
int sq_key_count(struct store *s, bool admin_only, uint64_t *ret, struct cdn_err *err);
/* The usage upsert on a connection the caller holds (inside its transaction). */
int sq_usage_add_on(struct sq_conn *c, const char *tenant_id, const char *period,
		    uint64_t exec_ms, uint64_t executions, struct cdn_err *err);
int sq_usage_add(struct store *s, const char *tenant_id, const char *period, uint64_t exec_ms,
		 uint64_t executions, struct cdn_err *err);
int sq_usage_get(struct store *s, const char *tenant_id, const char *period,
		 struct store_usage *ret, struct cdn_err *err);
int sq_usage_list(struct store *s, const char *tenant_id, const char *period,
		  struct store_usage_list *ret, struct cdn_err *err);

int sq_exec_insert(struct store *s, const struct store_exec_new *e, struct cdn_err *err);
int sq_exec_get(struct store *s, const char *tenant_id, const char *id, unsigned flags,
		struct store_exec *ret, struct cdn_err *err);
int sq_exec_update(struct store *s, const char *tenant_id, const char *id,
		   const struct store_exec_update *u, struct cdn_err *err);
int sq_exec_list(struct store *s, const char *tenant_id, unsigned status_mask, size_t limit,
		 const char *cursor, unsigned flags, struct store_exec_list *ret, struct cdn_err *err);
int sq_exec_delete(struct store *s, const char *tenant_id, const char *id, struct cdn_err *err);
int sq_exec_count(struct store *s, const char *tenant_id, unsigned status_mask, uint64_t *ret,
		  struct cdn_err *err);
int sq_exec_fail_unfinished(struct store *s, int64_t now_ms, const char *message,
			    void (*fn)(void *ud, const char *tenant_id, const char *id), void *ud,
			    uint64_t *ret_n, struct cdn_err *err);
int sq_exec_prune(struct store *s, int64_t finished_before_ms, uint64_t *ret_n,
		  struct cdn_err *err);
int sq_event_append(struct store *s, const char *exec_id, const char *type, const char *data_json,
		    int64_t at_ms, uint64_t *ret_seq, struct cdn_err *err);
int sq_event_list(struct store *s, const char *exec_id, uint64_t after_seq, size_t limit,
		  struct store_event_list *ret, struct cdn_err *err);
int sq_callback_add(struct store *s, const struct store_callback_attempt *a, struct cdn_err *err);
int sq_callback_list(struct store *s, const char *exec_id, struct store_callback_list *ret,
		     struct cdn_err *err);
