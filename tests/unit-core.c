/* Unit tests of the core's pure parts: checked parsers, the limits table, streaming secret
 * redaction. Each test runs in its own process with a timeout; asserts print both values. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#include "core/limits.h"
#include "core/redact.h"
#include "core/util.h"


static void test_parse_u64(void)
{
	uint64_t v = 0;
	ASSERT_EQ_U(parse_u64("0", &v), 0);
	ASSERT_EQ_U(v, 0);
	ASSERT_EQ_U(parse_u64("18446744073709551615", &v), 0);
	ASSERT_EQ_U(v, UINT64_MAX);
	ASSERT_EQ_U(parse_u64("18446744073709551616", &v), (unsigned long long)-ERANGE);
	ASSERT_EQ_U(parse_u64("", &v), (unsigned long long)-EINVAL);
	ASSERT_EQ_U(parse_u64("-1", &v), (unsigned long long)-EINVAL);
	ASSERT_EQ_U(parse_u64("12x", &v), (unsigned long long)-EINVAL);
	ASSERT_EQ_U(parse_u64(" 1", &v), (unsigned long long)-EINVAL);
}

static void test_parse_size(void)
{
	uint64_t v = 0;
	ASSERT_EQ_U(parse_size("256M", &v), 0);
	ASSERT_EQ_U(v, 256ULL << 20);
	ASSERT_EQ_U(parse_size("4k", &v), 0);
	ASSERT_EQ_U(v, 4096);
	ASSERT_EQ_U(parse_size("1G", &v), 0);
	ASSERT_EQ_U(v, 1ULL << 30);
	ASSERT_EQ_U(parse_size("12", &v), 0);
	ASSERT_EQ_U(v, 12);
	ASSERT_EQ_U(parse_size("99999999999T", &v), (unsigned long long)-ERANGE);
	ASSERT_EQ_U(parse_size("1Q", &v), (unsigned long long)-EINVAL);
	ASSERT_EQ_U(parse_size("M", &v), (unsigned long long)-EINVAL);
}

static void test_parse_duration(void)
{
	uint64_t v = 0;
	ASSERT_EQ_U(parse_duration_ms("1500ms", &v), 0);
	ASSERT_EQ_U(v, 1500);
	ASSERT_EQ_U(parse_duration_ms("2s", &v), 0);
	ASSERT_EQ_U(v, 2000);
	ASSERT_EQ_U(parse_duration_ms("1m", &v), 0);
	ASSERT_EQ_U(v, 60000);
	ASSERT_EQ_U(parse_duration_ms("250", &v), 0);
	ASSERT_EQ_U(v, 250);
	ASSERT_EQ_U(parse_duration_ms("2 s", &v), (unsigned long long)-EINVAL);
	ASSERT_EQ_U(parse_duration_ms("1d", &v), (unsigned long long)-EINVAL);
}

static void test_limits(void)
{
	struct sbx_limits l;
	struct cdn_err err = {0};
	limits_default(TRUST_UNTRUSTED, &l);
	ASSERT_EQ_U(l.wall_ms, 5000);
	ASSERT_EQ_U(l.memory_bytes, 128ULL << 20);
	ASSERT_EQ_U(l.pids, 8);
	ASSERT_EQ_U(l.disk_bytes, 16ULL << 20);
	ASSERT_EQ_U(limits_check(&l, &err), 0);
	limits_default(TRUST_HIGH, &l);
	ASSERT_EQ_U(l.cpu_ms, 30000);
	l.wall_ms = 0;
	ASSERT_EQ_U(limits_check(&l, &err), (unsigned long long)-EINVAL);
	if (!strstr(err.msg, "--timeout")) {
		fprintf(stderr, "message does not name the option: %s\n", err.msg);
		exit(1);
	}
	enum trust_level t;
	ASSERT_EQ_U(trust_parse("medium", &t), 0);
	ASSERT_EQ_U(t, TRUST_MEDIUM);
	ASSERT_EQ_U(trust_parse("root", &t), (unsigned long long)-EINVAL);
}

struct sink {
	char buf[4096];
	size_t len;
};

static void sink_emit(void *ud, const char *b, size_t n)
{
	struct sink *s = ud;
	if (s->len + n < sizeof(s->buf)) {
		memcpy(s->buf + s->len, b, n);
		s->len += n;
		s->buf[s->len] = 0;
	}
}

/* Feed text in chunks of every size from 1 to its length: the output must not depend on
 * where the stream was cut. */
static void redact_all_splits(const char *const *secrets, size_t n, const char *in,
			      const char *want)
{
	size_t len = strlen(in);
	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct redactor r;
		struct sink s = {.len = 0};
		s.buf[0] = 0;
		ASSERT_EQ_U(redact_init(&r, secrets, n), 0);
		for (size_t off = 0; off < len; off += chunk)
			redact_feed(&r, in + off, off + chunk > len ? len - off : chunk, sink_emit, &s);
		redact_flush(&r, sink_emit, &s);
		redact_release(&r);
		ASSERT_STR(s.buf, want);
	}
}

static void test_redact(void)
{
	const char *one[] = {"s3cr3t"};
	redact_all_splits(one, 1, "token=s3cr3t end", "token=[REDACTED] end");
	redact_all_splits(one, 1, "s3cr3ts3cr3t", "[REDACTED][REDACTED]");
	redact_all_splits(one, 1, "s3cr3", "s3cr3");
	redact_all_splits(one, 1, "ss3cr3t", "s[REDACTED]");
	const char *two[] = {"abc", "abcdef"};
	redact_all_splits(two, 2, "xabcdefx", "x[REDACTED]x");
	redact_all_splits(two, 2, "xabcdex", "x[REDACTED]dex");
	redact_all_splits(two, 2, "ab", "ab");
	const char *none[] = {""};
	redact_all_splits(none, 1, "plain text", "plain text");
}

static const struct tap_test tests[] = {
	{"parse_u64", test_parse_u64},
	{"parse_size", test_parse_size},
	{"parse_duration", test_parse_duration},
	{"limits", test_limits},
	{"redact", test_redact},
};

TAP_MAIN(tests, 10)
