/* Fuzz target: src/cli/spawn-req.c, the request of `cordon __spawn` (the daemon pipes API
 * requests into it; the spawner runs as root, so it checks everything again).
 *
 * Beyond the sanitizers' own checks it asserts what a request that was accepted promises the
 * rest of __spawn: every file lands under /tmp and outside cordon's /tmp/.cordon, with no ".."
 * component; every limit is within the limit table; the environment is "K=V" strings led by
 * the three base variables; every secret is non-empty and inside the environment.
 *
 * Built two ways (Makefile): with clang's libFuzzer for `make fuzz`, and as
 * build{,-san}/unit-fuzz-spawn-req, which replays the committed corpus in CI. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/spawn.h"
#include "core/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn)) static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-spawn-req: invariant broken: %s: \"%s\"\n", what, detail);
	abort();
}

static void check_accepted(const struct spawn_req *req)
{
	for (size_t i = 0; i < req->n_files; i++) {
		const char *p = req->files[i].path;
		if (strncmp(p, "/tmp/", 5) || !strncmp(p, "/tmp/.cordon/", 13) ||
		    !strcmp(p, "/tmp/.cordon") || strstr(p, "/../") || strstr(p, "/./") ||
		    strstr(p, "//"))
			fuzz_fail("file path", p);
		if (req->files[i].rel != p + 5)
			fuzz_fail("relative path", p);
	}
	struct cdn_err err;
	if (limits_check(&req->limits, &err) < 0)
		fuzz_fail("limits", err.msg);
	if (limits_check(&req->compile_limits, &err) < 0)
		fuzz_fail("compile limits", err.msg);
	if (req->n_env < 3 || strncmp(req->env[0], "PATH=", 5) || req->env[req->n_env])
		fuzz_fail("environment", req->n_env ? req->env[0] : "");
	for (size_t i = 0; i < req->n_env; i++)
		if (!strchr(req->env[i], '=') || req->env[i][0] == '=')
			fuzz_fail("environment entry", req->env[i]);
	for (size_t i = 0; i < req->n_secrets; i++) {
		bool inside = false;
		for (size_t j = 0; j < req->n_env && !inside; j++)
			inside = req->secrets[i] > req->env[j] &&
				 req->secrets[i] <= req->env[j] + strlen(req->env[j]);
		if (!req->secrets[i][0] || !inside)
			fuzz_fail("secret", req->secrets[i]);
	}
	if (!req->rt && req->n_argv == 0)
		fuzz_fail("no program", "");
	if (req->argv[req->n_argv] || req->args[req->n_args])
		fuzz_fail("argv not NULL-terminated", "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spawn_req req;
	struct cdn_err err = {0};
	if (spawn_req_parse((const char *)data, size, &req, &err) == 0)
		check_accepted(&req);
	else if (!err.msg[0] || strchr(err.msg, '\n'))
		fuzz_fail("refusal without a one-line message", err.msg);
	spawn_req_release(&req);
	return 0;
}

#ifndef FUZZ_WITH_LIBFUZZER
#include "replay.h"
#endif
