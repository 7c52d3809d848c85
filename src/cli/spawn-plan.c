/* How a request becomes the steps of a sandbox run: which files go into the scratch space and
 * what each step executes.
 *
 *   bash, sh     the interpreter runs /tmp/<entrypoint> ARGS
 *   c, cpp       step 0 compiles every source file, step 1 runs the binary ARGS
 *   python, node the harness (harness/python.py, harness/node.js, written to /tmp/.cordon)
 *                loads /tmp/<entrypoint>: function-shaped code gets `input` and its return
 *                value comes back as a record; a plain script just runs
 *   edge         node runs harness/edge.mjs, which evaluates the module in a vm context with
 *                no import and no node API (see the comment there); its input comes on stdin
 *   command      the argv as given, ARGS appended
 */
#include "spawn.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "harness.h"

static int add_file(struct spawn_plan *p, const char *path, const void *data, size_t len,
		    mode_t mode)
{
	if (p->n_files >= SPAWN_PLAN_MAX_FILES)
		return -E2BIG;
	p->files[p->n_files++] = (struct sbx_file){
		.path = path, .data = data, .len = len, .mode = mode,
	};
	return 0;
}

static int own(struct spawn_plan *p, char *s)
{
	if (!s)
		return -ENOMEM;
	if (p->n_owned >= ARRAY_SIZE(p->owned)) {
		free(s);
		return -E2BIG;
	}
	p->owned[p->n_owned++] = s;
	return 0;
}

static int make_nonce(char *hex)
{
	unsigned char raw[16];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* The harness's configuration file: what to load and how. Not secret: the program may read it. */
static char *harness_conf(const struct spawn_req *req, json_t *input)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < req->n_files; i++)
		json_array_append_new(files, json_string(req->files[i].path));
	json_t *conf = json_pack("{s:s, s:s, s:o, s:b, s:O, s:b}", "entry",
				 req->files[0].path, "entry_rel", "", "files", files, "capture",
				 req->capture_console, "input", input ? input : json_null(),
				 "has_input", input != NULL);
	if (!conf)
		return NULL;
	for (size_t i = 0; i < req->n_files; i++)
		if (streq(req->files[i].rel, req->entrypoint)) {
			json_object_set_new(conf, "entry", json_string(req->files[i].path));
			json_object_set_new(conf, "entry_rel", json_string(req->files[i].rel));
		}
	char *text = json_dumps(conf, JSON_COMPACT);
	json_decref(conf);
	return text;
}

/* Major version of the image's node (its dpkg database), 0 when unknown. */
static int edge_node_major(void)
{
	char v[64];
	uint64_t major = 0;
	if (spawn_pkg_version(spawn_image_root, "nodejs", v, sizeof(v)) < 0)
		return 0;
	v[strcspn(v, ".")] = 0;
	return parse_u64(v, &major) == 0 && major < 1000 ? (int)major : 0;
}

static int plan_node_conf(const struct spawn_req *req, json_t *input, struct spawn_plan *p)
{
	char *conf = harness_conf(req, input);
	int r = own(p, conf);
	return r < 0 ? r : add_file(p, SPAWN_HARNESS_DIR "/conf.json", conf, strlen(conf), 0644);
}

/* Python's is lines of text (json costs python tens of ms to import: only function-shaped
 * code, which gets its input from input.json, pays for it). Paths have no newline
 * (spawn-req.c refuses control characters). */
static int plan_python_conf(const struct spawn_req *req, json_t *input, struct spawn_plan *p)
{
	const char *rel = req->entrypoint ? req->entrypoint : req->files[0].rel;
	size_t cap = 64 + 2 * strlen(rel);
	for (size_t i = 0; i < req->n_files; i++)
		cap += strlen(req->files[i].path) + 1;
	char *conf = malloc(cap);
	int r = own(p, conf);
	if (r < 0)
		return r;
	size_t n = (size_t)snprintf(conf, cap, "/tmp/%s\n%s\n%d\n%d\n", rel, rel,
				    req->capture_console, input != NULL);
	for (size_t i = 0; i < req->n_files && n < cap; i++)
		n += (size_t)snprintf(conf + n, cap - n, "%s\n", req->files[i].path);
	if ((r = add_file(p, SPAWN_HARNESS_DIR "/conf.txt", conf, strlen(conf), 0644)) < 0)
		return r;
	if (!input)
		return 0;
	char *in = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
	if ((r = own(p, in)) < 0)
		return r;
	return add_file(p, SPAWN_HARNESS_DIR "/input.json", in, strlen(in), 0644);
}

static int plan_harness(const struct spawn_req *req, json_t *input, struct spawn_plan *p,
			size_t *argc)
{
	const struct harness_file *h = harness_for(req->rt->name);
	if (!h)
		return -ENOENT;
	int r = make_nonce(p->nonce);
	if (r < 0)
		return r;
	p->harness = true;
	const char **argv = p->argv[p->n_steps - 1];
	argv[(*argc)++] = req->rt->interp;
	if (h->edge) {
		/* vm.SourceTextModule is behind this flag on node 18 and 20. */
		argv[(*argc)++] = "--experimental-vm-modules";
		argv[(*argc)++] = "--no-warnings";
		/* Node's permission model where the image's node has it (20+; renamed in 23):
		 * fs reads of the harness only, no writes, no child processes, no workers or
		 * addons, enforced below JavaScript (edge.mjs lists every layer). */
		int major = edge_node_major();
		if (major >= 20) {
			argv[(*argc)++] = major >= 23 ? "--permission" : "--experimental-permission";
			argv[(*argc)++] = "--allow-fs-read=" SPAWN_HARNESS_DIR "/edge.mjs";
		}
		p->edge_stdin = true;
	}
	argv[(*argc)++] = h->path;
	if ((r = add_file(p, h->path, h->data, h->len, 0644)) < 0)
		return r;
	if (h->edge)
		return 0;
	if (streq(req->rt->name, "python"))
		r = plan_python_conf(req, input, p);
	else
		r = plan_node_conf(req, input, p);
	if (r < 0)
		return r;
	/* Read and unlinked by the harness before the user's code runs. */
	return add_file(p, SPAWN_HARNESS_DIR "/nonce", p->nonce, strlen(p->nonce), 0600);
}

int spawn_plan_make(const struct spawn_req *req, const char *compile_out, const char *run_binary,
		    json_t *input, struct spawn_plan *p, struct cdn_err *err)
{
	memset(p, 0, sizeof(*p));
	/* Edge has no filesystem: its module reaches the harness on stdin, never a file. */
	bool edge = req->rt && harness_for(req->rt->name) && harness_for(req->rt->name)->edge;
	for (size_t i = 0; i < req->n_files && !edge; i++)
		if (add_file(p, req->files[i].path, req->files[i].data, req->files[i].len, 0644) < 0)
			return err_set(err, E2BIG, "too many files");
	const struct runtime *rt = req->rt;
	size_t argc = 0;
	int r = 0;
	if (!rt) {
		p->n_steps = 1;
		for (size_t i = 0; i < req->n_argv; i++)
			p->argv[0][argc++] = req->argv[i];
	} else if (rt->compiled && !run_binary) {
		const char *srcs[SPAWN_MAX_FILES + 1];
		size_t n = 0;
		for (size_t i = 0; i < req->n_files; i++)
			if (runtime_is_source(rt, req->files[i].rel))
				srcs[n++] = req->files[i].path;
		r = runtime_compile_argv(rt, compile_out ? compile_out : rt->binary, srcs, n,
					 p->argv[0], SPAWN_PLAN_MAX_ARGV);
		if (r < 0)
			return err_set(err, -r, "compile command too long");
		p->compiled = true;
		p->n_steps = compile_out ? 1 : 2;
		if (compile_out)
			return 0; /* tests mode: only the compile step */
		p->argv[1][argc++] = rt->binary;
	} else if (rt->compiled) {
		p->n_steps = 1;
		p->argv[0][argc++] = run_binary;
	} else if (harness_for(rt->name)) {
		p->n_steps = 1;
		if ((r = plan_harness(req, input, p, &argc)) < 0)
			return err_set(err, -r, "preparing the %s harness", rt->name);
	} else {
		p->n_steps = 1;
		p->argv[0][argc++] = rt->interp;
		for (size_t i = 0; i < req->n_files; i++)
			if (streq(req->files[i].rel, req->entrypoint))
				p->argv[0][argc++] = req->files[i].path;
	}
	const char **argv = p->argv[p->n_steps - 1];
	for (size_t i = 0; i < req->n_args && argc < SPAWN_PLAN_MAX_ARGV; i++)
		argv[argc++] = req->args[i];
	argv[argc] = NULL;
	return 0;
}

void spawn_plan_release(struct spawn_plan *p)
{
	for (size_t i = 0; i < p->n_owned; i++)
		free(p->owned[i]);
	p->n_owned = 0;
}

char *spawn_plan_edge_stdin(const struct spawn_req *req, const struct spawn_plan *p,
			    json_t *input, size_t *ret_len)
{
	json_t *env = json_object();
	/* The Workers `env` argument: the request's env and secrets (not PATH, HOME, LANG). */
	for (size_t i = 3; env && i < req->n_env; i++) {
		const char *kv = req->env[i], *eq = strchr(kv, '=');
		_cleanup_free_ char *k = strndup(kv, (size_t)(eq - kv));
		if (!k || json_object_set_new(env, k, json_string(eq + 1)) < 0) {
			json_decref(env);
			return NULL;
		}
	}
	const struct spawn_file *f = &req->files[0];
	for (size_t i = 0; i < req->n_files; i++)
		if (streq(req->files[i].rel, req->entrypoint))
			f = &req->files[i];
	json_t *o = json_pack("{s:s, s:s%, s:s, s:O, s:b, s:b, s:o}", "nonce", p->nonce, "code",
			      f->data, f->len, "file", f->path,
			      "input", input ? input : json_null(), "has_input", input != NULL,
			      "capture", req->capture_console, "env", env);
	if (!o)
		return NULL;
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text)
		*ret_len = strlen(text);
	return text;
}
