/* POST /v1/executions: from the caller's body to the normalized __spawn request
 * (SPAWN-PROTOCOL.md). Every member is checked for type, size and range, unknown members are
 * refused with their path, and every limit gets its effective value:
 *
 *   trust level   the request's, else the plan's default; above the plan's max_trust: 403
 *   a limit       the caller's, else the trust level's default (core/limits.c); it must lie
 *                 in the table's [min, max] (422) and not above the plan's cap (403). A
 *                 default above the cap is lowered to the cap.
 *
 * So a tenant can never weaken a bound by omission, typo (unknown field) or a large number. */
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "core/util.h"
#include "tenants.h"
#include "validate.h"

#define MiB (1024ULL * 1024ULL)

static void join(char *buf, size_t size, const char *prefix, const char *name)
{
	snprintf(buf, size, "%s%s%s", prefix, prefix[0] ? "." : "", name);
}

static bool in_mb(const struct limit_def *d)
{
	return !strcmp(d->name, "memory_mb") || !strcmp(d->name, "disk_mb");
}

static uint64_t *lim_field(struct sbx_limits *l, const struct limit_def *d)
{
	return (uint64_t *)((char *)l + d->offset);
}

/* The numeric limits of `obj` (may be NULL) over `base`, checked against the table and caps.
 * extra lists the other members allowed in obj (network, filesystem), NULL-terminated. */
static int limits_parse(const json_t *obj, const char *prefix, const struct sbx_limits *base,
			const struct sbx_limits *caps, const char *const *extra,
			json_t **ret, struct val_err *err)
{
	struct sbx_limits l = *base;
	if (obj && !json_is_null(obj)) {
		struct val_field f[16];
		size_t n = 0;
		for (size_t i = 0; i < limit_table_len; i++)
			f[n++] = (struct val_field){limit_table[i].name, VT_INT | VT_NULL, false};
		for (size_t i = 0; extra && extra[i] && n < ARRAY_SIZE(f); i++)
			f[n++] = (struct val_field){extra[i], VT_OBJECT | VT_NULL, false};
		if (val_object(obj, prefix, f, n, err) < 0)
			return -EINVAL;
		for (size_t i = 0; i < limit_table_len; i++) {
			const struct limit_def *d = &limit_table[i];
			uint64_t div = in_mb(d) ? MiB : 1, v = 0;
			json_t *jv = json_object_get(obj, d->name);
			if (!jv || json_is_null(jv))
				continue;
			if (val_u64(obj, prefix, d->name, (d->min + div - 1) / div, d->max / div, &v,
				    err) < 0)
				return -EINVAL;
			char path[128];
			join(path, sizeof(path), prefix, d->name);
			uint64_t cap = *lim_field((struct sbx_limits *)caps, d) / div;
			if (v > cap)
				return val_fail(err, 403, path,
						"%s of %llu is above the plan's cap of %llu", path,
						(unsigned long long)v, (unsigned long long)cap);
			*lim_field(&l, d) = v * div;
		}
	}
	json_t *out = json_object();
	if (!out)
		return val_fail(err, 500, NULL, "out of memory");
	for (size_t i = 0; i < limit_table_len; i++) {
		const struct limit_def *d = &limit_table[i];
		uint64_t v = *lim_field(&l, d), cap = *lim_field((struct sbx_limits *)caps, d);
		if (v > cap)
			v = cap; /* a default above the plan's cap */
		json_object_set_new(out, d->name, json_integer((json_int_t)(in_mb(d) ? v / MiB : v)));
	}
	*ret = out;
	return 0;
}

/* network: the shape is checked; egress is a later issue, so asking for it is refused rather
 * than silently ignored. */
static int network_check(const json_t *net, const char *prefix, struct val_err *err)
{
	static const struct val_field f[] = {
		{"enabled", VT_BOOL | VT_NULL, false},	    {"allowed_domains", VT_ARRAY, false},
		{"blocked_domains", VT_ARRAY, false},	    {"max_requests", VT_INT, false},
		{"max_bytes", VT_INT, false},
	};
	if (!net || json_is_null(net))
		return 0;
	if (val_object(net, prefix, f, ARRAY_SIZE(f), err) < 0)
		return -EINVAL;
	if (json_is_true(json_object_get(net, "enabled"))) {
		char path[128];
		join(path, sizeof(path), prefix, "enabled");
		return val_fail(err, 422, path,
				"network access is not available on this server yet (egress "
				"proxy not built)");
	}
	return 0;
}

/* filesystem: only the paths every run already has writable may be named; binding host
 * paths through the API would hand tenants the host's files. */
static int filesystem_check(const json_t *fs, const char *prefix, struct val_err *err)
{
	static const struct val_field f[] = {{"read_only", VT_ARRAY, false},
					     {"writable", VT_ARRAY, false}};
	if (!fs || json_is_null(fs))
		return 0;
	if (val_object(fs, prefix, f, ARRAY_SIZE(f), err) < 0)
		return -EINVAL;
	char path[128];
	json_t *ro = json_object_get(fs, "read_only");
	if (ro && json_array_size(ro)) {
		join(path, sizeof(path), prefix, "read_only");
		return val_fail(err, 422, path, "host paths cannot be bound through the API");
	}
	json_t *w = json_object_get(fs, "writable");
	size_t i;
	json_t *v;
	json_array_foreach(w, i, v)
	{
		snprintf(path, sizeof(path), "%s%swritable[%zu]", prefix, prefix[0] ? "." : "", i);
		if (!json_is_string(v) || strcmp(json_string_value(v), "/tmp"))
			return val_fail(err, 422, path, "only \"/tmp\" is writable");
	}
	return 0;
}

/* "env" / "secrets": an object of NAME: "value" with NAME a shell variable name. */
static int env_check(const json_t *env, const char *name, struct val_err *err)
{
	if (!env || json_is_null(env))
		return 0;
	if (json_object_size(env) > srv_limit("max_env"))
		return val_fail(err, 422, name, "%s has more than %llu entries", name,
				(unsigned long long)srv_limit("max_env"));
	const char *k;
	json_t *v;
	char path[160];
	json_object_foreach((json_t *)env, k, v)
	{
		char shown[64];
		snprintf(path, sizeof(path), "%s.%s", name, utf8_copy(shown, sizeof(shown), k));
		size_t klen = strlen(k);
		bool ok = klen > 0 && klen <= srv_limit("max_env_key_bytes") &&
			  !(k[0] >= '0' && k[0] <= '9');
		for (size_t i = 0; ok && i < klen; i++)
			ok = (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
			     (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
		if (!ok)
			return val_fail(err, 422, path,
					"%s: names are [A-Za-z_][A-Za-z0-9_]* up to %llu bytes", name,
					(unsigned long long)srv_limit("max_env_key_bytes"));
		if (!json_is_string(v))
			return val_fail(err, 422, path, "%s must be a string", path);
		if (json_string_length(v) > srv_limit("max_env_value_bytes"))
			return val_fail(err, 422, path, "%s is longer than %llu bytes", path,
					(unsigned long long)srv_limit("max_env_value_bytes"));
	}
	return 0;
}

/* An array of strings ("args", "command"): count and lengths. */
static int strings_check(const json_t *a, const char *name, bool nonempty, struct val_err *err)
{
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return val_fail(err, 422, name, "%s must be an array of strings", name);
	if (nonempty && json_array_size(a) == 0)
		return val_fail(err, 422, name, "%s must not be empty", name);
	if (json_array_size(a) > srv_limit("max_args"))
		return val_fail(err, 422, name, "%s has more than %llu entries", name,
				(unsigned long long)srv_limit("max_args"));
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		char path[64];
		snprintf(path, sizeof(path), "%s[%zu]", name, i);
		if (!json_is_string(v))
			return val_fail(err, 422, path, "%s must be a string", path);
		if (json_string_length(v) > srv_limit("max_arg_bytes"))
			return val_fail(err, 422, path, "%s is longer than %llu bytes", path,
					(unsigned long long)srv_limit("max_arg_bytes"));
	}
	return 0;
}

/* A relative path without "..", "." or empty components (inside the sandbox's work dir). */
static bool file_path_ok(const char *p)
{
	if (!*p || *p == '/' || strlen(p) > srv_limit("max_path_bytes"))
		return false;
	const char *s = p;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s == '/')
			s++;
		else
			break;
	}
	return p[strlen(p) - 1] != '/';
}

static bool base64_ok(const char *s, size_t len)
{
	if (len % 4)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '+' || c == '/' || (c == '=' && i >= len - 2);
		if (!ok)
			return false;
	}
	return true;
}

static int files_parse(const json_t *files, json_t **ret, struct val_err *err)
{
	static const struct val_field f[] = {{"path", VT_STRING, true},
					     {"content", VT_STRING, true},
					     {"encoding", VT_STRING | VT_NULL, false}};
	if (json_array_size(files) > srv_limit("max_files"))
		return val_fail(err, 422, "files", "files has more than %llu entries",
				(unsigned long long)srv_limit("max_files"));
	json_t *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(files, i, v)
	{
		char pre[48], path[64];
		snprintf(pre, sizeof(pre), "files[%zu]", i);
		if (val_object(v, pre, f, ARRAY_SIZE(f), err) < 0)
			goto fail;
		const char *p = json_string_value(json_object_get(v, "path"));
		snprintf(path, sizeof(path), "%s.path", pre);
		if (!file_path_ok(p)) {
			val_fail(err, 422, path,
				 "%s must be a relative path without \".\" or \"..\" components, up "
				 "to %llu bytes",
				 path, (unsigned long long)srv_limit("max_path_bytes"));
			goto fail;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(p, json_string_value(json_object_get(json_array_get(out, j),
									  "path")))) {
				val_fail(err, 422, path, "%s: \"%s\" appears twice", path, p);
				goto fail;
			}
		json_t *content = json_object_get(v, "content");
		const char *enc = json_string_value(json_object_get(v, "encoding"));
		if (!enc)
			enc = "utf8";
		snprintf(path, sizeof(path), "%s.encoding", pre);
		if (strcmp(enc, "utf8") && strcmp(enc, "base64")) {
			val_fail(err, 422, path, "%s must be \"utf8\" or \"base64\"", path);
			goto fail;
		}
		snprintf(path, sizeof(path), "%s.content", pre);
		if (json_string_length(content) > srv_limit("max_file_bytes")) {
			val_fail(err, 422, path, "%s is longer than %llu bytes", path,
				 (unsigned long long)srv_limit("max_file_bytes"));
			goto fail;
		}
		if (!strcmp(enc, "base64") &&
		    !base64_ok(json_string_value(content), json_string_length(content))) {
			val_fail(err, 422, path, "%s is not valid base64", path);
			goto fail;
		}
		json_array_append_new(out, json_pack("{ss sO ss}", "path", p, "content", content,
						     "encoding", enc));
	}
	*ret = out;
	return 0;
fail:
	json_decref(out);
	return -EINVAL;
}

static size_t json_size(const json_t *v)
{
	return v ? json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

static int tests_parse(const json_t *tests, json_t **ret, struct val_err *err)
{
	static const struct val_field f[] = {
		{"name", VT_STRING | VT_NULL, false},	{"stdin", VT_STRING | VT_NULL, false},
		{"input", VT_ANY, false},		{"expected_output", VT_STRING | VT_NULL, false},
		{"expected", VT_ANY, false},
	};
	if (json_array_size(tests) > srv_limit("max_tests"))
		return val_fail(err, 422, "tests", "tests has more than %llu entries",
				(unsigned long long)srv_limit("max_tests"));
	json_t *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(tests, i, v)
	{
		char pre[48];
		snprintf(pre, sizeof(pre), "tests[%zu]", i);
		const char *name, *in;
		if (val_object(v, pre, f, ARRAY_SIZE(f), err) < 0 ||
		    val_string(v, pre, "name", srv_limit("max_name_bytes"), &name, err) < 0 ||
		    val_string(v, pre, "stdin", srv_limit("max_stdin_bytes"), &in, err) < 0 ||
		    val_string(v, pre, "expected_output", srv_limit("max_stdin_bytes"), &in, err) <
			    0) {
			json_decref(out);
			return -EINVAL;
		}
		/* input and expected are JSON of any shape: bounded like the request's input. */
		static const char *const any[] = {"input", "expected"};
		for (size_t a = 0; a < ARRAY_SIZE(any); a++)
			if (json_size(json_object_get(v, any[a])) > srv_limit("max_input_bytes")) {
				char path[64];
				snprintf(path, sizeof(path), "%s.%s", pre, any[a]);
				json_decref(out);
				return val_fail(err, 422, path, "%s is larger than %llu bytes serialized",
						path, (unsigned long long)srv_limit("max_input_bytes"));
			}
		json_t *t = json_deep_copy(v);
		if (!name) {
			char def[32];
			snprintf(def, sizeof(def), "test_%zu", i + 1);
			json_object_set_new(t, "name", json_string(def));
		}
		json_array_append_new(out, t);
	}
	*ret = out;
	return 0;
}

/* A runtime or image name: [a-z0-9][a-z0-9._+-]{0,63}. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_' || s[i] == '-' || s[i] == '+'))
			return false;
	return true;
}

int val_execution(const json_t *body, const struct tenant *t, json_t **ret_spawn,
		  json_t **ret_extra, struct val_err *err)
{
	static const struct val_field f[] = {
		{"runtime", VT_STRING | VT_NULL, false},
		{"code", VT_STRING | VT_NULL, false},
		{"files", VT_ARRAY | VT_NULL, false},
		{"entrypoint", VT_STRING | VT_NULL, false},
		{"command", VT_ARRAY | VT_NULL, false},
		{"image", VT_STRING | VT_NULL, false},
		{"stdin", VT_STRING | VT_NULL, false},
		{"args", VT_ARRAY | VT_NULL, false},
		{"env", VT_OBJECT | VT_NULL, false},
		{"secrets", VT_OBJECT | VT_NULL, false},
		{"input", VT_ANY, false},
		{"trust_level", VT_STRING | VT_NULL, false},
		{"limits", VT_OBJECT | VT_NULL, false},
		{"compile_limits", VT_OBJECT | VT_NULL, false},
		{"tests", VT_ARRAY | VT_NULL, false},
		{"capture_console", VT_BOOL | VT_NULL, false},
		{"metadata", VT_OBJECT | VT_NULL, false},
		{"async", VT_BOOL | VT_NULL, false},
		{"callback_url", VT_STRING | VT_NULL, false},
	};
	*ret_spawn = *ret_extra = NULL;
	if (val_object(body, "", f, ARRAY_SIZE(f), err) < 0)
		return -EINVAL;

	const char *runtime, *code, *entry, *image, *in, *trust_s, *cb;
	if (val_string(body, "", "runtime", 64, &runtime, err) < 0 ||
	    val_string(body, "", "code", srv_limit("max_code_bytes"), &code, err) < 0 ||
	    val_string(body, "", "entrypoint", srv_limit("max_path_bytes"), &entry, err) < 0 ||
	    val_string(body, "", "image", 64, &image, err) < 0 ||
	    val_string(body, "", "stdin", srv_limit("max_stdin_bytes"), &in, err) < 0 ||
	    val_string(body, "", "trust_level", 32, &trust_s, err) < 0 ||
	    val_string(body, "", "callback_url", srv_limit("max_url_bytes"), &cb, err) < 0)
		return -EINVAL;
	json_t *files = json_object_get(body, "files");
	json_t *command = json_object_get(body, "command");
	bool has_files = json_is_array(files), has_cmd = json_is_array(command);

	/* What to run: a runtime with code or files, or a raw command; never both. */
	if (runtime && !name_ok(runtime))
		return val_fail(err, 422, "runtime", "runtime is not a runtime name");
	if (image && !name_ok(image))
		return val_fail(err, 422, "image", "image is not an image name");
	if (has_cmd && runtime)
		return val_fail(err, 422, "command", "give either runtime or command, not both");
	if (!has_cmd && !runtime)
		return val_fail(err, 422, "runtime", "runtime (or command) is required");
	if (has_cmd && (code || has_files))
		return val_fail(err, 422, code ? "code" : "files",
				"%s goes with a runtime, not with command", code ? "code" : "files");
	if (runtime && !code && !has_files)
		return val_fail(err, 422, "code", "code (or files) is required with a runtime");
	if (code && has_files)
		return val_fail(err, 422, "files", "give either code or files, not both");
	if (has_files && json_array_size(files) == 0)
		return val_fail(err, 422, "files", "files must not be empty");
	if (entry && !has_files)
		return val_fail(err, 422, "entrypoint", "entrypoint names one of files");
	if (strings_check(command, "command", true, err) < 0 ||
	    strings_check(json_object_get(body, "args"), "args", false, err) < 0 ||
	    env_check(json_object_get(body, "env"), "env", err) < 0 ||
	    env_check(json_object_get(body, "secrets"), "secrets", err) < 0)
		return -EINVAL;
	json_t *secrets = json_object_get(body, "secrets");
	const char *k;
	json_t *v;
	json_object_foreach(secrets, k, v)
	{
		if (!json_object_get(json_object_get(body, "env"), k))
			continue;
		char path[96], shown[64];
		snprintf(path, sizeof(path), "secrets.%s", utf8_copy(shown, sizeof(shown), k));
		return val_fail(err, 422, path, "%s is also in env", path);
	}
	json_t *input = json_object_get(body, "input");
	if (json_size(input) > srv_limit("max_input_bytes"))
		return val_fail(err, 422, "input", "input is larger than %llu bytes serialized",
				(unsigned long long)srv_limit("max_input_bytes"));
	json_t *meta = json_object_get(body, "metadata");
	if (json_size(meta) > srv_limit("max_metadata_bytes"))
		return val_fail(err, 422, "metadata", "metadata is larger than %llu bytes serialized",
				(unsigned long long)srv_limit("max_metadata_bytes"));
	if (cb && strncmp(cb, "http://", 7) && strncmp(cb, "https://", 8))
		return val_fail(err, 422, "callback_url", "callback_url must be an http(s) URL");

	/* Trust level and limits. TRUST_HIGH is 0: a smaller number is more trust. */
	enum trust_level trust = t->plan.default_trust;
	if (trust_s && trust_parse(trust_s, &trust) < 0)
		return val_fail(err, 422, "trust_level",
				"trust_level must be high, medium, low or untrusted");
	if (trust < t->plan.max_trust)
		return val_fail(err, 403, "trust_level",
				"trust level %s is above the plan's highest, %s", trust_name(trust),
				trust_name(t->plan.max_trust));
	json_t *lim = json_object_get(body, "limits");
	if (json_is_object(lim) &&
	    (network_check(json_object_get(lim, "network"), "limits.network", err) < 0 ||
	     filesystem_check(json_object_get(lim, "filesystem"), "limits.filesystem", err) < 0))
		return -EINVAL;
	static const char *const lim_extra[] = {"network", "filesystem", NULL};
	struct sbx_limits base, cbase;
	limits_default(trust, &base);
	limits_compile(&cbase);
	json_t *limits = NULL, *climits = NULL, *jfiles = NULL, *jtests = NULL;
	if (limits_parse(lim, "limits", &base, &t->plan.caps, lim_extra, &limits, err) < 0)
		goto fail;
	if (limits_parse(json_object_get(body, "compile_limits"), "compile_limits", &cbase,
			 &t->plan.caps, NULL, &climits, err) < 0)
		goto fail;
	if (has_files) {
		if (files_parse(files, &jfiles, err) < 0)
			goto fail;
		if (entry) {
			bool found = false;
			size_t i;
			json_array_foreach(jfiles, i, v) found |=
				!strcmp(json_string_value(json_object_get(v, "path")), entry);
			if (!found) {
				val_fail(err, 422, "entrypoint", "entrypoint is not one of files");
				goto fail;
			}
		}
	}
	json_t *tests = json_object_get(body, "tests");
	if (json_is_array(tests) && tests_parse(tests, &jtests, err) < 0)
		goto fail;

	json_t *cc = json_object_get(body, "capture_console");
	json_t *args = json_object_get(body, "args"), *env = json_object_get(body, "env");
	json_t *spawn = json_object();
	if (!spawn) {
		val_fail(err, 500, NULL, "out of memory");
		goto fail;
	}
	json_object_set_new(spawn, "runtime", runtime ? json_string(runtime) : json_null());
	json_object_set_new(spawn, "code", code ? json_string(code) : json_null());
	json_object_set_new(spawn, "files", jfiles ? TAKE_PTR(jfiles) : json_array());
	json_object_set_new(spawn, "entrypoint", entry ? json_string(entry) : json_null());
	json_object_set_new(spawn, "command", has_cmd ? json_incref(command) : json_null());
	json_object_set_new(spawn, "args", json_is_array(args) ? json_incref(args) : json_array());
	json_object_set_new(spawn, "image", json_string(image ? image : "host"));
	json_object_set_new(spawn, "stdin", json_string(in ? in : ""));
	json_object_set_new(spawn, "env", json_is_object(env) ? json_incref(env) : json_object());
	json_object_set_new(spawn, "secrets",
			    json_is_object(secrets) ? json_incref(secrets) : json_object());
	json_object_set_new(spawn, "input", input ? json_incref(input) : json_null());
	json_object_set_new(spawn, "trust_level", json_string(trust_name(trust)));
	json_object_set_new(spawn, "limits", TAKE_PTR(limits));
	json_object_set_new(spawn, "compile_limits", TAKE_PTR(climits));
	json_object_set_new(spawn, "tests", jtests ? TAKE_PTR(jtests) : json_null());
	json_object_set_new(spawn, "capture_console", json_boolean(cc ? json_is_true(cc) : true));
	json_object_set_new(spawn, "workspace", json_null());
	json_t *async = json_object_get(body, "async");
	*ret_extra = json_object();
	if (*ret_extra) {
		json_object_set_new(*ret_extra, "metadata",
				    json_is_object(meta) ? json_incref(meta) : json_object());
		json_object_set_new(*ret_extra, "async", json_boolean(json_is_true(async)));
		json_object_set_new(*ret_extra, "callback_url", cb ? json_string(cb) : json_null());
	}
	if (!*ret_extra) {
		json_decref(spawn);
		return val_fail(err, 500, NULL, "out of memory");
	}
	*ret_spawn = spawn;
	return 0;
fail:
	json_decref(limits);
	json_decref(climits);
	json_decref(jfiles);
	json_decref(jtests);
	return -EINVAL;
}
