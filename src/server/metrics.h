/* Prometheus metrics of the daemon (GET /metrics, text format 0.0.4). Every update is a lock-
 * free atomic, callable from any thread. */
#pragma once

#include <stdint.h>
#include <stdio.h>

/* An execution ended: status "succeeded" | "failed" | "cancelled", error_code NULL or one of
 * API.md's codes ("SANDBOX_TIMEOUT"...), wall time in ms (histogram). */
void metrics_execution_done(const char *status, const char *error_code, uint64_t wall_ms);
/* Gauges set by the runner. */
void metrics_queue_depth(uint64_t n);
void metrics_running(uint64_t n);
/* Counters. */
void metrics_rate_limited(void);
void metrics_quota_exceeded(void);
/* One HTTP answer (router.c). */
void metrics_http_request(unsigned status, uint64_t duration_us);

/* The whole exposition as a malloc'd string (NULL when out of memory). */
char *metrics_render(void);
