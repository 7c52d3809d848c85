#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_min = LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level min_level)
{
	log_min = min_level;
}

void log_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_msg(enum log_level level, const char *msg, json_t *fields)
{
	if (level < log_min) {
		json_decref(fields);
		return;
	}
	char ts[40];
	log_timestamp(ts, sizeof(ts));
	json_t *line = json_object();
	if (!line) {
		json_decref(fields);
		return;
	}
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(log_names[level]));
	json_object_set_new(line, "msg", json_string(msg));
	if (json_is_object(fields))
		json_object_update(line, fields);
	json_decref(fields);
	_cleanup_free_ char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (!text)
		return;
	size_t len = strlen(text);
	_cleanup_free_ char *out = malloc(len + 1);
	if (!out)
		return;
	memcpy(out, text, len);
	out[len] = '\n';
	/* One write per line keeps lines whole even when stderr is shared with other writers. */
	pthread_mutex_lock(&log_lock);
	(void)write_all(STDERR_FILENO, out, len + 1);
	pthread_mutex_unlock(&log_lock);
}

void log_fmt(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, buf, NULL);
}
