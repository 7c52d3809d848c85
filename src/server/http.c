/* libmicrohttpd wiring: one access handler collects a request (headers, then the body in
 * bounded pieces), routes it (router.c), and queues the handler's answer. Deferred replies and
 * streams park the connection with MHD_suspend_connection() and are resumed by whichever
 * thread completes them; libmicrohttpd then calls the access handler (or the stream's reader)
 * again on the connection's own thread, where the answer is queued: MHD_queue_response() may
 * only be called there. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "http-impl.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "validate.h"

static struct MHD_Daemon *http_daemon;
static atomic_uint http_nactive;

/* Every deferred reply and stream still owned by a connection, for http_abort_pending(). */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_deferred *pending_deferred;
static struct http_stream *pending_streams;
static bool pending_closed; /* http_abort_pending() ran: new defers/streams fail at once */

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_set(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
	struct req_impl *ri = r->impl;
	if (ri->reply || ri->deferred || ri->stream) {
		/* A second answer is a bug in a handler; keep the first. */
		log_msg(LOG_ERROR, "handler answered twice",
			json_pack("{ss ss}", "request_id", r->request_id, "path", r->path));
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	ri->reply = resp;
	ri->status = status;
}

json_t *http_error_body(unsigned status, const char *code, const char *field, const char *msg)
{
	bool retryable = status == 429 || status == 503;
	return json_pack("{s{ss ss so sb}}", "error", "code", code, "message", msg ? msg : "",
			 "field", field ? json_string(field) : json_null(), "retryable", retryable);
}

/* A JSON body as a libmicrohttpd response; NULL when out of memory. */
static struct MHD_Response *response_json(json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return NULL;
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

void http_reply_json(struct http_req *r, unsigned status, json_t *body)
{
	struct MHD_Response *resp = response_json(body);
	if (!resp) {
		/* Out of memory: a fixed answer needs none. */
		static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
					  "memory\",\"field\":null,\"retryable\":true}}";
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
						       MHD_RESPMEM_PERSISTENT);
		status = 500;
	}
	reply_set(r, status, resp);
}

void http_reply_empty(struct http_req *r, unsigned status)
{
	reply_set(r, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

void http_reply_raw(struct http_req *r, unsigned status, const char *content_type,
		    const void *data, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	if (resp && content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	reply_set(r, status, resp);
}

void http_reply_error(struct http_req *r, unsigned status, const char *code, const char *field,
		      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg[utf8_prefix(msg, strlen(msg))] = 0; /* may end in cut caller text */
	http_reply_json(r, status, http_error_body(status, code, field, msg));
	struct req_impl *ri = r->impl;
	snprintf(ri->error_code, sizeof(ri->error_code), "%s", code);
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
	hdrs_add(&((struct req_impl *)r->impl)->headers, name, value);
}

/* ---- headers kept for a later reply ------------------------------------------------------- */

void hdrs_add(struct hdrs *h, const char *name, const char *value)
{
	if (h->n >= ARRAY_SIZE(h->name))
		return; /* a fixed handful of headers per reply: more is a bug, not caller input */
	h->name[h->n] = strdup(name);
	h->value[h->n] = strdup(value);
	if (!h->name[h->n] || !h->value[h->n]) {
		free(h->name[h->n]);
		free(h->value[h->n]);
		return;
	}
	h->n++;
}

void hdrs_free(struct hdrs *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->name[i]);
		free(h->value[i]);
	}
	h->n = 0;
}

static bool hdrs_has(const struct hdrs *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcasecmp(h->name[i], name))
			return true;
	return false;
}

/* Headers every answer gets, then the handler's. */
static void decorate(struct MHD_Response *resp, const char *request_id, unsigned status,
		     const struct hdrs *h)
{
	MHD_add_response_header(resp, "X-Request-Id", request_id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* A JSON API never needs sniffing or framing. */
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (size_t i = 0; i < h->n; i++)
		MHD_add_response_header(resp, h->name[i], h->value[i]);
	if ((status == 503 || status == 429) && !hdrs_has(h, MHD_HTTP_HEADER_RETRY_AFTER))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* ---- deferred replies --------------------------------------------------------------------- */

struct http_deferred {
	pthread_mutex_t lock;
	int refs;                   /* the connection's and the owner's */
	struct MHD_Connection *conn; /* NULL once the connection no longer waits for us */
	bool suspended;
	bool done;
	struct MHD_Response *resp;
	unsigned status;
	char error_code[32];
	struct hdrs headers;
	char request_id[HTTP_REQUEST_ID_LEN];
	struct http_deferred *next; /* pending list */
};

static void deferred_unref(struct http_deferred *d)
{
	pthread_mutex_lock(&d->lock);
	int left = --d->refs;
	pthread_mutex_unlock(&d->lock);
	if (left > 0)
		return;
	if (d->resp)
		MHD_destroy_response(d->resp);
	hdrs_free(&d->headers);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void pending_unlink_deferred(struct http_deferred *d)
{
	pthread_mutex_lock(&pending_lock);
	for (struct http_deferred **p = &pending_deferred; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	pthread_mutex_unlock(&pending_lock);
}

struct http_deferred *http_defer(struct http_req *r)
{
	struct req_impl *ri = r->impl;
	if (ri->reply || ri->deferred || ri->stream)
		return NULL;
	struct http_deferred *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	d->refs = 2;
	d->conn = ri->conn;
	memcpy(d->request_id, r->request_id, sizeof(d->request_id));
	pthread_mutex_lock(&pending_lock);
	if (pending_closed) {
		/* Shutting down: the connection answers 503 now, the owner's call is a no-op. */
		d->done = true;
		d->status = 503;
		snprintf(d->error_code, sizeof(d->error_code), "overloaded");
		d->resp = response_json(http_error_body(503, "overloaded", NULL,
							"the server is shutting down"));
	} else {
		d->next = pending_deferred;
		pending_deferred = d;
	}
	pthread_mutex_unlock(&pending_lock);
	ri->deferred = d;
	return d;
}

/* Complete d with resp (from any thread). First completion wins. */
static void deferred_complete(struct http_deferred *d, unsigned status, struct MHD_Response *resp,
			      const char *error_code)
{
	pthread_mutex_lock(&d->lock);
	if (d->done) {
		pthread_mutex_unlock(&d->lock);
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	d->done = true;
	d->resp = resp;
	d->status = status;
	snprintf(d->error_code, sizeof(d->error_code), "%s", error_code ? error_code : "");
	if (d->suspended && d->conn) {
		d->suspended = false;
		MHD_resume_connection(d->conn);
	}
	pthread_mutex_unlock(&d->lock);
}

void http_deferred_json(struct http_deferred *d, unsigned status, json_t *body)
{
	if (!d) {
		json_decref(body);
		return;
	}
	deferred_complete(d, status, response_json(body), NULL);
	deferred_unref(d);
}

void http_deferred_empty(struct http_deferred *d, unsigned status)
{
	if (!d)
		return;
	deferred_complete(d, status,
			  MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT),
			  NULL);
	deferred_unref(d);
}

void http_deferred_error(struct http_deferred *d, unsigned status, const char *code,
			 const char *field, const char *fmt, ...)
{
	if (!d)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msg[utf8_prefix(msg, strlen(msg))] = 0;
	deferred_complete(d, status, response_json(http_error_body(status, code, field, msg)),
			  code);
	deferred_unref(d);
}

void http_deferred_add_header(struct http_deferred *d, const char *name, const char *value)
{
	pthread_mutex_lock(&d->lock);
	if (!d->done)
		hdrs_add(&d->headers, name, value);
	pthread_mutex_unlock(&d->lock);
}

const char *http_deferred_request_id(const struct http_deferred *d)
{
	return d->request_id;
}

/* On the connection's thread, right after the handler returned: suspend unless the answer is
 * already there. Returns true when the answer is ready to be queued. */
static bool deferred_park(struct http_deferred *d)
{
	pthread_mutex_lock(&d->lock);
	bool ready = d->done;
	if (!ready) {
		d->suspended = true;
		MHD_suspend_connection(d->conn);
	}
	pthread_mutex_unlock(&d->lock);
	return ready;
}

/* ---- streams ------------------------------------------------------------------------------ */

struct http_stream {
	pthread_mutex_t lock;
	int refs;                    /* the response's and the owner's */
	struct MHD_Connection *conn;
	bool waiting;                /* the reader suspended the connection for want of data */
	bool ended;                  /* owner closed: end of stream after the buffer */
	bool gone;                   /* response destroyed (client left, or aborted) */
	char *buf;
	size_t len, cap;
	char request_id[HTTP_REQUEST_ID_LEN];
	struct http_stream *next;
};

static void stream_unref(struct http_stream *st)
{
	pthread_mutex_lock(&st->lock);
	int left = --st->refs;
	pthread_mutex_unlock(&st->lock);
	if (left > 0)
		return;
	pthread_mutex_lock(&pending_lock);
	for (struct http_stream **p = &pending_streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	pthread_mutex_unlock(&pending_lock);
	free(st->buf);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void stream_wake_locked(struct http_stream *st)
{
	if (st->waiting && !st->gone) {
		st->waiting = false;
		MHD_resume_connection(st->conn);
	}
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	ssize_t n;
	if (st->len) {
		n = (ssize_t)(st->len < max ? st->len : max);
		memcpy(out, st->buf, (size_t)n);
		memmove(st->buf, st->buf + n, st->len - (size_t)n);
		st->len -= (size_t)n;
	} else if (st->ended) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		/* Nothing yet: park the connection until a writer resumes it (returning 0 without
		 * suspending would make libmicrohttpd poll us in a loop). */
		st->waiting = true;
		MHD_suspend_connection(st->conn);
		n = 0;
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

static void stream_response_free(void *cls)
{
	struct http_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	st->gone = true;
	st->waiting = false;
	pthread_mutex_unlock(&st->lock);
	stream_unref(st);
}

struct http_stream *http_stream_open(struct http_req *r, unsigned status,
				     const char *content_type)
{
	struct req_impl *ri = r->impl;
	if (ri->reply || ri->deferred || ri->stream)
		return NULL;
	struct http_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	pthread_mutex_init(&st->lock, NULL);
	st->refs = 2;
	st->conn = ri->conn;
	memcpy(st->request_id, r->request_id, sizeof(st->request_id));
	struct MHD_Response *resp = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_response_free);
	if (!resp) {
		pthread_mutex_destroy(&st->lock);
		free(st);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	pthread_mutex_lock(&pending_lock);
	if (pending_closed)
		st->ended = true; /* shutting down: an empty stream, writes fail */
	st->next = pending_streams;
	pending_streams = st;
	pthread_mutex_unlock(&pending_lock);
	ri->stream = st;
	ri->reply = resp;
	ri->status = status;
	return st;
}

int http_stream_write(struct http_stream *st, const void *data, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&st->lock);
	if (st->gone || st->ended) {
		rc = -EPIPE;
	} else if (st->len + len > srv_limit("stream_buffer_bytes")) {
		rc = -ENOBUFS;
	} else {
		if (st->len + len > st->cap) {
			size_t cap = st->cap ? st->cap : 4096;
			while (cap < st->len + len)
				cap *= 2;
			char *nb = realloc(st->buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			st->buf = nb;
			st->cap = cap;
		}
		memcpy(st->buf + st->len, data, len);
		st->len += len;
		stream_wake_locked(st);
	}
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void http_stream_close(struct http_stream *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->ended = true;
	stream_wake_locked(st);
	pthread_mutex_unlock(&st->lock);
	stream_unref(st);
}

const char *http_stream_request_id(const struct http_stream *st)
{
	return st->request_id;
}

void http_abort_pending(void)
{
	pthread_mutex_lock(&pending_lock);
	pending_closed = true;
	struct http_deferred *d = pending_deferred;
	pending_deferred = NULL;
	/* Hold each one: its connection and owner may both let go while we complete it. */
	for (struct http_deferred *p = d; p; p = p->next) {
		pthread_mutex_lock(&p->lock);
		p->refs++;
		pthread_mutex_unlock(&p->lock);
	}
	for (struct http_stream *st = pending_streams; st; st = st->next) {
		pthread_mutex_lock(&st->lock);
		st->ended = true;
		stream_wake_locked(st);
		pthread_mutex_unlock(&st->lock);
	}
	pthread_mutex_unlock(&pending_lock);
	while (d) {
		struct http_deferred *next = d->next;
		d->next = NULL;
		deferred_complete(d, 503,
				  response_json(http_error_body(503, "overloaded", NULL,
								"the server is shutting down")),
				  "overloaded");
		deferred_unref(d);
		d = next;
	}
}

/* ---- the access handler ------------------------------------------------------------------- */

/* Queue the answer of r on its connection (connection thread only). */
static enum MHD_Result queue_answer(struct http_req *r)
{
	struct req_impl *ri = r->impl;
	struct MHD_Response *resp = ri->reply;
	unsigned status = ri->status;
	const struct hdrs *extra = &ri->headers;
	if (ri->deferred) {
		struct http_deferred *d = ri->deferred;
		pthread_mutex_lock(&d->lock);
		resp = TAKE_PTR(d->resp);
		status = d->status;
		if (d->error_code[0])
			snprintf(ri->error_code, sizeof(ri->error_code), "%s", d->error_code);
		for (size_t i = 0; i < d->headers.n; i++)
			hdrs_add(&ri->headers, d->headers.name[i], d->headers.value[i]);
		d->conn = NULL;
		pthread_mutex_unlock(&d->lock);
		pending_unlink_deferred(d);
	}
	ri->reply = NULL;
	ri->status = status;
	if (!resp)
		return MHD_NO; /* out of memory: close the connection */
	decorate(resp, r->request_id, status, extra);
	enum MHD_Result rc = MHD_queue_response(ri->conn, status, resp);
	MHD_destroy_response(resp);
	ri->queued = true;
	return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct srv *s = cls;
	struct http_req *r = *con_cls;
	if (!r) {
		r = req_new(s, conn, url, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		atomic_fetch_add(&http_nactive, 1);
		/* Routing, auth and the body's declared size and type are checked before any
		 * body byte is read, so an unauthenticated caller cannot make us buffer it. */
		router_begin(r);
		struct req_impl *ri = r->impl;
		/* An early answer to a request with a body goes out now (the body is then never
		 * read and the connection closes); without a body, at the next call, which keeps
		 * the connection alive. */
		if (ri->reply && req_has_body(r))
			return queue_answer(r);
		return MHD_YES;
	}
	struct req_impl *ri = r->impl;
	if (ri->queued) {
		*upload_size = 0; /* answered early: the rest of the body is dropped */
		return MHD_YES;
	}
	if (ri->reply && !ri->deferred && !*upload_size)
		return queue_answer(r); /* the early answer of a request without a body */
	if (*upload_size) {
		req_body_append(r, upload, *upload_size);
		*upload_size = 0;
		if (!ri->body_overflow)
			return MHD_YES;
		/* Over the cap (a chunked body: a declared one was refused before any byte): answer
		 * 413 now if libmicrohttpd lets us queue mid-body, else close the connection; the
		 * rest is never read. */
		http_reply_error(r, 413, "payload_too_large", NULL,
				 "body is over the maximum of %llu bytes",
				 (unsigned long long)srv_limit("max_body_bytes"));
		return queue_answer(r) == MHD_YES ? MHD_YES : MHD_NO;
	}
	if (ri->deferred) {
		/* Resumed: the deferred answer is there. */
		return queue_answer(r);
	}
	router_dispatch(r);
	if (ri->deferred) {
		if (!deferred_park(ri->deferred))
			return MHD_YES;
		return queue_answer(r);
	}
	if (!ri->reply) {
		log_msg(LOG_ERROR, "handler returned without an answer",
			json_pack("{ss ss}", "request_id", r->request_id, "path", r->path));
		http_reply_error(r, 500, "internal", NULL, "internal error (request %s)",
				 r->request_id);
	}
	return queue_answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	struct req_impl *ri = r->impl;
	if (ri->deferred) {
		struct http_deferred *d = ri->deferred;
		pthread_mutex_lock(&d->lock);
		d->conn = NULL;
		d->suspended = false;
		pthread_mutex_unlock(&d->lock);
		pending_unlink_deferred(d);
		deferred_unref(d);
	}
	/* A stream's own reference is dropped by its response's free callback. */
	req_log_and_free(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
	atomic_fetch_sub(&http_nactive, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	log_msg(LOG_WARN, "libmicrohttpd", json_pack("{ss}", "detail", buf));
}

int http_start(struct srv *s, const char *host, uint16_t port, uint16_t *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	http_daemon = MHD_start_daemon(
		flags, port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv_limit("http_threads"),
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv_limit("max_connections"),
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)srv_limit("max_connections_per_ip"),
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(srv_limit("idle_timeout_ms") / 1000),
		/* Bounds the request line and headers of one connection (431 beyond). */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)srv_limit("max_header_bytes"),
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
		1u, MHD_OPTION_END);
	if (!http_daemon)
		return errno ? -errno : -EADDRINUSE;
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_BIND_PORT);
	*ret_port = info ? info->port : port;
	return 0;
}

void http_quiesce(void)
{
	if (!http_daemon)
		return;
	MHD_socket fd = MHD_quiesce_daemon(http_daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void http_stop(void)
{
	if (http_daemon)
		MHD_stop_daemon(http_daemon);
	http_daemon = NULL;
}

unsigned http_active(void)
{
	return atomic_load(&http_nactive);
}
