/* The result object of API.md, built from a struct sbx_result and the captured output. Program
 * output is arbitrary bytes: it is made valid UTF-8 here so building the JSON never fails. */
#include "result.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/limits.h"

void result_capture_add(struct result_capture *c, int step, enum sbx_stream stream,
			const char *data, size_t len, size_t limit)
{
	if (step < 0 || step >= SBX_MAX_STEPS || (stream != SBX_STDOUT && stream != SBX_STDERR))
		return;
	struct result_buf *b = &c->out[step][stream == SBX_STDOUT ? 0 : 1];
	if (b->len >= limit)
		return;
	if (len > limit - b->len)
		len = limit - b->len;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		char *p = realloc(b->data, cap);
		if (!p) {
			c->oom = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void result_capture_release(struct result_capture *c)
{
	for (size_t i = 0; i < SBX_MAX_STEPS; i++)
		for (size_t j = 0; j < 2; j++) {
			free(c->out[i][j].data);
			c->out[i][j] = (struct result_buf){0};
		}
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid; *ret_bad is then the length
 * of the maximal subpart to replace by one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t avail, size_t *ret_bad)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		if (c == 0xF4)
			hi = 0x8F; /* over U+10FFFF */
	} else {
		*ret_bad = 1;
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		unsigned char b = i < avail ? s[i] : 0;
		if (i >= avail || b < lo || b > hi) {
			*ret_bad = i;
			return 0;
		}
		lo = 0x80, hi = 0xBF;
	}
	return n;
}

char *result_utf8_sanitize(const char *s, size_t len, size_t *ret_len)
{
	/* Worst case: every byte becomes the 3 bytes of U+FFFD. */
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	char *out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t bad = 0, n = utf8_seq(p + i, len - i, &bad);
		if (n) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i += bad;
		}
	}
	out[o] = 0;
	*ret_len = o;
	return out;
}

/* A JSON string of arbitrary bytes (NULL when out of memory). */
static json_t *json_bytes(const char *data, size_t len)
{
	size_t n;
	_cleanup_free_ char *clean = result_utf8_sanitize(data ? data : "", data ? len : 0, &n);
	return clean ? json_stringn(clean, n) : NULL;
}

static json_t *json_buf(const struct result_buf *b)
{
	return json_bytes(b->data, b->len);
}

int result_verdict_step(const struct sbx_result *r)
{
	size_t n = r->n_steps < SBX_MAX_STEPS ? r->n_steps : SBX_MAX_STEPS;
	return (int)n - 1;
}

enum sbx_code result_verdict(const struct result_info *info, const struct sbx_result *r)
{
	/* The core knows steps, not languages: a compile step that exits non-zero is a compile
	 * error, whatever code the core gave it. */
	if (info->compiled && r->code == SBX_RUNTIME_ERROR && result_verdict_step(r) == 0)
		return SBX_COMPILE_ERROR;
	return r->code;
}

static const char *signal_name(int sig)
{
	const char *n = sigabbrev_np(sig);
	return n ? n : "?";
}

const char *result_message(const struct result_info *info, const struct sbx_result *r, char *buf,
			   size_t size)
{
	int v = result_verdict_step(r);
	const struct sbx_step_result *s = v >= 0 ? &r->steps[v] : NULL;
	enum sbx_code code = result_verdict(info, r);
	if (s && s->message[0])
		snprintf(buf, size, "%s", s->message);
	else if (code == SBX_COMPILE_ERROR)
		snprintf(buf, size, "compilation failed");
	else if (code == SBX_CANCELLED)
		snprintf(buf, size, "cancelled");
	else if (s && s->exited)
		snprintf(buf, size, "exited with code %d", s->exit_code);
	else if (s && s->signal)
		snprintf(buf, size, "killed by signal %d (SIG%s)", s->signal, signal_name(s->signal));
	else
		snprintf(buf, size, "run failed: %s", sbx_code_name(code) ? sbx_code_name(code) : "?");
	return buf;
}

/* Set key to v in o; a NULL v (out of memory) marks the whole object failed. */
static void set(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (json_object_set_new(o, key, v) < 0)
		*ok = false;
}

static json_t *json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *metrics_json(const struct sbx_result *r, const struct sbx_step_result *s)
{
	static const struct sbx_metrics zero;
	const struct sbx_metrics *m = s ? &s->metrics : &zero;
	bool ok = true;
	json_t *o = json_object();
	if (!o)
		return NULL;
	set(o, "wall_time_ms", json_u64(m->wall_ns / 1000000), &ok);
	set(o, "cpu_time_ms", json_u64(m->cpu_ns / 1000000), &ok);
	set(o, "memory_peak_bytes", json_u64(m->memory_peak_bytes), &ok);
	set(o, "processes_peak", json_u64(m->processes_peak), &ok);
	set(o, "output_bytes", json_u64(m->output_bytes), &ok);
	/* --net proxy is not implemented yet: a run has no network at all. */
	set(o, "network_requests", json_integer(0), &ok);
	set(o, "network_bytes", json_integer(0), &ok);
	set(o, "files_written", json_u64(m->files_written), &ok);
	/* The CLI has no queue and no warm pool. */
	set(o, "queue_ms", json_integer(0), &ok);
	set(o, "setup_ms", json_u64(r->setup.total_ns / 1000000), &ok);
	set(o, "cold_start", json_true(), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *setup_json(const struct sbx_setup_times *t)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "prepare", (json_int_t)(t->prepare_ns / 1000),
			 "clone", (json_int_t)(t->clone_ns / 1000), "child",
			 (json_int_t)(t->child_ns / 1000), "total", (json_int_t)(t->total_ns / 1000));
}

static json_t *error_json(const struct result_info *info, const struct sbx_result *r,
			  const char *error_message)
{
	enum sbx_code code = result_verdict(info, r);
	if (code == SBX_OK)
		return json_null();
	char buf[512];
	const char *msg = error_message ? error_message : result_message(info, r, buf, sizeof(buf));
	const char *name = sbx_code_name(code);
	return json_pack("{s:s, s:o, s:n, s:n}", "code", name ? name : "SANDBOX_INTERNAL",
			 "message", json_bytes(msg, strlen(msg)), "stack", "source_location");
}

/* What a run without a cgroup (--no-cgroup, rootless without a delegated cgroup) does not
 * enforce as specified: the memory limit not at all; pids only through RLIMIT_NPROC (counted
 * in the sandbox's user namespace; a refused fork is no SANDBOX_PROCESS_LIMIT verdict); CPU
 * time only through RLIMIT_CPU, per process and in whole seconds (its metric from what init
 * reaped, so known at the step's end). The wall-clock limit, the
 * output, file and scratch limits and every isolation layer hold. */
#define NO_CGROUP_NOTE                                                                             \
	"run without a cgroup: memory is not limited; pids only by RLIMIT_NPROC, without a "      \
	"SANDBOX_PROCESS_LIMIT verdict; cpu time only per process, in whole seconds "             \
	"(RLIMIT_CPU); cpu time is measured when the step ends, memory and processes are not "   \
	"measured (0)"

static json_t *limits_not_enforced_json(const struct sbx_result *r)
{
	if (r->cgroup_limits)
		return json_array();
	return json_pack("[s, s, s]", "memory", "pids", "cpu_time");
}

static const char *status_name(enum sbx_code code)
{
	if (code == SBX_OK)
		return "succeeded";
	return code == SBX_CANCELLED ? "cancelled" : "failed";
}

/* Concatenation of a step's two streams (a compile step has its stderr merged already). */
static json_t *step_output_json(const struct result_capture *cap, size_t step)
{
	const struct result_buf *o = &cap->out[step][0], *e = &cap->out[step][1];
	if (!e->len)
		return json_buf(o);
	if (!o->len)
		return json_buf(e);
	_cleanup_free_ char *both = malloc(o->len + e->len);
	if (!both)
		return NULL;
	memcpy(both, o->data, o->len);
	memcpy(both + o->len, e->data, e->len);
	return json_bytes(both, o->len + e->len);
}

json_t *result_json(const struct result_info *info, const struct sbx_result *r,
		    const struct result_capture *cap, const char *error_message)
{
	int v = result_verdict_step(r);
	const struct sbx_step_result *s = v >= 0 ? &r->steps[v] : NULL;
	const struct sbx_step_result *prog =
		v >= 0 && (size_t)v >= info->program_step ? &r->steps[info->program_step] : NULL;
	bool ran = s && s->ran;
	bool ok = true;
	json_t *o = json_object();
	if (!o)
		return NULL;

	set(o, "status", json_string(status_name(result_verdict(info, r))), &ok);
	set(o, "runtime", info->runtime ? json_string(info->runtime) : json_null(), &ok);
	set(o, "image", json_string(info->image), &ok);
	set(o, "trust_level", json_string(trust_name(info->trust)), &ok);
	set(o, "exit_code", ran && s->exited ? json_integer(s->exit_code) : json_null(), &ok);
	set(o, "signal", ran && s->signal ? json_integer(s->signal) : json_null(), &ok);
	set(o, "stdout", json_buf(&cap->out[info->program_step][0]), &ok);
	set(o, "stderr", json_buf(&cap->out[info->program_step][1]), &ok);
	set(o, "stdout_truncated", json_boolean(prog && prog->stdout_truncated), &ok);
	set(o, "stderr_truncated", json_boolean(prog && prog->stderr_truncated), &ok);
	set(o, "compile_output", info->compiled ? step_output_json(cap, 0) : json_null(), &ok);
	set(o, "result", json_null(), &ok);
	set(o, "logs", json_array(), &ok);
	set(o, "error", error_json(info, r, error_message), &ok);
	set(o, "metrics", metrics_json(r, s), &ok);
	set(o, "cgroup_limits", json_boolean(r->cgroup_limits), &ok);
	set(o, "limits_not_enforced", limits_not_enforced_json(r), &ok);
	set(o, "limits_note", r->cgroup_limits ? json_null() : json_string(NO_CGROUP_NOTE), &ok);
	set(o, "setup_breakdown_us", setup_json(&r->setup), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int result_write(const json_t *obj, int fd)
{
	_cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	int r = write_all(fd, text, strlen(text));
	return r < 0 ? r : write_all(fd, "\n", 1);
}
