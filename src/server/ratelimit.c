#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "http.h"
#include "metrics.h"
#include "tenants.h"

#define RL_BUCKETS 256

struct bucket {
	char tenant[TENANT_ID_LEN];
	double tokens;
	uint64_t last_ns;
	struct bucket *next;
};

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bucket *rl_table[RL_BUCKETS];

static unsigned rl_hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a: ids are ours, not chosen by callers */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % RL_BUCKETS;
}

int ratelimit_take(struct http_req *r)
{
	const struct plan *p = &r->tenant->plan;
	if (p->rate_per_second == 0)
		return 0; /* unlimited plan */
	double rate = p->rate_per_second; /* tokens per second */
	double burst = p->burst ? p->burst : 1;
	uint64_t now = now_ns();
	pthread_mutex_lock(&rl_lock);
	unsigned h = rl_hash(r->tenant->id);
	struct bucket *b;
	for (b = rl_table[h]; b; b = b->next)
		if (!strcmp(b->tenant, r->tenant->id))
			break;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b) {
			pthread_mutex_unlock(&rl_lock);
			return 0; /* out of memory: do not refuse service over a counter */
		}
		snprintf(b->tenant, sizeof(b->tenant), "%s", r->tenant->id);
		b->tokens = burst;
		b->last_ns = now;
		b->next = rl_table[h];
		rl_table[h] = b;
	}
	b->tokens += (double)(now - b->last_ns) / 1e9 * rate;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_ns = now;
	bool ok = b->tokens >= 1.0;
	if (ok)
		b->tokens -= 1.0;
	double tokens = b->tokens;
	pthread_mutex_unlock(&rl_lock);

	char v[32];
	snprintf(v, sizeof(v), "%.0f", burst);
	http_add_header(r, "RateLimit-Limit", v);
	snprintf(v, sizeof(v), "%.0f", floor(tokens));
	http_add_header(r, "RateLimit-Remaining", v);
	snprintf(v, sizeof(v), "%.0f", ceil((burst - tokens) / rate));
	http_add_header(r, "RateLimit-Reset", v);
	if (ok)
		return 0;
	double wait = ceil((1.0 - tokens) / rate);
	snprintf(v, sizeof(v), "%.0f", wait < 1 ? 1 : wait);
	http_add_header(r, "Retry-After", v);
	metrics_rate_limited();
	http_reply_error(r, 429, "rate_limited", NULL,
			 "rate limit of %u requests per second (burst %u) exceeded; retry in %s s",
			 p->rate_per_second, (unsigned)burst, v);
	return -EAGAIN;
}

void ratelimit_reset(void)
{
	pthread_mutex_lock(&rl_lock);
	for (size_t i = 0; i < RL_BUCKETS; i++) {
		struct bucket *b = rl_table[i];
		while (b) {
			struct bucket *n = b->next;
			free(b);
			b = n;
		}
		rl_table[i] = NULL;
	}
	pthread_mutex_unlock(&rl_lock);
}
