/* Streaming secret redaction: replaces every occurrence of a secret value with "[REDACTED]" in
 * a byte stream fed in arbitrary chunks, including occurrences that straddle two chunks. */
#pragma once

#include <stddef.h>

#define REDACTED "[REDACTED]"

typedef void (*redact_emit_fn)(void *userdata, const char *buf, size_t len);

struct redactor {
	const char *const *secrets; /* non-empty values; borrowed */
	size_t n_secrets;
	size_t max_len;             /* longest secret */
	char *pending;              /* bytes held back: they may begin a secret */
	size_t n_pending;
	char *work;                 /* scratch: pending + new chunk */
	size_t cap;
};

/* Returns 0 or -ENOMEM. Empty secrets are ignored. */
int redact_init(struct redactor *r, const char *const *secrets, size_t n);
void redact_release(struct redactor *r);
/* Feed a chunk; emits what can no longer be part of a secret. Returns 0 or -ENOMEM. */
int redact_feed(struct redactor *r, const char *buf, size_t len, redact_emit_fn emit, void *ud);
/* End of stream: emit what is held back. */
void redact_flush(struct redactor *r, redact_emit_fn emit, void *ud);
