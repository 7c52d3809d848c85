/* API keys: "ck_" + 32 base32 characters (160 random bits). Only the SHA-256 of a key is
 * stored: a key has enough entropy that a fast hash cannot be brute-forced, and a leaked
 * database reveals no usable key. The key is read from `Authorization: Bearer <key>` or
 * `X-API-Key: <key>` (header names are case-insensitive). */
#pragma once

#include <stdbool.h>

#include "core/util.h"

struct http_req;
struct srv;

#define AUTH_KEY_LEN 35  /* "ck_" + 32 */
#define AUTH_HASH_LEN 65 /* sha256 hex + NUL */

/* A fresh random key and its hash. Returns 0 or -errno. */
int auth_key_new(char ret_key[AUTH_KEY_LEN + 1], char ret_hash[AUTH_HASH_LEN]);
/* SHA-256 hex of key. */
void auth_hash(const char *key, char ret_hash[AUTH_HASH_LEN]);
/* The key's shape: prefix, length, alphabet. */
bool auth_key_valid(const char *key);
/* A random id "PREFIX" + n base32 chars (n <= 32) into ret (size >= strlen(prefix) + n + 1). */
int auth_random_id(const char *prefix, unsigned n, char *ret, size_t size);

/* Startup: with auth on and no admin key in the store, create one, write it to
 * <state>/admin.key (0600) and print it once on stdout. */
int auth_init(struct srv *s, struct cdn_err *err);

/* Authenticate r: on success fills r->tenant, r->admin, r->key_id and returns 0; otherwise
 * answers 401 (no or bad key) or 403 (admin_only and not the admin key) and returns -EACCES. */
int auth_request(struct http_req *r, bool admin_only);
