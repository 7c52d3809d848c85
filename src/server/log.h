/* The daemon's log: one JSON object per line on stderr, written whole under a lock so lines
 * of different threads never interleave. Fields: "ts" (RFC 3339 UTC, ms), "level", "msg",
 * then the caller's fields. Secrets never reach this layer: callers log ids, not bodies. */
#pragma once

#include <jansson.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below min_level are dropped (default LOG_INFO). */
void log_set_level(enum log_level min_level);
/* Log msg with the members of fields (may be NULL; stolen, so `json_pack(...)` can be passed
 * inline). */
void log_msg(enum log_level level, const char *msg, json_t *fields);
/* printf-style message without fields. */
void log_fmt(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* RFC 3339 UTC timestamp with milliseconds of the realtime clock into buf (>= 32 bytes). */
void log_timestamp(char *buf, size_t size);
