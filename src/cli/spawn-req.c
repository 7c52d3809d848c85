/* The request of `cordon __spawn` (SPAWN-PROTOCOL.md), parsed and checked. The daemon has
 * validated it against API.md already; this is the second look of a process that will run it
 * as root, so nothing is trusted: unknown fields, wrong types, out-of-range limits and every
 * unbounded quantity are refused, with the field named. */
#include "spawn.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/limits.h"

static const char *const top_keys[] = {
	"runtime", "code", "files", "entrypoint", "command", "args", "image", "stdin", "env",
	"secrets", "input", "trust_level", "limits", "compile_limits", "tests",
	"capture_console", "workspace",
};

static int bad(struct cdn_err *err, const char *field, const char *what)
{
	return err_set(err, 0, "request: %s: %s", field, what);
}

static int check_keys(json_t *obj, const char *field, const char *const *keys, size_t n,
		      struct cdn_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		bool known = false;
		for (size_t i = 0; i < n && !known; i++)
			known = streq(k, keys[i]);
		if (!known)
			return err_set(err, 0, "request: %s%sunknown field \"%.64s\"", field,
				       field[0] ? ": " : "", k);
	}
	return 0;
}

/* A string field: NULL when absent or null (allowed only with nullable). */
static int get_str(json_t *obj, const char *key, const char *field, bool nullable,
		   const char **ret, size_t *ret_len, struct cdn_err *err)
{
	json_t *v = json_object_get(obj, key);
	*ret = NULL;
	if (ret_len)
		*ret_len = 0;
	if (!v || json_is_null(v)) {
		if (!nullable)
			return bad(err, field, "missing");
		return 0;
	}
	if (!json_is_string(v))
		return bad(err, field, "not a string");
	size_t len = json_string_length(v);
	if (len > SPAWN_MAX_STR)
		return bad(err, field, "too long");
	/* NULs cannot reach an argv or an environment and would cut a path: refuse them where
	 * the caller cannot get a length back. */
	if (!ret_len && memchr(json_string_value(v), 0, len))
		return bad(err, field, "contains a NUL character");
	*ret = json_string_value(v);
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* A user file's path: relative, plain components, not in cordon's own directory. The file is
 * written by the sandbox's init under /tmp; this keeps it there and away from the harness. */
static int check_rel_path(const char *p, const char *field, struct cdn_err *err)
{
	size_t len = strlen(p);
	if (len == 0 || len > SPAWN_MAX_PATH)
		return bad(err, field, "path must be 1 to 255 characters");
	if (p[0] == '/')
		return bad(err, field, "path must be relative");
	size_t depth = 0;
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return bad(err, field, "path has an empty, \".\" or \"..\" component");
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)c[i];
			if (ch < 0x20 || ch == 0x7f || ch == '\\')
				return bad(err, field, "path has a control character or backslash");
		}
		if (depth == 0 && n == 7 && !memcmp(c, ".cordon", 7))
			return bad(err, field, "path \".cordon\" is reserved for cordon");
		if (++depth > 16)
			return bad(err, field, "path is nested more than 16 deep");
		c += n + (c[n] == '/');
	}
	return 0;
}

static int add_file(struct spawn_req *req, const char *rel, const char *data, size_t len,
		    struct cdn_err *err)
{
	if (req->n_files >= SPAWN_MAX_FILES + 1)
		return bad(err, "files", "too many files");
	for (size_t i = 0; i < req->n_files; i++)
		if (streq(req->files[i].rel, rel))
			return err_set(err, 0, "request: files: \"%.255s\" given twice", rel);
	struct spawn_file *f = &req->files[req->n_files];
	f->path = strprintf("/tmp/%s", rel);
	f->data = malloc(len + 1);
	if (!f->path || !f->data) {
		free(f->path);
		free(f->data);
		return err_set(err, 0, "request: out of memory");
	}
	f->rel = f->path + 5;
	memcpy(f->data, data, len);
	f->data[len] = 0;
	f->len = len;
	req->n_files++;
	return 0;
}

/* Base64 (RFC 4648, with padding, whitespace refused) into a malloc'd buffer. */
static int base64_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (len % 4)
		return -EINVAL;
	char *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;
		int pad = 0;
		for (size_t j = 0; j < 4; j++) {
			char c = s[i + j];
			const char *p = c ? strchr(alphabet, c) : NULL;
			if (c == '=' && i + 4 == len && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				pad++;
				acc <<= 6;
				continue;
			}
			if (!p || pad) {
				free(out);
				return -EINVAL;
			}
			acc = acc << 6 | (uint32_t)(p - alphabet);
		}
		out[o++] = (char)(acc >> 16);
		if (pad < 2)
			out[o++] = (char)(acc >> 8);
		if (pad < 1)
			out[o++] = (char)acc;
	}
	out[o] = 0;
	*ret = out;
	*ret_len = o;
	return 0;
}

static int parse_files(json_t *root, struct spawn_req *req, struct cdn_err *err)
{
	json_t *files = json_object_get(root, "files");
	if (!files || json_is_null(files))
		return 0;
	if (!json_is_array(files))
		return bad(err, "files", "not an array");
	if (json_array_size(files) > SPAWN_MAX_FILES)
		return bad(err, "files", "more than 256 files");
	static const char *const keys[] = {"path", "content", "encoding"};
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		char field[48];
		snprintf(field, sizeof(field), "files[%zu]", i);
		if (!json_is_object(f))
			return bad(err, field, "not an object");
		int r = check_keys(f, field, keys, ARRAY_SIZE(keys), err);
		const char *path, *content, *enc;
		size_t clen;
		if (r < 0 || (r = get_str(f, "path", field, false, &path, NULL, err)) < 0 ||
		    (r = check_rel_path(path, field, err)) < 0 ||
		    (r = get_str(f, "content", field, false, &content, &clen, err)) < 0 ||
		    (r = get_str(f, "encoding", field, true, &enc, NULL, err)) < 0)
			return r;
		if (!enc || streq(enc, "utf8")) {
			r = add_file(req, path, content, clen, err);
		} else if (streq(enc, "base64")) {
			_cleanup_free_ char *data = NULL;
			size_t dlen;
			r = base64_decode(content, clen, &data, &dlen);
			if (r == -ENOMEM)
				return err_set(err, 0, "request: out of memory");
			if (r < 0)
				return bad(err, field, "content is not valid base64");
			r = add_file(req, path, data, dlen, err);
		} else {
			return bad(err, field, "encoding must be utf8 or base64");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_str_array(json_t *root, const char *key, const char **ret, size_t *ret_n,
			   struct cdn_err *err)
{
	json_t *a = json_object_get(root, key);
	*ret_n = 0;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return bad(err, key, "not an array");
	if (json_array_size(a) > SPAWN_MAX_ARGS)
		return bad(err, key, "more than 256 entries");
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || memchr(json_string_value(v), 0, json_string_length(v)) ||
		    json_string_length(v) > 64 * 1024)
			return err_set(err, 0, "request: %s[%zu]: not a string without NUL "
						    "of at most 64K",
				       key, i);
		ret[(*ret_n)++] = json_string_value(v);
	}
	ret[*ret_n] = NULL;
	return 0;
}

static bool env_name_valid(const char *s)
{
	if (!s[0] || strlen(s) > 256 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (const char *p = s; *p; p++)
		if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

/* env and secrets into "K=V" strings on top of the clean base environment of `cordon run`. */
static int parse_env(json_t *root, const char *key, bool secret, struct spawn_req *req,
		     struct cdn_err *err)
{
	json_t *obj = json_object_get(root, key);
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return bad(err, key, "not an object");
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (!env_name_valid(k))
			return err_set(err, 0, "request: %s: \"%.64s\" is not a variable name",
				       key, k);
		if (!json_is_string(v) || memchr(json_string_value(v), 0, json_string_length(v)) ||
		    json_string_length(v) > 32 * 1024)
			return err_set(err, 0, "request: %s.%s: not a string without NUL of "
						    "at most 32K",
				       key, k);
		const char *val = json_string_value(v);
		/* An empty secret would "redact" every position of the output. */
		if (secret && !val[0])
			return err_set(err, 0, "request: secrets.%s: empty value", k);
		if (secret && req->n_secrets >= SPAWN_MAX_SECRETS)
			return bad(err, key, "more than 64 secrets");
		char *kv = strprintf("%s=%s", k, val);
		if (!kv)
			return err_set(err, 0, "request: out of memory");
		size_t klen = strlen(k);
		size_t i = 0;
		for (; i < req->n_env; i++)
			if (!strncmp(req->env[i], kv, klen + 1))
				break;
		if (i == req->n_env) {
			if (req->n_env >= ARRAY_SIZE(req->env) - 1) {
				free(kv);
				return bad(err, key, "more than 256 variables");
			}
			req->n_env++;
		} else {
			free(req->env[i]);
		}
		req->env[i] = kv;
		if (secret)
			req->secrets[req->n_secrets++] = kv + klen + 1;
	}
	return 0;
}

/* The limits object (API names and units) over the trust level's defaults. */
static int parse_limits(json_t *v, const char *key, enum trust_level trust,
			struct sbx_limits *ret, struct cdn_err *err)
{
	limits_default(trust, ret);
	if (!json_is_object(v))
		return bad(err, key, "not an object");
	const char *k;
	json_t *val;
	json_object_foreach(v, k, val) {
		char field[96];
		snprintf(field, sizeof(field), "%s.%.64s", key, k);
		if (streq(k, "network")) {
			/* Egress through the proxy does not exist yet: a run that asked for network
			 * must not start without it (fail closed). */
			json_t *en = json_is_object(val) ? json_object_get(val, "enabled") : NULL;
			if (json_is_null(val) || (json_is_object(val) && (!en || json_is_false(en))))
				continue;
			return bad(err, field, "network access is not implemented yet");
		}
		const struct limit_def *d = NULL;
		for (size_t i = 0; i < limit_table_len && !d; i++)
			if (streq(limit_table[i].name, k))
				d = &limit_table[i];
		if (!d)
			return bad(err, key[0] ? field : k, "unknown limit");
		if (!json_is_integer(val) || json_integer_value(val) < 0)
			return bad(err, field, "not a non-negative integer");
		uint64_t n = (uint64_t)json_integer_value(val);
		/* memory_mb and disk_mb are MiB in the API, bytes in sbx_limits. */
		bool mb = strlen(k) > 3 && !strcmp(k + strlen(k) - 3, "_mb");
		if (mb && n > UINT64_MAX >> 20)
			return bad(err, field, "out of range");
		if (mb)
			n <<= 20;
		if (n < d->min || n > d->max) {
			uint64_t lo = mb ? d->min >> 20 : d->min, hi = mb ? d->max >> 20 : d->max;
			return err_set(err, 0, "request: %s: out of range [%llu, %llu]", field,
				       (unsigned long long)lo, (unsigned long long)hi);
		}
		*(uint64_t *)((char *)ret + d->offset) = n;
	}
	return 0;
}

static int parse_tests(json_t *root, struct spawn_req *req, struct cdn_err *err)
{
	json_t *tests = json_object_get(root, "tests");
	if (!tests || json_is_null(tests))
		return 0;
	if (!json_is_array(tests) || json_array_size(tests) == 0)
		return bad(err, "tests", "not a non-empty array");
	if (json_array_size(tests) > SPAWN_MAX_TESTS)
		return bad(err, "tests", "more than 256 cases");
	req->tests = calloc(json_array_size(tests), sizeof(*req->tests));
	if (!req->tests)
		return err_set(err, 0, "request: out of memory");
	static const char *const keys[] = {"name", "stdin", "input", "expected_output", "expected"};
	size_t i;
	json_t *t;
	json_array_foreach(tests, i, t) {
		char field[48];
		snprintf(field, sizeof(field), "tests[%zu]", i);
		struct spawn_test *c = &req->tests[i];
		if (!json_is_object(t))
			return bad(err, field, "not an object");
		int r = check_keys(t, field, keys, ARRAY_SIZE(keys), err);
		if (r < 0 || (r = get_str(t, "name", field, true, &c->name, NULL, err)) < 0 ||
		    (r = get_str(t, "stdin", field, true, &c->stdin_data, &c->stdin_len, err)) < 0 ||
		    (r = get_str(t, "expected_output", field, true, &c->expected_output,
				 &c->expected_output_len, err)) < 0)
			return r;
		if (c->name && strlen(c->name) > 256)
			return bad(err, field, "name is over 256 characters");
		c->input = json_object_get(t, "input");
		c->expected = json_object_get(t, "expected");
		req->n_tests++;
	}
	return 0;
}

static int parse_workspace(json_t *root, struct spawn_req *req, struct cdn_err *err)
{
	json_t *ws = json_object_get(root, "workspace");
	if (!ws || json_is_null(ws))
		return 0;
	if (!json_is_object(ws))
		return bad(err, "workspace", "not an object");
	static const char *const keys[] = {"host_dir", "path"};
	int r = check_keys(ws, "workspace", keys, ARRAY_SIZE(keys), err);
	if (r < 0 || (r = get_str(ws, "host_dir", "workspace.host_dir", false, &req->ws_host, NULL,
				  err)) < 0 ||
	    (r = get_str(ws, "path", "workspace.path", true, &req->ws_path, NULL, err)) < 0)
		return r;
	if (!req->ws_path)
		req->ws_path = "/workspace";
	_cleanup_free_ char *n = NULL;
	if (path_normalize_abs(req->ws_host, &n) < 0 || !streq(n, req->ws_host) ||
	    streq(n, "/"))
		return bad(err, "workspace.host_dir", "not a normalized absolute path other than /");
	free(n);
	n = NULL;
	if (path_normalize_abs(req->ws_path, &n) < 0 || !streq(n, req->ws_path) || streq(n, "/") ||
	    streq(n, "/tmp") || !strncmp(n, "/tmp/", 5))
		return bad(err, "workspace.path", "not a normalized absolute path outside /tmp");
	return 0;
}

/* code, files, entrypoint, runtime and command: what runs. */
static int parse_program(json_t *root, struct spawn_req *req, struct cdn_err *err)
{
	const char *runtime, *code, *entry;
	size_t code_len;
	int r;
	if ((r = get_str(root, "runtime", "runtime", true, &runtime, NULL, err)) < 0 ||
	    (r = get_str(root, "code", "code", true, &code, &code_len, err)) < 0 ||
	    (r = get_str(root, "entrypoint", "entrypoint", true, &entry, NULL, err)) < 0)
		return r;
	if (runtime && !(req->rt = runtime_find_api(runtime)))
		return bad(err, "runtime", "unknown runtime");
	if (code) {
		if (!req->rt)
			return bad(err, "code", "needs a runtime");
		r = add_file(req, req->rt->src_path + 5, code, code_len, err);
		if (r < 0)
			return r;
	}
	if ((r = parse_files(root, req, err)) < 0)
		return r;
	if ((r = parse_str_array(root, "command", req->argv, &req->n_argv, err)) < 0 ||
	    (r = parse_str_array(root, "args", req->args, &req->n_args, err)) < 0)
		return r;
	if (req->n_argv && req->rt)
		return bad(err, "command", "runtime and command exclude each other");
	if (!req->rt && !req->n_argv)
		return bad(err, "runtime", "a runtime or a command is required");
	if (req->n_argv + req->n_args > SPAWN_MAX_ARGS)
		return bad(err, "args", "command and args have more than 256 entries");
	if (!req->rt)
		return entry ? bad(err, "entrypoint", "needs a runtime") : 0;
	if (!req->n_files)
		return bad(err, "code", "code or files is required with a runtime");
	if (req->rt->compiled) {
		/* Every source file is compiled; an entrypoint has no meaning. */
		for (size_t i = 0; i < req->n_files; i++)
			if (runtime_is_source(req->rt, req->files[i].rel))
				return 0;
		return bad(err, "files", "no source file of the runtime");
	}
	if (entry) {
		if ((r = check_rel_path(entry, "entrypoint", err)) < 0)
			return r;
		for (size_t i = 0; i < req->n_files; i++)
			if (streq(req->files[i].rel, entry)) {
				req->entrypoint = req->files[i].rel;
				return 0;
			}
		return bad(err, "entrypoint", "not one of the files");
	}
	if (code || req->n_files == 1) {
		req->entrypoint = req->files[0].rel;
		return 0;
	}
	for (size_t i = 0; i < req->n_files; i++)
		if (streq(req->files[i].rel, req->rt->src_path + 5)) {
			req->entrypoint = req->files[i].rel;
			return 0;
		}
	return err_set(err, 0, "request: entrypoint: required when files has several (or "
				    "name one %s)",
		       req->rt->src_path + 5);
}

int spawn_req_parse(const char *text, size_t len, struct spawn_req *req, struct cdn_err *err)
{
	memset(req, 0, sizeof(*req));
	req->trust = TRUST_LOW;
	req->env[req->n_env++] = strdup("PATH=" RUNTIME_PATH);
	req->env[req->n_env++] = strdup("HOME=/tmp");
	req->env[req->n_env++] = strdup("LANG=C.UTF-8");
	if (!req->env[0] || !req->env[1] || !req->env[2])
		return err_set(err, 0, "request: out of memory");
	json_error_t jerr;
	/* Duplicate keys could hide a second, weaker value of a limit from a reviewer. */
	req->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req->root)
		return err_set(err, 0, "request: not JSON: %s (line %d)", jerr.text, jerr.line);
	json_t *root = req->root;
	if (!json_is_object(root))
		return bad(err, "request", "not an object");
	int r = check_keys(root, "", top_keys, ARRAY_SIZE(top_keys), err);
	const char *trust, *img;
	if (r < 0 || (r = get_str(root, "trust_level", "trust_level", true, &trust, NULL, err)) < 0)
		return r;
	if (trust && trust_parse(trust, &req->trust) < 0)
		return bad(err, "trust_level", "must be high, medium, low or untrusted");
	if ((r = get_str(root, "image", "image", true, &img, NULL, err)) < 0)
		return r;
	req->image = img ? img : "host";
	if (!streq(req->image, "host") && !state_image_name_valid(req->image))
		return bad(err, "image", "not an image name");
	if ((r = parse_program(root, req, err)) < 0)
		return r;
	if ((r = get_str(root, "stdin", "stdin", true, &req->stdin_data, &req->stdin_len, err)) < 0)
		return r;
	if ((r = parse_env(root, "env", false, req, err)) < 0 ||
	    (r = parse_env(root, "secrets", true, req, err)) < 0)
		return r;
	req->env[req->n_env] = NULL;
	json_t *in = json_object_get(root, "input");
	req->input = in && !json_is_null(in) ? in : NULL;

	json_t *lim = json_object_get(root, "limits");
	if (lim && !json_is_null(lim)) {
		if ((r = parse_limits(lim, "limits", req->trust, &req->limits, err)) < 0)
			return r;
	} else {
		limits_default(req->trust, &req->limits);
	}
	json_t *cl = json_object_get(root, "compile_limits");
	if (cl && !json_is_null(cl)) {
		struct sbx_limits given;
		if ((r = parse_limits(cl, "compile_limits", req->trust, &given, err)) < 0)
			return r;
		runtime_compile_limits(&req->limits, &given, &req->compile_limits);
	} else {
		runtime_compile_limits(&req->limits, NULL, &req->compile_limits);
	}
	json_t *cc = json_object_get(root, "capture_console");
	if (cc && !json_is_null(cc) && !json_is_boolean(cc))
		return bad(err, "capture_console", "not a boolean");
	req->capture_console = cc && json_is_true(cc);
	if ((r = parse_tests(root, req, err)) < 0 || (r = parse_workspace(root, req, err)) < 0)
		return r;
	return 0;
}

void spawn_req_release(struct spawn_req *req)
{
	for (size_t i = 0; i < req->n_files; i++) {
		free(req->files[i].path);
		free(req->files[i].data);
	}
	for (size_t i = 0; i < req->n_env; i++)
		free(req->env[i]);
	free(req->tests);
	json_decref(req->root);
	memset(req, 0, sizeof(*req));
}
