/* Tenants, their plans and API keys. A plan caps what a tenant's executions may ask for: the
 * highest trust level, each limit, concurrent executions, execution seconds per calendar month
 * (UTC), and the request rate (a token bucket, ratelimit.h). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/sandbox.h"

struct plan {
	enum trust_level default_trust; /* when a request names none */
	enum trust_level max_trust;     /* highest level allowed (TRUST_HIGH is the highest) */
	struct sbx_limits caps;         /* largest value of each limit */
	uint32_t max_concurrent;        /* executions queued or running at once */
	uint64_t monthly_exec_seconds;  /* wall seconds of executions per month; 0: unlimited */
	uint32_t rate_per_second;       /* token refill rate of rated requests; 0: unlimited */
	uint32_t burst;                 /* bucket size */
};

#define TENANT_ID_LEN 64 /* STORE_ID_MAX */
#define TENANT_ADMIN_ID "tn_admin"

struct tenant {
	char id[TENANT_ID_LEN]; /* "tn_" + 20 base32 chars; "default" with --no-auth */
	char name[128];
	struct plan plan;
	int64_t created_at_ms;
};

/* The plan a tenant gets when POST /v1/tenants names none. */
void plan_default(struct plan *ret);
/* Plan as JSON ({"default_trust_level", "max_trust_level", "limits": {...},
 * "max_concurrent_executions", "monthly_execution_seconds", "rate_limit": {"per_second",
 * "burst"}}), and back: plan_from_json starts from *ret (so a partial object overrides only
 * what it names) and validates like any request (prefix is the field path). */
json_t *plan_to_json(const struct plan *p);
struct val_err;
int plan_from_json(const json_t *j, const char *prefix, struct plan *ret, struct val_err *err);

struct srv;
#include "core/util.h"

/* The tenant every request is with --no-auth. */
void tenant_builtin(struct tenant *ret);

/* Store-backed (tenants.c). Return 0 or -errno; -ENOENT when there is no such thing. */
/* A live key by its hash: its id, its tenant (with plan) and whether it is the admin key. */
int tenants_lookup_key(struct srv *s, const char *hash, char *ret_key_id, size_t key_id_size,
		       struct tenant *ret_tenant, bool *ret_admin);
int tenants_admin_key_exists(struct srv *s, bool *ret_exists, struct cdn_err *err);
/* --no-auth: the built-in tenant exists in the store (records of its executions refer to
 * it). */
int tenants_ensure_builtin(struct srv *s, struct cdn_err *err);
/* First start: the "admin" tenant (if missing) and its admin key. */
int tenants_create_admin(struct srv *s, const char *key_id, const char *key_prefix,
			 const char *hash, struct cdn_err *err);

struct http_req;
/* Before accepting an execution: the plan's monthly execution seconds and concurrent
 * executions. Returns 0, or answers 429 quota_exceeded (with Retry-After) / 503 and returns
 * < 0. The concurrency count is read, not reserved: two requests at the same instant can
 * both pass it by one; the runner is where it is exact. */
int tenants_check_quota(struct http_req *r);
