/* Store benchmark: what one execution's bookkeeping costs in the SQLite store.
 *
 *   make bench-store && build/bench-store [DIR]    (DIR: where the database goes, default /tmp)
 *
 * Measures, with CLOCK_MONOTONIC around each call: an execution's life (insert queued,
 * update running, update finished with 4 KiB of output, usage add) one thread at a time and
 * with 4 threads; get by id; a 50-row list page. Prints p50/p99 per call and the throughput.
 * Numbers only, no pass/fail: durable commits cost an fsync each, so the disk decides. */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "store/store.h"

enum { LIVES = 300, THREADS = 4 };

static struct store *g_s;
static char g_out[4096];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n, uint64_t wall_ns)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("%-34s n=%-5zu p50 %8.3f ms  p99 %8.3f ms  %8.0f /s\n", what, n, ns[n / 2] / 1e6,
	       ns[n * 99 / 100] / 1e6, n / (wall_ns / 1e9));
}

static int life(int t, int i, uint64_t *ret_ns)
{
	struct cdn_err err = {0};
	char id[STORE_ID_MAX];
	snprintf(id, sizeof(id), "ex_b%d_%d", t, i);
	uint64_t t0 = now_ns();
	struct store_exec_new e = {.id = id, .tenant_id = "tn_bench", .status = STORE_EXEC_QUEUED,
				   .created_at_ms = 1000 + i, .request_json = "{\"runtime\":\"sh\"}"};
	struct store_exec_update run = {.set = STORE_SET_STATUS | STORE_SET_STARTED,
					.status = STORE_EXEC_RUNNING, .started_at_ms = 1001 + i};
	struct store_exec_update fin = {
		.set = STORE_SET_STATUS | STORE_SET_FINISHED | STORE_SET_RESULT | STORE_SET_OUTPUTS,
		.expect_status = STORE_STATUS_UNFINISHED, .status = STORE_EXEC_SUCCEEDED,
		.finished_at_ms = 1002 + i, .result_json = "{\"exit_code\":0}", .stdout_data = g_out,
		.stdout_len = sizeof(g_out)};
	if (store_exec_insert(g_s, &e, &err) < 0 || store_exec_update(g_s, NULL, id, &run, &err) < 0 ||
	    store_exec_update(g_s, NULL, id, &fin, &err) < 0 ||
	    store_usage_add(g_s, "tn_bench", "2026-12", 5, 1, &err) < 0) {
		fprintf(stderr, "bench-store: %s\n", err.msg);
		return -1;
	}
	*ret_ns = now_ns() - t0;
	return 0;
}

struct worker {
	int t;
	uint64_t ns[LIVES];
	int rc;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < LIVES / THREADS && w->rc == 0; i++)
		w->rc = life(w->t, i, &w->ns[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/cordon-bench-store.XXXXXX", argc > 1 ? argv[1] : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct cdn_err err = {0};
	if (store_open(dir, &g_s, &err) < 0) {
		fprintf(stderr, "bench-store: %s\n", err.msg);
		return 1;
	}
	memset(g_out, 'x', sizeof(g_out));
	struct store_tenant t = {.created_at_ms = 1};
	snprintf(t.id, sizeof(t.id), "tn_bench");
	snprintf(t.name, sizeof(t.name), "bench");
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "low");
	snprintf(t.plan.limits_json, sizeof(t.plan.limits_json), "{}");
	if (store_tenant_create(g_s, &t, &err) < 0) {
		fprintf(stderr, "bench-store: %s\n", err.msg);
		return 1;
	}
	printf("database in %s (synchronous=FULL: one fsync per call that writes)\n", dir);

	static uint64_t ns[LIVES];
	uint64_t w0 = now_ns();
	for (int i = 0; i < LIVES; i++)
		if (life(99, i, &ns[i]) < 0)
			return 1;
	report("execution life (4 writes), 1 thread", ns, LIVES, now_ns() - w0);

	static struct worker ws[THREADS];
	pthread_t th[THREADS];
	w0 = now_ns();
	for (int i = 0; i < THREADS; i++) {
		ws[i].t = i;
		pthread_create(&th[i], NULL, worker_main, &ws[i]);
	}
	size_t n = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (ws[i].rc < 0)
			return 1;
		memcpy(ns + n, ws[i].ns, (LIVES / THREADS) * sizeof(*ns));
		n += LIVES / THREADS;
	}
	report("execution life (4 writes), 4 threads", ns, n, now_ns() - w0);

	w0 = now_ns();
	for (int i = 0; i < LIVES; i++) {
		char id[STORE_ID_MAX];
		snprintf(id, sizeof(id), "ex_b99_%d", i);
		struct store_exec x;
		uint64_t t0 = now_ns();
		if (store_exec_get(g_s, "tn_bench", id, STORE_WITH_OUTPUTS, &x, &err) < 0) {
			fprintf(stderr, "bench-store: %s\n", err.msg);
			return 1;
		}
		ns[i] = now_ns() - t0;
		store_exec_release(&x);
	}
	report("get with outputs", ns, LIVES, now_ns() - w0);

	w0 = now_ns();
	for (int i = 0; i < LIVES; i++) {
		struct store_exec_list l;
		uint64_t t0 = now_ns();
		if (store_exec_list(g_s, "tn_bench", 0, 50, NULL, 0, &l, &err) < 0) {
			fprintf(stderr, "bench-store: %s\n", err.msg);
			return 1;
		}
		ns[i] = now_ns() - t0;
		store_exec_list_release(&l);
	}
	report("list page of 50", ns, LIVES, now_ns() - w0);
	store_close(g_s);
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}
