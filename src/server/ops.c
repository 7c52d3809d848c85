/* Operations endpoints: GET /healthz (the process answers), GET /readyz (every module can take
 * work: the store answers, sandboxes can start), GET /metrics (Prometheus text). Public: they
 * carry no tenant data; a deployment that must hide them keeps the port off the network. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"
#include "server.h"

int srv_modules_ready(struct srv *s, const char **ret_module, const char **ret_reason);

static void ops_healthz(struct http_req *r)
{
	http_reply_json(r, 200, json_pack("{ss}", "status", "ok"));
}

static void ops_readyz(struct http_req *r)
{
	const char *module = NULL, *reason = NULL;
	if (atomic_load(&r->srv->draining)) {
		http_reply_error(r, 503, "overloaded", NULL, "shutting down");
		return;
	}
	if (srv_modules_ready(r->srv, &module, &reason) < 0) {
		http_reply_error(r, 503, "overloaded", NULL, "%s is not ready: %s", module,
				 reason ? reason : "unknown reason");
		return;
	}
	http_reply_json(r, 200, json_pack("{ss}", "status", "ready"));
}

static void ops_metrics(struct http_req *r)
{
	char *text = metrics_render();
	if (!text) {
		http_reply_error(r, 500, "internal", NULL, "out of memory");
		return;
	}
	http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
	free(text);
}

/* "Sandboxes can start": the cordon binary that runners spawn is there and executable. */
static int sandbox_ready(struct srv *s, const char **ret_reason)
{
	if (access(s->cfg.cordon_bin, X_OK) < 0) {
		*ret_reason = "the cordon binary beside cordon-serve is missing or not executable";
		return -errno;
	}
	return 0;
}

static const struct srv_module sandbox_module = {.name = "sandbox", .ready = sandbox_ready};

void ops_register(void)
{
	srv_module_add(&sandbox_module);
	http_route_add(HTTP_GET, "/healthz", HTTP_ROUTE_PUBLIC, ops_healthz);
	http_route_add(HTTP_GET, "/readyz", HTTP_ROUTE_PUBLIC, ops_readyz);
	http_route_add(HTTP_GET, "/metrics", HTTP_ROUTE_PUBLIC, ops_metrics);
}
