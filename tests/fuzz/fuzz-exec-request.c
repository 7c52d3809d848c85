/* Fuzz target: the daemon's parsing and validation of `POST /v1/executions` bodies, the most
 * exposed parser of cordon (every tenant reaches it). The input goes the way router.c takes
 * it: jansson with duplicate keys refused, the JSON depth limit, then val_execution() against
 * the default plan. Beyond the sanitizers' checks it asserts the validator's promise: an
 * accepted body yields a __spawn request whose "limits" holds every limit as an integer, and
 * "secrets" never appears in the fields kept apart for the store ("extra").
 *
 * Built as build{,-san}/unit-fuzz-exec-request (corpus replay in CI) and, with `make fuzz`,
 * as a libFuzzer binary (see fuzz-extract.c). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/tenants.h"
#include "server/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const limit_names[] = {"timeout_ms", "cpu_time_ms", "memory_mb",
					  "processes", "open_files", "file_size_bytes",
					  "max_files", "disk_mb", "output_bytes"};

__attribute__((noreturn)) static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz-exec-request: invariant broken: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!body)
		return 0;
	if (json_depth(body) > (int)srv_limit("max_json_depth")) {
		json_decref(body);
		return 0;
	}
	struct tenant t = {.id = "default", .name = "fuzz"};
	plan_default(&t.plan);
	json_t *spawn = NULL, *extra = NULL;
	struct val_err err = {0};
	if (val_execution(body, &t, &spawn, &extra, &err) == 0) {
		json_t *lim = json_object_get(spawn, "limits");
		if (!json_is_object(lim))
			fuzz_fail("accepted request without a limits object");
		for (size_t i = 0; i < sizeof(limit_names) / sizeof(limit_names[0]); i++)
			if (!json_is_integer(json_object_get(lim, limit_names[i])))
				fuzz_fail(limit_names[i]);
		if (extra && json_object_get(extra, "secrets"))
			fuzz_fail("secrets kept for the store");
		json_decref(spawn);
		json_decref(extra);
	} else if (err.status != 422 && err.status != 403) {
		fuzz_fail("refusal with a status other than 422/403");
	}
	json_decref(body);
	return 0;
}

#ifndef FUZZ_WITH_LIBFUZZER
#include "replay.h"
#endif
