/* Opening a store by URL and dispatching to its backend. Every argument is checked here, once,
 * so that each backend sees only well-formed input (ids of the allowed alphabet and length,
 * periods "YYYY-MM", JSON texts under STORE_JSON_MAX). */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static const char *const status_names[STORE_EXEC_NSTATUS] = {
	[STORE_EXEC_QUEUED] = "queued",       [STORE_EXEC_RUNNING] = "running",
	[STORE_EXEC_SUCCEEDED] = "succeeded", [STORE_EXEC_FAILED] = "failed",
	[STORE_EXEC_CANCELLED] = "cancelled",
};

const char *store_exec_status_name(enum store_exec_status st)
{
	if ((unsigned)st >= STORE_EXEC_NSTATUS)
		return NULL;
	return status_names[st];
}

int store_exec_status_parse(const char *name, enum store_exec_status *ret)
{
	for (unsigned i = 0; name && i < STORE_EXEC_NSTATUS; i++) {
		if (!strcmp(name, status_names[i])) {
			*ret = (enum store_exec_status)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Ids come from URLs (caller-controlled): a small alphabet keeps them safe in paths, logs,
 * cursors and DNS labels, and a length cap keeps them in the fixed-size fields. */
static int check_id(const char *what, const char *id, struct cdn_err *err)
{
	if (!id || !*id)
		return err_set(err, EINVAL, "store: %s missing", what);
	size_t n = strnlen(id, STORE_ID_MAX);
	if (n >= STORE_ID_MAX)
		return err_set(err, ENAMETOOLONG, "store: %s longer than %d bytes", what,
			       STORE_ID_MAX - 1);
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return err_set(err, EINVAL, "store: %s has a character outside [A-Za-z0-9_-]",
				       what);
	}
	return 0;
}

/* An id that names an existing record (from a URL: /v1/executions/{id}): one that could never
 * have been stored does not exist, so it answers -ENOENT like an unknown one (the API's 404,
 * never a 422 or 500 that would set malformed ids apart). NULL stays -EINVAL: a bug. */
static int check_ref(const char *what, const char *id, struct cdn_err *err)
{
	if (!id)
		return err_set(err, EINVAL, "store: %s missing", what);
	if (check_id(what, id, NULL) < 0)
		return err_set(err, ENOENT, "store: no such %s (malformed)", what);
	return 0;
}

static int check_opt_id(const char *what, const char *id, struct cdn_err *err)
{
	return id ? check_id(what, id, err) : 0;
}

static int check_str(const char *what, const char *s, size_t max, bool required,
		     struct cdn_err *err)
{
	if (!s)
		return required ? err_set(err, EINVAL, "store: %s missing", what) : 0;
	if (strnlen(s, max) >= max)
		return err_set(err, ENAMETOOLONG, "store: %s longer than %zu bytes", what, max - 1);
	return 0;
}

static int check_period(const char *p, struct cdn_err *err)
{
	if (!p || strlen(p) != 7 || p[4] != '-')
		return err_set(err, EINVAL, "store: period is not \"YYYY-MM\"");
	for (int i = 0; i < 7; i++)
		if (i != 4 && (p[i] < '0' || p[i] > '9'))
			return err_set(err, EINVAL, "store: period is not \"YYYY-MM\"");
	int month = (p[5] - '0') * 10 + (p[6] - '0');
	if (month < 1 || month > 12)
		return err_set(err, EINVAL, "store: period month out of range");
	return 0;
}

static int check_mask(unsigned mask, struct cdn_err *err)
{
	if (mask & ~STORE_STATUS_ANY)
		return err_set(err, EINVAL, "store: status mask has unknown bits");
	return 0;
}

static int check_limit(size_t limit, struct cdn_err *err)
{
	if (limit < 1 || limit > STORE_LIST_MAX)
		return err_set(err, EINVAL, "store: list limit out of range 1..%d", STORE_LIST_MAX);
	return 0;
}

/* untrusted 0 < low 1 < medium 2 < high 3; -1 for anything else. */
static int trust_rank(const char *level)
{
	static const char *const levels[] = {"untrusted", "low", "medium", "high"};
	for (size_t i = 0; i < ARRAY_SIZE(levels); i++)
		if (!strcmp(level, levels[i]))
			return (int)i;
	return -1;
}

static int check_plan(const struct store_plan *p, struct cdn_err *err)
{
	int r;
	if (!p)
		return err_set(err, EINVAL, "store: plan missing");
	if ((r = check_str("plan max_trust_level", p->max_trust_level, STORE_TRUST_MAX, true, err)) < 0 ||
	    (r = check_str("plan limits_json", p->limits_json, STORE_PLAN_LIMITS_MAX, true, err)) < 0)
		return r;
	if ((r = check_str("plan default_trust_level", p->default_trust_level, STORE_TRUST_MAX, true,
			   err)) < 0)
		return r;
	/* A closed set: a typo here must not become a level the server does not know. */
	int max = trust_rank(p->max_trust_level);
	if (max < 0)
		return err_set(err, EINVAL, "store: plan max_trust_level is not high, medium, low or untrusted");
	if (p->default_trust_level[0]) {
		int def = trust_rank(p->default_trust_level);
		if (def < 0)
			return err_set(err, EINVAL,
				       "store: plan default_trust_level is not high, medium, low or untrusted");
		if (def > max)
			return err_set(err, EINVAL,
				       "store: plan default_trust_level is above max_trust_level");
	}
	if (p->monthly_exec_seconds > INT64_MAX)
		return err_set(err, ERANGE, "store: plan monthly_exec_seconds out of range");
	return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

int store_open(const char *url, struct store **ret, struct cdn_err *err)
{
	*ret = NULL;
	if (!url || !*url)
		return err_set(err, EINVAL, "store: no url or path given");
	if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"))
		return err_set(err, ENOTSUP, "store: the postgresql backend is not built yet");
	bool explicit = has_prefix(url, "sqlite:");
	const char *path = explicit ? url + strlen("sqlite:") : url;
	if (!*path)
		return err_set(err, EINVAL, "store: empty sqlite path");
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT || !explicit)
			return err_set(err, errno, "store: \"%s\"", path);
	} else if (S_ISDIR(st.st_mode)) {
		char file[4096];
		int n = snprintf(file, sizeof(file), "%s/cordon.db", path);
		if (n < 0 || (size_t)n >= sizeof(file))
			return err_set(err, ENAMETOOLONG, "store: state dir path too long");
		return store_sqlite_open(file, ret, err);
	}
	return store_sqlite_open(path, ret, err);
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_id_new(const char *prefix, char ret[STORE_ID_MAX])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint8_t rnd[26];
	size_t plen = strlen(prefix);
	if (plen + sizeof(rnd) + 1 > STORE_ID_MAX)
		return -ENAMETOOLONG;
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	memcpy(ret, prefix, plen);
	/* 5 bits of each byte: 26 * 5 = 130 bits, unguessable ids for the 404-not-403 rule. */
	for (size_t i = 0; i < sizeof(rnd); i++)
		ret[plen + i] = alphabet[rnd[i] & 31];
	ret[plen + sizeof(rnd)] = 0;
	return 0;
}

void store_period_of(int64_t ms, char ret[STORE_PERIOD_MAX])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
		memcpy(ret, "0000-01", STORE_PERIOD_MAX);
		return;
	}
	unsigned y = (unsigned)(tm.tm_year + 1900) % 10000u, m = (unsigned)(tm.tm_mon + 1) % 100u;
	snprintf(ret, STORE_PERIOD_MAX, "%04u-%02u", y, m);
}

void store_exec_release(struct store_exec *e)
{
	if (!e)
		return;
	free(e->request_json);
	free(e->result_json);
	free(e->logs_json);
	free(e->callback_url);
	free(e->stdout_data);
	free(e->stderr_data);
	memset(e, 0, sizeof(*e));
}

void store_exec_list_release(struct store_exec_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_exec_release(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void store_event_list_release(struct store_event_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].data);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void store_callback_list_release(struct store_callback_list *l)
{
	if (!l)
		return;
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void store_usage_list_release(struct store_usage_list *l)
{
	if (!l)
		return;
	free(l->items);
	memset(l, 0, sizeof(*l));
}

int store_ping(struct store *s, struct cdn_err *err)
{
	return s->ops->ping(s, err);
}

int store_schema_version(struct store *s, int *ret, struct cdn_err *err)
{
	return s->ops->schema_version(s, ret, err);
}

int store_tenant_create(struct store *s, const struct store_tenant *t, struct cdn_err *err)
{
	int r;
	if (!t)
		return err_set(err, EINVAL, "store: tenant missing");
	if ((r = check_id("tenant id", t->id, err)) < 0 ||
	    (r = check_str("tenant name", t->name, STORE_NAME_MAX, true, err)) < 0 ||
	    (r = check_plan(&t->plan, err)) < 0)
		return r;
	return s->ops->tenant_create(s, t, err);
}

int store_tenant_get(struct store *s, const char *id, struct store_tenant *ret, struct cdn_err *err)
{
	int r = check_ref("tenant id", id, err);
	return r < 0 ? r : s->ops->tenant_get(s, id, ret, err);
}

int store_tenant_set_plan(struct store *s, const char *id, const struct store_plan *p,
			  struct cdn_err *err)
{
	int r;
	if ((r = check_ref("tenant id", id, err)) < 0 || (r = check_plan(p, err)) < 0)
		return r;
	return s->ops->tenant_set_plan(s, id, p, err);
}

int store_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n, struct cdn_err *err)
{
	*ret = NULL;
	*ret_n = 0;
	return s->ops->tenant_list(s, ret, ret_n, err);
}

static int check_hash(const char *h, struct cdn_err *err)
{
	/* Lower-case hex only, so one key has one spelling and the unique index holds. */
	if (!h || strnlen(h, STORE_HASH_HEX_MAX) != STORE_HASH_HEX_MAX - 1)
		return err_set(err, EINVAL, "store: key hash is not 64 hex chars");
	for (int i = 0; i < STORE_HASH_HEX_MAX - 1; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return err_set(err, EINVAL, "store: key hash is not lower-case hex");
	return 0;
}

int store_key_create(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	int r;
	if (!k)
		return err_set(err, EINVAL, "store: key missing");
	if ((r = check_id("key id", k->id, err)) < 0 ||
	    (r = check_id("tenant id", k->tenant_id, err)) < 0 || (r = check_hash(k->hash_hex, err)) < 0 ||
	    (r = check_str("key prefix", k->prefix, STORE_KEY_PREFIX_MAX, true, err)) < 0)
		return r;
	return s->ops->key_create(s, k, err);
}

int store_key_lookup_hash(struct store *s, const char *hash_hex, struct store_key *ret,
			  struct cdn_err *err)
{
	/* Not a hash: no key has it (401 for the caller, like any unknown key). */
	if (!hash_hex)
		return err_set(err, EINVAL, "store: key hash missing");
	if (check_hash(hash_hex, NULL) < 0)
		return err_set(err, ENOENT, "store: no such key");
	return s->ops->key_lookup_hash(s, hash_hex, ret, err);
}

int store_key_revoke(struct store *s, const char *id, int64_t now_ms, struct cdn_err *err)
{
	int r = check_ref("key id", id, err);
	return r < 0 ? r : s->ops->key_revoke(s, id, now_ms, err);
}

int store_key_list(struct store *s, const char *tenant_id, struct store_key **ret, size_t *ret_n,
		   struct cdn_err *err)
{
	*ret = NULL;
	*ret_n = 0;
	int r = check_opt_id("tenant id", tenant_id, err);
	return r < 0 ? r : s->ops->key_list(s, tenant_id, ret, ret_n, err);
}

int store_key_count(struct store *s, bool admin_only, uint64_t *ret, struct cdn_err *err)
{
	return s->ops->key_count(s, admin_only, ret, err);
}

int store_exec_insert(struct store *s, const struct store_exec_new *e, struct cdn_err *err)
{
	int r;
	if (!e)
		return err_set(err, EINVAL, "store: execution missing");
	if ((r = check_id("execution id", e->id, err)) < 0 ||
	    (r = check_id("tenant id", e->tenant_id, err)) < 0 ||
	    (r = check_str("request_json", e->request_json, STORE_JSON_MAX, true, err)) < 0 ||
	    (r = check_str("callback_url", e->callback_url, 4096, false, err)) < 0)
		return r;
	if (!store_exec_status_name(e->status))
		return err_set(err, EINVAL, "store: execution status out of range");
	return s->ops->exec_insert(s, e, err);
}

int store_exec_get(struct store *s, const char *tenant_id, const char *id, unsigned flags,
		   struct store_exec *ret, struct cdn_err *err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 ||
	    (r = check_ref("execution id", id, err)) < 0)
		return r;
	return s->ops->exec_get(s, tenant_id, id, flags, ret, err);
}

int store_exec_update(struct store *s, const char *tenant_id, const char *id,
		      const struct store_exec_update *u, struct cdn_err *err)
{
	int r;
	if (!u)
		return err_set(err, EINVAL, "store: update missing");
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 ||
	    (r = check_ref("execution id", id, err)) < 0 || (r = check_mask(u->expect_status, err)) < 0)
		return r;
	if ((u->set & STORE_SET_STATUS) && !store_exec_status_name(u->status))
		return err_set(err, EINVAL, "store: execution status out of range");
	if ((u->set & STORE_SET_ERROR) &&
	    ((r = check_str("error_code", u->error_code, STORE_CODE_MAX, false, err)) < 0 ||
	     (r = check_str("error_message", u->error_message, STORE_MESSAGE_MAX, false, err)) < 0))
		return r;
	if ((u->set & STORE_SET_RESULT) &&
	    (r = check_str("result_json", u->result_json, STORE_JSON_MAX, false, err)) < 0)
		return r;
	if ((u->set & STORE_SET_LOGS) &&
	    (r = check_str("logs_json", u->logs_json, STORE_JSON_MAX, false, err)) < 0)
		return r;
	if (u->set & STORE_SET_USAGE) {
		if ((r = check_period(u->usage_period, err)) < 0)
			return r;
		if (u->usage_exec_ms > INT64_MAX / 2)
			return err_set(err, ERANGE, "store: usage amount out of range");
	}
	if (u->set & STORE_SET_OUTPUTS) {
		if (u->stdout_len > STORE_OUTPUT_MAX || u->stderr_len > STORE_OUTPUT_MAX)
			return err_set(err, EFBIG, "store: output over %u bytes", STORE_OUTPUT_MAX);
		if ((u->stdout_len && !u->stdout_data) || (u->stderr_len && !u->stderr_data))
			return err_set(err, EINVAL, "store: output length without data");
	}
	return s->ops->exec_update(s, tenant_id, id, u, err);
}

int store_exec_list(struct store *s, const char *tenant_id, unsigned status_mask, size_t limit,
		    const char *cursor, unsigned flags, struct store_exec_list *ret,
		    struct cdn_err *err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 || (r = check_mask(status_mask, err)) < 0 ||
	    (r = check_limit(limit, err)) < 0 ||
	    (r = check_str("cursor", cursor, STORE_CURSOR_MAX, false, err)) < 0)
		return r == -ENAMETOOLONG ? -EINVAL : r;
	return s->ops->exec_list(s, tenant_id, status_mask, limit, cursor && *cursor ? cursor : NULL,
				 flags, ret, err);
}

int store_exec_delete(struct store *s, const char *tenant_id, const char *id, struct cdn_err *err)
{
	int r;
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 ||
	    (r = check_ref("execution id", id, err)) < 0)
		return r;
	return s->ops->exec_delete(s, tenant_id, id, err);
}

int store_exec_count(struct store *s, const char *tenant_id, unsigned status_mask, uint64_t *ret,
		     struct cdn_err *err)
{
	int r;
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 || (r = check_mask(status_mask, err)) < 0)
		return r;
	return s->ops->exec_count(s, tenant_id, status_mask ? status_mask : STORE_STATUS_ANY, ret, err);
}

int store_exec_fail_unfinished(struct store *s, int64_t now_ms, const char *message,
			       void (*fn)(void *ud, const char *tenant_id, const char *id), void *ud,
			       uint64_t *ret_n, struct cdn_err *err)
{
	uint64_t n = 0;
	int r = check_str("message", message, STORE_MESSAGE_MAX, true, err);
	if (r < 0)
		return r;
	r = s->ops->exec_fail_unfinished(s, now_ms, message, fn, ud, &n, err);
	if (ret_n)
		*ret_n = n;
	return r;
}

int store_exec_prune(struct store *s, int64_t finished_before_ms, uint64_t *ret_n,
		     struct cdn_err *err)
{
	uint64_t n = 0;
	int r = s->ops->exec_prune(s, finished_before_ms, &n, err);
	if (ret_n)
		*ret_n = n;
	return r;
}

int store_event_append(struct store *s, const char *exec_id, const char *type, const char *data_json,
		       int64_t at_ms, uint64_t *ret_seq, struct cdn_err *err)
{
	int r;
	if ((r = check_ref("execution id", exec_id, err)) < 0 ||
	    (r = check_str("event type", type, STORE_EVENT_TYPE_MAX, true, err)) < 0 ||
	    (r = check_str("event data", data_json, STORE_JSON_MAX, true, err)) < 0)
		return r;
	uint64_t seq = 0;
	r = s->ops->event_append(s, exec_id, type, data_json, at_ms, &seq, err);
	if (ret_seq)
		*ret_seq = seq;
	return r;
}

int store_event_list(struct store *s, const char *exec_id, uint64_t after_seq, size_t limit,
		     struct store_event_list *ret, struct cdn_err *err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	if ((r = check_ref("execution id", exec_id, err)) < 0 || (r = check_limit(limit, err)) < 0)
		return r;
	if (after_seq > INT64_MAX)
		return err_set(err, ERANGE, "store: event seq out of range");
	return s->ops->event_list(s, exec_id, after_seq, limit, ret, err);
}

int store_callback_add(struct store *s, const struct store_callback_attempt *a, struct cdn_err *err)
{
	int r;
	if (!a)
		return err_set(err, EINVAL, "store: callback attempt missing");
	if ((r = check_id("execution id", a->exec_id, err)) < 0 ||
	    (r = check_str("callback error", a->error, STORE_MESSAGE_MAX, true, err)) < 0)
		return r;
	return s->ops->callback_add(s, a, err);
}

int store_callback_list(struct store *s, const char *exec_id, struct store_callback_list *ret,
			struct cdn_err *err)
{
	memset(ret, 0, sizeof(*ret));
	int r = check_ref("execution id", exec_id, err);
	return r < 0 ? r : s->ops->callback_list(s, exec_id, ret, err);
}

int store_usage_add(struct store *s, const char *tenant_id, const char *period, uint64_t exec_ms,
		    uint64_t executions, struct cdn_err *err)
{
	int r;
	if ((r = check_id("tenant id", tenant_id, err)) < 0 || (r = check_period(period, err)) < 0)
		return r;
	/* SQLite integers are signed 64-bit: refuse what would overflow one addition. */
	if (exec_ms > INT64_MAX / 2 || executions > INT64_MAX / 2)
		return err_set(err, ERANGE, "store: usage amount out of range");
	return s->ops->usage_add(s, tenant_id, period, exec_ms, executions, err);
}

int store_usage_get(struct store *s, const char *tenant_id, const char *period,
		    struct store_usage *ret, struct cdn_err *err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	if ((r = check_id("tenant id", tenant_id, err)) < 0 || (r = check_period(period, err)) < 0)
		return r;
	return s->ops->usage_get(s, tenant_id, period, ret, err);
}

int store_usage_list(struct store *s, const char *tenant_id, const char *period,
		     struct store_usage_list *ret, struct cdn_err *err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	if ((r = check_opt_id("tenant id", tenant_id, err)) < 0 ||
	    (period && (r = check_period(period, err)) < 0))
		return r;
	return s->ops->usage_list(s, tenant_id, period, ret, err);
}
