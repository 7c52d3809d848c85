/* Every quantity a caller of the API controls, and the daemon's own tunables, in one table
 * with min, max and default (STYLE.md); and the validators that turn request bodies into
 * checked, normalized objects. A validator answers nothing itself: it fills a struct
 * val_err with the HTTP status, error code, field path ("limits.memory_mb", "files[2].path")
 * and message, and the handler passes that to http_reply_error(). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/sandbox.h"

struct tenant;

/* The value of a limit by name (aborts on an unknown name: that is a bug, not input). */
uint64_t srv_limit(const char *name);
/* Set a limit from "NAME=VALUE" (--limit option); VALUE with K/M/G or ms/s/m per its unit.
 * Returns 0, -ENOENT (unknown name), -EINVAL (bad number) or -ERANGE; msg says which. */
int srv_limit_set(const char *assignment, char *msg, size_t msg_size);
/* The table for `cordon serve --help` and GET /v1/limits style listings. */
void srv_limits_print(FILE *out);

struct val_err {
	unsigned status;  /* 422 (validation_failed) or 403 (forbidden) */
	const char *code; /* "validation_failed" | "forbidden" */
	char field[128];  /* path of the offending field, "" for the whole body */
	char msg[256];
};

/* The longest prefix of s[0..len) that does not end inside a UTF-8 sequence (so that cutting
 * caller text to a bound never makes a JSON string invalid). */
size_t utf8_prefix(const char *s, size_t len);
/* Copy s into buf (size > 0), cut to fit on a UTF-8 boundary. Returns buf. */
char *utf8_copy(char *buf, size_t size, const char *s);

/* The deepest nesting of arrays/objects in v (1 for a scalar in an object, ...). */
int json_depth(const json_t *v);

/* A field spec for val_object(): name, the jansson types allowed (bit mask of 1 << json_type),
 * and whether it is required. */
struct val_field {
	const char *name;
	unsigned types;
	bool required;
};
#define VT(t) (1u << (t))
#define VT_STRING VT(JSON_STRING)
#define VT_INT VT(JSON_INTEGER)
#define VT_BOOL (VT(JSON_TRUE) | VT(JSON_FALSE))
#define VT_NULL VT(JSON_NULL)
#define VT_OBJECT VT(JSON_OBJECT)
#define VT_ARRAY VT(JSON_ARRAY)
#define VT_ANY 0xffffu

/* Check that obj (at path prefix, "" for the body) is an object with only the listed members
 * (unknown: 422 with its path), each of an allowed type, the required ones present. */
int val_object(const json_t *obj, const char *prefix, const struct val_field *fields,
	       size_t n_fields, struct val_err *ret);
/* A string member: absent/null gives NULL; longer than max_len bytes is 422. */
int val_string(const json_t *obj, const char *prefix, const char *name, size_t max_len,
	       const char **ret, struct val_err *err);
/* An integer member in [min, max]; absent/null leaves *ret alone. */
int val_u64(const json_t *obj, const char *prefix, const char *name, uint64_t min, uint64_t max,
	    uint64_t *ret, struct val_err *err);

/* Fill err and return -EINVAL. */
int val_fail(struct val_err *err, unsigned status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* POST /v1/executions: turn a request body into the normalized request object of
 * SPAWN-PROTOCOL.md (every limit filled with its effective value: trust level default, then
 * the caller's, within the table bounds and the tenant's plan caps). Fields that the daemon
 * keeps and __spawn does not take ("metadata", "async", "callback_url") are returned apart.
 * Returns 0 with *ret_spawn (the __spawn request) and *ret_extra ({"metadata", "async",
 * "callback_url"}) to json_decref, or -EINVAL with err filled. */
int val_execution(const json_t *body, const struct tenant *t, json_t **ret_spawn,
		  json_t **ret_extra, struct val_err *err);
