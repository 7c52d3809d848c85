/* Callbacks: when an execution ends and it has a callback_url, its final record is POSTed
 * there, signed, and retried with backoff; every attempt is recorded in the store.
 *
 * Signature: header `X-Cordon-Signature: t=<unix seconds>,v1=<hex>` where hex is
 * HMAC-SHA256(key, "<t>.<body>") and key is the daemon's callback key (<state>/callback.key,
 * 64 hex chars made at first start, mode 0600; the HMAC key is those 64 characters as bytes).
 * Receivers check the MAC and the age of t (replays). `X-Cordon-Delivery: <id>/<attempt>`.
 *
 * One sender thread; deliveries wait in memory (a daemon that stops with some pending loses
 * them; their attempts so far are in the store). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define CB_MAX_ATTEMPTS 5
#define CB_FIRST_DELAY_MS 500      /* then x2 per attempt: 0.5, 1, 2, 4 s */
#define CB_TIMEOUT_MS 10000        /* one attempt, connect included */
#define CB_MAX_PENDING 10000       /* deliveries waiting; beyond, new ones are dropped (logged) */
#define CB_URL_MAX 2048

struct store;
struct callbacks;

/* Read or create <state_dir>/callback.key, start the sender. log may be NULL. */
int callbacks_new(const char *state_dir, struct store *store,
		  void (*log)(void *ud, const char *level, const char *msg), void *log_ud,
		  struct callbacks **ret, struct cdn_err *err);
/* Deliver body (JSON text, copied) to url for execution exec_id. */
int callbacks_enqueue(struct callbacks *cb, const char *exec_id, const char *url, const char *body);
/* Try what is pending until deadline_ms (CLOCK_MONOTONIC ms), then stop the thread. */
void callbacks_free(struct callbacks *cb, uint64_t deadline_ms);

/* The signature header value for body at time t into buf (>= 100 bytes). */
int callbacks_sign(struct callbacks *cb, int64_t t, const char *body, char *buf, size_t size);

/* A callback_url the API accepts: http:// or https://, at most CB_URL_MAX bytes, no
 * credentials in it. */
bool callbacks_url_ok(const char *url);
