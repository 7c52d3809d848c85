/* The daemon's limits table and the generic JSON checks every validator uses. */
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "core/util.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

struct srv_limit_def {
	const char *name;
	enum limit_unit unit;
	uint64_t min, max, def;
	const char *what;
};

/* Every bound on what a caller sends, and the daemon's tunables (--limit NAME=VALUE). The
 * defaults keep one request far below what hurts the host: a body is at most 8 MiB, which
 * bounds every string and array inside it as well. */
static const struct srv_limit_def srv_limits[] = {
	{"max_body_bytes", LIMIT_BYTES, 1 * KiB, 1 * GiB, 8 * MiB, "request body (413 over it)"},
	{"max_header_bytes", LIMIT_BYTES, 8 * KiB, 1 * MiB, 64 * KiB,
	 "request line + headers of a connection (431 over it)"},
	{"max_json_depth", LIMIT_COUNT, 2, 512, 32, "nesting of arrays/objects in a body"},
	{"max_code_bytes", LIMIT_BYTES, 1, 64 * MiB, 1 * MiB, "\"code\" of an execution"},
	{"max_files", LIMIT_COUNT, 1, 10000, 100, "entries of \"files\""},
	{"max_file_bytes", LIMIT_BYTES, 1, 64 * MiB, 4 * MiB, "content of one file (as sent)"},
	{"max_path_bytes", LIMIT_BYTES, 16, 4096, 255, "a file path"},
	{"max_tests", LIMIT_COUNT, 1, 10000, 100, "entries of \"tests\""},
	{"max_env", LIMIT_COUNT, 0, 4096, 128, "entries of \"env\" and of \"secrets\" each"},
	{"max_env_key_bytes", LIMIT_BYTES, 1, 4096, 256, "an env or secret name"},
	{"max_env_value_bytes", LIMIT_BYTES, 1, 1 * MiB, 32 * KiB, "an env or secret value"},
	{"max_args", LIMIT_COUNT, 1, 65536, 256, "entries of \"args\" and of \"command\""},
	{"max_arg_bytes", LIMIT_BYTES, 1, 1 * MiB, 32 * KiB, "one argument"},
	{"max_stdin_bytes", LIMIT_BYTES, 0, 256 * MiB, 1 * MiB, "\"stdin\" (and a test's stdin)"},
	{"max_input_bytes", LIMIT_BYTES, 0, 256 * MiB, 1 * MiB, "\"input\" serialized"},
	{"max_metadata_bytes", LIMIT_BYTES, 0, 1 * MiB, 16 * KiB, "\"metadata\" serialized"},
	{"max_name_bytes", LIMIT_BYTES, 1, 4096, 128, "names (tests, tenants, keys)"},
	{"max_url_bytes", LIMIT_BYTES, 16, 64 * KiB, 2048, "\"callback_url\""},
	{"http_threads", LIMIT_COUNT, 1, 256, 4, "libmicrohttpd worker threads"},
	{"max_connections", LIMIT_COUNT, 4, 100000, 1024, "open client connections"},
	{"max_connections_per_ip", LIMIT_COUNT, 1, 100000, 256,
	 "open connections of one client address (one client cannot take them all)"},
	{"idle_timeout_ms", LIMIT_MS, 1000, 24 * 3600 * 1000ULL, 60000,
	 "an idle (not suspended) connection is closed after it"},
	{"stream_buffer_bytes", LIMIT_BYTES, 64 * KiB, 1 * GiB, 4 * MiB,
	 "bytes pending for one slow event-stream reader"},
	{"shutdown_grace_ms", LIMIT_MS, 0, 24 * 3600 * 1000ULL, 30000,
	 "SIGTERM: time running executions get before they are cancelled"},
	{"workers", LIMIT_COUNT, 1, 256, 8,
	 "executions running at once (one `cordon __spawn` process each)"},
	{"queue_max", LIMIT_COUNT, 1, 1000000, 256, "executions waiting to run (503 over it)"},
	{"max_wait_ms", LIMIT_MS, 0, 3600 * 1000ULL, 60000, "longest ?wait_ms= long-poll"},
};

/* Values set with --limit (before any thread starts; read-only afterwards). */
static struct {
	uint64_t value;
	bool set;
} srv_limit_set_to[ARRAY_SIZE(srv_limits)];

static ssize_t limit_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(srv_limits); i++)
		if (strlen(srv_limits[i].name) == len && !strncmp(srv_limits[i].name, name, len))
			return (ssize_t)i;
	return -1;
}

uint64_t srv_limit(const char *name)
{
	ssize_t i = limit_find(name, strlen(name));
	if (i < 0)
		abort(); /* a misspelt limit in our own code */
	return srv_limit_set_to[i].set ? srv_limit_set_to[i].value : srv_limits[i].def;
}

int srv_limit_set(const char *assignment, char *msg, size_t msg_size)
{
	const char *eq = strchr(assignment, '=');
	if (!eq) {
		snprintf(msg, msg_size, "--limit wants NAME=VALUE, not \"%s\"", assignment);
		return -EINVAL;
	}
	ssize_t i = limit_find(assignment, (size_t)(eq - assignment));
	if (i < 0) {
		snprintf(msg, msg_size, "unknown limit \"%.*s\" (cordon serve --help lists them)",
			 (int)(eq - assignment), assignment);
		return -ENOENT;
	}
	const struct srv_limit_def *d = &srv_limits[i];
	uint64_t v;
	int rc = d->unit == LIMIT_MS	  ? parse_duration_ms(eq + 1, &v)
		 : d->unit == LIMIT_BYTES ? parse_size(eq + 1, &v)
					  : parse_u64(eq + 1, &v);
	if (rc < 0) {
		snprintf(msg, msg_size, "bad value for %s: \"%s\"", d->name, eq + 1);
		return -EINVAL;
	}
	if (v < d->min || v > d->max) {
		snprintf(msg, msg_size, "%s out of range: %llu not in [%llu, %llu]", d->name,
			 (unsigned long long)v, (unsigned long long)d->min,
			 (unsigned long long)d->max);
		return -ERANGE;
	}
	srv_limit_set_to[i].value = v;
	srv_limit_set_to[i].set = true;
	return 0;
}

void srv_limits_print(FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(srv_limits); i++) {
		const struct srv_limit_def *d = &srv_limits[i];
		const char *u = d->unit == LIMIT_MS ? " ms" : d->unit == LIMIT_BYTES ? " B" : "";
		fprintf(out, "  %-22s default %llu%s, [%llu, %llu]: %s\n", d->name,
			(unsigned long long)d->def, u, (unsigned long long)d->min,
			(unsigned long long)d->max, d->what);
	}
}

size_t utf8_prefix(const char *s, size_t len)
{
	/* Step back over continuation bytes to the last lead byte; keep it only if its whole
	 * sequence fits. */
	size_t i = len;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && len - i < 3)
		i--;
	if (i == 0)
		return len && ((unsigned char)s[0] & 0x80) ? 0 : len;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return (len - (i - 1) >= need) ? len : i - 1;
}

char *utf8_copy(char *buf, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		n = utf8_prefix(s, size - 1);
	memcpy(buf, s, n);
	buf[n] = 0;
	return buf;
}

/* ---- generic checks ----------------------------------------------------------------------- */

int val_fail(struct val_err *err, unsigned status, const char *field, const char *fmt, ...)
{
	err->status = status;
	err->code = status == 403 ? "forbidden" : status >= 500 ? "internal" : "validation_failed";
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Both may hold (cut) caller text: keep them valid UTF-8. */
	err->msg[utf8_prefix(err->msg, strlen(err->msg))] = 0;
	err->field[utf8_prefix(err->field, strlen(err->field))] = 0;
	return -EINVAL;
}

int json_depth(const json_t *v)
{
	int max = 0;
	const char *k;
	json_t *c;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c)
		{
			int d = json_depth(c);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, c)
		{
			int d = json_depth(c);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	return 0;
}

static void path_join(char *buf, size_t size, const char *prefix, const char *name)
{
	if (prefix && prefix[0])
		snprintf(buf, size, "%s.%s", prefix, name);
	else
		snprintf(buf, size, "%s", name);
}

static const char *type_name(unsigned types)
{
	if (types == VT_STRING || types == (VT_STRING | VT_NULL))
		return "a string";
	if (types == VT_INT || types == (VT_INT | VT_NULL))
		return "an integer";
	if (types == VT_BOOL || types == (VT_BOOL | VT_NULL))
		return "a boolean";
	if (types == VT_OBJECT || types == (VT_OBJECT | VT_NULL))
		return "an object";
	if (types == VT_ARRAY || types == (VT_ARRAY | VT_NULL))
		return "an array";
	return "of another type";
}

int val_object(const json_t *obj, const char *prefix, const struct val_field *fields,
	       size_t n_fields, struct val_err *ret)
{
	char path[128];
	if (!json_is_object(obj))
		return val_fail(ret, 422, prefix, "%s must be an object",
				prefix && prefix[0] ? prefix : "the body");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		size_t i;
		for (i = 0; i < n_fields; i++)
			if (!strcmp(fields[i].name, k))
				break;
		if (i == n_fields) {
			/* Shown as sent but bounded: the field name is caller text. */
			char shown[64];
			path_join(path, sizeof(path), prefix, utf8_copy(shown, sizeof(shown), k));
			return val_fail(ret, 422, path, "unknown field \"%s\"", path);
		}
		if (!(fields[i].types & VT(json_typeof(v)))) {
			path_join(path, sizeof(path), prefix, k);
			return val_fail(ret, 422, path, "%s must be %s", path,
					type_name(fields[i].types));
		}
	}
	for (size_t i = 0; i < n_fields; i++)
		if (fields[i].required && !json_object_get(obj, fields[i].name)) {
			path_join(path, sizeof(path), prefix, fields[i].name);
			return val_fail(ret, 422, path, "%s is required", path);
		}
	return 0;
}

int val_string(const json_t *obj, const char *prefix, const char *name, size_t max_len,
	       const char **ret, struct val_err *err)
{
	json_t *v = json_object_get(obj, name);
	char path[128];
	path_join(path, sizeof(path), prefix, name);
	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return val_fail(err, 422, path, "%s must be a string", path);
	if (json_string_length(v) > max_len)
		return val_fail(err, 422, path, "%s is longer than %zu bytes", path, max_len);
	*ret = json_string_value(v);
	return 0;
}

int val_u64(const json_t *obj, const char *prefix, const char *name, uint64_t min, uint64_t max,
	    uint64_t *ret, struct val_err *err)
{
	json_t *v = json_object_get(obj, name);
	char path[128];
	path_join(path, sizeof(path), prefix, name);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return val_fail(err, 422, path, "%s must be an integer", path);
	json_int_t n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return val_fail(err, 422, path, "%s must be in [%llu, %llu]", path,
				(unsigned long long)min, (unsigned long long)max);
	*ret = (uint64_t)n;
	return 0;
}
