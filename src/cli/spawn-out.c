/* What comes out of a sandbox run of `cordon __spawn`, on its way to the events and the result.
 *
 * For each step and stream: [record splitter] -> redactor -> capture + stdout/stderr events.
 *
 * The record channel. A harness (python, node, edge) reports console calls, the return value
 * of function-shaped code and uncaught errors as records on its stdout, each one line
 * "\x1e" "cordon:" NONCE ":" JSON "\n", interleaved with the program's own output. NONCE is 128
 * random bits made for this run, handed to the harness in a file it reads and unlinks before
 * the user's code runs (on stdin, for edge). Text the program merely passes through (input it
 * echoes, data it prints) cannot contain the nonce, so it cannot forge a record. A program that
 * digs the nonce out of its own memory can forge records about itself only: its logs, its
 * result and its error, all of which it controls anyway by returning, logging or throwing.
 * What cordon itself asserts - status, exit code, signal, error codes of limits, metrics, test
 * verdicts (compared here on the host), compile output - never comes from a record. We chose
 * this over a separate fd: the core gives the program fds 0-2 only (SECURITY.md layer 6), and a
 * fd the harness holds is as reachable by the same process's code as its nonce.
 *
 * Redaction happens here, not in the core (the spec hands the core no secrets): records are
 * split from the raw stream first, so a secret that happens to match part of the framing (a
 * short value such as "log") cannot break it; the record's strings are redacted after their
 * JSON escapes are decoded, where "\u0073ecret" has become "secret" again. */
#include "spawn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static bool emit_dead;

int spawn_emit(json_t *obj)
{
	if (!obj)
		return -ENOMEM;
	_cleanup_free_ char *text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!text)
		return -ENOMEM;
	if (emit_dead)
		return -EPIPE;
	size_t n = strlen(text);
	text[n] = '\n';
	/* One write per line: the reader sees whole lines. A reader that went away (the daemon)
	 * cancels the run rather than leaving it to run to its limits. */
	int r = write_all(STDOUT_FILENO, text, n + 1);
	if (r < 0) {
		emit_dead = true;
		sandbox_cancel();
	}
	text[n] = 0;
	return r;
}

void spawn_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* ---- redaction ---- */

struct buf_sink {
	struct result_buf b;
	bool oom;
};

static void buf_append(struct result_buf *b, const char *data, size_t len, bool *oom)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *p = realloc(b->data, cap);
		if (!p) {
			*oom = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
}

static void sink_emit(void *ud, const char *buf, size_t len)
{
	struct buf_sink *s = ud;
	buf_append(&s->b, buf, len, &s->oom);
}

char *spawn_redact_buf(const char *s, size_t len, const char *const *secrets, size_t n,
		       size_t *ret_len)
{
	struct redactor red;
	struct buf_sink sink = {0};
	if (redact_init(&red, secrets, n) < 0)
		return NULL;
	/* Nothing to feed for "": the redactor's buffers stay unallocated. */
	int r = len ? redact_feed(&red, s, len, sink_emit, &sink) : 0;
	redact_flush(&red, sink_emit, &sink);
	redact_release(&red);
	buf_append(&sink.b, "", 0, &sink.oom); /* a buffer even for "" */
	if (r < 0 || sink.oom) {
		free(sink.b.data);
		return NULL;
	}
	*ret_len = sink.b.len;
	return sink.b.data;
}

static json_t *redact_string(json_t *v, const char *const *secrets, size_t n, bool *changed)
{
	size_t len;
	_cleanup_free_ char *s =
		spawn_redact_buf(json_string_value(v), json_string_length(v), secrets, n, &len);
	if (!s)
		return NULL;
	*changed = len != json_string_length(v) || memcmp(s, json_string_value(v), len);
	return *changed ? json_stringn(s, len) : json_incref(v);
}

int spawn_redact_json(json_t *v, const char *const *secrets, size_t n)
{
	if (!v || n == 0)
		return 0;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *e = json_array_get(v, i);
			if (json_is_string(e)) {
				bool ch = false;
				json_t *r = redact_string(e, secrets, n, &ch);
				if (!r || (ch ? json_array_set_new(v, i, r) : (json_decref(r), 0)) < 0)
					return -ENOMEM;
			} else if (spawn_redact_json(e, secrets, n) < 0) {
				return -ENOMEM;
			}
		}
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	/* Keys can carry a secret too ({"s3cr3t": 1} returned by the program): rebuild the object
	 * with redacted keys and values. */
	json_t *copy = json_object();
	if (!copy)
		return -ENOMEM;
	const char *k;
	json_t *e;
	json_object_foreach(v, k, e) {
		size_t klen;
		_cleanup_free_ char *rk = spawn_redact_buf(k, strlen(k), secrets, n, &klen);
		json_t *val = NULL;
		if (rk && json_is_string(e)) {
			bool ch;
			val = redact_string(e, secrets, n, &ch);
		} else if (rk && spawn_redact_json(e, secrets, n) == 0) {
			val = json_incref(e);
		}
		if (!val || json_object_set_new(copy, rk, val) < 0) {
			json_decref(copy);
			return -ENOMEM;
		}
	}
	int r = json_object_clear(v) < 0 || json_object_update(v, copy) < 0 ? -ENOMEM : 0;
	json_decref(copy);
	return r;
}

int spawn_redact_field(json_t *obj, const char *key, const char *const *secrets, size_t n)
{
	json_t *v = json_object_get(obj, key);
	if (!v || n == 0)
		return 0;
	if (!json_is_string(v))
		return spawn_redact_json(v, secrets, n);
	bool changed;
	json_t *r = redact_string(v, secrets, n, &changed);
	if (!r)
		return -ENOMEM;
	return json_object_set_new(obj, key, r) < 0 ? -ENOMEM : 0;
}

/* ---- UTF-8 at event boundaries ---- */

/* Bytes at the end of buf that begin a UTF-8 sequence not complete yet (0-3). */
static size_t utf8_tail(const unsigned char *buf, size_t len)
{
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned char c = buf[len - back];
		if ((c & 0xC0) == 0x80)
			continue; /* continuation: look further back for the lead byte */
		size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
		return need > back ? back : 0;
	}
	return 0;
}

static void event_text(struct spawn_out *o, int step, int k, const char *buf, size_t len,
		       bool final)
{
	char *joined = NULL;
	if (o->n_carry[step][k]) {
		joined = malloc(o->n_carry[step][k] + len);
		if (!joined) {
			o->oom = true;
			return;
		}
		memcpy(joined, o->carry[step][k], o->n_carry[step][k]);
		memcpy(joined + o->n_carry[step][k], buf, len);
		len += o->n_carry[step][k];
		buf = joined;
		o->n_carry[step][k] = 0;
	}
	/* A multi-byte character split between two reads is held for the next event instead of
	 * turning into two U+FFFD. */
	size_t tail = final ? 0 : utf8_tail((const unsigned char *)buf, len);
	memcpy(o->carry[step][k], buf + len - tail, tail);
	o->n_carry[step][k] = tail;
	len -= tail;
	if (len) {
		size_t n;
		_cleanup_free_ char *clean = result_utf8_sanitize(buf, len, &n);
		bool compile = step == o->compile_step;
		json_t *ev = clean ? json_pack("{s:s, s:s%}", "type",
					       k == 0 && !compile ? "stdout" : "stderr", "data",
					       clean, n)
				   : NULL;
		if (ev && compile)
			json_object_set_new(ev, "compile", json_true());
		if (ev && o->test >= 0)
			json_object_set_new(ev, "test", json_integer(o->test));
		spawn_emit(ev);
	}
	free(joined);
}

/* Redacted text of (step, stream): keep it and tell it, as one event per chunk that came in. */
static void text_out(struct spawn_out *o, int step, int k, const char *buf, size_t len)
{
	result_capture_add(&o->cap, step, k == 0 ? SBX_STDOUT : SBX_STDERR, buf, len,
			   o->cap_limit[step]);
	event_text(o, step, k, buf, len, false);
}

static void text_in(struct spawn_out *o, int step, int k, const char *buf, size_t len)
{
	if (!len)
		return;
	if (!o->red_ok[step][k]) {
		text_out(o, step, k, buf, len);
		return;
	}
	struct buf_sink sink = {0};
	if (redact_feed(&o->red[step][k], buf, len, sink_emit, &sink) < 0 || sink.oom)
		o->oom = true;
	if (sink.b.len)
		text_out(o, step, k, sink.b.data, sink.b.len);
	free(sink.b.data);
}

static void text_flush(struct spawn_out *o, int step, int k)
{
	struct buf_sink sink = {0};
	redact_flush(&o->red[step][k], sink_emit, &sink);
	if (sink.oom)
		o->oom = true;
	if (sink.b.len)
		text_out(o, step, k, sink.b.data, sink.b.len);
	free(sink.b.data);
}

/* ---- records ---- */

static const char *const levels[] = {"log", "info", "warn", "error", "debug"};

static void record_log(struct spawn_out *o, json_t *rec)
{
	const char *level = json_string_value(json_object_get(rec, "level"));
	json_t *msg = json_object_get(rec, "message");
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(levels) && !known; i++)
		known = streq(level, levels[i]);
	if (!known || !json_is_string(msg))
		return;
	char ts[40];
	/* The host's clock at arrival: the harness writes each record at once, and a program
	 * cannot date its logs. */
	spawn_timestamp(ts, sizeof(ts));
	json_t *entry = json_pack("{s:s, s:O, s:s}", "level", level, "message", msg, "timestamp", ts);
	/* The message only: the level and the time are cordon's words, not the program's. */
	if (!entry || spawn_redact_field(entry, "message", o->secrets, o->n_secrets) < 0) {
		json_decref(entry);
		o->oom = true;
		return;
	}
	json_t *ev = json_pack("{s:s, s:O, s:O, s:O}", "type", "log", "level",
			       json_object_get(entry, "level"), "message",
			       json_object_get(entry, "message"), "timestamp",
			       json_object_get(entry, "timestamp"));
	if (ev && o->test >= 0)
		json_object_set_new(ev, "test", json_integer(o->test));
	spawn_emit(ev);
	if (json_array_append_new(o->rec_out.logs, entry) < 0)
		o->oom = true;
}

static void record_in(struct spawn_out *o, const char *buf, size_t len)
{
	json_t *rec = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	const char *type = json_string_value(json_object_get(rec, "t"));
	if (!rec || !type) {
		json_decref(rec);
		return; /* not a record of ours: nothing to report */
	}
	json_t *value = json_object_get(rec, "value");
	if (streq(type, "log")) {
		record_log(o, rec);
	} else if (streq(type, "result") && value && !o->rec_out.result_seen) {
		/* The first one counts; the harness writes one, once the function returned. */
		o->rec_out.result_seen = true;
		o->rec_out.result = json_incref(value);
	} else if (streq(type, "error") && json_is_object(value) && !o->rec_out.error_seen) {
		o->rec_out.error_seen = true;
		o->rec_out.error = json_incref(value);
	}
	json_decref(rec);
}

/* Split the record step's stdout into text and records. */
static void split(struct spawn_out *o, int step, const char *buf, size_t len)
{
	while (len) {
		if (o->in_record) {
			const char *nl = memchr(buf, '\n', len);
			size_t n = nl ? (size_t)(nl - buf) : len;
			/* A record is bounded by the output cap like any output. */
			if (!o->rec_overflow && o->rec.len + n <= o->cap_limit[step])
				buf_append(&o->rec, buf, n, &o->oom);
			else
				o->rec_overflow = true;
			if (!nl)
				return;
			if (!o->rec_overflow)
				record_in(o, o->rec.data ? o->rec.data : "", o->rec.len);
			o->rec.len = 0;
			o->in_record = o->rec_overflow = false;
			buf += n + 1;
			len -= n + 1;
			continue;
		}
		/* Look for the marker in what was held back plus this chunk. */
		size_t total = o->n_hold + len;
		_cleanup_free_ char *work = malloc(total);
		if (!work) {
			o->oom = true;
			return;
		}
		memcpy(work, o->hold, o->n_hold);
		memcpy(work + o->n_hold, buf, len);
		size_t held = o->n_hold;
		o->n_hold = 0;
		const char *m = memmem(work, total, o->marker, o->marker_len);
		if (m) {
			size_t pre = (size_t)(m - work);
			text_in(o, step, 0, work, pre);
			o->in_record = true;
			size_t consumed = pre + o->marker_len - held; /* of buf */
			buf += consumed;
			len -= consumed;
			continue;
		}
		/* Hold the longest tail that could begin a marker. */
		size_t keep = 0;
		for (size_t k = o->marker_len - 1; k > 0; k--)
			if (k <= total && !memcmp(work + total - k, o->marker, k)) {
				keep = k;
				break;
			}
		text_in(o, step, 0, work, total - keep);
		memcpy(o->hold, work + total - keep, keep);
		o->n_hold = keep;
		return;
	}
}

void spawn_out_feed(void *userdata, int step, enum sbx_stream stream, const char *buf,
		    size_t len)
{
	struct spawn_out *o = userdata;
	if (step < 0 || step >= SBX_MAX_STEPS || (stream != SBX_STDOUT && stream != SBX_STDERR))
		return;
	int k = stream == SBX_STDOUT ? 0 : 1;
	if (k == 0 && step == o->record_step && o->marker_len)
		split(o, step, buf, len);
	else
		text_in(o, step, k, buf, len);
}

void spawn_out_flush(struct spawn_out *o)
{
	for (int step = 0; step < SBX_MAX_STEPS; step++) {
		if (step == o->record_step && o->n_hold) {
			text_in(o, step, 0, o->hold, o->n_hold);
			o->n_hold = 0;
		}
		for (int k = 0; k < 2; k++) {
			if (o->red_ok[step][k])
				text_flush(o, step, k);
			if (o->n_carry[step][k])
				event_text(o, step, k, "", 0, true);
		}
	}
}

int spawn_out_init(struct spawn_out *o, const char *const *secrets, size_t n, const char *nonce)
{
	memset(o, 0, sizeof(*o));
	o->secrets = secrets;
	o->n_secrets = n;
	o->test = o->compile_step = o->record_step = -1;
	o->rec_out.logs = json_array();
	if (!o->rec_out.logs)
		return -ENOMEM;
	if (nonce) {
		int len = snprintf(o->marker, sizeof(o->marker), "\x1e" "cordon:%s:", nonce);
		o->marker_len = len > 0 && (size_t)len < sizeof(o->marker) ? (size_t)len : 0;
	}
	for (int s = 0; s < SBX_MAX_STEPS; s++)
		for (int k = 0; k < 2; k++) {
			if (n && redact_init(&o->red[s][k], secrets, n) < 0)
				return -ENOMEM;
			o->red_ok[s][k] = n > 0;
		}
	return 0;
}

void spawn_out_release(struct spawn_out *o)
{
	for (int s = 0; s < SBX_MAX_STEPS; s++)
		for (int k = 0; k < 2; k++)
			if (o->red_ok[s][k])
				redact_release(&o->red[s][k]);
	result_capture_release(&o->cap);
	free(o->rec.data);
	json_decref(o->rec_out.logs);
	json_decref(o->rec_out.result);
	json_decref(o->rec_out.error);
	memset(o, 0, sizeof(*o));
}
