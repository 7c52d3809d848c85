/* Routing and the request pipeline: route match, authentication and the declared body size
 * and type as soon as the headers are in; body accumulation with a cap; JSON parsing with a
 * depth limit; then the handler. */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "auth.h"
#include "core/util.h"
#include "http-impl.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "server.h"
#include "tenants.h"
#include "validate.h"

#define ROUTE_MAX 96
#define ROUTE_SEGS 8

struct route {
	unsigned methods;
	unsigned flags;
	http_handler_fn fn;
	const char *pattern;
	size_t n_segs;
	char segs[ROUTE_SEGS][48]; /* "" for a {param} segment */
	bool trailing_slash;
};

static struct route routes[ROUTE_MAX];
static size_t n_routes;

int http_route_add(unsigned methods, const char *pattern, unsigned flags, http_handler_fn fn)
{
	if (n_routes >= ROUTE_MAX)
		return -E2BIG;
	if (!pattern || pattern[0] != '/' || !fn)
		return -EINVAL;
	struct route *rt = &routes[n_routes];
	*rt = (struct route){.methods = methods, .flags = flags, .fn = fn, .pattern = pattern};
	size_t plen = strlen(pattern);
	rt->trailing_slash = plen > 1 && pattern[plen - 1] == '/';
	const char *p = pattern + 1;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || rt->n_segs >= ROUTE_SEGS || n >= sizeof(rt->segs[0]))
			return -EINVAL;
		if (p[0] == '{' && p[n - 1] == '}')
			rt->segs[rt->n_segs][0] = 0;
		else
			memcpy(rt->segs[rt->n_segs], p, n);
		rt->n_segs++;
		p += n;
		if (*p == '/')
			p++;
	}
	n_routes++;
	return 0;
}

/* Match path against rt; fills params (pointers into the mutable copy `buf`). */
static bool route_match(const struct route *rt, char *buf, struct http_req *r)
{
	size_t len = strlen(buf);
	bool slash = len > 1 && buf[len - 1] == '/';
	if (slash != rt->trailing_slash)
		return false;
	if (slash)
		buf[len - 1] = 0;
	size_t i = 0, np = 0;
	char *p = buf[0] == '/' ? buf + 1 : buf;
	const char *params[HTTP_MAX_PARAMS];
	while (*p) {
		char *end = strchr(p, '/');
		if (end)
			*end = 0;
		if (i >= rt->n_segs || !*p)
			return false;
		if (rt->segs[i][0] == 0) {
			if (np >= HTTP_MAX_PARAMS)
				return false;
			params[np++] = p;
		} else if (strcmp(rt->segs[i], p)) {
			return false;
		}
		i++;
		if (!end)
			break;
		p = end + 1;
	}
	if (i != rt->n_segs)
		return false;
	memcpy(r->params, params, np * sizeof(params[0]));
	r->n_params = np;
	return true;
}

static enum http_method method_parse(const char *m)
{
	static const struct {
		const char *name;
		enum http_method m;
	} t[] = {{"GET", HTTP_GET},	  {"HEAD", HTTP_HEAD},	   {"POST", HTTP_POST},
		 {"PUT", HTTP_PUT},	  {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH}};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (!strcmp(m, t[i].name))
			return t[i].m;
	return 0;
}

struct http_req *req_new(struct srv *s, struct MHD_Connection *conn, const char *url,
			 const char *method)
{
	struct http_req *r = calloc(1, sizeof(*r));
	struct req_impl *ri = calloc(1, sizeof(*ri));
	if (!r || !ri) {
		free(r);
		free(ri);
		return NULL;
	}
	r->impl = ri;
	r->srv = s;
	r->start_ns = now_ns();
	ri->conn = conn;
	ri->path = strdup(url);
	ri->method = strdup(method);
	if (!ri->path || !ri->method) {
		free(ri->path);
		free(ri->method);
		free(ri);
		free(r);
		return NULL;
	}
	/* libmicrohttpd passes the path without the query string. */
	r->path = ri->path;
	r->method = method_parse(method);
	uint8_t rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd)); /* an id, not a secret: uniqueness is best effort */
	snprintf(r->request_id, sizeof(r->request_id), "req_%02x%02x%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	return r;
}

const char *http_header(const struct http_req *r, const char *name)
{
	struct req_impl *ri = r->impl;
	return MHD_lookup_connection_value(ri->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_req *r, const char *key)
{
	struct req_impl *ri = r->impl;
	return MHD_lookup_connection_value(ri->conn, MHD_GET_ARGUMENT_KIND, key);
}

int http_query_u64(struct http_req *r, const char *key, uint64_t min, uint64_t max, uint64_t def,
		   uint64_t *ret)
{
	const char *v = http_query(r, key);
	if (!v) {
		*ret = def;
		return 0;
	}
	uint64_t n;
	if (parse_u64(v, &n) < 0 || n < min || n > max) {
		char field[80];
		snprintf(field, sizeof(field), "query.%s", key);
		http_reply_error(r, 422, "validation_failed", field,
				 "%s must be an integer in [%llu, %llu]", key,
				 (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = n;
	return 0;
}

/* "application/json", optionally with parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
	static const char want[] = "application/json";
	if (!ct || strncasecmp(ct, want, sizeof(want) - 1))
		return false;
	char c = ct[sizeof(want) - 1];
	return c == 0 || c == ';' || c == ' ' || c == '\t';
}

bool req_has_body(const struct http_req *r)
{
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	return (cl && strcmp(cl, "0")) || te;
}

/* "127.0.0.1", "localhost", "[::1]", "127.x.y.z", each with an optional ":port". */
static bool host_is_loopback(const char *host)
{
	if (!host)
		return false;
	char h[64];
	size_t n = strlen(host);
	if (n >= sizeof(h))
		return false;
	memcpy(h, host, n + 1);
	if (!strcmp(h, "[::1]") || !strncmp(h, "[::1]:", 6))
		return true;
	char *colon = strchr(h, ':');
	if (colon) {
		uint64_t port;
		if (parse_u64(colon + 1, &port) < 0 || port > 65535)
			return false;
		*colon = 0;
	}
	if (!strcasecmp(h, "localhost"))
		return true;
	struct in_addr a;
	return inet_pton(AF_INET, h, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

void router_begin(struct http_req *r)
{
	struct req_impl *ri = r->impl;
	if (!r->method) {
		http_reply_error(r, 405, "method_not_allowed", NULL, "method not supported");
		return;
	}
	_cleanup_free_ char *buf = strdup(r->path);
	if (!buf) {
		http_reply_error(r, 500, "internal", NULL, "out of memory");
		return;
	}
	bool other_method = false;
	size_t len = strlen(r->path);
	for (size_t i = 0; i < n_routes; i++) {
		memcpy(buf, r->path, len + 1); /* route_match cuts it into segments */
		if (!route_match(&routes[i], buf, r))
			continue;
		unsigned m = routes[i].methods | ((routes[i].methods & HTTP_GET) ? HTTP_HEAD : 0);
		if (!(m & r->method)) {
			other_method = true;
			continue;
		}
		ri->route = &routes[i];
		ri->param_buf = TAKE_PTR(buf); /* params point into it */
		break;
	}
	if (!ri->route) {
		if (other_method)
			http_reply_error(r, 405, "method_not_allowed", NULL,
					 "%s is not allowed on this path", ri->method);
		else
			http_reply_error(r, 404, "not_found", NULL, "no such endpoint");
		return;
	}
	/* Without keys, the listener's being on loopback is all the protection there is: a web
	 * page could still reach it through a name that resolves to 127.0.0.1 (DNS rebinding),
	 * so the Host must name the loopback itself. */
	if (r->srv->cfg.no_auth && !host_is_loopback(http_header(r, MHD_HTTP_HEADER_HOST))) {
		http_reply_error(r, 403, "forbidden", NULL,
				 "with --no-auth the Host header must be 127.0.0.1, localhost or [::1]");
		return;
	}
	if (!(ri->route->flags & HTTP_ROUTE_PUBLIC)) {
		if (auth_request(r, ri->route->flags & HTTP_ROUTE_ADMIN) < 0)
			return; /* answered */
	}
	if (atomic_load(&r->srv->draining) && !(ri->route->flags & HTTP_ROUTE_PUBLIC)) {
		http_reply_error(r, 503, "overloaded", NULL, "the server is shutting down");
		return;
	}
	if ((ri->route->flags & HTTP_ROUTE_RATED) && r->tenant) {
		if (ratelimit_take(r) < 0)
			return; /* answered 429 */
	}
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t declared = 0;
	if (cl && parse_u64(cl, &declared) < 0) {
		http_reply_error(r, 400, "bad_request", NULL, "bad Content-Length");
		return;
	}
	if (declared > srv_limit("max_body_bytes")) {
		http_reply_error(r, 413, "payload_too_large", NULL,
				 "body of %llu bytes is over the maximum of %llu",
				 (unsigned long long)declared,
				 (unsigned long long)srv_limit("max_body_bytes"));
		return;
	}
	unsigned f = ri->route->flags;
	if ((f & (HTTP_ROUTE_JSON | HTTP_ROUTE_JSON_OPT)) && req_has_body(r) &&
	    !is_json_type(http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
		http_reply_error(r, 415, "unsupported_media_type", NULL,
				 "the body must be application/json");
		return;
	}
}

void req_body_append(struct http_req *r, const char *data, size_t len)
{
	struct req_impl *ri = r->impl;
	size_t max = srv_limit("max_body_bytes");
	if (!ri->route || ri->body_overflow || ri->body_len + len > max) {
		ri->body_overflow += len;
		return;
	}
	if (!(ri->route->flags & (HTTP_ROUTE_JSON | HTTP_ROUTE_JSON_OPT | HTTP_ROUTE_RAW))) {
		ri->body_len += len; /* counted against the cap, not kept */
		return;
	}
	if (ri->body_len + len + 1 > ri->body_cap) {
		size_t cap = ri->body_cap ? ri->body_cap : 4096;
		while (cap < ri->body_len + len + 1)
			cap *= 2;
		char *nb = realloc(ri->body, cap);
		if (!nb) {
			ri->body_overflow += len; /* answered 413: the same for the caller */
			return;
		}
		ri->body = nb;
		ri->body_cap = cap;
	}
	memcpy(ri->body + ri->body_len, data, len);
	ri->body_len += len;
	ri->body[ri->body_len] = 0;
}

/* v nests more than `levels` arrays/objects (the body itself is one level). */
static bool depth_over(const json_t *v, int levels)
{
	if (!json_is_object(v) && !json_is_array(v))
		return false;
	if (levels <= 0)
		return true;
	const char *k;
	json_t *c;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c)
		{
			if (depth_over(c, levels - 1))
				return true;
		}
	} else {
		json_array_foreach(v, i, c)
		{
			if (depth_over(c, levels - 1))
				return true;
		}
	}
	return false;
}

void router_dispatch(struct http_req *r)
{
	struct req_impl *ri = r->impl;
	if (ri->body_overflow) {
		http_reply_error(r, 413, "payload_too_large", NULL,
				 "body is over the maximum of %llu bytes",
				 (unsigned long long)srv_limit("max_body_bytes"));
		return;
	}
	unsigned f = ri->route->flags;
	r->raw_body = ri->body ? ri->body : "";
	r->raw_len = ri->body_len;
	if (f & (HTTP_ROUTE_JSON | HTTP_ROUTE_JSON_OPT)) {
		if (ri->body_len == 0 && (f & HTTP_ROUTE_JSON_OPT)) {
			/* no body: fine */
		} else if (ri->body_len == 0) {
			http_reply_error(r, 400, "invalid_json", NULL, "a JSON body is required");
			return;
		} else {
			json_error_t jerr;
			/* Duplicate keys are refused: a second "memory_mb" must not silently win
			 * over the one a proxy or log saw first. */
			r->body = json_loadb(ri->body, ri->body_len, JSON_REJECT_DUPLICATES, &jerr);
			if (!r->body) {
				http_reply_error(r, 400, "invalid_json", NULL,
						 "body is not JSON: %s at line %d column %d",
						 jerr.text, jerr.line, jerr.column);
				return;
			}
			if (!json_is_object(r->body)) {
				http_reply_error(r, 422, "validation_failed", NULL,
						 "the body must be a JSON object");
				return;
			}
			int max = (int)srv_limit("max_json_depth");
			if (depth_over(r->body, max)) {
				http_reply_error(r, 422, "validation_failed", NULL,
						 "the body nests deeper than %d levels", max);
				return;
			}
		}
	}
	ri->route->fn(r);
}

void req_log_and_free(struct http_req *r, bool aborted)
{
	struct req_impl *ri = r->impl;
	uint64_t us = (now_ns() - r->start_ns) / 1000;
	metrics_http_request(ri->status, us);
	/* The caller's path is logged up to a bound, as printable ASCII (it is raw caller
	 * bytes); the route says which handler ran. */
	char path[257];
	size_t plen = 0;
	for (const char *p = r->path; *p && plen < sizeof(path) - 1; p++)
		path[plen++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	path[plen] = 0;
	char method[16];
	plen = 0;
	for (const char *p = ri->method; *p && plen < sizeof(method) - 1; p++)
		method[plen++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	method[plen] = 0;
	json_t *f = json_pack("{ss ss ss ss si sf}", "request_id", r->request_id, "method",
			      method, "path", path, "route",
			      ri->route ? ri->route->pattern : "", "status", (int)ri->status,
			      "duration_ms", (double)us / 1000.0);
	if (f && r->tenant)
		json_object_set_new(f, "tenant", json_string(r->tenant->id));
	if (f && ri->error_code[0])
		json_object_set_new(f, "error", json_string(ri->error_code));
	if (f && aborted)
		json_object_set_new(f, "aborted", json_true());
	log_msg(LOG_INFO, "request", f);
	if (ri->reply)
		MHD_destroy_response(ri->reply);
	hdrs_free(&ri->headers);
	json_decref(r->body);
	free(ri->body);
	free(ri->path);
	free(ri->param_buf);
	free(ri->method);
	free(ri->tenant_owned);
	free(ri);
	free(r);
}
