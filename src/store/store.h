/* The daemon's state store: tenants and their plans, API keys (hashed), executions with their
 * outputs, logs and events, callback delivery attempts, and usage per tenant per month.
 *
 * One contract, several backends behind `struct store_ops` (one backend per file):
 * store-sqlite.c (the default: one WAL-mode file under the state directory) and, later,
 * store-pg.c (PostgreSQL shared by several nodes). store.c opens a backend by URL and
 * dispatches; callers use only the store_* functions below.
 *
 * Thread safety: a `struct store` may be used from any number of threads at once (the daemon
 * calls it from libmicrohttpd and worker threads). Every call is one transaction: it either
 * happens in full or not at all, and it is durable when it returns (SQLite: WAL with
 * synchronous=FULL, so a kill -9 or power loss loses no acknowledged record).
 *
 * Data shapes: where the API answers JSON, the store keeps JSON text and never parses it (no
 * JSON library here; the PostgreSQL backend stores the same text, as jsonb or text). What is
 * queried or filtered on is a typed column. Times are milliseconds since the Unix epoch (UTC),
 * passed in by the caller, 0 meaning "not yet". Strings in the fixed-size fields below are
 * NUL-terminated; a value that does not fit is refused with -ENAMETOOLONG, never cut.
 *
 * Errors: functions return >= 0 on success or -errno, and fill `err` (may be NULL) with a
 * message. The errnos a caller is expected to act on:
 *   -ENOENT  no such record, or it belongs to another tenant (the API answers 404 for both);
 *            also an id (or key hash) passed to a lookup that could never have been stored
 *            (bad characters, too long), so ids from URLs need no checks of their own
 *   -EEXIST  a record with this id (or key hash) exists already
 *   -ESTALE  exec_update's status precondition did not hold (someone else changed it first)
 *   -EINVAL  a bad argument, e.g. an unparsable cursor or a malformed id given to a create
 *            (the API answers 422)
 *   -EBUSY   the database stayed locked past the busy timeout (the API answers 503)
 *   -EIO     anything else the database reported (500)
 *   -ENOTSUP a backend that is not built (postgres:// today) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define STORE_ID_MAX 64          /* ids incl. NUL: "ex_...", "tn_...", "key_..." */
#define STORE_NAME_MAX 128       /* tenant name */
#define STORE_TRUST_MAX 16       /* "high" | "medium" | "low" | "untrusted" */
#define STORE_PLAN_LIMITS_MAX 4096 /* the plan's limit caps as JSON text */
#define STORE_HASH_HEX_MAX 65    /* sha256 as 64 lower-case hex chars + NUL */
#define STORE_KEY_PREFIX_MAX 16  /* the start of a key, shown to humans: "ck_ab12" */
#define STORE_CODE_MAX 40        /* error codes: "SANDBOX_INTERNAL" */
#define STORE_MESSAGE_MAX 512    /* error messages */
#define STORE_EVENT_TYPE_MAX 16  /* "status" | "stdout" | "stderr" | "log" | "end" */
#define STORE_CURSOR_MAX 128     /* an opaque list cursor incl. NUL */
#define STORE_PERIOD_MAX 8       /* "YYYY-MM" + NUL */
#define STORE_LIST_MAX 1000      /* the most records one list call returns */
#define STORE_OUTPUT_MAX (64u << 20) /* the most bytes of one stored stdout or stderr */
#define STORE_JSON_MAX (16u << 20)   /* the most bytes of one stored JSON text */

/* ---- tenants, plans, keys ---- */

/* What a tenant may use. 0 in a numeric cap means "no cap". */
struct store_plan {
	char max_trust_level[STORE_TRUST_MAX]; /* the most trusted level it may ask for */
	/* What a request without "trust_level" runs at; "" = not set (the server derives it).
	 * Never more trusted than max_trust_level (refused with -EINVAL). Since schema 2. */
	char default_trust_level[STORE_TRUST_MAX];
	/* Caps on the request's "limits" in the API's shape, e.g.
	 * {"timeout_ms": 30000, "memory_mb": 512}; "{}" when none. Kept as text, never parsed. */
	char limits_json[STORE_PLAN_LIMITS_MAX];
	uint32_t max_concurrent;       /* queued + running executions at once */
	uint64_t monthly_exec_seconds; /* execution wall seconds per calendar month (UTC) */
	uint32_t rate_rps;             /* requests per second (token bucket refill) */
	uint32_t rate_burst;           /* token bucket size */
};

struct store_tenant {
	char id[STORE_ID_MAX];
	char name[STORE_NAME_MAX];
	struct store_plan plan;
	int64_t created_at_ms;
};

struct store_key {
	char id[STORE_ID_MAX];
	char tenant_id[STORE_ID_MAX];
	char hash_hex[STORE_HASH_HEX_MAX]; /* sha256 of the whole key; the key itself is never stored */
	char prefix[STORE_KEY_PREFIX_MAX];
	bool is_admin;
	bool revoked;
	int64_t created_at_ms;
	int64_t revoked_at_ms;
};

/* ---- executions ---- */

enum store_exec_status {
	STORE_EXEC_QUEUED,
	STORE_EXEC_RUNNING,
	STORE_EXEC_SUCCEEDED,
	STORE_EXEC_FAILED,
	STORE_EXEC_CANCELLED,
	STORE_EXEC_NSTATUS,
};
#define STORE_STATUS_BIT(st) (1u << (st))
#define STORE_STATUS_UNFINISHED (STORE_STATUS_BIT(STORE_EXEC_QUEUED) | STORE_STATUS_BIT(STORE_EXEC_RUNNING))
#define STORE_STATUS_ANY ((1u << STORE_EXEC_NSTATUS) - 1)

/* "queued", ... (the API's names); NULL for a value out of range. */
const char *store_exec_status_name(enum store_exec_status st);
/* The reverse; -EINVAL for an unknown name. */
int store_exec_status_parse(const char *name, enum store_exec_status *ret);

/* A new execution, as store_exec_insert takes it. */
struct store_exec_new {
	const char *id;        /* "ex_..." (store_id_new) */
	const char *tenant_id;
	enum store_exec_status status; /* normally QUEUED */
	int64_t created_at_ms;
	/* The request as JSON text with secrets' values already removed by the caller. */
	const char *request_json;
	const char *callback_url; /* NULL when none; kept as a column so deliveries survive restarts */
};

/* An execution as read back. The pointers are owned by the struct: store_exec_release. The
 * columns are authoritative: status, error and times override whatever result_json says, so
 * store_exec_fail_unfinished needs no JSON. */
struct store_exec {
	char id[STORE_ID_MAX];
	char tenant_id[STORE_ID_MAX];
	enum store_exec_status status;
	int64_t created_at_ms, started_at_ms, finished_at_ms; /* 0 = not yet */
	char error_code[STORE_CODE_MAX];       /* "" = no error */
	char error_message[STORE_MESSAGE_MAX];
	char *request_json;  /* never NULL */
	char *result_json;   /* the run's outcome object (exit_code, metrics, tests, ...) or NULL */
	char *logs_json;     /* a JSON array of log entries, or NULL */
	char *callback_url;  /* or NULL */
	/* Only with STORE_WITH_OUTPUTS, else NULL/0. May hold NUL bytes; a NUL is appended
	 * after the last byte (not counted in *_len) so text can be used as a C string. */
	char *stdout_data;
	size_t stdout_len;
	char *stderr_data;
	size_t stderr_len;
};

#define STORE_WITH_OUTPUTS 0x1u /* exec_get / exec_list flag: also read stdout and stderr */

void store_exec_release(struct store_exec *e);

/* Fields store_exec_update sets, as a mask of STORE_SET_*. */
#define STORE_SET_STATUS 0x01u
#define STORE_SET_STARTED 0x02u
#define STORE_SET_FINISHED 0x04u
#define STORE_SET_ERROR 0x08u   /* error_code and error_message (NULL or "" clears) */
#define STORE_SET_RESULT 0x10u
#define STORE_SET_OUTPUTS 0x20u /* stdout and stderr, both replaced */
#define STORE_SET_LOGS 0x40u
/* Add usage_exec_ms and one execution to the owning tenant's usage of usage_period, in the
 * same transaction as the rest: a finished run is counted exactly once, even across a crash,
 * and not at all when expect_status refuses the update. */
#define STORE_SET_USAGE 0x80u

struct store_exec_update {
	unsigned set; /* STORE_SET_* */
	/* Apply only if the current status is in this mask of STORE_STATUS_BIT()s; 0 = always.
	 * E.g. finishing a run uses RUNNING|QUEUED, so a cancel that won the race stays. */
	unsigned expect_status;
	enum store_exec_status status;
	int64_t started_at_ms, finished_at_ms;
	const char *error_code, *error_message;
	const char *result_json;
	const char *logs_json;
	const void *stdout_data;
	size_t stdout_len;
	const void *stderr_data;
	size_t stderr_len;
	const char *usage_period; /* STORE_SET_USAGE: "YYYY-MM" (store_period_of) */
	uint64_t usage_exec_ms;
};

struct store_exec_list {
	struct store_exec *items;
	size_t n;
	/* The cursor of the next page, "" when this page is the last. */
	char next_cursor[STORE_CURSOR_MAX];
};
void store_exec_list_release(struct store_exec_list *l);

/* One event of an execution's live stream, kept for replay (SSE Last-Event-ID). */
struct store_event {
	uint64_t seq; /* 1, 2, ... per execution, assigned by the store */
	char type[STORE_EVENT_TYPE_MAX];
	char *data;   /* the event's JSON text */
	int64_t at_ms;
};
struct store_event_list {
	struct store_event *items;
	size_t n;
};
void store_event_list_release(struct store_event_list *l);

/* One attempt to POST an execution's final state to its callback_url. */
struct store_callback_attempt {
	char exec_id[STORE_ID_MAX];
	uint32_t attempt;  /* 1, 2, ... */
	int64_t at_ms;
	int http_status;   /* 0 when no HTTP answer came */
	char error[STORE_MESSAGE_MAX]; /* "" when the receiver answered 2xx */
};
struct store_callback_list {
	struct store_callback_attempt *items;
	size_t n;
};
void store_callback_list_release(struct store_callback_list *l);

/* Usage of one tenant in one calendar month (UTC). */
struct store_usage {
	char tenant_id[STORE_ID_MAX];
	char period[STORE_PERIOD_MAX]; /* "YYYY-MM" */
	uint64_t exec_ms;              /* summed execution wall time */
	uint64_t executions;           /* executions counted */
};
struct store_usage_list {
	struct store_usage *items;
	size_t n;
};
void store_usage_list_release(struct store_usage_list *l);

/* ---- the handle and its backends ---- */

struct store;

/* A backend. Every member is required; store.c checks arguments (NULL pointers, lengths of
 * ids) before calling, so a backend sees only well-formed input. */
struct store_ops {
	const char *name; /* "sqlite", "postgres" */
	void (*close)(struct store *s);
	int (*ping)(struct store *s, struct cdn_err *err);
	int (*schema_version)(struct store *s, int *ret, struct cdn_err *err);

	int (*tenant_create)(struct store *s, const struct store_tenant *t, struct cdn_err *err);
	int (*tenant_get)(struct store *s, const char *id, struct store_tenant *ret, struct cdn_err *err);
	int (*tenant_set_plan)(struct store *s, const char *id, const struct store_plan *p,
			       struct cdn_err *err);
	int (*tenant_list)(struct store *s, struct store_tenant **ret, size_t *ret_n, struct cdn_err *err);

	int (*key_create)(struct store *s, const struct store_key *k, struct cdn_err *err);
	int (*key_lookup_hash)(struct store *s, const char *hash_hex, struct store_key *ret,
			       struct cdn_err *err);
	int (*key_revoke)(struct store *s, const char *id, int64_t now_ms, struct cdn_err *err);
	int (*key_list)(struct store *s, const char *tenant_id, struct store_key **ret, size_t *ret_n,
			struct cdn_err *err);
	int (*key_count)(struct store *s, bool admin_only, uint64_t *ret, struct cdn_err *err);

	int (*exec_insert)(struct store *s, const struct store_exec_new *e, struct cdn_err *err);
	int (*exec_get)(struct store *s, const char *tenant_id, const char *id, unsigned flags,
			struct store_exec *ret, struct cdn_err *err);
	int (*exec_update)(struct store *s, const char *tenant_id, const char *id,
			   const struct store_exec_update *u, struct cdn_err *err);
	int (*exec_list)(struct store *s, const char *tenant_id, unsigned status_mask, size_t limit,
			 const char *cursor, unsigned flags, struct store_exec_list *ret,
			 struct cdn_err *err);
	int (*exec_delete)(struct store *s, const char *tenant_id, const char *id, struct cdn_err *err);
	int (*exec_count)(struct store *s, const char *tenant_id, unsigned status_mask, uint64_t *ret,
			  struct cdn_err *err);
	int (*exec_fail_unfinished)(struct store *s, int64_t now_ms, const char *message,
				    void (*fn)(void *ud, const char *tenant_id, const char *id),
				    void *ud, uint64_t *ret_n, struct cdn_err *err);
	int (*exec_prune)(struct store *s, int64_t finished_before_ms, uint64_t *ret_n,
			  struct cdn_err *err);

	int (*event_append)(struct store *s, const char *exec_id, const char *type,
			    const char *data_json, int64_t at_ms, uint64_t *ret_seq, struct cdn_err *err);
	int (*event_list)(struct store *s, const char *exec_id, uint64_t after_seq, size_t limit,
			  struct store_event_list *ret, struct cdn_err *err);

	int (*callback_add)(struct store *s, const struct store_callback_attempt *a, struct cdn_err *err);
	int (*callback_list)(struct store *s, const char *exec_id, struct store_callback_list *ret,
			     struct cdn_err *err);

	int (*usage_add)(struct store *s, const char *tenant_id, const char *period, uint64_t exec_ms,
			 uint64_t executions, struct cdn_err *err);
	int (*usage_get)(struct store *s, const char *tenant_id, const char *period,
			 struct store_usage *ret, struct cdn_err *err);
	int (*usage_list)(struct store *s, const char *tenant_id, const char *period,
			  struct store_usage_list *ret, struct cdn_err *err);
};

/* The handle: a backend allocates a struct that begins with this one. */
struct store {
	const struct store_ops *ops;
};

/* Open a store and bring its schema up to date (migrations run once, in a transaction each;
 * reopening an up-to-date store changes nothing). `url` is one of
 *   DIR (an existing directory, the --state-dir)   DIR/cordon.db, created when missing
 *   sqlite:PATH                   that SQLite file, created when missing (mode 0600)
 *   PATH (an existing file)       that file
 *   PATH that does not exist      -ENOENT, nothing created (a missing state dir never turns
 *                                 into a database file of its name)
 *   postgres://... postgresql://  -ENOTSUP for now
 * A store written by a newer cordon (schema version above this build's) is refused. */
int store_open(const char *url, struct store **ret, struct cdn_err *err);
/* Close and free; NULL is a no-op. The caller makes sure no other thread still uses it. */
void store_close(struct store *s);

/* A fresh random id: prefix + 26 lower-case base32 chars (130 bits from getrandom), e.g.
 * "ex_" -> "ex_k3v...". Lower case only so ids fit in DNS labels. Returns 0 or -errno. */
int store_id_new(const char *prefix, char ret[STORE_ID_MAX]);
/* "YYYY-MM" of a time in ms since the epoch, UTC. */
void store_period_of(int64_t ms, char ret[STORE_PERIOD_MAX]);

/* Store reachable (for /readyz). */
int store_ping(struct store *s, struct cdn_err *err);
/* The schema version in the database (the number of the last migration applied). */
int store_schema_version(struct store *s, int *ret, struct cdn_err *err);

/* Tenants. ids are the caller's (store_id_new("tn_")). -EEXIST on a taken id. */
int store_tenant_create(struct store *s, const struct store_tenant *t, struct cdn_err *err);
int store_tenant_get(struct store *s, const char *id, struct store_tenant *ret, struct cdn_err *err);
int store_tenant_set_plan(struct store *s, const char *id, const struct store_plan *p,
			  struct cdn_err *err);
/* All tenants, oldest first; free(*ret). */
int store_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n, struct cdn_err *err);

/* Keys. -EEXIST when the id or the hash is taken; -ENOENT when tenant_id names no tenant. */
int store_key_create(struct store *s, const struct store_key *k, struct cdn_err *err);
/* The key with this sha256 hex (lower case). A revoked key answers -ENOENT, like an unknown
 * one, so a revoked key can never authenticate by mistake. */
int store_key_lookup_hash(struct store *s, const char *hash_hex, struct store_key *ret,
			  struct cdn_err *err);
/* Revoke (kept for the audit trail, never usable again). -ENOENT when unknown or already
 * revoked (the first revocation's time is kept). */
int store_key_revoke(struct store *s, const char *id, int64_t now_ms, struct cdn_err *err);
/* The keys of a tenant (NULL: of all tenants), revoked ones too, oldest first; free(*ret). */
int store_key_list(struct store *s, const char *tenant_id, struct store_key **ret, size_t *ret_n,
		   struct cdn_err *err);
/* How many keys that are not revoked exist (admin_only: admin keys only): the daemon creates
 * its admin key on first start when this is 0. */
int store_key_count(struct store *s, bool admin_only, uint64_t *ret, struct cdn_err *err);

/* Executions. In every call that takes tenant_id, NULL means "any tenant" (the runner, crash
 * recovery); a non-NULL tenant_id that does not own the id answers -ENOENT. */
int store_exec_insert(struct store *s, const struct store_exec_new *e, struct cdn_err *err);
int store_exec_get(struct store *s, const char *tenant_id, const char *id, unsigned flags,
		   struct store_exec *ret, struct cdn_err *err);
/* Set the fields in u->set. -ESTALE (and nothing changed) when u->expect_status is not 0 and
 * does not contain the current status. */
int store_exec_update(struct store *s, const char *tenant_id, const char *id,
		      const struct store_exec_update *u, struct cdn_err *err);
/* A page of a tenant's executions (tenant_id NULL: all), newest first (created_at, then id,
 * descending), whose status is in status_mask (0 = any). limit 1..STORE_LIST_MAX. cursor NULL
 * or "" for the first page, else a next_cursor from an earlier page; -EINVAL when it is not
 * one. Keyset pagination: records inserted meanwhile never shift a page. */
int store_exec_list(struct store *s, const char *tenant_id, unsigned status_mask, size_t limit,
		    const char *cursor, unsigned flags, struct store_exec_list *ret,
		    struct cdn_err *err);
/* Delete the record, its outputs, events and callback attempts. -ENOENT when not found. */
int store_exec_delete(struct store *s, const char *tenant_id, const char *id, struct cdn_err *err);
/* Count a tenant's (NULL: everyone's) executions whose status is in status_mask (0 = any). */
int store_exec_count(struct store *s, const char *tenant_id, unsigned status_mask, uint64_t *ret,
		     struct cdn_err *err);
/* At daemon start: every queued or running execution becomes failed with error SANDBOX_INTERNAL
 * and `message` (e.g. "daemon restarted"), finished_at = now_ms. fn (may be NULL) is called
 * for each, after the transaction committed (to send callbacks). *ret_n (may be NULL) = count. */
int store_exec_fail_unfinished(struct store *s, int64_t now_ms, const char *message,
			       void (*fn)(void *ud, const char *tenant_id, const char *id), void *ud,
			       uint64_t *ret_n, struct cdn_err *err);
/* Delete finished executions whose finished_at is before the time (retention). */
int store_exec_prune(struct store *s, int64_t finished_before_ms, uint64_t *ret_n,
		     struct cdn_err *err);

/* Events: append one (seq assigned: last + 1) and read those after a seq, oldest first. */
int store_event_append(struct store *s, const char *exec_id, const char *type, const char *data_json,
		       int64_t at_ms, uint64_t *ret_seq, struct cdn_err *err);
int store_event_list(struct store *s, const char *exec_id, uint64_t after_seq, size_t limit,
		     struct store_event_list *ret, struct cdn_err *err);

/* Callback deliveries: record an attempt; list them, first attempt first. */
int store_callback_add(struct store *s, const struct store_callback_attempt *a, struct cdn_err *err);
int store_callback_list(struct store *s, const char *exec_id, struct store_callback_list *ret,
			struct cdn_err *err);

/* Usage: add atomically (creating the month's row), read one (all zero when none), list a
 * month's rows (tenant_id NULL: every tenant; period NULL: every month). */
int store_usage_add(struct store *s, const char *tenant_id, const char *period, uint64_t exec_ms,
		    uint64_t executions, struct cdn_err *err);
int store_usage_get(struct store *s, const char *tenant_id, const char *period,
		    struct store_usage *ret, struct cdn_err *err);
int store_usage_list(struct store *s, const char *tenant_id, const char *period,
		     struct store_usage_list *ret, struct cdn_err *err);

/* The SQLite backend (store-sqlite.c); store_open calls it. */
int store_sqlite_open(const char *path, struct store **ret, struct cdn_err *err);
