/* Every limit a caller controls, in one table: name, bounds and the default of each trust
 * level (PRODUCT.md). The CLI and the daemon both validate against it. */
#pragma once

#include "sandbox.h"

enum limit_unit { LIMIT_MS, LIMIT_BYTES, LIMIT_COUNT };

struct limit_def {
	const char *name;       /* API field name: "timeout_ms", "memory_mb"... */
	const char *cli_option; /* "--timeout" */
	enum limit_unit unit;
	size_t offset;          /* offset of the uint64_t in struct sbx_limits */
	uint64_t min, max;      /* in the unit of sbx_limits (ms, bytes, count) */
	uint64_t def[TRUST__COUNT];
};

extern const struct limit_def limit_table[];
extern const size_t limit_table_len;

/* Fill ret with the defaults of a trust level. */
void limits_default(enum trust_level trust, struct sbx_limits *ret);
/* Generous limits for a compile step (c/cpp). */
void limits_compile(struct sbx_limits *ret);
/* Check every limit against its bounds; on failure err names the option. */
int limits_check(const struct sbx_limits *l, struct cdn_err *err);
/* "high" -> TRUST_HIGH; returns -EINVAL for an unknown name. */
int trust_parse(const char *name, enum trust_level *ret);
const char *trust_name(enum trust_level t);
