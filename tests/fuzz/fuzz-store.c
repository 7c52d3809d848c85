/* Fuzz target: the store's entry points that take caller-controlled strings straight from a
 * URL — list cursors (`?cursor=`), execution ids (`/v1/executions/{id}`), status masks — and
 * event/plan text that ends up in SQL binds.
 *
 * The input is split at NUL bytes into up to four fields: cursor, id, tenant id, and a byte
 * for the status mask. Against a store holding two tenants' executions it asserts the
 * contract beyond the sanitizers' own checks: every call answers 0 or one of the documented
 * errnos; a list never returns a row of another tenant and never returns rows out of order;
 * a get by a foreign tenant is -ENOENT; the database stays intact and the victim tenant's
 * records unchanged.
 *
 * Built two ways (Makefile): with clang's libFuzzer for `make fuzz`, and as
 * build{,-san}/unit-fuzz-store, which replays the committed corpus in CI. */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *g_s;
static char g_dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

__attribute__((noreturn)) static void fuzz_fail(const char *what, int r, const char *msg)
{
	fprintf(stderr, "fuzz-store: invariant broken: %s (r=%d: %s)\n", what, r, msg);
	if (g_dir[0]) /* the work dir goes before the abort, which skips atexit */
		nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	abort();
}

static void fuzz_cleanup(void)
{
	store_close(g_s);
	g_s = NULL;
	nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void add_tenant(const char *id)
{
	struct cdn_err err = {0};
	struct store_tenant t = {.created_at_ms = 1};
	snprintf(t.id, sizeof(t.id), "%s", id);
	snprintf(t.name, sizeof(t.name), "%s", id);
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "low");
	snprintf(t.plan.limits_json, sizeof(t.plan.limits_json), "{}");
	if (store_tenant_create(g_s, &t, &err) < 0)
		fuzz_fail("setup: tenant", -1, err.msg);
}

static void setup(void)
{
	struct cdn_err err = {0};
	snprintf(g_dir, sizeof(g_dir), "/tmp/cordon-fuzz-store.XXXXXX");
	if (!mkdtemp(g_dir) || store_open(g_dir, &g_s, &err) < 0)
		fuzz_fail("setup: open", -1, err.msg);
	atexit(fuzz_cleanup);
	add_tenant("tn_me");
	add_tenant("tn_victim");
	for (int i = 0; i < 30; i++) {
		char id[STORE_ID_MAX];
		snprintf(id, sizeof(id), "ex_%s_%02d", i % 2 ? "victim" : "me", i);
		struct store_exec_new e = {.id = id, .tenant_id = i % 2 ? "tn_victim" : "tn_me",
					   .status = (enum store_exec_status)(i % STORE_EXEC_NSTATUS),
					   .created_at_ms = 1000 + i / 4, .request_json = "{}"};
		if (store_exec_insert(g_s, &e, &err) < 0)
			fuzz_fail("setup: execution", -1, err.msg);
	}
}

static bool documented(int r)
{
	return r == 0 || r == -EINVAL || r == -ENAMETOOLONG || r == -ENOENT || r == -ESTALE ||
	       r == -EEXIST;
}

/* Up to n NUL-separated fields of the input, each NUL-terminated in buf. */
static size_t split(const uint8_t *data, size_t size, char *buf, const char **fields, size_t n)
{
	memcpy(buf, data, size);
	buf[size] = 0;
	size_t k = 0;
	fields[k++] = buf;
	for (size_t i = 0; i < size && k < n; i++)
		if (buf[i] == 0)
			fields[k++] = buf + i + 1;
	for (size_t i = k; i < n; i++)
		fields[i] = "";
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_s)
		setup();
	if (size > 4096)
		return 0;
	char buf[4097];
	const char *f[4];
	split(data, size, buf, f, 4);
	const char *cursor = f[0], *id = f[1], *tenant = f[2];
	unsigned mask = (unsigned)(uint8_t)f[3][0];
	struct cdn_err err = {0};

	/* A list as tenant "tn_me" with the fuzzed cursor and mask. */
	struct store_exec_list l;
	int r = store_exec_list(g_s, "tn_me", mask, 10, cursor, 0, &l, &err);
	if (!documented(r))
		fuzz_fail("exec_list answered an undocumented errno", r, err.msg);
	if (r == 0) {
		for (size_t i = 0; i < l.n; i++) {
			if (strcmp(l.items[i].tenant_id, "tn_me"))
				fuzz_fail("exec_list returned another tenant's row", 0, l.items[i].id);
			if (mask && !(mask & STORE_STATUS_BIT(l.items[i].status)))
				fuzz_fail("exec_list ignored the status mask", 0, l.items[i].id);
			if (i && (l.items[i].created_at_ms > l.items[i - 1].created_at_ms ||
				  (l.items[i].created_at_ms == l.items[i - 1].created_at_ms &&
				   strcmp(l.items[i].id, l.items[i - 1].id) >= 0)))
				fuzz_fail("exec_list out of order", 0, l.items[i].id);
		}
		store_exec_list_release(&l);
	}

	/* A get, an update and a delete of the fuzzed id as tenant "tn_me". */
	struct store_exec x;
	r = store_exec_get(g_s, "tn_me", id, 0, &x, &err);
	if (r != 0 && r != -ENOENT) /* any id from a URL: found or not found, nothing else */
		fuzz_fail("exec_get of a URL id answered neither 0 nor -ENOENT", r, err.msg);
	if (r == 0) {
		if (strcmp(x.tenant_id, "tn_me"))
			fuzz_fail("exec_get returned another tenant's record", 0, x.id);
		store_exec_release(&x);
	}
	struct store_exec_update u = {.set = STORE_SET_ERROR, .error_code = id, .error_message = cursor};
	r = store_exec_update(g_s, "tn_me", id, &u, &err);
	if (!documented(r))
		fuzz_fail("exec_update answered an undocumented errno", r, err.msg);

	/* The fuzzed tenant id against the victim's records. */
	if (strcmp(tenant, "tn_victim")) {
		r = store_exec_get(g_s, tenant, "ex_victim_01", 0, &x, &err);
		if (r == 0)
			fuzz_fail("a foreign tenant id read the victim's record", 0, tenant);
		if (!documented(r))
			fuzz_fail("exec_get (tenant) answered an undocumented errno", r, err.msg);
		r = store_exec_delete(g_s, tenant, "ex_victim_03", &err);
		if (r == 0)
			fuzz_fail("a foreign tenant id deleted the victim's record", 0, tenant);
	}
	r = store_event_append(g_s, "ex_me_00", cursor[0] ? cursor : "x", id, 1, NULL, &err);
	if (!documented(r))
		fuzz_fail("event_append answered an undocumented errno", r, err.msg);

	/* The victim's records are all still there. */
	uint64_t n = 0;
	r = store_exec_count(g_s, "tn_victim", 0, &n, &err);
	if (r < 0 || n != 15)
		fuzz_fail("the victim's executions changed", r, err.msg);
	return 0;
}

#ifndef FUZZ_WITH_LIBFUZZER
#include "replay.h"
#endif
