/* The HTTP core of cordon-serve over libmicrohttpd: routing, bodies with limits, JSON replies
 * and error bodies of API.md, request ids, replies completed later from any thread, and
 * streamed replies (SSE).
 *
 * A handler is called on an HTTP thread once the whole request is in, authenticated (unless the
 * route is HTTP_ROUTE_PUBLIC) and, for JSON routes, parsed. It must answer exactly once, in one
 * of three ways, and return promptly (never wait on a sandbox):
 *   - http_reply_*()                      answer now;
 *   - d = http_defer(r)                   answer later from any thread with http_deferred_*();
 *                                         the connection is suspended meanwhile;
 *   - st = http_stream_open(r, ...)       send the status and headers now and body chunks later
 *                                         from any thread with http_stream_write().
 * A handler that returns without answering gets a 500 (and a log line).
 *
 * Every answer carries X-Request-Id (r->request_id) and Cache-Control: no-store; every non-2xx
 * JSON answer has the body {"error": {"code", "message", "field", "retryable"}}. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv;
struct tenant;

enum http_method {
	HTTP_GET = 1 << 0,
	HTTP_HEAD = 1 << 1,
	HTTP_POST = 1 << 2,
	HTTP_PUT = 1 << 3,
	HTTP_DELETE = 1 << 4,
	HTTP_PATCH = 1 << 5,
};

enum http_route_flags {
	HTTP_ROUTE_PUBLIC = 1 << 0,   /* no key needed (healthz, readyz, metrics) */
	HTTP_ROUTE_ADMIN = 1 << 1,    /* the admin key only: another key is 403 */
	HTTP_ROUTE_JSON = 1 << 2,     /* body required: application/json holding an object */
	HTTP_ROUTE_JSON_OPT = 1 << 3, /* body optional; if present, as HTTP_ROUTE_JSON */
	HTTP_ROUTE_RAW = 1 << 4,      /* body kept as bytes in raw_body, any content type */
	HTTP_ROUTE_RATED = 1 << 5,    /* counts against the tenant's rate limit (ratelimit.h) */
};

#define HTTP_MAX_PARAMS 4
#define HTTP_REQUEST_ID_LEN 24 /* "req_" + 16 hex + NUL fits */

struct http_req {
	struct srv *srv;
	enum http_method method;
	const char *path; /* without the query string */
	/* The {id}-style segments of the matched route pattern, in order (already percent-decoded
	 * by libmicrohttpd; at most HTTP_MAX_PARAMS). */
	const char *params[HTTP_MAX_PARAMS];
	size_t n_params;
	char request_id[HTTP_REQUEST_ID_LEN];
	/* JSON routes: the parsed body (an object), NULL when an optional body was absent. Owned by
	 * the request: json_incref() to keep it past the reply. */
	json_t *body;
	/* Raw routes (and JSON routes, the bytes that were parsed): NUL-terminated copy. */
	const char *raw_body;
	size_t raw_len;
	/* The caller: NULL on public routes (and with --no-auth: the built-in "default" tenant). */
	const struct tenant *tenant;
	bool admin;        /* the caller used the admin key */
	char key_id[40];   /* id of the key used ("" when none) */
	uint64_t start_ns; /* now_ns() when the headers arrived */
	void *impl;        /* http.c's state */
};

typedef void (*http_handler_fn)(struct http_req *r);

/* Add a route. pattern is an absolute path where a segment "{name}" matches any one non-empty
 * segment (its value goes to params[]); a trailing "/" is significant. Routes are matched in
 * the order added; a path that matches with another method is 405. Call before srv start.
 * Returns 0, or -E2BIG when the table is full, -EINVAL for a bad pattern. */
int http_route_add(unsigned methods, const char *pattern, unsigned flags, http_handler_fn fn);

/* Request accessors (valid until the request's reply is complete). */
const char *http_header(const struct http_req *r, const char *name); /* case-insensitive */
const char *http_query(const struct http_req *r, const char *key);
/* A query parameter as an integer in [min, max], def when absent. On a bad value answers 422
 * (field "query.<key>") and returns -EINVAL: the handler then just returns. */
int http_query_u64(struct http_req *r, const char *key, uint64_t min, uint64_t max, uint64_t def,
		   uint64_t *ret);

/* Add a header to the reply about to be sent (Location, Retry-After, RateLimit-*). Copied. */
void http_add_header(struct http_req *r, const char *name, const char *value);

/* Immediate replies. body is stolen (json_decref'd by the call). */
void http_reply_json(struct http_req *r, unsigned status, json_t *body);
void http_reply_empty(struct http_req *r, unsigned status);
void http_reply_raw(struct http_req *r, unsigned status, const char *content_type,
		    const void *data, size_t len);
/* An error body of API.md. field may be NULL. retryable is set for 429/503 (with Retry-After:
 * 1 when the handler did not add one). */
void http_reply_error(struct http_req *r, unsigned status, const char *code, const char *field,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The error object of API.md as JSON (for callers that build their own replies). */
json_t *http_error_body(unsigned status, const char *code, const char *field, const char *msg);

/* Deferred replies. http_defer() may be called once per request, on the handler's thread; the
 * handler then returns and the connection waits, suspended, without holding a thread. Exactly
 * one http_deferred_json/_error/_empty() call must follow, from any thread; it consumes the
 * handle. If the server had to give up on the request first (shutdown: the client got 503),
 * that call only frees what it was given. */
struct http_deferred;
struct http_deferred *http_defer(struct http_req *r);
void http_deferred_json(struct http_deferred *d, unsigned status, json_t *body);
void http_deferred_empty(struct http_deferred *d, unsigned status);
void http_deferred_error(struct http_deferred *d, unsigned status, const char *code,
			 const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Headers for the deferred reply (before completing it); copied. */
void http_deferred_add_header(struct http_deferred *d, const char *name, const char *value);
const char *http_deferred_request_id(const struct http_deferred *d);

/* Streamed replies: status and headers go out at once (chunked), then each
 * http_stream_write() chunk as it comes. Any thread may write; chunks are kept in order. The
 * owner ends with http_stream_close(), which consumes the handle. */
struct http_stream;
struct http_stream *http_stream_open(struct http_req *r, unsigned status,
				     const char *content_type);
/* Queue bytes. -EPIPE once the client is gone (or the server is shutting down): stop
 * producing and close. -ENOBUFS when the client reads so slowly that over
 * srv_limit("stream_buffer_bytes") is pending: the chunk is dropped. */
int http_stream_write(struct http_stream *st, const void *buf, size_t len);
void http_stream_close(struct http_stream *st);
const char *http_stream_request_id(const struct http_stream *st);

/* Lifecycle (main.c). */
int http_start(struct srv *s, const char *host, uint16_t port, uint16_t *ret_port);
/* Stop accepting connections (the listener is closed); requests on open connections get 503. */
void http_quiesce(void);
/* Answer every deferred reply still pending with 503 and end every open stream. */
void http_abort_pending(void);
void http_stop(void);
/* Requests in progress (for the shutdown log line). */
unsigned http_active(void);
