/* Tenants, plans and keys, and the admin endpoints: POST /v1/tenants,
 * POST /v1/tenants/{id}/keys, DELETE /v1/keys/{id}, GET /v1/usage. */
#include "tenants.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "core/limits.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "store/store.h"
#include "validate.h"

#define MiB (1024ULL * 1024ULL)

void plan_default(struct plan *ret)
{
	/* A new tenant runs user code by default (low) and may ask for up to medium; its limits
	 * can reach the high level's defaults; 4 at once; 10 hours a month; 5 requests a second
	 * with bursts of 20. The admin widens or narrows each when creating it. */
	*ret = (struct plan){.default_trust = TRUST_LOW,
			     .max_trust = TRUST_MEDIUM,
			     .max_concurrent = 4,
			     .monthly_exec_seconds = 36000,
			     .rate_per_second = 5,
			     .burst = 20};
	limits_default(TRUST_HIGH, &ret->caps);
}

void tenant_builtin(struct tenant *ret)
{
	*ret = (struct tenant){0};
	snprintf(ret->id, sizeof(ret->id), "default");
	snprintf(ret->name, sizeof(ret->name), "default");
	plan_default(&ret->plan);
	ret->plan.max_trust = TRUST_HIGH;
	ret->plan.max_concurrent = 64;
	ret->plan.monthly_exec_seconds = 0;
	ret->plan.rate_per_second = 0;
}

/* Limits in API units ("memory_mb") <-> struct sbx_limits (bytes). */
static bool limit_in_mb(const struct limit_def *d)
{
	return !strcmp(d->name, "memory_mb") || !strcmp(d->name, "disk_mb");
}

static uint64_t *limit_field(struct sbx_limits *l, const struct limit_def *d)
{
	return (uint64_t *)((char *)l + d->offset);
}

json_t *plan_to_json(const struct plan *p)
{
	json_t *lim = json_object();
	for (size_t i = 0; i < limit_table_len; i++) {
		const struct limit_def *d = &limit_table[i];
		uint64_t v = *limit_field((struct sbx_limits *)&p->caps, d);
		json_object_set_new(lim, d->name, json_integer(limit_in_mb(d) ? v / MiB : v));
	}
	return json_pack("{ss ss so si sI s{si si}}", "default_trust_level",
			 trust_name(p->default_trust), "max_trust_level", trust_name(p->max_trust),
			 "limits", lim, "max_concurrent_executions", (int)p->max_concurrent,
			 "monthly_execution_seconds", (json_int_t)p->monthly_exec_seconds,
			 "rate_limit", "per_second", (int)p->rate_per_second, "burst",
			 (int)p->burst);
}

static int trust_field(const json_t *j, const char *prefix, const char *name,
		       enum trust_level *ret, struct val_err *err)
{
	const char *s;
	if (val_string(j, prefix, name, 32, &s, err) < 0)
		return -EINVAL;
	if (!s)
		return 0;
	if (trust_parse(s, ret) < 0) {
		char path[96];
		snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", name);
		return val_fail(err, 422, path, "%s must be high, medium, low or untrusted", path);
	}
	return 0;
}

int plan_from_json(const json_t *j, const char *prefix, struct plan *ret, struct val_err *err)
{
	static const struct val_field fields[] = {
		{"default_trust_level", VT_STRING | VT_NULL, false},
		{"max_trust_level", VT_STRING | VT_NULL, false},
		{"limits", VT_OBJECT | VT_NULL, false},
		{"max_concurrent_executions", VT_INT | VT_NULL, false},
		{"monthly_execution_seconds", VT_INT | VT_NULL, false},
		{"rate_limit", VT_OBJECT | VT_NULL, false},
	};
	if (val_object(j, prefix, fields, ARRAY_SIZE(fields), err) < 0)
		return -EINVAL;
	char sub[96];
	if (trust_field(j, prefix, "default_trust_level", &ret->default_trust, err) < 0 ||
	    trust_field(j, prefix, "max_trust_level", &ret->max_trust, err) < 0)
		return -EINVAL;
	/* TRUST_HIGH is 0: a lower number is a higher level. A default that was not given
	 * follows a lowered max; one that was given must fit under it. */
	if (ret->default_trust < ret->max_trust && !json_object_get(j, "default_trust_level"))
		ret->default_trust = ret->max_trust;
	if (ret->default_trust < ret->max_trust) {
		snprintf(sub, sizeof(sub), "%s%sdefault_trust_level", prefix, prefix[0] ? "." : "");
		return val_fail(err, 422, sub, "default_trust_level is above max_trust_level");
	}
	json_t *lim = json_object_get(j, "limits");
	if (json_is_object(lim)) {
		snprintf(sub, sizeof(sub), "%s%slimits", prefix, prefix[0] ? "." : "");
		struct val_field lf[16];
		size_t n = 0;
		for (size_t i = 0; i < limit_table_len && n < ARRAY_SIZE(lf); i++)
			lf[n++] = (struct val_field){limit_table[i].name, VT_INT, false};
		if (val_object(lim, sub, lf, n, err) < 0)
			return -EINVAL;
		for (size_t i = 0; i < limit_table_len; i++) {
			const struct limit_def *d = &limit_table[i];
			uint64_t div = limit_in_mb(d) ? MiB : 1;
			uint64_t v = *limit_field(&ret->caps, d) / div;
			if (val_u64(lim, sub, d->name, (d->min + div - 1) / div, d->max / div, &v,
				    err) < 0)
				return -EINVAL;
			*limit_field(&ret->caps, d) = v * div;
		}
	}
	uint64_t v = ret->max_concurrent;
	if (val_u64(j, prefix, "max_concurrent_executions", 1, 100000, &v, err) < 0)
		return -EINVAL;
	ret->max_concurrent = (uint32_t)v;
	if (val_u64(j, prefix, "monthly_execution_seconds", 0, 1ULL << 40,
		    &ret->monthly_exec_seconds, err) < 0)
		return -EINVAL;
	json_t *rl = json_object_get(j, "rate_limit");
	if (json_is_object(rl)) {
		static const struct val_field rf[] = {{"per_second", VT_INT, false},
						      {"burst", VT_INT, false}};
		snprintf(sub, sizeof(sub), "%s%srate_limit", prefix, prefix[0] ? "." : "");
		if (val_object(rl, sub, rf, ARRAY_SIZE(rf), err) < 0)
			return -EINVAL;
		v = ret->rate_per_second;
		if (val_u64(rl, sub, "per_second", 0, 100000, &v, err) < 0)
			return -EINVAL;
		ret->rate_per_second = (uint32_t)v;
		v = ret->burst;
		if (val_u64(rl, sub, "burst", 1, 1000000, &v, err) < 0)
			return -EINVAL;
		ret->burst = (uint32_t)v;
	}
	return 0;
}

static struct srv *s_of(struct http_req *r)
{
	return r->srv;
}

/* ---- store-backed operations ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* struct plan <-> struct store_plan. The caps are kept as API-unit JSON in limits_json. */
static int plan_to_store(const struct plan *p, struct store_plan *ret)
{
	*ret = (struct store_plan){0};
	snprintf(ret->max_trust_level, sizeof(ret->max_trust_level), "%s", trust_name(p->max_trust));
	snprintf(ret->default_trust_level, sizeof(ret->default_trust_level), "%s",
		 trust_name(p->default_trust));
	json_t *j = plan_to_json(p);
	json_t *lim = json_object_get(j, "limits");
	int n = lim ? (int)json_dumpb(lim, ret->limits_json, sizeof(ret->limits_json) - 1,
				       JSON_COMPACT | JSON_SORT_KEYS)
		    : 0;
	json_decref(j);
	if (n <= 0 || (size_t)n >= sizeof(ret->limits_json))
		return -ENOMEM;
	ret->limits_json[n] = 0;
	ret->max_concurrent = p->max_concurrent;
	ret->monthly_exec_seconds = p->monthly_exec_seconds;
	ret->rate_rps = p->rate_per_second;
	ret->rate_burst = p->burst;
	return 0;
}

static int plan_from_store(const struct store_plan *sp, struct plan *ret)
{
	plan_default(ret);
	if (trust_parse(sp->max_trust_level, &ret->max_trust) < 0)
		return -EINVAL;
	/* "" (a plan from before schema 2): low, or the plan's highest level if that is lower. */
	if (trust_parse(sp->default_trust_level, &ret->default_trust) < 0)
		ret->default_trust = TRUST_LOW;
	if (ret->default_trust < ret->max_trust)
		ret->default_trust = ret->max_trust;
	json_error_t jerr;
	json_t *lim = json_loads(sp->limits_json, 0, &jerr);
	if (!json_is_object(lim)) {
		json_decref(lim);
		return -EINVAL;
	}
	json_t *wrapped = json_pack("{so}", "limits", lim);
	struct val_err err;
	/* What we stored ourselves: parsing it back can only fail on a damaged database. */
	int rc = wrapped ? plan_from_json(wrapped, "plan", ret, &err) : -ENOMEM;
	json_decref(wrapped);
	if (rc < 0)
		return rc;
	ret->max_concurrent = sp->max_concurrent;
	ret->monthly_exec_seconds = sp->monthly_exec_seconds;
	ret->rate_per_second = sp->rate_rps;
	ret->burst = sp->rate_burst;
	return 0;
}

static int tenant_load(struct srv *s, const char *id, struct tenant *ret, struct cdn_err *err)
{
	struct store_tenant st;
	int rc = store_tenant_get(s->store, id, &st, err);
	if (rc < 0)
		return rc;
	*ret = (struct tenant){0};
	snprintf(ret->id, sizeof(ret->id), "%s", st.id);
	snprintf(ret->name, sizeof(ret->name), "%s", st.name);
	ret->created_at_ms = st.created_at_ms;
	if (plan_from_store(&st.plan, &ret->plan) < 0)
		return err_set(err, EIO, "tenant \"%s\": stored plan does not parse", id);
	return 0;
}

int tenants_lookup_key(struct srv *s, const char *hash, char *ret_key_id, size_t key_id_size,
		       struct tenant *ret_tenant, bool *ret_admin)
{
	struct store_key k;
	struct cdn_err err = {0};
	int rc = store_key_lookup_hash(s->store, hash, &k, &err);
	if (rc < 0)
		return rc;
	rc = tenant_load(s, k.tenant_id, ret_tenant, &err);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc; /* a key without its tenant: damaged store */
	snprintf(ret_key_id, key_id_size, "%s", k.id);
	*ret_admin = k.is_admin;
	return 0;
}

int tenants_admin_key_exists(struct srv *s, bool *ret_exists, struct cdn_err *err)
{
	uint64_t n = 0;
	int rc = store_key_count(s->store, true, &n, err);
	if (rc < 0)
		return rc;
	*ret_exists = n > 0;
	return 0;
}

static int key_store(struct srv *s, const char *tenant_id, const char *key_id,
		     const char *key_prefix, const char *hash, bool admin, struct cdn_err *err)
{
	struct store_key k = {.is_admin = admin, .created_at_ms = now_ms()};
	snprintf(k.id, sizeof(k.id), "%s", key_id);
	snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", tenant_id);
	snprintf(k.hash_hex, sizeof(k.hash_hex), "%s", hash);
	snprintf(k.prefix, sizeof(k.prefix), "%.7s", key_prefix);
	return store_key_create(s->store, &k, err);
}

int tenants_create_admin(struct srv *s, const char *key_id, const char *key_prefix,
			 const char *hash, struct cdn_err *err)
{
	struct store_tenant st;
	int rc = store_tenant_get(s->store, TENANT_ADMIN_ID, &st, err);
	if (rc == -ENOENT) {
		struct plan p;
		plan_default(&p);
		/* The operator's own tenant: every trust level, no monthly cap, no rate limit. */
		p.max_trust = TRUST_HIGH;
		p.monthly_exec_seconds = 0;
		p.rate_per_second = 0;
		p.max_concurrent = 64;
		st = (struct store_tenant){.created_at_ms = now_ms()};
		snprintf(st.id, sizeof(st.id), "%s", TENANT_ADMIN_ID);
		snprintf(st.name, sizeof(st.name), "admin");
		if (plan_to_store(&p, &st.plan) < 0)
			return err_set(err, ENOMEM, "encoding the admin plan");
		rc = store_tenant_create(s->store, &st, err);
	}
	if (rc < 0)
		return rc;
	return key_store(s, TENANT_ADMIN_ID, key_id, key_prefix, hash, true, err);
}

int tenants_ensure_builtin(struct srv *s, struct cdn_err *err)
{
	struct tenant t;
	tenant_builtin(&t);
	struct store_tenant st;
	int rc = store_tenant_get(s->store, t.id, &st, err);
	if (rc != -ENOENT)
		return rc;
	st = (struct store_tenant){.created_at_ms = now_ms()};
	snprintf(st.id, sizeof(st.id), "%s", t.id);
	snprintf(st.name, sizeof(st.name), "%s", t.name);
	if (plan_to_store(&t.plan, &st.plan) < 0)
		return err_set(err, ENOMEM, "encoding the default plan");
	rc = store_tenant_create(s->store, &st, err);
	return rc == -EEXIST ? 0 : rc;
}

/* ---- quotas ------------------------------------------------------------------------------- */

/* Seconds until the next calendar month (UTC) begins. */
static long seconds_to_next_month(void)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mon++;
	time_t next = timegm(&tm);
	return next > now ? (long)(next - now) : 1;
}

int tenants_check_quota(struct http_req *r)
{
	struct srv *s = r->srv;
	const struct tenant *t = r->tenant;
	struct cdn_err err = {0};
	char v[32];
	if (t->plan.monthly_exec_seconds) {
		char period[STORE_PERIOD_MAX];
		store_period_of(now_ms(), period);
		struct store_usage u;
		int rc = store_usage_get(s->store, t->id, period, &u, &err);
		if (rc < 0) {
			http_reply_error(r, 503, "overloaded", NULL, "the store is not reachable");
			return rc;
		}
		if (u.exec_ms >= t->plan.monthly_exec_seconds * 1000) {
			snprintf(v, sizeof(v), "%ld", seconds_to_next_month());
			http_add_header(r, "Retry-After", v);
			metrics_quota_exceeded();
			http_reply_error(r, 429, "quota_exceeded", NULL,
					 "the plan's %llu execution seconds for %s are used up",
					 (unsigned long long)t->plan.monthly_exec_seconds, period);
			return -EAGAIN;
		}
	}
	uint64_t n = 0;
	int rc = store_exec_count(s->store, t->id, STORE_STATUS_UNFINISHED, &n, &err);
	if (rc < 0) {
		http_reply_error(r, 503, "overloaded", NULL, "the store is not reachable");
		return rc;
	}
	if (n >= t->plan.max_concurrent) {
		http_add_header(r, "Retry-After", "1");
		metrics_quota_exceeded();
		http_reply_error(r, 429, "quota_exceeded", NULL,
				 "the plan allows %u executions at once", t->plan.max_concurrent);
		return -EAGAIN;
	}
	return 0;
}

/* ---- admin endpoints ---------------------------------------------------------------------- */

static json_t *time_json(int64_t ms)
{
	if (ms <= 0)
		return json_null();
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char buf[40];
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

static json_t *tenant_json(const struct tenant *t)
{
	return json_pack("{ss ss so so}", "id", t->id, "name", t->name, "plan",
			 plan_to_json(&t->plan), "created_at", time_json(t->created_at_ms));
}

/* The store's -errno as an answer. */
static void reply_store_error(struct http_req *r, int rc, const struct cdn_err *err,
			      const char *what)
{
	if (rc == -ENOENT) {
		http_reply_error(r, 404, "not_found", NULL, "no such %s", what);
		return;
	}
	if (rc == -EBUSY) {
		http_reply_error(r, 503, "overloaded", NULL, "the store is busy");
		return;
	}
	log_msg(LOG_ERROR, "store error",
		json_pack("{ss ss si ss}", "request_id", r->request_id, "what", what, "errno", -rc,
			  "detail", err->msg));
	http_reply_error(r, 500, "internal", NULL, "store error (request %s)", r->request_id);
}

static void reply_val_error(struct http_req *r, const struct val_err *e)
{
	http_reply_error(r, e->status, e->code, e->field[0] ? e->field : NULL, "%s", e->msg);
}

static void tenants_post(struct http_req *r)
{
	static const struct val_field f[] = {{"name", VT_STRING, true},
					     {"plan", VT_OBJECT | VT_NULL, false}};
	struct val_err ve;
	const char *name;
	struct tenant t = {0};
	plan_default(&t.plan);
	if (val_object(r->body, "", f, ARRAY_SIZE(f), &ve) < 0 ||
	    val_string(r->body, "", "name", srv_limit("max_name_bytes"), &name, &ve) < 0) {
		reply_val_error(r, &ve);
		return;
	}
	if (!*name) {
		http_reply_error(r, 422, "validation_failed", "name", "name must not be empty");
		return;
	}
	json_t *plan = json_object_get(r->body, "plan");
	if (json_is_object(plan) && plan_from_json(plan, "plan", &t.plan, &ve) < 0) {
		reply_val_error(r, &ve);
		return;
	}
	struct store_tenant st = {.created_at_ms = now_ms()};
	if (store_id_new("tn_", st.id) < 0) {
		http_reply_error(r, 500, "internal", NULL, "no randomness for an id");
		return;
	}
	snprintf(st.name, sizeof(st.name), "%s", name);
	if (plan_to_store(&t.plan, &st.plan) < 0) {
		http_reply_error(r, 500, "internal", NULL, "encoding the plan");
		return;
	}
	struct cdn_err err = {0};
	int rc = store_tenant_create(s_of(r)->store, &st, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	snprintf(t.id, sizeof(t.id), "%s", st.id);
	snprintf(t.name, sizeof(t.name), "%s", st.name);
	t.created_at_ms = st.created_at_ms;
	log_msg(LOG_INFO, "tenant created",
		json_pack("{ss ss}", "request_id", r->request_id, "tenant_id", t.id));
	http_reply_json(r, 201, tenant_json(&t));
}

static void tenant_get(struct http_req *r)
{
	struct tenant t;
	struct cdn_err err = {0};
	int rc = tenant_load(s_of(r), r->params[0], &t, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	http_reply_json(r, 200, tenant_json(&t));
}

/* PATCH /v1/tenants/{id} {name?, plan?}: the plan object overrides what it names. */
static void tenant_patch(struct http_req *r)
{
	static const struct val_field f[] = {{"plan", VT_OBJECT, true}};
	struct val_err ve;
	if (val_object(r->body, "", f, ARRAY_SIZE(f), &ve) < 0) {
		reply_val_error(r, &ve);
		return;
	}
	struct tenant t;
	struct cdn_err err = {0};
	int rc = tenant_load(s_of(r), r->params[0], &t, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	if (plan_from_json(json_object_get(r->body, "plan"), "plan", &t.plan, &ve) < 0) {
		reply_val_error(r, &ve);
		return;
	}
	struct store_plan sp;
	if (plan_to_store(&t.plan, &sp) < 0) {
		http_reply_error(r, 500, "internal", NULL, "encoding the plan");
		return;
	}
	rc = store_tenant_set_plan(s_of(r)->store, t.id, &sp, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	log_msg(LOG_INFO, "plan changed",
		json_pack("{ss ss}", "request_id", r->request_id, "tenant_id", t.id));
	http_reply_json(r, 200, tenant_json(&t));
}

static void tenants_list(struct http_req *r)
{
	struct store_tenant *ts = NULL;
	size_t n = 0;
	struct cdn_err err = {0};
	int rc = store_tenant_list(s_of(r)->store, &ts, &n, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < n; i++) {
		struct tenant t = {0};
		snprintf(t.id, sizeof(t.id), "%s", ts[i].id);
		snprintf(t.name, sizeof(t.name), "%s", ts[i].name);
		t.created_at_ms = ts[i].created_at_ms;
		if (plan_from_store(&ts[i].plan, &t.plan) < 0)
			continue; /* damaged row: tenant_get reports it */
		json_array_append_new(data, tenant_json(&t));
	}
	free(ts);
	http_reply_json(r, 200, json_pack("{so}", "data", data));
}

static void tenant_keys_post(struct http_req *r)
{
	static const struct val_field f[] = {{"admin", VT_BOOL | VT_NULL, false}};
	struct val_err ve;
	if (r->body && val_object(r->body, "", f, ARRAY_SIZE(f), &ve) < 0) {
		reply_val_error(r, &ve);
		return;
	}
	struct tenant t;
	struct cdn_err err = {0};
	int rc = tenant_load(s_of(r), r->params[0], &t, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	/* Another admin key (to rotate the first) belongs to the admin tenant only: an admin
	 * key of a customer tenant would let that customer administer everyone. */
	bool admin = json_is_true(json_object_get(r->body, "admin"));
	if (admin && strcmp(t.id, TENANT_ADMIN_ID)) {
		http_reply_error(r, 422, "validation_failed", "admin",
				 "admin keys belong to the " TENANT_ADMIN_ID " tenant only");
		return;
	}
	char key[AUTH_KEY_LEN + 1], hash[AUTH_HASH_LEN], key_id[STORE_ID_MAX];
	if (auth_key_new(key, hash) < 0 || store_id_new("key_", key_id) < 0) {
		http_reply_error(r, 500, "internal", NULL, "no randomness for a key");
		return;
	}
	rc = key_store(s_of(r), t.id, key_id, key, hash, admin, &err);
	if (rc < 0) {
		explicit_bzero(key, sizeof(key));
		reply_store_error(r, rc, &err, "tenant");
		return;
	}
	log_msg(LOG_INFO, "key created",
		json_pack("{ss ss ss sb}", "request_id", r->request_id, "tenant_id", t.id,
			  "key_id", key_id, "admin", admin));
	/* The key is in this answer and nowhere else, ever. */
	http_reply_json(r, 201,
			json_pack("{ss ss ss s:s% sb so}", "id", key_id, "tenant_id", t.id, "key",
				  key, "prefix", key, (size_t)7, "admin", admin, "created_at",
				  time_json(now_ms())));
	explicit_bzero(key, sizeof(key));
}

static void key_delete(struct http_req *r)
{
	struct store_key *keys = NULL;
	size_t n = 0;
	struct cdn_err err = {0};
	int rc = store_key_list(s_of(r)->store, NULL, &keys, &n, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "key");
		return;
	}
	const struct store_key *k = NULL;
	size_t live_admins = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(keys[i].id, r->params[0]))
			k = &keys[i];
		live_admins += keys[i].is_admin && !keys[i].revoked;
	}
	if (!k || k->revoked) {
		free(keys);
		http_reply_error(r, 404, "not_found", NULL, "no such key");
		return;
	}
	/* Revoking the last admin key would lock the operator out for good. */
	if (k->is_admin && live_admins <= 1) {
		free(keys);
		http_reply_error(r, 409, "conflict", NULL, "this is the last admin key");
		return;
	}
	free(keys);
	rc = store_key_revoke(s_of(r)->store, r->params[0], now_ms(), &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "key");
		return;
	}
	log_msg(LOG_INFO, "key revoked",
		json_pack("{ss ss}", "request_id", r->request_id, "key_id", r->params[0]));
	http_reply_empty(r, 204);
}

static bool period_ok(const char *p)
{
	/* "YYYY-MM" */
	if (strlen(p) != 7 || p[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (p[i] < '0' || p[i] > '9'))
			return false;
	int m = (p[5] - '0') * 10 + (p[6] - '0');
	return m >= 1 && m <= 12;
}

static void usage_get(struct http_req *r)
{
	char period[STORE_PERIOD_MAX];
	const char *q = http_query(r, "period");
	if (q) {
		if (!period_ok(q)) {
			http_reply_error(r, 422, "validation_failed", "query.period",
					 "period must be YYYY-MM");
			return;
		}
		snprintf(period, sizeof(period), "%s", q);
	} else {
		store_period_of(now_ms(), period);
	}
	const char *tenant = http_query(r, "tenant_id");
	if (tenant && strlen(tenant) >= STORE_ID_MAX) {
		http_reply_error(r, 422, "validation_failed", "query.tenant_id",
				 "tenant_id is too long");
		return;
	}
	struct store_usage_list ul = {0};
	struct cdn_err err = {0};
	int rc = store_usage_list(s_of(r)->store, tenant, period, &ul, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "usage");
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < ul.n; i++)
		json_array_append_new(
			data, json_pack("{ss ss sf sI}", "tenant_id", ul.items[i].tenant_id,
					"period", ul.items[i].period, "execution_seconds",
					(double)ul.items[i].exec_ms / 1000.0, "executions",
					(json_int_t)ul.items[i].executions));
	store_usage_list_release(&ul);
	http_reply_json(r, 200, json_pack("{ss so}", "period", period, "data", data));
}

/* GET /v1/tenant: the caller's own tenant, plan and this month's usage (any key). */
static void tenant_self(struct http_req *r)
{
	char period[STORE_PERIOD_MAX];
	store_period_of(now_ms(), period);
	struct store_usage u = {0};
	struct cdn_err err = {0};
	int rc = r->srv->cfg.no_auth ? 0 : store_usage_get(s_of(r)->store, r->tenant->id, period, &u, &err);
	if (rc < 0) {
		reply_store_error(r, rc, &err, "usage");
		return;
	}
	json_t *j = tenant_json(r->tenant);
	json_object_set_new(j, "usage",
			    json_pack("{ss sf sI}", "period", period, "execution_seconds",
				      (double)u.exec_ms / 1000.0, "executions",
				      (json_int_t)u.executions));
	json_object_set_new(j, "admin", json_boolean(r->admin));
	http_reply_json(r, 200, j);
}

void tenants_register(void)
{
	http_route_add(HTTP_GET, "/v1/tenant", HTTP_ROUTE_RATED, tenant_self);
	http_route_add(HTTP_POST, "/v1/tenants", HTTP_ROUTE_ADMIN | HTTP_ROUTE_JSON, tenants_post);
	http_route_add(HTTP_GET, "/v1/tenants", HTTP_ROUTE_ADMIN, tenants_list);
	http_route_add(HTTP_GET, "/v1/tenants/{id}", HTTP_ROUTE_ADMIN, tenant_get);
	http_route_add(HTTP_PATCH, "/v1/tenants/{id}", HTTP_ROUTE_ADMIN | HTTP_ROUTE_JSON,
		       tenant_patch);
	http_route_add(HTTP_POST, "/v1/tenants/{id}/keys", HTTP_ROUTE_ADMIN | HTTP_ROUTE_JSON_OPT,
		       tenant_keys_post);
	http_route_add(HTTP_DELETE, "/v1/keys/{id}", HTTP_ROUTE_ADMIN, key_delete);
	http_route_add(HTTP_GET, "/v1/usage", HTTP_ROUTE_ADMIN, usage_get);
}
