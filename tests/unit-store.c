/* Unit tests of the state store (src/store/) against the SQLite backend: schema and
 * migrations, tenants, keys, executions (scoping, updates, pagination, deletion, crash
 * recovery), events, callbacks, usage, concurrency from threads and processes, and crash
 * safety under SIGKILL. Each test runs in its own process with its own temporary state dir;
 * asserts print both values. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "store/store.h"

#define ASSERT_EQ_I(a, b)                                                                          \
	do {                                                                                       \
		long long _a = (a), _b = (b);                                                      \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld (%s)\n", __FILE__,  \
				__LINE__, #a, _a, #b, _b, g_err.msg);                              \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define ASSERT_STR(a, b)                                                                           \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b)) {                                                \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
				#a, _a ? _a : "(null)", _b ? _b : "(null)");                       \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define ASSERT_TRUE(x)                                                                             \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: expected %s (%s)\n", __FILE__, __LINE__, #x,        \
				g_err.msg);                                                        \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define OK(call) ASSERT_EQ_I((call), 0)

/* The number of src/store/migrations/ files: bump it with each new migration. */
#define SCHEMA_LATEST 2

static char g_dir[256];      /* this test's state dir */
static char g_db[300];       /* g_dir/cordon.db */
static struct cdn_err g_err; /* the last error, printed by failing asserts */

static struct store *open_store(void)
{
	struct store *s = NULL;
	OK(store_open(g_dir, &s, &g_err));
	ASSERT_TRUE(s != NULL);
	return s;
}

/* A raw connection for looking under the hood (table counts, pragmas, integrity). */
static sqlite3 *raw_open(void)
{
	sqlite3 *db = NULL;
	ASSERT_EQ_I(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	ASSERT_EQ_I(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ASSERT_EQ_I(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *buf, size_t size)
{
	sqlite3_stmt *st = NULL;
	ASSERT_EQ_I(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ASSERT_EQ_I(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "raw sql failed: %s: %s\n", sql, msg ? msg : "?");
		exit(1);
	}
}

static void make_tenant(struct store *s, const char *id)
{
	struct store_tenant t = {.created_at_ms = 1000};
	snprintf(t.id, sizeof(t.id), "%s", id);
	snprintf(t.name, sizeof(t.name), "tenant %s", id);
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "low");
	snprintf(t.plan.limits_json, sizeof(t.plan.limits_json), "{}");
	OK(store_tenant_create(s, &t, &g_err));
}

static void make_exec(struct store *s, const char *tenant, const char *id, int64_t created,
		      enum store_exec_status st)
{
	struct store_exec_new e = {.id = id, .tenant_id = tenant, .status = st,
				   .created_at_ms = created, .request_json = "{\"runtime\":\"sh\"}"};
	OK(store_exec_insert(s, &e, &g_err));
}

/* ---- schema and opening ---- */

static void test_open_creates_wal_file(void)
{
	struct store *s = open_store();
	struct stat st;
	OK(stat(g_db, &st));
	/* Outputs and request bodies live here: nobody but the owner may read the file. */
	ASSERT_EQ_I(st.st_mode & 0777, 0600);
	int v = 0;
	OK(store_schema_version(s, &v, &g_err));
	ASSERT_EQ_I(v, SCHEMA_LATEST);
	OK(store_ping(s, &g_err));
	sqlite3 *db = raw_open();
	char mode[16];
	raw_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
	ASSERT_STR(mode, "wal");
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM schema_version"), SCHEMA_LATEST);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND"
				" name IN ('tenants', 'api_keys', 'executions', 'execution_outputs',"
				" 'execution_events', 'callback_attempts', 'usage')"),
		    7);
	sqlite3_close(db);
	store_close(s);
}

static void test_reopen_is_idempotent(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_a");
	store_close(s);
	/* Same file through the other spellings of its URL. */
	char url[400];
	snprintf(url, sizeof(url), "sqlite:%s", g_db);
	for (int i = 0; i < 3; i++) {
		OK(store_open(i == 0 ? url : g_db, &s, &g_err));
		struct store_tenant t;
		OK(store_tenant_get(s, "tn_a", &t, &g_err));
		ASSERT_STR(t.name, "tenant tn_a");
		store_close(s);
	}
	sqlite3 *db = raw_open();
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM schema_version"), SCHEMA_LATEST);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM tenants"), 1);
	sqlite3_close(db);
}

/* A database of an older cordon (here: schema 1, with data) is brought up to date on open. */
static void test_upgrade_keeps_data(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_old");
	store_close(s);
	sqlite3 *db = raw_open();
	raw_exec(db, "ALTER TABLE tenants DROP COLUMN default_trust_level;"
		     "DELETE FROM schema_version WHERE version >= 2");
	sqlite3_close(db);
	s = open_store();
	int v = 0;
	OK(store_schema_version(s, &v, &g_err));
	ASSERT_EQ_I(v, SCHEMA_LATEST);
	struct store_tenant t;
	OK(store_tenant_get(s, "tn_old", &t, &g_err));
	ASSERT_STR(t.name, "tenant tn_old");
	ASSERT_STR(t.plan.default_trust_level, ""); /* not set before schema 2 */
	store_close(s);
}

static void test_newer_schema_refused(void)
{
	store_close(open_store());
	sqlite3 *db = raw_open();
	raw_exec(db, "INSERT INTO schema_version VALUES (99, '0099_future.sql', 0)");
	sqlite3_close(db);
	struct store *s = NULL;
	ASSERT_EQ_I(store_open(g_dir, &s, &g_err), -EPROTO);
	ASSERT_TRUE(s == NULL);
	ASSERT_TRUE(strstr(g_err.msg, "newer") != NULL);
}

static void test_concurrent_first_open(void)
{
	/* Several processes opening a fresh file at once: each migration applied exactly once. */
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_TRUE(pids[i] >= 0);
		if (pids[i] == 0) {
			struct store *s = NULL;
			int r = store_open(g_dir, &s, &g_err);
			if (r < 0) {
				fprintf(stderr, "open in child: %s\n", g_err.msg);
				_exit(1);
			}
			store_close(s);
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int st = 0;
		waitpid(pids[i], &st, 0);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	sqlite3 *db = raw_open();
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM schema_version"), SCHEMA_LATEST);
	sqlite3_close(db);
}

static void test_open_refusals(void)
{
	struct store *s = NULL;
	ASSERT_EQ_I(store_open("postgres://localhost/cordon", &s, &g_err), -ENOTSUP);
	ASSERT_EQ_I(store_open("postgresql://x", &s, &g_err), -ENOTSUP);
	ASSERT_EQ_I(store_open("", &s, &g_err), -EINVAL);
	ASSERT_EQ_I(store_open("sqlite:", &s, &g_err), -EINVAL);
	/* A state dir that does not exist is not created as a file of its name. */
	char missing[400];
	snprintf(missing, sizeof(missing), "%s/no-such-state-dir", g_dir);
	ASSERT_EQ_I(store_open(missing, &s, &g_err), -ENOENT);
	ASSERT_EQ_I(access(missing, F_OK), -1);
	char explicit[420];
	snprintf(explicit, sizeof(explicit), "sqlite:%s/other.db", g_dir);
	OK(store_open(explicit, &s, &g_err));
	store_close(s);
	s = NULL;
	ASSERT_EQ_I(access(explicit + strlen("sqlite:"), F_OK), 0);
	/* A symlink planted where the database goes is not followed. */
	char target[400], link[400];
	snprintf(target, sizeof(target), "%s/elsewhere.db", g_dir);
	snprintf(link, sizeof(link), "%s/cordon.db", g_dir);
	OK(symlink(target, link));
	ASSERT_EQ_I(store_open(g_dir, &s, &g_err), -ELOOP);
	ASSERT_EQ_I(access(target, F_OK), -1);
	ASSERT_TRUE(s == NULL);
}

/* The daemon starts sandboxes: no fd of the store may leak into a child across exec. */
static void test_fds_cloexec(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 1, STORE_EXEC_QUEUED); /* -wal and -shm are open now */
	DIR *d = opendir("/proc/self/fd");
	ASSERT_TRUE(d != NULL);
	int checked = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t fd;
		if (parse_u64(de->d_name, &fd) < 0 || fd <= 2 || (int)fd == dirfd(d))
			continue;
		char path[64], target[512] = "";
		snprintf(path, sizeof(path), "/proc/self/fd/%d", (int)fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0 || !strstr(target, "cordon.db"))
			continue;
		int flags = fcntl((int)fd, F_GETFD);
		if (!(flags & FD_CLOEXEC))
			fprintf(stderr, "fd %d (%s) lacks FD_CLOEXEC\n", (int)fd, target);
		ASSERT_TRUE(flags >= 0 && (flags & FD_CLOEXEC));
		checked++;
	}
	closedir(d);
	ASSERT_TRUE(checked >= 3); /* the database, its -wal and its -shm */
	store_close(s);
}

/* The largest outputs the contract allows, both at once, go in and come back whole. */
static void test_max_outputs(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 1, STORE_EXEC_RUNNING);
	char *out = malloc(STORE_OUTPUT_MAX), *err = malloc(STORE_OUTPUT_MAX);
	ASSERT_TRUE(out && err);
	memset(out, 'o', STORE_OUTPUT_MAX);
	memset(err, 'e', STORE_OUTPUT_MAX);
	out[STORE_OUTPUT_MAX - 1] = '!';
	struct store_exec_update u = {.set = STORE_SET_OUTPUTS, .stdout_data = out,
				      .stdout_len = STORE_OUTPUT_MAX, .stderr_data = err,
				      .stderr_len = STORE_OUTPUT_MAX};
	OK(store_exec_update(s, "tn_1", "ex_1", &u, &g_err));
	free(out);
	free(err);
	struct store_exec x;
	OK(store_exec_get(s, "tn_1", "ex_1", STORE_WITH_OUTPUTS, &x, &g_err));
	ASSERT_EQ_I(x.stdout_len, STORE_OUTPUT_MAX);
	ASSERT_EQ_I(x.stderr_len, STORE_OUTPUT_MAX);
	ASSERT_EQ_I(x.stdout_data[STORE_OUTPUT_MAX - 1], '!');
	ASSERT_EQ_I(x.stderr_data[0], 'e');
	store_exec_release(&x);
	store_close(s);
}

/* ---- tenants and keys ---- */

static void test_tenants(void)
{
	struct store *s = open_store();
	struct store_tenant t = {.created_at_ms = 5};
	snprintf(t.id, sizeof(t.id), "tn_1");
	snprintf(t.name, sizeof(t.name), "acme");
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "medium");
	snprintf(t.plan.limits_json, sizeof(t.plan.limits_json), "{\"memory_mb\":512}");
	t.plan.max_concurrent = 4;
	t.plan.monthly_exec_seconds = 3600;
	t.plan.rate_rps = 10;
	t.plan.rate_burst = 20;
	OK(store_tenant_create(s, &t, &g_err));
	ASSERT_EQ_I(store_tenant_create(s, &t, &g_err), -EEXIST);
	struct store_tenant got;
	OK(store_tenant_get(s, "tn_1", &got, &g_err));
	ASSERT_STR(got.name, "acme");
	ASSERT_STR(got.plan.max_trust_level, "medium");
	ASSERT_STR(got.plan.limits_json, "{\"memory_mb\":512}");
	ASSERT_EQ_I(got.plan.max_concurrent, 4);
	ASSERT_EQ_I(got.plan.monthly_exec_seconds, 3600);
	ASSERT_EQ_I(got.plan.rate_rps, 10);
	ASSERT_EQ_I(got.plan.rate_burst, 20);
	ASSERT_EQ_I(got.created_at_ms, 5);
	struct store_plan p = t.plan;
	snprintf(p.max_trust_level, sizeof(p.max_trust_level), "untrusted");
	p.max_concurrent = 1;
	OK(store_tenant_set_plan(s, "tn_1", &p, &g_err));
	OK(store_tenant_get(s, "tn_1", &got, &g_err));
	ASSERT_STR(got.plan.max_trust_level, "untrusted");
	ASSERT_STR(got.plan.default_trust_level, "");
	ASSERT_EQ_I(got.plan.max_concurrent, 1);
	/* The default may not be more trusted than the cap. */
	snprintf(p.default_trust_level, sizeof(p.default_trust_level), "low");
	ASSERT_EQ_I(store_tenant_set_plan(s, "tn_1", &p, &g_err), -EINVAL);
	snprintf(p.max_trust_level, sizeof(p.max_trust_level), "high");
	snprintf(p.default_trust_level, sizeof(p.default_trust_level), "superuser");
	ASSERT_EQ_I(store_tenant_set_plan(s, "tn_1", &p, &g_err), -EINVAL);
	snprintf(p.default_trust_level, sizeof(p.default_trust_level), "medium");
	OK(store_tenant_set_plan(s, "tn_1", &p, &g_err));
	OK(store_tenant_get(s, "tn_1", &got, &g_err));
	ASSERT_STR(got.plan.max_trust_level, "high");
	ASSERT_STR(got.plan.default_trust_level, "medium");
	ASSERT_EQ_I(store_tenant_set_plan(s, "tn_none", &p, &g_err), -ENOENT);
	ASSERT_EQ_I(store_tenant_get(s, "tn_none", &got, &g_err), -ENOENT);
	make_tenant(s, "tn_2");
	struct store_tenant *all = NULL;
	size_t n = 0;
	OK(store_tenant_list(s, &all, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	ASSERT_STR(all[0].id, "tn_1");
	ASSERT_STR(all[1].id, "tn_2");
	free(all);
	store_close(s);
}

static const char HASH_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char HASH_B[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_keys(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	struct store_key k = {.is_admin = true, .created_at_ms = 7};
	snprintf(k.id, sizeof(k.id), "key_1");
	snprintf(k.tenant_id, sizeof(k.tenant_id), "tn_1");
	snprintf(k.hash_hex, sizeof(k.hash_hex), "%s", HASH_A);
	snprintf(k.prefix, sizeof(k.prefix), "ck_aaaa");
	uint64_t count = 99;
	OK(store_key_count(s, true, &count, &g_err));
	ASSERT_EQ_I(count, 0);
	OK(store_key_create(s, &k, &g_err));
	/* The same hash under another id: refused, one key has one record. */
	snprintf(k.id, sizeof(k.id), "key_2");
	ASSERT_EQ_I(store_key_create(s, &k, &g_err), -EEXIST);
	/* A key of a tenant that does not exist. */
	snprintf(k.hash_hex, sizeof(k.hash_hex), "%s", HASH_B);
	snprintf(k.tenant_id, sizeof(k.tenant_id), "tn_ghost");
	ASSERT_EQ_I(store_key_create(s, &k, &g_err), -ENOENT);
	snprintf(k.tenant_id, sizeof(k.tenant_id), "tn_1");
	k.is_admin = false;
	OK(store_key_create(s, &k, &g_err));

	struct store_key got;
	OK(store_key_lookup_hash(s, HASH_A, &got, &g_err));
	ASSERT_STR(got.id, "key_1");
	ASSERT_STR(got.tenant_id, "tn_1");
	ASSERT_STR(got.prefix, "ck_aaaa");
	ASSERT_TRUE(got.is_admin);
	ASSERT_TRUE(!got.revoked);
	ASSERT_EQ_I(got.created_at_ms, 7);
	OK(store_key_count(s, true, &count, &g_err));
	ASSERT_EQ_I(count, 1);
	OK(store_key_count(s, false, &count, &g_err));
	ASSERT_EQ_I(count, 2);
	/* Hashes are lower-case hex of the right length, nothing else. */
	char upper[65];
	snprintf(upper, sizeof(upper), "%s", HASH_B);
	upper[10] = 'A';
	ASSERT_EQ_I(store_key_lookup_hash(s, upper, &got, &g_err), -ENOENT);
	ASSERT_EQ_I(store_key_lookup_hash(s, "abc", &got, &g_err), -ENOENT);
	struct store_key bad = k;
	snprintf(bad.id, sizeof(bad.id), "key_3");
	snprintf(bad.hash_hex, sizeof(bad.hash_hex), "%s", upper);
	ASSERT_EQ_I(store_key_create(s, &bad, &g_err), -EINVAL);

	/* Revoked: never authenticates again, stays listed for the audit trail. */
	OK(store_key_revoke(s, "key_1", 100, &g_err));
	ASSERT_EQ_I(store_key_revoke(s, "key_1", 200, &g_err), -ENOENT); /* DELETE twice: 404 */
	ASSERT_EQ_I(store_key_lookup_hash(s, HASH_A, &got, &g_err), -ENOENT);
	ASSERT_EQ_I(store_key_revoke(s, "key_none", 1, &g_err), -ENOENT);
	OK(store_key_count(s, true, &count, &g_err));
	ASSERT_EQ_I(count, 0);
	struct store_key *keys = NULL;
	size_t n = 0;
	OK(store_key_list(s, "tn_1", &keys, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	ASSERT_STR(keys[0].id, "key_1");
	ASSERT_TRUE(keys[0].revoked);
	ASSERT_EQ_I(keys[0].revoked_at_ms, 100); /* the first revocation's time is kept */
	ASSERT_TRUE(!keys[1].revoked);
	free(keys);
	OK(store_key_list(s, "tn_other", &keys, &n, &g_err));
	ASSERT_EQ_I(n, 0);
	free(keys);
	/* Only the hash is in the database. */
	sqlite3 *db = raw_open();
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM api_keys WHERE length(hash_hex) = 64"), 2);
	sqlite3_close(db);
	store_close(s);
}

/* ---- executions ---- */

static void test_exec_roundtrip(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	struct store_exec_new e = {.id = "ex_1", .tenant_id = "tn_1", .status = STORE_EXEC_QUEUED,
				   .created_at_ms = 1700000000123, .request_json = "{\"code\":\"x\"}",
				   .callback_url = "http://127.0.0.1:9/cb"};
	OK(store_exec_insert(s, &e, &g_err));
	ASSERT_EQ_I(store_exec_insert(s, &e, &g_err), -EEXIST);
	e.id = "ex_2";
	e.tenant_id = "tn_ghost";
	ASSERT_EQ_I(store_exec_insert(s, &e, &g_err), -ENOENT);

	struct store_exec x;
	OK(store_exec_get(s, "tn_1", "ex_1", STORE_WITH_OUTPUTS, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_QUEUED);
	ASSERT_EQ_I(x.created_at_ms, 1700000000123);
	ASSERT_EQ_I(x.started_at_ms, 0);
	ASSERT_STR(x.request_json, "{\"code\":\"x\"}");
	ASSERT_STR(x.callback_url, "http://127.0.0.1:9/cb");
	ASSERT_TRUE(x.result_json == NULL);
	ASSERT_STR(x.error_code, "");
	ASSERT_STR(x.stdout_data, ""); /* not run yet: empty, not NULL */
	ASSERT_EQ_I(x.stdout_len, 0);
	store_exec_release(&x);

	struct store_exec_update u = {.set = STORE_SET_STATUS | STORE_SET_STARTED,
				      .status = STORE_EXEC_RUNNING, .started_at_ms = 1700000000200};
	OK(store_exec_update(s, "tn_1", "ex_1", &u, &g_err));
	static const char out[] = "line\0with nul\n";
	u = (struct store_exec_update){
		.set = STORE_SET_STATUS | STORE_SET_FINISHED | STORE_SET_ERROR | STORE_SET_RESULT |
		       STORE_SET_OUTPUTS | STORE_SET_LOGS,
		.expect_status = STORE_STATUS_BIT(STORE_EXEC_RUNNING),
		.status = STORE_EXEC_FAILED, .finished_at_ms = 1700000000300,
		.error_code = "SANDBOX_RUNTIME_ERROR", .error_message = "exit code 3",
		.result_json = "{\"exit_code\":3}", .logs_json = "[{\"level\":\"warn\"}]",
		.stdout_data = out, .stdout_len = sizeof(out) - 1, .stderr_data = "err", .stderr_len = 3};
	OK(store_exec_update(s, NULL, "ex_1", &u, &g_err));
	OK(store_exec_get(s, "tn_1", "ex_1", STORE_WITH_OUTPUTS, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_FAILED);
	ASSERT_EQ_I(x.started_at_ms, 1700000000200);
	ASSERT_EQ_I(x.finished_at_ms, 1700000000300);
	ASSERT_STR(x.error_code, "SANDBOX_RUNTIME_ERROR");
	ASSERT_STR(x.error_message, "exit code 3");
	ASSERT_STR(x.result_json, "{\"exit_code\":3}");
	ASSERT_STR(x.logs_json, "[{\"level\":\"warn\"}]");
	ASSERT_EQ_I(x.stdout_len, sizeof(out) - 1);
	ASSERT_TRUE(memcmp(x.stdout_data, out, sizeof(out) - 1) == 0);
	ASSERT_EQ_I(x.stdout_data[x.stdout_len], 0);
	ASSERT_EQ_I(x.stderr_len, 3);
	ASSERT_STR(x.stderr_data, "err");
	store_exec_release(&x);
	/* Without the flag the outputs are not read. */
	OK(store_exec_get(s, "tn_1", "ex_1", 0, &x, &g_err));
	ASSERT_TRUE(x.stdout_data == NULL && x.stderr_data == NULL);
	store_exec_release(&x);
	/* Clearing the error; replacing outputs with empty ones. */
	u = (struct store_exec_update){.set = STORE_SET_ERROR | STORE_SET_OUTPUTS};
	OK(store_exec_update(s, "tn_1", "ex_1", &u, &g_err));
	OK(store_exec_get(s, "tn_1", "ex_1", STORE_WITH_OUTPUTS, &x, &g_err));
	ASSERT_STR(x.error_code, "");
	ASSERT_EQ_I(x.stdout_len, 0);
	ASSERT_STR(x.result_json, "{\"exit_code\":3}"); /* untouched: not in the mask */
	store_exec_release(&x);
	ASSERT_EQ_I(store_exec_update(s, "tn_1", "ex_none", &u, &g_err), -ENOENT);
	store_close(s);
}

static void test_exec_status_precondition(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_RUNNING);
	/* A cancel wins the race ... */
	struct store_exec_update cancel = {.set = STORE_SET_STATUS | STORE_SET_ERROR,
					   .expect_status = STORE_STATUS_UNFINISHED,
					   .status = STORE_EXEC_CANCELLED, .error_code = "SANDBOX_CANCELLED"};
	OK(store_exec_update(s, "tn_1", "ex_1", &cancel, &g_err));
	/* ... so the runner's "succeeded" finds it no longer running and changes nothing. */
	struct store_exec_update fin = {.set = STORE_SET_STATUS | STORE_SET_RESULT,
					.expect_status = STORE_STATUS_UNFINISHED,
					.status = STORE_EXEC_SUCCEEDED, .result_json = "{}"};
	ASSERT_EQ_I(store_exec_update(s, "tn_1", "ex_1", &fin, &g_err), -ESTALE);
	struct store_exec x;
	OK(store_exec_get(s, NULL, "ex_1", 0, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_CANCELLED);
	ASSERT_TRUE(x.result_json == NULL);
	store_exec_release(&x);
	/* A second cancel of a finished run: -ESTALE too (the API's 409). */
	ASSERT_EQ_I(store_exec_update(s, "tn_1", "ex_1", &cancel, &g_err), -ESTALE);
	store_close(s);
}

/* Finishing a run and counting its usage happen together, or not at all. */
static void test_finish_counts_usage_once(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_RUNNING);
	make_exec(s, "tn_1", "ex_2", 11, STORE_EXEC_RUNNING);
	struct store_exec_update fin = {.set = STORE_SET_STATUS | STORE_SET_USAGE,
					.expect_status = STORE_STATUS_UNFINISHED,
					.status = STORE_EXEC_SUCCEEDED, .usage_period = "2026-12",
					.usage_exec_ms = 250};
	OK(store_exec_update(s, NULL, "ex_1", &fin, &g_err));
	/* The same finish again (a retry after a lost answer): refused, not counted twice. */
	ASSERT_EQ_I(store_exec_update(s, NULL, "ex_1", &fin, &g_err), -ESTALE);
	struct store_usage u;
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.executions, 1);
	ASSERT_EQ_I(u.exec_ms, 250);
	/* A failure half-way (the outputs insert) rolls the usage back with the rest. */
	sqlite3 *db = raw_open();
	raw_exec(db, "CREATE TRIGGER no_outputs BEFORE INSERT ON execution_outputs"
		     " BEGIN SELECT RAISE(ABORT, 'outputs refused by the test'); END");
	sqlite3_close(db);
	fin.set |= STORE_SET_OUTPUTS;
	ASSERT_TRUE(store_exec_update(s, NULL, "ex_2", &fin, &g_err) < 0);
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.executions, 1);
	fin.set &= ~STORE_SET_OUTPUTS;
	fin.usage_period = "2026-13";
	ASSERT_EQ_I(store_exec_update(s, NULL, "ex_2", &fin, &g_err), -EINVAL);
	store_close(s);
}

static void test_tenant_scoping(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_a");
	make_tenant(s, "tn_b");
	make_exec(s, "tn_a", "ex_a", 10, STORE_EXEC_RUNNING);
	struct store_exec x;
	/* Tenant b asks for a's execution: not found, exactly like an unknown id. */
	ASSERT_EQ_I(store_exec_get(s, "tn_b", "ex_a", 0, &x, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_get(s, "tn_b", "ex_unknown", 0, &x, &g_err), -ENOENT);
	struct store_exec_update u = {.set = STORE_SET_STATUS, .status = STORE_EXEC_CANCELLED};
	ASSERT_EQ_I(store_exec_update(s, "tn_b", "ex_a", &u, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_delete(s, "tn_b", "ex_a", &g_err), -ENOENT);
	struct store_exec_list l;
	OK(store_exec_list(s, "tn_b", 0, 100, NULL, 0, &l, &g_err));
	ASSERT_EQ_I(l.n, 0);
	store_exec_list_release(&l);
	uint64_t n = 9;
	OK(store_exec_count(s, "tn_b", STORE_STATUS_UNFINISHED, &n, &g_err));
	ASSERT_EQ_I(n, 0);
	/* b's attempts changed nothing of a's. */
	OK(store_exec_get(s, "tn_a", "ex_a", 0, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_RUNNING);
	store_exec_release(&x);
	OK(store_exec_count(s, "tn_a", STORE_STATUS_UNFINISHED, &n, &g_err));
	ASSERT_EQ_I(n, 1);
	/* A cursor made from a's list, replayed by b, shows b nothing of a's. */
	make_exec(s, "tn_a", "ex_a2", 20, STORE_EXEC_RUNNING);
	OK(store_exec_list(s, "tn_a", 0, 1, NULL, 0, &l, &g_err));
	ASSERT_EQ_I(l.n, 1);
	ASSERT_TRUE(l.next_cursor[0] != 0);
	struct store_exec_list lb;
	OK(store_exec_list(s, "tn_b", 0, 10, l.next_cursor, 0, &lb, &g_err));
	ASSERT_EQ_I(lb.n, 0);
	store_exec_list_release(&lb);
	store_exec_list_release(&l);
	store_close(s);
}

static void test_pagination(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_tenant(s, "tn_2");
	/* 57 executions, three per millisecond (ties broken by id), plus another tenant's. */
	enum { N = 57 };
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "ex_%03d", i);
		make_exec(s, "tn_1", id, 1000 + i / 3,
			  i % 2 ? STORE_EXEC_SUCCEEDED : STORE_EXEC_FAILED);
		snprintf(id, sizeof(id), "ex_other_%03d", i);
		make_exec(s, "tn_2", id, 1000 + i / 3, STORE_EXEC_SUCCEEDED);
	}
	bool seen[N] = {0};
	char cursor[STORE_CURSOR_MAX] = "";
	int pages = 0, total = 0, prev = N;
	for (;;) {
		struct store_exec_list l;
		OK(store_exec_list(s, "tn_1", 0, 10, cursor, 0, &l, &g_err));
		pages++;
		for (size_t i = 0; i < l.n; i++) {
			total++;
			if (!strncmp(l.items[i].id, "ex_new", 6)) {
				ASSERT_STR(l.items[i].id, "ex_new0");
				ASSERT_TRUE(!l.next_cursor[0]); /* the oldest: on the last page */
				continue;
			}
			uint64_t k64 = 0;
			OK(parse_u64(l.items[i].id + 3, &k64));
			int k = (int)k64;
			ASSERT_TRUE(k >= 0 && k < N);
			ASSERT_TRUE(!seen[k]);
			seen[k] = true;
			/* Newest first: (created_at, id) strictly decreasing, i.e. k decreasing. */
			ASSERT_TRUE(k < prev);
			prev = k;
			ASSERT_STR(l.items[i].tenant_id, "tn_1");
		}
		/* New records arriving between pages never show up again or shift a page. */
		if (pages == 2) {
			make_exec(s, "tn_1", "ex_new1", 5000, STORE_EXEC_SUCCEEDED);
			make_exec(s, "tn_1", "ex_new0", 1, STORE_EXEC_SUCCEEDED);
		}
		snprintf(cursor, sizeof(cursor), "%s", l.next_cursor);
		size_t got = l.n;
		store_exec_list_release(&l);
		if (!cursor[0]) {
			ASSERT_TRUE(got <= 10);
			break;
		}
		ASSERT_EQ_I(got, 10);
	}
	/* ex_new0 is older than everything, so it arrives on the last page; ex_new1 never. */
	ASSERT_EQ_I(total, N + 1);
	for (int i = 0; i < N; i++)
		ASSERT_TRUE(seen[i]);

	/* A status filter, paged. */
	int nfailed = 0;
	cursor[0] = 0;
	do {
		struct store_exec_list l;
		OK(store_exec_list(s, "tn_1", STORE_STATUS_BIT(STORE_EXEC_FAILED), 7, cursor, 0, &l,
				   &g_err));
		for (size_t i = 0; i < l.n; i++)
			ASSERT_EQ_I(l.items[i].status, STORE_EXEC_FAILED);
		nfailed += (int)l.n;
		snprintf(cursor, sizeof(cursor), "%s", l.next_cursor);
		store_exec_list_release(&l);
	} while (cursor[0]);
	ASSERT_EQ_I(nfailed, (N + 1) / 2);
	/* Every tenant (the runner's view). */
	struct store_exec_list l;
	OK(store_exec_list(s, NULL, 0, STORE_LIST_MAX, NULL, 0, &l, &g_err));
	ASSERT_EQ_I(l.n, 2 * N + 2);
	ASSERT_STR(l.next_cursor, "");
	store_exec_list_release(&l);
	/* Exactly a full page: no next cursor pointing at an empty page. */
	OK(store_exec_list(s, "tn_2", 0, N, NULL, 0, &l, &g_err));
	ASSERT_EQ_I(l.n, N);
	ASSERT_STR(l.next_cursor, "");
	store_exec_list_release(&l);

	/* Cursors come from URLs: anything that is not one of ours is refused. */
	static const char *const bad[] = {"x", "c1.", "c1.12", "c1..ex_1", "c1.-1.ex_1",
					  "c1.12.ex 1", "c1.99999999999999999999.ex_1",
					  "c1.12.ex_1'--", "c2.12.ex_1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ASSERT_EQ_I(store_exec_list(s, "tn_1", 0, 10, bad[i], 0, &l, &g_err), -EINVAL);
	char longc[300];
	memset(longc, 'a', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = 0;
	ASSERT_EQ_I(store_exec_list(s, "tn_1", 0, 10, longc, 0, &l, &g_err), -EINVAL);
	ASSERT_EQ_I(store_exec_list(s, "tn_1", 0, 0, NULL, 0, &l, &g_err), -EINVAL);
	ASSERT_EQ_I(store_exec_list(s, "tn_1", 0, STORE_LIST_MAX + 1, NULL, 0, &l, &g_err), -EINVAL);
	ASSERT_EQ_I(store_exec_list(s, "tn_1", 1u << 9, 10, NULL, 0, &l, &g_err), -EINVAL);
	store_close(s);
}

static void test_delete_takes_everything(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_RUNNING);
	make_exec(s, "tn_1", "ex_keep", 11, STORE_EXEC_RUNNING);
	const char *ids[] = {"ex_1", "ex_keep"};
	for (int i = 0; i < 2; i++) {
		struct store_exec_update u = {.set = STORE_SET_OUTPUTS, .stdout_data = "secret output",
					      .stdout_len = 13};
		OK(store_exec_update(s, "tn_1", ids[i], &u, &g_err));
		OK(store_event_append(s, ids[i], "stdout", "{\"data\":\"x\"}", 12, NULL, &g_err));
		struct store_callback_attempt a = {.attempt = 1, .at_ms = 13, .http_status = 500};
		snprintf(a.exec_id, sizeof(a.exec_id), "%s", ids[i]);
		OK(store_callback_add(s, &a, &g_err));
	}
	OK(store_exec_delete(s, "tn_1", "ex_1", &g_err));
	ASSERT_EQ_I(store_exec_delete(s, "tn_1", "ex_1", &g_err), -ENOENT);
	struct store_exec x;
	ASSERT_EQ_I(store_exec_get(s, NULL, "ex_1", 0, &x, &g_err), -ENOENT);
	sqlite3 *db = raw_open();
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM execution_outputs WHERE execution_id = 'ex_1'"), 0);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM execution_events WHERE execution_id = 'ex_1'"), 0);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM callback_attempts WHERE execution_id = 'ex_1'"), 0);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM execution_outputs"), 1);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM execution_events"), 1);
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(*) FROM callback_attempts"), 1);
	sqlite3_close(db);
	/* An event for a deleted execution is refused, not orphaned. */
	ASSERT_EQ_I(store_event_append(s, "ex_1", "log", "{}", 14, NULL, &g_err), -ENOENT);
	store_close(s);
}

struct seen_ids {
	int n;
	char ids[8][STORE_ID_MAX];
};

static void note_id(void *ud, const char *tenant_id, const char *id)
{
	struct seen_ids *sn = ud;
	if (sn->n < 8)
		snprintf(sn->ids[sn->n++], STORE_ID_MAX, "%s/%s", tenant_id, id);
}

static void test_fail_unfinished(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_tenant(s, "tn_2");
	make_exec(s, "tn_1", "ex_q", 10, STORE_EXEC_QUEUED);
	make_exec(s, "tn_2", "ex_r", 11, STORE_EXEC_RUNNING);
	make_exec(s, "tn_1", "ex_done", 12, STORE_EXEC_SUCCEEDED);
	uint64_t n = 0;
	OK(store_exec_count(s, NULL, STORE_STATUS_UNFINISHED, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	OK(store_exec_count(s, "tn_1", 0, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	struct seen_ids sn = {0};
	OK(store_exec_fail_unfinished(s, 777, "daemon restarted", note_id, &sn, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	ASSERT_EQ_I(sn.n, 2);
	ASSERT_STR(sn.ids[0], "tn_1/ex_q");
	ASSERT_STR(sn.ids[1], "tn_2/ex_r");
	struct store_exec x;
	OK(store_exec_get(s, NULL, "ex_r", 0, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_FAILED);
	ASSERT_STR(x.error_code, "SANDBOX_INTERNAL");
	ASSERT_STR(x.error_message, "daemon restarted");
	ASSERT_EQ_I(x.finished_at_ms, 777);
	store_exec_release(&x);
	OK(store_exec_get(s, NULL, "ex_done", 0, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_SUCCEEDED);
	ASSERT_EQ_I(x.finished_at_ms, 0);
	store_exec_release(&x);
	OK(store_exec_fail_unfinished(s, 778, "daemon restarted", NULL, NULL, &n, &g_err));
	ASSERT_EQ_I(n, 0);
	/* Retention: only finished ones before the time go. */
	make_exec(s, "tn_1", "ex_live", 13, STORE_EXEC_RUNNING);
	OK(store_exec_prune(s, 778, &n, &g_err));
	ASSERT_EQ_I(n, 2); /* ex_q and ex_r (finished at 777); ex_done has no finished_at */
	OK(store_exec_count(s, NULL, 0, &n, &g_err));
	ASSERT_EQ_I(n, 2);
	store_close(s);
}

/* A failure half-way through an operation commits none of it. */
static void test_update_is_atomic(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_RUNNING);
	sqlite3 *db = raw_open();
	raw_exec(db, "CREATE TRIGGER no_outputs BEFORE INSERT ON execution_outputs"
		     " BEGIN SELECT RAISE(ABORT, 'outputs refused by the test'); END");
	sqlite3_close(db);
	struct store_exec_update u = {.set = STORE_SET_STATUS | STORE_SET_OUTPUTS,
				      .status = STORE_EXEC_SUCCEEDED, .stdout_data = "x", .stdout_len = 1};
	ASSERT_TRUE(store_exec_update(s, "tn_1", "ex_1", &u, &g_err) < 0);
	ASSERT_TRUE(strstr(g_err.msg, "outputs refused") != NULL);
	struct store_exec x;
	OK(store_exec_get(s, "tn_1", "ex_1", 0, &x, &g_err));
	ASSERT_EQ_I(x.status, STORE_EXEC_RUNNING); /* the status part was rolled back */
	store_exec_release(&x);
	/* And every pooled connection is usable afterwards (none left inside a transaction). */
	for (int i = 0; i < 8; i++) {
		struct store_exec_update v = {.set = STORE_SET_STARTED, .started_at_ms = 100 + i};
		OK(store_exec_update(s, "tn_1", "ex_1", &v, &g_err));
	}
	store_close(s);
}

/* ---- events, callbacks, usage ---- */

static void test_events(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_RUNNING);
	make_exec(s, "tn_1", "ex_2", 10, STORE_EXEC_RUNNING);
	uint64_t seq = 0;
	for (int i = 1; i <= 5; i++) {
		char data[32];
		snprintf(data, sizeof(data), "{\"i\":%d}", i);
		OK(store_event_append(s, "ex_1", i == 5 ? "end" : "stdout", data, 100 + i, &seq, &g_err));
		ASSERT_EQ_I(seq, i);
	}
	OK(store_event_append(s, "ex_2", "status", "{}", 1, &seq, &g_err));
	ASSERT_EQ_I(seq, 1); /* per execution */
	struct store_event_list l;
	OK(store_event_list(s, "ex_1", 2, 100, &l, &g_err));
	ASSERT_EQ_I(l.n, 3);
	ASSERT_EQ_I(l.items[0].seq, 3);
	ASSERT_STR(l.items[0].data, "{\"i\":3}");
	ASSERT_STR(l.items[0].type, "stdout");
	ASSERT_EQ_I(l.items[0].at_ms, 103);
	ASSERT_STR(l.items[2].type, "end");
	store_event_list_release(&l);
	OK(store_event_list(s, "ex_1", 0, 2, &l, &g_err));
	ASSERT_EQ_I(l.n, 2);
	store_event_list_release(&l);
	ASSERT_EQ_I(store_event_append(s, "ex_none", "log", "{}", 1, &seq, &g_err), -ENOENT);
	char longtype[40];
	memset(longtype, 'x', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = 0;
	ASSERT_EQ_I(store_event_append(s, "ex_1", longtype, "{}", 1, &seq, &g_err), -ENAMETOOLONG);
	store_close(s);
}

static void test_callbacks(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_1", 10, STORE_EXEC_SUCCEEDED);
	struct store_callback_attempt a = {.attempt = 1, .at_ms = 100};
	snprintf(a.exec_id, sizeof(a.exec_id), "ex_1");
	snprintf(a.error, sizeof(a.error), "connection refused");
	OK(store_callback_add(s, &a, &g_err));
	ASSERT_EQ_I(store_callback_add(s, &a, &g_err), -EEXIST);
	a.attempt = 2;
	a.at_ms = 200;
	a.http_status = 204;
	a.error[0] = 0;
	OK(store_callback_add(s, &a, &g_err));
	snprintf(a.exec_id, sizeof(a.exec_id), "ex_none");
	ASSERT_EQ_I(store_callback_add(s, &a, &g_err), -ENOENT);
	struct store_callback_list l;
	OK(store_callback_list(s, "ex_1", &l, &g_err));
	ASSERT_EQ_I(l.n, 2);
	ASSERT_EQ_I(l.items[0].attempt, 1);
	ASSERT_EQ_I(l.items[0].http_status, 0);
	ASSERT_STR(l.items[0].error, "connection refused");
	ASSERT_EQ_I(l.items[1].http_status, 204);
	ASSERT_EQ_I(l.items[1].at_ms, 200);
	ASSERT_STR(l.items[1].exec_id, "ex_1");
	store_callback_list_release(&l);
	store_close(s);
}

static void test_usage(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_tenant(s, "tn_2");
	struct store_usage u;
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.exec_ms, 0);
	ASSERT_EQ_I(u.executions, 0);
	ASSERT_STR(u.period, "2026-12");
	OK(store_usage_add(s, "tn_1", "2026-12", 1500, 1, &g_err));
	OK(store_usage_add(s, "tn_1", "2026-12", 500, 2, &g_err));
	OK(store_usage_add(s, "tn_1", "2027-01", 7, 1, &g_err));
	OK(store_usage_add(s, "tn_2", "2026-12", 9, 1, &g_err));
	ASSERT_EQ_I(store_usage_add(s, "tn_ghost", "2026-12", 9, 1, &g_err), -ENOENT);
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.exec_ms, 2000);
	ASSERT_EQ_I(u.executions, 3);
	struct store_usage_list l;
	OK(store_usage_list(s, NULL, "2026-12", &l, &g_err));
	ASSERT_EQ_I(l.n, 2);
	store_usage_list_release(&l);
	OK(store_usage_list(s, "tn_1", NULL, &l, &g_err));
	ASSERT_EQ_I(l.n, 2);
	ASSERT_STR(l.items[0].period, "2026-12");
	ASSERT_STR(l.items[1].period, "2027-01");
	store_usage_list_release(&l);
	static const char *const bad[] = {"2026-13", "2026-00", "2026-1", "26-12-01", "abcd-ef", ""};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ASSERT_EQ_I(store_usage_add(s, "tn_1", bad[i], 1, 1, &g_err), -EINVAL);
	ASSERT_EQ_I(store_usage_add(s, "tn_1", "2026-12", UINT64_MAX, 1, &g_err), -ERANGE);
	char p[STORE_PERIOD_MAX];
	store_period_of(0, p);
	ASSERT_STR(p, "1970-01");
	store_period_of(1798761599999, p); /* 2026-12-31T23:59:59.999Z */
	ASSERT_STR(p, "2026-12");
	store_period_of(1798761600000, p);
	ASSERT_STR(p, "2027-01");
	store_close(s);
}

/* ---- arguments, ids ---- */

static void test_arguments(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	struct store_exec x;
	/* Ids from URLs that could never exist: not found, like unknown ones (the API's 404). */
	ASSERT_EQ_I(store_exec_get(s, "tn_1", "ex_1'; DROP TABLE executions;--", 0, &x, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_get(s, "tn_1", "../../etc", 0, &x, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_get(s, "tn_1", "", 0, &x, &g_err), -ENOENT);
	char longid[100];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	ASSERT_EQ_I(store_exec_get(s, "tn_1", longid, 0, &x, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_delete(s, "tn_1", "ex 1", &g_err), -ENOENT);
	ASSERT_EQ_I(store_tenant_get(s, "tn/1", &(struct store_tenant){0}, &g_err), -ENOENT);
	ASSERT_EQ_I(store_key_revoke(s, "key%00", 1, &g_err), -ENOENT);
	ASSERT_EQ_I(store_key_lookup_hash(s, "not-a-hash", &(struct store_key){0}, &g_err), -ENOENT);
	ASSERT_EQ_I(store_exec_get(s, "tn_1", NULL, 0, &x, &g_err), -EINVAL); /* a bug, not a 404 */
	/* A create with an id that could never be looked up is refused. */
	struct store_exec_new bad = {.id = "ex 1", .tenant_id = "tn_1", .request_json = "{}"};
	ASSERT_EQ_I(store_exec_insert(s, &bad, &g_err), -EINVAL);
	bad.id = longid;
	ASSERT_EQ_I(store_exec_insert(s, &bad, &g_err), -ENAMETOOLONG);
	struct store_exec_new e = {.id = "ex_1", .tenant_id = "tn_1", .status = STORE_EXEC_NSTATUS,
				   .created_at_ms = 1, .request_json = "{}"};
	ASSERT_EQ_I(store_exec_insert(s, &e, &g_err), -EINVAL);
	e.status = STORE_EXEC_QUEUED;
	e.request_json = NULL;
	ASSERT_EQ_I(store_exec_insert(s, &e, &g_err), -EINVAL);
	struct store_exec_update u = {.set = STORE_SET_OUTPUTS, .stdout_len = STORE_OUTPUT_MAX + 1u,
				      .stdout_data = ""};
	ASSERT_EQ_I(store_exec_update(s, "tn_1", "ex_1", &u, &g_err), -EFBIG);
	struct store_tenant t = {0};
	snprintf(t.id, sizeof(t.id), "tn_2");
	snprintf(t.name, sizeof(t.name), "two");
	ASSERT_EQ_I(store_tenant_create(s, &t, &g_err), -EINVAL); /* empty trust level */
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "root");
	snprintf(t.plan.limits_json, sizeof(t.plan.limits_json), "{}");
	ASSERT_EQ_I(store_tenant_create(s, &t, &g_err), -EINVAL);
	snprintf(t.plan.max_trust_level, sizeof(t.plan.max_trust_level), "high");
	OK(store_tenant_create(s, &t, &g_err));
	/* The database is intact. */
	uint64_t n = 1;
	OK(store_exec_count(s, NULL, 0, &n, &g_err));
	ASSERT_EQ_I(n, 0);
	enum store_exec_status st;
	OK(store_exec_status_parse("cancelled", &st));
	ASSERT_EQ_I(st, STORE_EXEC_CANCELLED);
	ASSERT_EQ_I(store_exec_status_parse("done", &st), -EINVAL);
	ASSERT_STR(store_exec_status_name(STORE_EXEC_RUNNING), "running");
	ASSERT_TRUE(store_exec_status_name(STORE_EXEC_NSTATUS) == NULL);
	store_close(s);
}

static void test_ids(void)
{
	enum { N = 2000 };
	static char ids[N][STORE_ID_MAX];
	for (int i = 0; i < N; i++) {
		OK(store_id_new("ex_", ids[i]));
		ASSERT_EQ_I(strlen(ids[i]), 3 + 26);
		ASSERT_TRUE(!strncmp(ids[i], "ex_", 3));
		for (const char *p = ids[i] + 3; *p; p++)
			ASSERT_TRUE((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'));
	}
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			ASSERT_TRUE(strcmp(ids[i], ids[j]) != 0);
	char big[STORE_ID_MAX];
	ASSERT_EQ_I(store_id_new("a_prefix_that_is_far_too_long_for_any_id_", big), -ENAMETOOLONG);
}

/* ---- concurrency and crashes ---- */

enum { THREADS = 8, PER_THREAD = 60 };

struct worker {
	struct store *s;
	int n;
	int failures;
	char msg[640];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cdn_err err = {0};
	for (int i = 0; i < PER_THREAD; i++) {
		char id[STORE_ID_MAX];
		snprintf(id, sizeof(id), "ex_t%d_%d", w->n, i);
		struct store_exec_new e = {.id = id, .tenant_id = "tn_1", .status = STORE_EXEC_QUEUED,
					   .created_at_ms = 1000 + i, .request_json = "{}"};
		struct store_exec_update u = {.set = STORE_SET_STATUS | STORE_SET_OUTPUTS,
					      .expect_status = STORE_STATUS_BIT(STORE_EXEC_QUEUED),
					      .status = STORE_EXEC_SUCCEEDED, .stdout_data = id,
					      .stdout_len = strlen(id)};
		struct store_exec x;
		struct store_exec_list l;
		uint64_t n;
		if (store_exec_insert(w->s, &e, &err) < 0 ||
		    store_exec_update(w->s, "tn_1", id, &u, &err) < 0 ||
		    store_usage_add(w->s, "tn_1", "2026-12", 3, 1, &err) < 0 ||
		    store_event_append(w->s, "ex_shared", "log", "{}", i, NULL, &err) < 0 ||
		    store_exec_count(w->s, "tn_1", 0, &n, &err) < 0) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
			continue;
		}
		if (store_exec_get(w->s, "tn_1", id, STORE_WITH_OUTPUTS, &x, &err) < 0 ||
		    strcmp(x.stdout_data, id) || x.status != STORE_EXEC_SUCCEEDED) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "read back %s: %s", id, err.msg);
		}
		store_exec_release(&x);
		if (store_exec_list(w->s, "tn_1", 0, 20, NULL, 0, &l, &err) < 0) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
		}
		store_exec_list_release(&l);
	}
	return NULL;
}

static void test_threads(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_shared", 1, STORE_EXEC_RUNNING);
	pthread_t th[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.s = s, .n = i};
		ASSERT_EQ_I(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (w[i].failures)
			fprintf(stderr, "thread %d: %d failures, last: %s\n", i, w[i].failures, w[i].msg);
		ASSERT_EQ_I(w[i].failures, 0);
	}
	struct store_usage u;
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.executions, THREADS * PER_THREAD); /* no lost update */
	ASSERT_EQ_I(u.exec_ms, 3 * THREADS * PER_THREAD);
	uint64_t n = 0;
	OK(store_exec_count(s, "tn_1", STORE_STATUS_BIT(STORE_EXEC_SUCCEEDED), &n, &g_err));
	ASSERT_EQ_I(n, THREADS * PER_THREAD);
	/* Event seqs: 1..N, each exactly once. */
	sqlite3 *db = raw_open();
	ASSERT_EQ_I(raw_int(db, "SELECT COUNT(DISTINCT seq) FROM execution_events"), THREADS * PER_THREAD);
	ASSERT_EQ_I(raw_int(db, "SELECT MAX(seq) FROM execution_events"), THREADS * PER_THREAD);
	sqlite3_close(db);
	store_close(s);
}

static void test_processes(void)
{
	/* Several daemons (or a daemon and an admin tool) on one file. */
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	store_close(s);
	enum { PROCS = 3, ADDS = 100 };
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		ASSERT_TRUE(pids[i] >= 0);
		if (pids[i] == 0) {
			struct store *cs = NULL;
			if (store_open(g_dir, &cs, &g_err) < 0)
				_exit(1);
			for (int j = 0; j < ADDS; j++)
				if (store_usage_add(cs, "tn_1", "2026-12", 1, 1, &g_err) < 0) {
					fprintf(stderr, "child usage_add: %s\n", g_err.msg);
					_exit(1);
				}
			store_close(cs);
			_exit(0);
		}
	}
	for (int i = 0; i < PROCS; i++) {
		int st = 0;
		waitpid(pids[i], &st, 0);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	s = open_store();
	struct store_usage u;
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.executions, PROCS * ADDS);
	store_close(s);
}

/* Another process holds the write lock past the busy timeout: the write answers -EBUSY (the
 * API's 503) and changes nothing; reads still work (WAL). Takes the timeout (10 s) to run. */
static void test_locked_answers_ebusy(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	sqlite3 *db = raw_open();
	raw_exec(db, "BEGIN IMMEDIATE");
	struct store_tenant t;
	OK(store_tenant_get(s, "tn_1", &t, &g_err));
	ASSERT_EQ_I(store_usage_add(s, "tn_1", "2026-12", 1, 1, &g_err), -EBUSY);
	raw_exec(db, "ROLLBACK");
	sqlite3_close(db);
	struct store_usage u;
	OK(store_usage_get(s, "tn_1", "2026-12", &u, &g_err));
	ASSERT_EQ_I(u.executions, 0);
	OK(store_usage_add(s, "tn_1", "2026-12", 1, 1, &g_err));
	store_close(s);
}

/* A child writes and acknowledges each commit on a pipe; SIGKILL hits it mid-stream. Every
 * acknowledged record must be there after reopening, the file must be intact, and the next
 * start fails what was running. */
static void test_crash_kill9(void)
{
	struct store *s = open_store();
	make_tenant(s, "tn_1");
	make_exec(s, "tn_1", "ex_big", 1, STORE_EXEC_RUNNING);
	store_close(s);
	int fds[2];
	OK(pipe2(fds, O_CLOEXEC));
	pid_t pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		struct store *cs = NULL;
		if (store_open(g_dir, &cs, &g_err) < 0)
			_exit(1);
		static char big[256 << 10];
		for (uint32_t i = 0;; i++) {
			char id[STORE_ID_MAX];
			snprintf(id, sizeof(id), "ex_c%u", i);
			struct store_exec_new e = {.id = id, .tenant_id = "tn_1",
						   .status = STORE_EXEC_RUNNING, .created_at_ms = 10 + i,
						   .request_json = "{}"};
			/* Big transactions too, so the kill often lands inside one. */
			memset(big, 'a' + (int)(i % 26), sizeof(big));
			snprintf(big, 16, "%010u", i);
			struct store_exec_update u = {.set = STORE_SET_OUTPUTS, .stdout_data = big,
						      .stdout_len = sizeof(big)};
			if (store_exec_insert(cs, &e, &g_err) < 0 ||
			    store_exec_update(cs, "tn_1", "ex_big", &u, &g_err) < 0)
				_exit(2);
			if (write(fds[1], &i, sizeof(i)) != sizeof(i))
				_exit(3);
		}
	}
	close(fds[1]);
	uint32_t last = 0;
	for (int k = 0; k < 40; k++)
		ASSERT_EQ_I(read(fds[0], &last, sizeof(last)), sizeof(last));
	kill(pid, SIGKILL);
	int st = 0;
	waitpid(pid, &st, 0);
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	close(fds[0]);

	sqlite3 *db = raw_open();
	char ok[32];
	raw_text(db, "PRAGMA integrity_check", ok, sizeof(ok));
	ASSERT_STR(ok, "ok");
	sqlite3_close(db);
	s = open_store();
	for (uint32_t i = 0; i <= last; i++) {
		char id[STORE_ID_MAX];
		snprintf(id, sizeof(id), "ex_c%u", i);
		struct store_exec x;
		OK(store_exec_get(s, "tn_1", id, 0, &x, &g_err));
		ASSERT_EQ_I(x.status, STORE_EXEC_RUNNING);
		store_exec_release(&x);
	}
	struct store_exec x;
	OK(store_exec_get(s, "tn_1", "ex_big", STORE_WITH_OUTPUTS, &x, &g_err));
	ASSERT_EQ_I(x.stdout_len, 256 << 10);
	uint64_t stored = 0;
	char head[11];
	memcpy(head, x.stdout_data, 10);
	head[10] = 0;
	OK(parse_u64(head, &stored));
	ASSERT_TRUE(stored >= last); /* the last acknowledged update, or a later one */
	/* The rest of the blob belongs to the same write: never a torn mix of two updates. */
	char fill = x.stdout_data[(256 << 10) - 1];
	ASSERT_EQ_I(fill, 'a' + (int)(stored % 26));
	store_exec_release(&x);
	uint64_t n = 0;
	OK(store_exec_fail_unfinished(s, 999, "daemon restarted", NULL, NULL, &n, &g_err));
	ASSERT_TRUE(n >= (uint64_t)last + 2); /* ex_c0..ex_c<last> and ex_big */
	OK(store_exec_count(s, NULL, STORE_STATUS_UNFINISHED, &n, &g_err));
	ASSERT_EQ_I(n, 0);
	store_close(s);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{"open_creates_wal_file", test_open_creates_wal_file},
	{"reopen_is_idempotent", test_reopen_is_idempotent},
	{"upgrade_keeps_data", test_upgrade_keeps_data},
	{"newer_schema_refused", test_newer_schema_refused},
	{"concurrent_first_open", test_concurrent_first_open},
	{"open_refusals", test_open_refusals},
	{"fds_cloexec", test_fds_cloexec},
	{"tenants", test_tenants},
	{"keys", test_keys},
	{"exec_roundtrip", test_exec_roundtrip},
	{"max_outputs", test_max_outputs},
	{"exec_status_precondition", test_exec_status_precondition},
	{"finish_counts_usage_once", test_finish_counts_usage_once},
	{"tenant_scoping", test_tenant_scoping},
	{"pagination", test_pagination},
	{"delete_takes_everything", test_delete_takes_everything},
	{"fail_unfinished", test_fail_unfinished},
	{"update_is_atomic", test_update_is_atomic},
	{"events", test_events},
	{"callbacks", test_callbacks},
	{"usage", test_usage},
	{"arguments", test_arguments},
	{"ids", test_ids},
	{"threads", test_threads},
	{"processes", test_processes},
	{"locked_answers_ebusy", test_locked_answers_ebusy},
	{"crash_kill9", test_crash_kill9},
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	int passed = 0, failed = 0;
	size_t n = ARRAY_SIZE(tests);
	const char *tmp = getenv("TMPDIR");
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		snprintf(g_dir, sizeof(g_dir), "%s/cordon-unit-store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(g_dir)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(g_db, sizeof(g_db), "%s/cordon.db", g_dir);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			/* A hang guard only, far above any run time: no timing is asserted. */
			alarm(300);
			tests[i].fn();
			/* exit, not _exit: LeakSanitizer checks at exit in the SAN build. */
			exit(0);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1, tests[i].name);
		ok ? passed++ : failed++;
		nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
