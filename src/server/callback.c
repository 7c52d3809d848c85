/* Signed callback deliveries with libcurl and libcrypto's HMAC, retried with backoff. */
#include "server/callback.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"

struct delivery {
	struct delivery *next;
	char exec_id[STORE_ID_MAX];
	char *url, *body;
	uint32_t attempt;   /* attempts made */
	uint64_t due_ms;    /* monotonic */
};

struct callbacks {
	struct store *store;
	void (*log)(void *ud, const char *level, const char *msg);
	void *log_ud;
	char key[65];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct delivery *pending;
	size_t n_pending;
	bool stop;
	uint64_t deadline_ms;
	pthread_t thread;
};

static int64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	return now_ns() / 1000000ULL;
}

static void cb_log(struct callbacks *cb, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cb_log(struct callbacks *cb, const char *level, const char *fmt, ...)
{
	if (!cb->log)
		return;
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cb->log(cb->log_ud, level, msg);
}

bool callbacks_url_ok(const char *url)
{
	if (!url || strlen(url) > CB_URL_MAX)
		return false;
	const char *rest;
	if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else
		return false;
	size_t host = strcspn(rest, "/?#");
	/* user:password@ would end up in logs and records. */
	if (host == 0 || memchr(rest, '@', host))
		return false;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

static int key_load(const char *state_dir, char key[65], struct cdn_err *err)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/callback.key", state_dir) < 0)
		return err_set(err, ENOMEM, "callback key path");
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, key, 64);
		close(fd);
		key[n > 0 ? n : 0] = 0;
		if (n != 64)
			return err_set(err, 0, "\"%s\" does not hold 64 hex characters", path);
		return 0;
	}
	if (errno != ENOENT)
		return err_set(err, errno, "opening \"%s\"", path);
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return err_set(err, errno, "getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(key + 2 * i, 3, "%02x", raw[i]);
	/* 0600, O_EXCL: the key signs what receivers trust; only the daemon reads it. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, errno, "creating \"%s\"", path);
	int r = write_all(fd, key, 64);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r < 0 ? err_set(err, -r, "writing \"%s\"", path) : 0;
}

int callbacks_sign(struct callbacks *cb, int64_t t, const char *body, char *buf, size_t size)
{
	char ts[24];
	int tl = snprintf(ts, sizeof(ts), "%lld.", (long long)t);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t outl = 0;
	int ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)cb->key, 64, params) == 1 &&
		 EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tl) == 1 &&
		 EVP_MAC_update(ctx, (const unsigned char *)body, strlen(body)) == 1 &&
		 EVP_MAC_final(ctx, mac, &outl, sizeof(mac)) == 1;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	if (!ok)
		return -EIO;
	maclen = (unsigned int)outl;
	int n = snprintf(buf, size, "t=%lld,v1=", (long long)t);
	for (unsigned int i = 0; i < maclen && (size_t)n + 3 <= size; i++)
		n += snprintf(buf + n, size - (size_t)n, "%02x", mac[i]);
	return 0;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return s * n;
}

/* SSRF guard, after name resolution: never a link-local address (169.254.0.0/16 and fe80::/10
 * hold cloud metadata endpoints), "this network" (0.0.0.0/8), multicast or broadcast, also
 * in IPv4-mapped form. Loopback and private networks stay allowed: a self-hosted daemon often
 * calls back into its own network (and the tests use a loopback receiver). */
static bool callback_addr_allowed(const struct sockaddr *sa)
{
	uint32_t v4;
	if (sa->sa_family == AF_INET) {
		v4 = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(a))
			return !IN6_IS_ADDR_LINKLOCAL(a) && !IN6_IS_ADDR_MULTICAST(a) &&
			       !IN6_IS_ADDR_UNSPECIFIED(a);
		memcpy(&v4, &a->s6_addr[12], 4);
		v4 = ntohl(v4);
	} else {
		return false;
	}
	return (v4 >> 16) != 0xa9fe && (v4 >> 24) != 0 && (v4 >> 28) != 0xe && v4 != 0xffffffffu;
}

static curl_socket_t callback_open_socket(void *ud, curlsocktype purpose,
					  struct curl_sockaddr *addr)
{
	bool *refused = ud;
	if (purpose != CURLSOCKTYPE_IPCXN || !callback_addr_allowed(&addr->addr)) {
		*refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* One POST. Returns the HTTP status (0 when none came) and fills errbuf on failure. */
static long cb_post(struct callbacks *cb, struct delivery *d, char *errbuf, size_t errsize)
{
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(errbuf, errsize, "curl_easy_init failed");
		return 0;
	}
	char sig[160], hsig[200], hdel[120];
	int64_t t = (int64_t)time(NULL);
	if (callbacks_sign(cb, t, d->body, sig, sizeof(sig)) < 0) {
		curl_easy_cleanup(c);
		snprintf(errbuf, errsize, "signing failed");
		return 0;
	}
	snprintf(hsig, sizeof(hsig), "X-Cordon-Signature: %s", sig);
	snprintf(hdel, sizeof(hdel), "X-Cordon-Delivery: %s/%u", d->exec_id, d->attempt + 1);
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, hsig);
	h = curl_slist_append(h, hdel);
	h = curl_slist_append(h, "Expect:");
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, d->url);
	/* http(s) only, also after a redirect (which we do not follow anyway): no file://,
	 * gopher:// or other schemes reaching local resources. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->body));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)CB_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "cordon-callback/1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	/* The daemon's environment proxy settings are not the receiver's business. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	bool refused = false;
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, callback_open_socket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &refused);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (refused)
		snprintf(errbuf, errsize, "destination address not allowed (link-local, multicast or "
					  "unspecified)");
	else if (rc != CURLE_OK)
		snprintf(errbuf, errsize, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
	else if (status < 200 || status > 299)
		snprintf(errbuf, errsize, "the receiver answered %ld", status);
	else
		errbuf[0] = 0;
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static void delivery_free(struct delivery *d)
{
	free(d->url);
	free(d->body);
	free(d);
}

/* The next due delivery, or NULL with *wait_ms until the earliest one (lock held). */
static struct delivery *take_due(struct callbacks *cb, uint64_t now, uint64_t *wait_ms)
{
	*wait_ms = UINT64_MAX;
	for (struct delivery **p = &cb->pending; *p; p = &(*p)->next) {
		struct delivery *d = *p;
		if (d->due_ms <= now) {
			*p = d->next;
			cb->n_pending--;
			return d;
		}
		if (d->due_ms - now < *wait_ms)
			*wait_ms = d->due_ms - now;
	}
	return NULL;
}

static void *cb_main(void *arg)
{
	struct callbacks *cb = arg;
	pthread_mutex_lock(&cb->lock);
	for (;;) {
		uint64_t now = mono_ms(), wait_ms;
		if (cb->stop && (!cb->pending || now >= cb->deadline_ms))
			break;
		struct delivery *d = take_due(cb, now, &wait_ms);
		if (!d) {
			if (cb->stop && cb->deadline_ms - now < wait_ms)
				wait_ms = cb->deadline_ms - now;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t at = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
				      (wait_ms == UINT64_MAX ? 3600000 : wait_ms);
			ts.tv_sec = (time_t)(at / 1000);
			ts.tv_nsec = (long)(at % 1000) * 1000000L;
			pthread_cond_timedwait(&cb->cond, &cb->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&cb->lock);

		char errbuf[STORE_MESSAGE_MAX];
		long status = cb_post(cb, d, errbuf, sizeof(errbuf));
		d->attempt++;
		struct store_callback_attempt a = {
			.attempt = d->attempt,
			.at_ms = realtime_ms(),
			.http_status = (int)status,
		};
		snprintf(a.exec_id, sizeof(a.exec_id), "%s", d->exec_id);
		snprintf(a.error, sizeof(a.error), "%s", errbuf);
		struct cdn_err serr = {0};
		if (store_callback_add(cb->store, &a, &serr) < 0)
			cb_log(cb, "error", "recording callback attempt of %s: %s", d->exec_id,
			       serr.msg);
		bool ok = errbuf[0] == 0;
		if (!ok)
			cb_log(cb, "warn", "callback of %s, attempt %u: %s", d->exec_id, d->attempt,
			       errbuf);

		pthread_mutex_lock(&cb->lock);
		if (ok || d->attempt >= CB_MAX_ATTEMPTS || cb->stop) {
			delivery_free(d);
			continue;
		}
		d->due_ms = mono_ms() + ((uint64_t)CB_FIRST_DELAY_MS << (d->attempt - 1));
		d->next = cb->pending;
		cb->pending = d;
		cb->n_pending++;
	}
	pthread_mutex_unlock(&cb->lock);
	return NULL;
}

int callbacks_new(const char *state_dir, struct store *store,
		  void (*log)(void *ud, const char *level, const char *msg), void *log_ud,
		  struct callbacks **ret, struct cdn_err *err)
{
	*ret = NULL;
	struct callbacks *cb = calloc(1, sizeof(*cb));
	if (!cb)
		return err_set(err, ENOMEM, "callbacks");
	int r = key_load(state_dir, cb->key, err);
	if (r < 0) {
		free(cb);
		return r;
	}
	cb->store = store;
	cb->log = log;
	cb->log_ud = log_ud;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(cb);
		return err_set(err, 0, "curl_global_init failed");
	}
	pthread_mutex_init(&cb->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cb->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&cb->thread, NULL, cb_main, cb);
	if (r != 0) {
		free(cb);
		return err_set(err, r, "starting the callback thread");
	}
	*ret = cb;
	return 0;
}

int callbacks_enqueue(struct callbacks *cb, const char *exec_id, const char *url, const char *body)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	snprintf(d->exec_id, sizeof(d->exec_id), "%s", exec_id);
	d->url = strdup(url);
	d->body = strdup(body);
	if (!d->url || !d->body) {
		delivery_free(d);
		return -ENOMEM;
	}
	pthread_mutex_lock(&cb->lock);
	if (cb->n_pending >= CB_MAX_PENDING || cb->stop) {
		pthread_mutex_unlock(&cb->lock);
		cb_log(cb, "error", "callback of %s dropped: %zu deliveries pending", exec_id,
		       (size_t)CB_MAX_PENDING);
		delivery_free(d);
		return -EAGAIN;
	}
	d->due_ms = mono_ms();
	d->next = cb->pending;
	cb->pending = d;
	cb->n_pending++;
	pthread_cond_signal(&cb->cond);
	pthread_mutex_unlock(&cb->lock);
	return 0;
}

void callbacks_free(struct callbacks *cb, uint64_t deadline_ms)
{
	if (!cb)
		return;
	pthread_mutex_lock(&cb->lock);
	cb->stop = true;
	cb->deadline_ms = deadline_ms;
	pthread_cond_signal(&cb->cond);
	pthread_mutex_unlock(&cb->lock);
	pthread_join(cb->thread, NULL);
	while (cb->pending) {
		struct delivery *d = cb->pending;
		cb->pending = d->next;
		cb_log(cb, "warn", "callback of %s not delivered: the daemon stopped", d->exec_id);
		delivery_free(d);
	}
	explicit_bzero(cb->key, sizeof(cb->key));
	pthread_mutex_destroy(&cb->lock);
	pthread_cond_destroy(&cb->cond);
	free(cb);
}
