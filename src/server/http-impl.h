/* Private to http.c and router.c: the state of one request behind struct http_req. */
#pragma once

#include <microhttpd.h>

#include "http.h"

struct hdrs {
	size_t n;
	char *name[12];
	char *value[12];
};
void hdrs_add(struct hdrs *h, const char *name, const char *value);
void hdrs_free(struct hdrs *h);

struct route;

struct req_impl {
	struct MHD_Connection *conn;
	const struct route *route;
	char *path;   /* copy of the URL path */
	char *method; /* copy of the method name */
	char *param_buf; /* the path cut into segments; r->params point into it */
	/* Body accumulation. */
	char *body;
	size_t body_len, body_cap;
	size_t body_overflow; /* bytes dropped past max_body_bytes */
	/* The answer. */
	struct MHD_Response *reply;
	unsigned status;
	char error_code[32];
	struct hdrs headers;
	struct http_deferred *deferred;
	struct http_stream *stream;
	bool queued;
	struct tenant *tenant_owned; /* what r->tenant points to */
};

/* router.c */
struct http_req *req_new(struct srv *s, struct MHD_Connection *conn, const char *url,
			 const char *method);
/* Headers are in: match the route, authenticate, check the declared body; may answer. */
void router_begin(struct http_req *r);
bool req_has_body(const struct http_req *r);
void req_body_append(struct http_req *r, const char *data, size_t len);
/* The body is in: parse it and call the handler. */
void router_dispatch(struct http_req *r);
/* Access log line, metrics, free. */
void req_log_and_free(struct http_req *r, bool aborted);
