/* Per-tenant token buckets: each rated request takes one token; tokens come back at the
 * plan's rate_per_second up to its burst. Over it: 429 rate_limited with Retry-After. Every
 * rated answer carries RateLimit-Limit (burst), RateLimit-Remaining (whole tokens left) and
 * RateLimit-Reset (seconds until the bucket is full again). State is in memory, per daemon. */
#pragma once

struct http_req;

/* Take a token for r->tenant. Returns 0 (headers added), or -EAGAIN after answering 429. */
int ratelimit_take(struct http_req *r);
/* Forget every bucket (tests of the module; shutdown). */
void ratelimit_reset(void);
