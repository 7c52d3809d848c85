/* The result object of a run (API.md "Executions" answer) as printed by `cordon run --json` and
 * written by --result-file, and the output captured to fill it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/sandbox.h"

struct result_buf {
	char *data;
	size_t len, cap;
};

/* Output of each step, per stream ([step][0] stdout, [step][1] stderr). */
struct result_capture {
	struct result_buf out[SBX_MAX_STEPS][2];
	bool oom; /* an append failed: the capture is incomplete */
};

/* Append to b, keeping at most limit bytes (the core already caps output; this is a backstop so
 * cordon's memory stays bounded whatever it is handed). */
void result_capture_add(struct result_capture *c, int step, enum sbx_stream stream,
			const char *data, size_t len, size_t limit);
void result_capture_release(struct result_capture *c);

/* What the result object says besides the sandbox's own result. */
struct result_info {
	const char *runtime;  /* NULL for a raw command */
	const char *image;
	enum trust_level trust;
	bool compiled;        /* steps: 0 compiles, 1 runs the program */
	size_t program_step;  /* the step that runs the program */
};

/* Index of the step that decided the verdict: the last one attempted (later steps only run
 * when the earlier ones exit 0). -1 when none was. */
int result_verdict_step(const struct sbx_result *r);
/* The verdict: r->code, with a failing compile step reported as SBX_COMPILE_ERROR. */
enum sbx_code result_verdict(const struct result_info *info, const struct sbx_result *r);
/* One-line description of a failing verdict ("wall time limit of 10000 ms exceeded", "exited
 * with code 3"), written to buf. */
const char *result_message(const struct result_info *info, const struct sbx_result *r, char *buf,
			   size_t size);

/* Build the result object. error_message, when not NULL, replaces the message of the error
 * (cordon's own failure, with r->code SBX_INTERNAL). NULL when out of memory. */
json_t *result_json(const struct result_info *info, const struct sbx_result *r,
		    const struct result_capture *cap, const char *error_message);
/* Write obj as one line of compact JSON to fd. */
int result_write(const json_t *obj, int fd);

/* Copy of s with every invalid UTF-8 sequence replaced by U+FFFD (maximal subparts, as
 * Unicode recommends); never fails except for memory. */
char *result_utf8_sanitize(const char *s, size_t len, size_t *ret_len);
