/* Tenants, plans and keys, and the admin endpoints: POST /v1/tenants,
 * POST /v1/tenants/{id}/keys, DELETE /v1/keys/{id}, GET /v1/usage. */
#include "tenants.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "core/limits.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "validate.h"

#define MiB (1024ULL * 1024ULL)

void plan_default(struct plan *ret)
{
	/* A new tenant runs user code by default (low) and may ask for up to medium; its limits
	 * can reach the high level's defaults; 4 at once; 10 hours a month; 120 requests a
	 * minute with bursts of 20. The admin widens or narrows each when creating it. */
	*ret = (struct plan){.default_trust = TRUST_LOW,
			     .max_trust = TRUST_MEDIUM,
			     .max_concurrent = 4,
			     .monthly_exec_seconds = 36000,
			     .rate_per_minute = 120,
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
	ret->plan.rate_per_minute = 0;
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
			 "rate_limit", "per_minute", (int)p->rate_per_minute, "burst",
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
	/* TRUST_HIGH is 0: a lower number is a higher level. */
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
		static const struct val_field rf[] = {{"per_minute", VT_INT, false},
						      {"burst", VT_INT, false}};
		snprintf(sub, sizeof(sub), "%s%srate_limit", prefix, prefix[0] ? "." : "");
		if (val_object(rl, sub, rf, ARRAY_SIZE(rf), err) < 0)
			return -EINVAL;
		v = ret->rate_per_minute;
		if (val_u64(rl, sub, "per_minute", 0, 1000000, &v, err) < 0)
			return -EINVAL;
		ret->rate_per_minute = (uint32_t)v;
		v = ret->burst;
		if (val_u64(rl, sub, "burst", 1, 1000000, &v, err) < 0)
			return -EINVAL;
		ret->burst = (uint32_t)v;
	}
	return 0;
}

/* ---- store-backed operations --------------------------------------------------------------
 * Waiting for src/store/store.h (helper "store"): until it lands there is no key table, so
 * every key is unknown and the daemon only starts with --no-auth. */

int tenants_lookup_key(struct srv *s, const char *hash, char *ret_key_id, size_t key_id_size,
		       struct tenant *ret_tenant, bool *ret_admin)
{
	return -ENOENT;
}

int tenants_admin_key_exists(struct srv *s, bool *ret_exists, struct cdn_err *err)
{
	return err_set(err, ENOSYS, "the store is not built in yet: start with --no-auth");
}

int tenants_create_admin(struct srv *s, const char *key_id, const char *hash,
			 struct cdn_err *err)
{
	return err_set(err, ENOSYS, "the store is not built in yet");
}

void tenants_register(void)
{
}
