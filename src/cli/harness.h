/* The harness programs of the python, node and edge runtimes (src/cli/harness/), embedded in
 * the binary at build time and written into each sandbox's /tmp/.cordon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct harness_file {
	const char *runtime; /* "python", "node", "edge" */
	const char *path;    /* inside the sandbox */
	const char *data;
	size_t len;
	bool edge;           /* the edge harness: input on stdin, node's vm-modules flag */
};

/* The harness of a runtime, NULL when it runs without one. */
const struct harness_file *harness_for(const char *runtime);
