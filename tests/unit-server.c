/* Unit tests of the daemon's pure parts: the execution request validator (normalized __spawn
 * request, effective limits from trust level and plan caps, 422/403 with field paths), plans
 * as JSON, the limits table, API keys. Each test runs in its own process with a timeout;
 * asserts print both values. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#include "server/auth.h"
#include "server/tenants.h"
#include "server/validate.h"


static struct tenant tenant_default(void)
{
	struct tenant t = {0};
	snprintf(t.id, sizeof(t.id), "tn_test");
	plan_default(&t.plan);
	return t;
}

/* Validate a JSON text; returns rc and fills spawn/err. */
static int run(const char *text, const struct tenant *t, json_t **spawn, struct val_err *err)
{
	json_error_t jerr;
	json_t *body = json_loads(text, 0, &jerr);
	if (!body) {
		fprintf(stderr, "test body does not parse: %s: %s\n", jerr.text, text);
		exit(1);
	}
	json_t *extra = NULL;
	memset(err, 0, sizeof(*err));
	int rc = val_execution(body, t, spawn, &extra, err);
	json_decref(extra);
	json_decref(body);
	return rc;
}

/* The request fails with status and field. */
static void expect_fail(const char *text, const struct tenant *t, unsigned status,
			const char *field)
{
	json_t *spawn = NULL;
	struct val_err err;
	int rc = run(text, t, &spawn, &err);
	if (rc == 0) {
		fprintf(stderr, "accepted, expected %u at \"%s\": %s\n", status, field, text);
		exit(1);
	}
	if (err.status != status || strcmp(err.field, field)) {
		fprintf(stderr, "got %u at \"%s\" (%s), expected %u at \"%s\": %s\n", err.status,
			err.field, err.msg, status, field, text);
		exit(1);
	}
}

static json_int_t lim(json_t *spawn, const char *name)
{
	json_t *v = json_object_get(json_object_get(spawn, "limits"), name);
	if (!json_is_integer(v)) {
		fprintf(stderr, "limits.%s missing\n", name);
		exit(1);
	}
	return json_integer_value(v);
}

static void test_minimal_request_is_normalized(void)
{
	struct tenant t = tenant_default();
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\": \"python\", \"code\": \"print(1)\"}", &t, &s, &err), 0);
	ASSERT_STR(json_string_value(json_object_get(s, "runtime")), "python");
	ASSERT_STR(json_string_value(json_object_get(s, "image")), "host");
	ASSERT_STR(json_string_value(json_object_get(s, "trust_level")), "low");
	ASSERT_STR(json_string_value(json_object_get(s, "stdin")), "");
	ASSERT_EQ_I(json_is_null(json_object_get(s, "command")), 1);
	ASSERT_EQ_I(json_is_null(json_object_get(s, "tests")), 1);
	ASSERT_EQ_I(json_is_null(json_object_get(s, "workspace")), 1);
	ASSERT_EQ_I(json_is_true(json_object_get(s, "capture_console")), 1);
	ASSERT_EQ_I(json_array_size(json_object_get(s, "files")), 0);
	/* Every limit present, with the low level's defaults (PRODUCT.md). */
	ASSERT_EQ_I(json_object_size(json_object_get(s, "limits")), 9);
	ASSERT_EQ_I(lim(s, "timeout_ms"), 10000);
	ASSERT_EQ_I(lim(s, "cpu_time_ms"), 5000);
	ASSERT_EQ_I(lim(s, "memory_mb"), 256);
	ASSERT_EQ_I(lim(s, "processes"), 32);
	ASSERT_EQ_I(json_object_size(json_object_get(s, "compile_limits")), 9);
	json_decref(s);
}

static void test_trust_level_sets_defaults(void)
{
	struct tenant t = tenant_default();
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"sh\",\"code\":\"true\",\"trust_level\":\"untrusted\"}", &t,
			&s, &err),
		    0);
	ASSERT_EQ_I(lim(s, "timeout_ms"), 5000);
	ASSERT_EQ_I(lim(s, "cpu_time_ms"), 2000);
	ASSERT_EQ_I(lim(s, "memory_mb"), 128);
	ASSERT_EQ_I(lim(s, "processes"), 8);
	ASSERT_EQ_I(lim(s, "disk_mb"), 16);
	json_decref(s);
}

static void test_explicit_limits_within_caps(void)
{
	struct tenant t = tenant_default();
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"memory_mb\":512,"
			"\"timeout_ms\":1234,\"network\":{\"enabled\":false},"
			"\"filesystem\":{\"writable\":[\"/tmp\"]}}}",
			&t, &s, &err),
		    0);
	ASSERT_EQ_I(lim(s, "memory_mb"), 512);
	ASSERT_EQ_I(lim(s, "timeout_ms"), 1234);
	json_decref(s);
}

static void test_plan_cap_lowers_defaults_and_refuses_more(void)
{
	struct tenant t = tenant_default();
	t.plan.caps.memory_bytes = 100ULL << 20;
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"sh\",\"code\":\"true\"}", &t, &s, &err), 0);
	ASSERT_EQ_I(lim(s, "memory_mb"), 100);
	json_decref(s);
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"memory_mb\":101}}", &t, 403,
		    "limits.memory_mb");
}

static void test_trust_above_plan_is_403(void)
{
	struct tenant t = tenant_default(); /* max medium */
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"trust_level\":\"high\"}", &t, 403,
		    "trust_level");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"trust_level\":\"root\"}", &t, 422,
		    "trust_level");
}

static void test_unknown_fields_name_their_path(void)
{
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"colour\":1}", &t, 422, "colour");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"memroy_mb\":1}}", &t, 422,
		    "limits.memroy_mb");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"network\":{\"on\":1}}}",
		    &t, 422, "limits.network.on");
	expect_fail("{\"runtime\":\"sh\",\"files\":[{\"path\":\"a\",\"content\":\"\",\"mode\":1}]}",
		    &t, 422, "files[0].mode");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{},{\"stdout\":\"\"}]}", &t, 422,
		    "tests[1].stdout");
}

static void test_types_and_ranges(void)
{
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"memory_mb\":\"256\"}}", &t,
		    422, "limits.memory_mb");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"memory_mb\":0}}", &t, 422,
		    "limits.memory_mb");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"true\",\"limits\":{\"timeout_ms\":-5}}", &t, 422,
		    "limits.timeout_ms");
	expect_fail("{\"runtime\":\"sh\",\"code\":5}", &t, 422, "code");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"async\":\"yes\"}", &t, 422, "async");
	expect_fail("{\"runtime\":\"Py thon\",\"code\":\"x\"}", &t, 422, "runtime");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"callback_url\":\"file:///etc\"}", &t, 422,
		    "callback_url");
}

static void test_what_to_run(void)
{
	struct tenant t = tenant_default();
	expect_fail("{}", &t, 422, "runtime");
	expect_fail("{\"runtime\":\"sh\"}", &t, 422, "code");
	expect_fail("{\"runtime\":\"sh\",\"command\":[\"true\"]}", &t, 422, "command");
	expect_fail("{\"command\":[]}", &t, 422, "command");
	expect_fail("{\"command\":[\"ls\", 3]}", &t, 422, "command[1]");
	expect_fail("{\"command\":[\"ls\"],\"code\":\"x\"}", &t, 422, "code");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"\"}]}",
		    &t, 422, "files");
	expect_fail("{\"runtime\":\"c\",\"files\":[{\"path\":\"a.c\",\"content\":\"\"}],"
		    "\"entrypoint\":\"b.c\"}",
		    &t, 422, "entrypoint");
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"command\":[\"echo\",\"hi\"],\"args\":[\"x\"]}", &t, &s, &err), 0);
	ASSERT_EQ_I(json_is_null(json_object_get(s, "runtime")), 1);
	ASSERT_EQ_I(json_array_size(json_object_get(s, "command")), 2);
	json_decref(s);
}

static void test_files(void)
{
	struct tenant t = tenant_default();
	const char *bad[] = {"../x", "/etc/passwd", "a/../b", "a//b", "./a", "a/", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
			 "{\"runtime\":\"c\",\"files\":[{\"path\":\"%s\",\"content\":\"\"}]}", bad[i]);
		expect_fail(text, &t, 422, "files[0].path");
	}
	expect_fail("{\"runtime\":\"c\",\"files\":[{\"path\":\"a\",\"content\":\"\"},"
		    "{\"path\":\"a\",\"content\":\"\"}]}",
		    &t, 422, "files[1].path");
	expect_fail("{\"runtime\":\"c\",\"files\":[{\"path\":\"a\",\"content\":\"!!!\","
		    "\"encoding\":\"base64\"}]}",
		    &t, 422, "files[0].content");
	expect_fail("{\"runtime\":\"c\",\"files\":[{\"path\":\"a\",\"content\":\"\","
		    "\"encoding\":\"hex\"}]}",
		    &t, 422, "files[0].encoding");
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"c\",\"files\":[{\"path\":\"src/main.c\",\"content\":"
			"\"aGk=\",\"encoding\":\"base64\"},{\"path\":\"b.h\",\"content\":\"\"}],"
			"\"entrypoint\":\"src/main.c\"}",
			&t, &s, &err),
		    0);
	json_t *f1 = json_array_get(json_object_get(s, "files"), 1);
	ASSERT_STR(json_string_value(json_object_get(f1, "encoding")), "utf8");
	json_decref(s);
}

static void test_env_and_secrets(void)
{
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"env\":{\"1BAD\":\"v\"}}", &t, 422,
		    "env.1BAD");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"env\":{\"A-B\":\"v\"}}", &t, 422, "env.A-B");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"env\":{\"A\":1}}", &t, 422, "env.A");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"env\":{\"T\":\"a\"},\"secrets\":{\"T\":"
		    "\"b\"}}",
		    &t, 422, "secrets.T");
}

static void test_network_and_filesystem_refused(void)
{
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"limits\":{\"network\":{\"enabled\":true}}}",
		    &t, 422, "limits.network.enabled");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"limits\":{\"filesystem\":{\"read_only\":"
		    "[\"/etc\"]}}}",
		    &t, 422, "limits.filesystem.read_only");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"limits\":{\"filesystem\":{\"writable\":"
		    "[\"/\"]}}}",
		    &t, 422, "limits.filesystem.writable[0]");
}

static void test_counts_follow_the_limits_table(void)
{
	char msg[128];
	ASSERT_EQ_I(srv_limit_set("max_tests=2", msg, sizeof(msg)), 0);
	ASSERT_EQ_I(srv_limit("max_tests"), 2);
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{},{},{}]}", &t, 422, "tests");
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{},{\"name\":\"b\"}]}", &t,
			&s, &err),
		    0);
	ASSERT_STR(json_string_value(json_object_get(
			   json_array_get(json_object_get(s, "tests"), 0), "name")),
		   "test_1");
	json_decref(s);
	ASSERT_EQ_I(srv_limit_set("max_tests=0", msg, sizeof(msg)), -ERANGE);
	ASSERT_EQ_I(srv_limit_set("nonsense=1", msg, sizeof(msg)), -ENOENT);
	ASSERT_EQ_I(srv_limit_set("max_body_bytes=12Q", msg, sizeof(msg)), -EINVAL);
	ASSERT_EQ_I(srv_limit_set("max_body_bytes=64K", msg, sizeof(msg)), 0);
	ASSERT_EQ_I(srv_limit("max_body_bytes"), 65536);
	ASSERT_EQ_I(srv_limit_set("shutdown_grace_ms=2s", msg, sizeof(msg)), 0);
	ASSERT_EQ_I(srv_limit("shutdown_grace_ms"), 2000);
}

static void test_test_case_inputs_are_bounded(void)
{
	char msg[128];
	ASSERT_EQ_I(srv_limit_set("max_input_bytes=16", msg, sizeof(msg)), 0);
	struct tenant t = tenant_default();
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{\"input\":"
		    "\"0123456789abcdefghij\"}]}",
		    &t, 422, "tests[0].input");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{},{\"expected\":"
		    "[1,2,3,4,5,6,7,8,9,10]}]}",
		    &t, 422, "tests[1].expected");
	expect_fail("{\"runtime\":\"sh\",\"code\":\"x\",\"input\":\"0123456789abcdefghij\"}",
		    &t, 422, "input");
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run("{\"runtime\":\"sh\",\"code\":\"x\",\"tests\":[{\"input\":[1]}]}", &t,
			&s, &err),
		    0);
	json_decref(s);
}

static void test_plan_json_round_trip(void)
{
	struct plan p;
	plan_default(&p);
	p.max_trust = TRUST_HIGH;
	p.caps.wall_ms = 1234;
	p.caps.memory_bytes = 77ULL << 20;
	p.burst = 3;
	json_t *j = plan_to_json(&p);
	struct plan q;
	plan_default(&q);
	struct val_err err;
	ASSERT_EQ_I(plan_from_json(j, "plan", &q, &err), 0);
	json_decref(j);
	ASSERT_EQ_I(q.max_trust, TRUST_HIGH);
	ASSERT_EQ_I(q.caps.wall_ms, 1234);
	ASSERT_EQ_I(q.caps.memory_bytes, 77ULL << 20);
	ASSERT_EQ_I(q.burst, 3);

	json_t *bad = json_loads("{\"limits\":{\"memory_mb\":1,\"x\":2}}", 0, NULL);
	ASSERT_EQ_I(plan_from_json(bad, "plan", &q, &err), -EINVAL);
	ASSERT_STR(err.field, "plan.limits.x");
	json_decref(bad);
	bad = json_loads("{\"default_trust_level\":\"high\",\"max_trust_level\":\"low\"}", 0, NULL);
	ASSERT_EQ_I(plan_from_json(bad, "plan", &q, &err), -EINVAL);
	ASSERT_STR(err.field, "plan.default_trust_level");
	json_decref(bad);
}

static void test_keys(void)
{
	char key[AUTH_KEY_LEN + 1], hash[AUTH_HASH_LEN], key2[AUTH_KEY_LEN + 1],
		hash2[AUTH_HASH_LEN];
	ASSERT_EQ_I(auth_key_new(key, hash), 0);
	ASSERT_EQ_I(auth_key_new(key2, hash2), 0);
	ASSERT_EQ_I(strlen(key), 35);
	ASSERT_EQ_I(strncmp(key, "ck_", 3), 0);
	ASSERT_EQ_I(auth_key_valid(key), 1);
	ASSERT_EQ_I(strcmp(key, key2) != 0, 1);
	ASSERT_EQ_I(strlen(hash), 64);
	char again[AUTH_HASH_LEN];
	auth_hash(key, again);
	ASSERT_STR(again, hash);
	/* Known vector: sha256("abc"). */
	auth_hash("abc", again);
	ASSERT_STR(again, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ASSERT_EQ_I(auth_key_valid("ck_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0); /* upper case */
	ASSERT_EQ_I(auth_key_valid("ck_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0);  /* 31 chars */
	ASSERT_EQ_I(auth_key_valid("xk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0);
	ASSERT_EQ_I(auth_key_valid("ck_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"), 0); /* 1 not base32 */
	ASSERT_EQ_I(auth_key_valid("ck_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa7"), 1);
}

static void test_utf8_cuts(void)
{
	char buf[8];
	ASSERT_STR(utf8_copy(buf, sizeof(buf), "abcdefghij"), "abcdefg");
	/* "aaaaa" + U+00E9 (2 bytes) fits exactly in 7; one more 'a' before it does not. */
	ASSERT_STR(utf8_copy(buf, sizeof(buf), "aaaaa\xc3\xa9z"), "aaaaa\xc3\xa9");
	ASSERT_STR(utf8_copy(buf, sizeof(buf), "aaaaaa\xc3\xa9z"), "aaaaaa");
	/* A 4-byte character cut anywhere is dropped whole. */
	ASSERT_STR(utf8_copy(buf, sizeof(buf), "aaaa\xf0\x9f\x98\x80"), "aaaa");
	ASSERT_STR(utf8_copy(buf, sizeof(buf), "aaa\xf0\x9f\x98\x80"), "aaa\xf0\x9f\x98\x80");
	ASSERT_EQ_I(utf8_prefix("\xe2\x82", 2), 0);
	ASSERT_EQ_I(utf8_prefix("", 0), 0);
	/* An unknown field whose long name is cut still gives a valid UTF-8 path. */
	struct tenant t = tenant_default();
	char text[400] = "{\"runtime\":\"sh\",\"code\":\"x\",\"";
	for (int i = 0; i < 40; i++)
		strcat(text, "\xc3\xa9");
	strcat(text, "\":1}");
	json_t *s = NULL;
	struct val_err err;
	ASSERT_EQ_I(run(text, &t, &s, &err), -EINVAL);
	json_t *j = json_string(err.field);
	ASSERT_EQ_I(j != NULL, 1);
	json_decref(j);
	j = json_string(err.msg);
	ASSERT_EQ_I(j != NULL, 1);
	json_decref(j);
}

static const struct tap_test tests[] = {
	{"utf8 cuts", test_utf8_cuts},
	{"minimal request is normalized", test_minimal_request_is_normalized},
	{"trust level sets defaults", test_trust_level_sets_defaults},
	{"explicit limits within caps", test_explicit_limits_within_caps},
	{"plan cap lowers defaults and refuses more", test_plan_cap_lowers_defaults_and_refuses_more},
	{"trust above plan is 403", test_trust_above_plan_is_403},
	{"unknown fields name their path", test_unknown_fields_name_their_path},
	{"types and ranges", test_types_and_ranges},
	{"what to run", test_what_to_run},
	{"files", test_files},
	{"env and secrets", test_env_and_secrets},
	{"network and filesystem refused", test_network_and_filesystem_refused},
	{"counts follow the limits table", test_counts_follow_the_limits_table},
	{"test case inputs are bounded", test_test_case_inputs_are_bounded},
	{"plan json round trip", test_plan_json_round_trip},
	{"keys", test_keys},
};

TAP_MAIN(tests, 10)
