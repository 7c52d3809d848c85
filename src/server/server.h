/* cordon-serve: the REST daemon (`cordon serve` execs it). Theory of operation:
 *
 *   main thread   parses options, opens the store, starts libmicrohttpd, then waits for
 *                 SIGTERM/SIGINT on a signalfd and runs the shutdown sequence.
 *   HTTP threads  libmicrohttpd's pool (srv_limit "http_threads"): parse, authenticate,
 *                 validate and answer. They never wait on a sandbox: a handler that must wait
 *                 defers its reply (http_defer) or streams (http_stream_open) and returns; the
 *                 thread that finishes the work completes it.
 *   modules       the parts around the HTTP core (executions, later sandboxes and previews)
 *                 register routes and a struct srv_module with start/drain/stop hooks.
 *
 * Sandboxes are never cloned from this threaded process: runners posix_spawn `cordon __spawn`
 * (SPAWN-PROTOCOL.md), which is single-threaded. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct store;
struct runner;

struct srv_config {
	char listen_host[64]; /* IPv4 literal */
	uint16_t listen_port;
	bool loopback_only; /* the listen address is in 127.0.0.0/8 */
	bool no_auth;
	char *state_dir;    /* absolute */
	char *database_url; /* NULL: sqlite under state_dir */
	char *cordon_bin;   /* absolute path of the `cordon` binary beside cordon-serve */
};

struct srv {
	struct srv_config cfg;
	struct store *store;
	struct runner *runner; /* the executions queue (runner.h, helper "exec") */
	atomic_bool draining; /* SIGTERM received: new work is answered 503 */
	uint64_t started_ns;
};

/* The one daemon instance (main.c). */
extern struct srv *srv_global;

/* A module: parts of the daemon with their own threads or state. Hooks may be NULL.
 * start: after the store is open, before the listener accepts; < 0 aborts startup.
 * drain: SIGTERM received and the listener closed; finish or cancel work by deadline_ns
 *        (now_ns() clock), recording what was cancelled; return when done.
 * stop:  after the HTTP server stopped; free everything. */
struct srv_module {
	const char *name;
	int (*start)(struct srv *s);
	void (*drain)(struct srv *s, uint64_t deadline_ns);
	void (*stop)(struct srv *s);
	/* /readyz: 0 when this module can take work, else -errno and a reason in *ret_reason. */
	int (*ready)(struct srv *s, const char **ret_reason);
};

#define SRV_MAX_MODULES 16
/* Register a module (call from a *_register() function listed in main.c). */
int srv_module_add(const struct srv_module *m);

/* Registration functions called by main.c before start: each adds its routes and module. */
void ops_register(void);     /* healthz, readyz, metrics (ops.c) */
void tenants_register(void); /* admin endpoints (tenants.c) */
void exec_register(void);    /* executions, runtimes, daiv (exec-api.c) */
