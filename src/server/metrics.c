#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static const char *const m_statuses[] = {"succeeded", "failed", "cancelled"};
static const char *const m_codes[] = {
	"",
	"SANDBOX_TIMEOUT",
	"SANDBOX_CPU_LIMIT",
	"SANDBOX_MEMORY_LIMIT",
	"SANDBOX_PROCESS_LIMIT",
	"SANDBOX_OUTPUT_LIMIT",
	"SANDBOX_FILE_LIMIT",
	"SANDBOX_NETWORK_BLOCKED",
	"SANDBOX_SECURITY_VIOLATION",
	"SANDBOX_COMPILE_ERROR",
	"SANDBOX_RUNTIME_ERROR",
	"SANDBOX_CANCELLED",
	"SANDBOX_INTERNAL",
};
#define N_STATUS ARRAY_SIZE(m_statuses)
#define N_CODES ARRAY_SIZE(m_codes)

/* Histogram bounds in ms (executions) and us (HTTP). */
static const uint64_t exec_le_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
				      30000, 60000};
static const uint64_t http_le_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
				      250000, 1000000, 5000000};
#define N_EXEC_LE ARRAY_SIZE(exec_le_ms)
#define N_HTTP_LE ARRAY_SIZE(http_le_us)

static atomic_uint_fast64_t exec_count[N_STATUS][N_CODES];
static atomic_uint_fast64_t exec_bucket[N_EXEC_LE + 1], exec_sum_ms, exec_total;
static atomic_uint_fast64_t queue_depth, running, rate_limited, quota_exceeded;
/* HTTP answers by status 100..599. */
static atomic_uint_fast64_t http_by_status[600];
static atomic_uint_fast64_t http_bucket[N_HTTP_LE + 1], http_sum_us, http_total;

static size_t index_of(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (s && !strcmp(names[i], s))
			return i;
	return n;
}

void metrics_execution_done(const char *status, const char *error_code, uint64_t wall_ms)
{
	size_t si = index_of(m_statuses, N_STATUS, status);
	size_t ci = error_code ? index_of(m_codes, N_CODES, error_code) : 0;
	if (si < N_STATUS && ci < N_CODES)
		atomic_fetch_add(&exec_count[si][ci], 1);
	size_t b = 0;
	while (b < N_EXEC_LE && wall_ms > exec_le_ms[b])
		b++;
	atomic_fetch_add(&exec_bucket[b], 1);
	atomic_fetch_add(&exec_sum_ms, wall_ms);
	atomic_fetch_add(&exec_total, 1);
}

void metrics_queue_depth(uint64_t n)
{
	atomic_store(&queue_depth, n);
}

void metrics_running(uint64_t n)
{
	atomic_store(&running, n);
}

void metrics_rate_limited(void)
{
	atomic_fetch_add(&rate_limited, 1);
}

void metrics_quota_exceeded(void)
{
	atomic_fetch_add(&quota_exceeded, 1);
}

void metrics_http_request(unsigned status, uint64_t duration_us)
{
	if (status < ARRAY_SIZE(http_by_status))
		atomic_fetch_add(&http_by_status[status], 1);
	size_t b = 0;
	while (b < N_HTTP_LE && duration_us > http_le_us[b])
		b++;
	atomic_fetch_add(&http_bucket[b], 1);
	atomic_fetch_add(&http_sum_us, duration_us);
	atomic_fetch_add(&http_total, 1);
}

char *metrics_render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("# HELP cordon_executions_total Executions that ended, by status and error code.\n"
	      "# TYPE cordon_executions_total counter\n",
	      f);
	for (size_t s = 0; s < N_STATUS; s++)
		for (size_t c = 0; c < N_CODES; c++) {
			uint64_t v = atomic_load(&exec_count[s][c]);
			/* Every succeeded/failed/cancelled series exists from the start (0), so a rate()
			 * sees the first one; coded series appear once they happen. */
			if (c && !v)
				continue;
			fprintf(f, "cordon_executions_total{status=\"%s\",error_code=\"%s\"} %llu\n",
				m_statuses[s], m_codes[c], (unsigned long long)v);
		}
	fputs("# HELP cordon_execution_duration_seconds Wall time of executions that ended.\n"
	      "# TYPE cordon_execution_duration_seconds histogram\n",
	      f);
	uint64_t cum = 0;
	for (size_t b = 0; b <= N_EXEC_LE; b++) {
		cum += atomic_load(&exec_bucket[b]);
		if (b < N_EXEC_LE)
			fprintf(f, "cordon_execution_duration_seconds_bucket{le=\"%g\"} %llu\n",
				(double)exec_le_ms[b] / 1000.0, (unsigned long long)cum);
		else
			fprintf(f, "cordon_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, "cordon_execution_duration_seconds_sum %.3f\n",
		(double)atomic_load(&exec_sum_ms) / 1000.0);
	fprintf(f, "cordon_execution_duration_seconds_count %llu\n",
		(unsigned long long)atomic_load(&exec_total));
	fprintf(f,
		"# HELP cordon_queue_depth Executions waiting for a runner.\n"
		"# TYPE cordon_queue_depth gauge\ncordon_queue_depth %llu\n"
		"# HELP cordon_executions_running Executions running now.\n"
		"# TYPE cordon_executions_running gauge\ncordon_executions_running %llu\n"
		"# HELP cordon_rate_limited_total Requests answered 429 rate_limited.\n"
		"# TYPE cordon_rate_limited_total counter\ncordon_rate_limited_total %llu\n"
		"# HELP cordon_quota_exceeded_total Requests answered 429 quota_exceeded.\n"
		"# TYPE cordon_quota_exceeded_total counter\ncordon_quota_exceeded_total %llu\n",
		(unsigned long long)atomic_load(&queue_depth),
		(unsigned long long)atomic_load(&running),
		(unsigned long long)atomic_load(&rate_limited),
		(unsigned long long)atomic_load(&quota_exceeded));
	fputs("# HELP cordon_http_requests_total HTTP answers by status code.\n"
	      "# TYPE cordon_http_requests_total counter\n",
	      f);
	for (unsigned s = 100; s < ARRAY_SIZE(http_by_status); s++) {
		uint64_t v = atomic_load(&http_by_status[s]);
		if (v)
			fprintf(f, "cordon_http_requests_total{code=\"%u\"} %llu\n", s,
				(unsigned long long)v);
	}
	fputs("# HELP cordon_http_request_duration_seconds Time from headers to answer queued.\n"
	      "# TYPE cordon_http_request_duration_seconds histogram\n",
	      f);
	cum = 0;
	for (size_t b = 0; b <= N_HTTP_LE; b++) {
		cum += atomic_load(&http_bucket[b]);
		if (b < N_HTTP_LE)
			fprintf(f, "cordon_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				(double)http_le_us[b] / 1e6, (unsigned long long)cum);
		else
			fprintf(f, "cordon_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, "cordon_http_request_duration_seconds_sum %.6f\n",
		(double)atomic_load(&http_sum_us) / 1e6);
	fprintf(f, "cordon_http_request_duration_seconds_count %llu\n",
		(unsigned long long)atomic_load(&http_total));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
