#include "auth.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "http-impl.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store/store.h"
#include "tenants.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static int random_bytes(void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = getrandom((char *)buf + got, n - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	return 0;
}

int auth_random_id(const char *prefix, unsigned n, char *ret, size_t size)
{
	size_t plen = strlen(prefix);
	if (n > 32 || plen + n + 1 > size)
		return -EINVAL;
	uint8_t rnd[32];
	int rc = random_bytes(rnd, n);
	if (rc < 0)
		return rc;
	memcpy(ret, prefix, plen);
	/* One byte per character, 5 bits used: uniform over the 32-letter alphabet. */
	for (unsigned i = 0; i < n; i++)
		ret[plen + i] = b32[rnd[i] & 31];
	ret[plen + n] = 0;
	return 0;
}

void auth_hash(const char *key, char ret_hash[AUTH_HASH_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) || len != 32) {
		/* Cannot happen with a working libcrypto; an impossible hash matches nothing. */
		memset(ret_hash, 'x', AUTH_HASH_LEN - 1);
		ret_hash[AUTH_HASH_LEN - 1] = 0;
		return;
	}
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		ret_hash[2 * i] = hex[md[i] >> 4];
		ret_hash[2 * i + 1] = hex[md[i] & 15];
	}
	ret_hash[64] = 0;
}

int auth_key_new(char ret_key[AUTH_KEY_LEN + 1], char ret_hash[AUTH_HASH_LEN])
{
	int rc = auth_random_id("ck_", 32, ret_key, AUTH_KEY_LEN + 1);
	if (rc < 0)
		return rc;
	auth_hash(ret_key, ret_hash);
	return 0;
}

bool auth_key_valid(const char *key)
{
	if (!key || strlen(key) != AUTH_KEY_LEN || strncmp(key, "ck_", 3))
		return false;
	for (size_t i = 3; i < AUTH_KEY_LEN; i++)
		if (!strchr(b32, key[i]) || !key[i])
			return false;
	return true;
}

/* The key of a request, or NULL. */
static const char *request_key(const struct http_req *r)
{
	const char *h = http_header(r, "Authorization");
	if (h) {
		if (strncasecmp(h, "Bearer ", 7))
			return NULL;
		h += 7;
		while (*h == ' ')
			h++;
		return h;
	}
	return http_header(r, "X-API-Key");
}

int auth_request(struct http_req *r, bool admin_only)
{
	struct srv *s = r->srv;
	struct req_impl *ri = r->impl;
	if (s->cfg.no_auth) {
		/* --no-auth (loopback listener only): everyone is the built-in tenant, with the
		 * admin's rights, since there is nobody to tell apart. */
		struct tenant *t = calloc(1, sizeof(*t));
		if (!t) {
			http_reply_error(r, 500, "internal", NULL, "out of memory");
			return -ENOMEM;
		}
		tenant_builtin(t);
		ri->tenant_owned = t;
		r->tenant = t;
		r->admin = true;
		return 0;
	}
	const char *key = request_key(r);
	if (!key) {
		http_add_header(r, "WWW-Authenticate", "Bearer");
		http_reply_error(r, 401, "unauthorized", NULL,
				 "an API key is required (Authorization: Bearer ck_... or X-API-Key)");
		return -EACCES;
	}
	char hash[AUTH_HASH_LEN];
	struct tenant *t = calloc(1, sizeof(*t));
	if (!t) {
		http_reply_error(r, 500, "internal", NULL, "out of memory");
		return -ENOMEM;
	}
	ri->tenant_owned = t;
	bool admin = false;
	int rc = -ENOENT;
	/* A malformed key is never looked up; a well-formed one only by its hash. */
	if (auth_key_valid(key)) {
		auth_hash(key, hash);
		rc = tenants_lookup_key(s, hash, r->key_id, sizeof(r->key_id), t, &admin);
	}
	if (rc == -ENOENT) {
		http_add_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		http_reply_error(r, 401, "unauthorized", NULL, "the API key is not valid");
		return -EACCES;
	}
	if (rc < 0) {
		log_msg(LOG_ERROR, "key lookup failed",
			json_pack("{ss si}", "request_id", r->request_id, "errno", -rc));
		http_reply_error(r, 503, "overloaded", NULL, "the store is not reachable");
		return -EACCES;
	}
	r->tenant = t;
	r->admin = admin;
	if (admin_only && !admin) {
		http_reply_error(r, 403, "forbidden", NULL, "this endpoint needs the admin key");
		return -EACCES;
	}
	return 0;
}

/* Write the key to <state>/admin.key through a temporary file, 0600 from creation: the key is
 * never readable by others, not even for a moment. */
static int write_key_file(const char *state_dir, const char *key, struct cdn_err *err)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/admin.key", state_dir);
	snprintf(tmp, sizeof(tmp), "%s/.admin.key.tmp", state_dir);
	unlink(tmp);
	_cleanup_close_ int fd =
		open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(err, errno, "creating \"%s\"", tmp);
	if (fchmod(fd, 0600) < 0) /* whatever the umask */
		return err_set(err, errno, "chmod \"%s\"", tmp);
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", key);
	int rc = write_all(fd, line, (size_t)n);
	if (rc < 0 || fsync(fd) < 0) {
		unlink(tmp);
		return err_set(err, rc < 0 ? -rc : errno, "writing \"%s\"", tmp);
	}
	if (rename(tmp, path) < 0) {
		unlink(tmp);
		return err_set(err, errno, "renaming \"%s\" to \"%s\"", tmp, path);
	}
	return 0;
}

int auth_init(struct srv *s, struct cdn_err *err)
{
	if (s->cfg.no_auth)
		return tenants_ensure_builtin(s, err);
	bool exists = false;
	int rc = tenants_admin_key_exists(s, &exists, err);
	if (rc < 0 || exists)
		return rc;
	char key[AUTH_KEY_LEN + 1], hash[AUTH_HASH_LEN], key_id[STORE_ID_MAX];
	rc = auth_key_new(key, hash);
	if (rc < 0)
		return err_set(err, -rc, "generating the admin key");
	rc = store_id_new("key_", key_id);
	if (rc < 0)
		return err_set(err, -rc, "generating a key id");
	rc = write_key_file(s->cfg.state_dir, key, err);
	if (rc < 0)
		return rc;
	rc = tenants_create_admin(s, key_id, key, hash, err);
	if (rc < 0)
		return rc;
	/* The only time the key is shown: stdout, for the person starting the daemon. */
	printf("cordon: admin key (shown once; also in %s/admin.key, mode 0600):\n%s\n",
	       s->cfg.state_dir, key);
	fflush(stdout);
	log_msg(LOG_INFO, "admin key created", json_pack("{ss}", "key_id", key_id));
	explicit_bzero(key, sizeof(key));
	return 0;
}
