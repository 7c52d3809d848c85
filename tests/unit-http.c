/* Unit tests of the HTTP core (src/server/http.c) in-process, over a real loopback socket:
 * deferred replies completed from other threads (before and after the connection parks),
 * a parked request holding no thread, streams fed from another thread, a client that leaves
 * a stream, and shutdown answering what is still pending. Each test runs in its own process
 * (a fresh server on an ephemeral 127.0.0.1 port) with a timeout: a deadlock fails by alarm. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/http.h"
#include "server/server.h"
#include "server/validate.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);                   \
			fflush(stdout);                                                            \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* ops.c's /readyz wants this from main.c. */
int srv_modules_ready(struct srv *s, const char **ret_module, const char **ret_reason);
int srv_modules_ready(struct srv *s, const char **ret_module, const char **ret_reason)
{
	return 0;
}

static struct srv test_srv = {.cfg = {.no_auth = true}};
static uint16_t port;

static void start(void)
{
	char msg[128];
	CHECK(srv_limit_set("http_threads=1", msg, sizeof(msg)) == 0);
	CHECK(http_start(&test_srv, "127.0.0.1", 0, &port) == 0);
	CHECK(port != 0);
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static void send_get(int fd, const char *path)
{
	char req[512];
	/* A loopback Host: the test server runs with --no-auth, which refuses others. */
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	CHECK(write(fd, req, (size_t)n) == n);
}

/* Everything until the server closes; malloc'd, NUL-terminated. */
static char *read_all(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1024 > cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	return buf;
}

static char *get(const char *path)
{
	int fd = dial();
	send_get(fd, path);
	return read_all(fd);
}

/* ---- handlers ---- */

static struct http_deferred *parked;
static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;

static void *complete_later(void *arg)
{
	usleep(50 * 1000);
	http_deferred_json(arg, 200, json_pack("{ss}", "from", "thread"));
	return NULL;
}

static void h_defer_thread(struct http_req *r)
{
	struct http_deferred *d = http_defer(r);
	pthread_t t;
	pthread_create(&t, NULL, complete_later, d);
	pthread_detach(t);
}

static void h_defer_now(struct http_req *r)
{
	/* Completed before the handler returns, i.e. before the connection parks. */
	http_deferred_json(http_defer(r), 201, json_pack("{ss}", "from", "handler"));
}

static void h_park(struct http_req *r)
{
	pthread_mutex_lock(&parked_lock);
	parked = http_defer(r);
	pthread_mutex_unlock(&parked_lock);
}

static void h_release(struct http_req *r)
{
	pthread_mutex_lock(&parked_lock);
	struct http_deferred *d = parked;
	parked = NULL;
	pthread_mutex_unlock(&parked_lock);
	http_deferred_json(d, 200, json_pack("{ss}", "released_by", r->request_id));
	http_reply_json(r, 200, json_pack("{sb}", "released", d != NULL));
}

static struct http_stream *stream;
static volatile int stream_rc;

static void *feed(void *arg)
{
	struct http_stream *st = arg;
	const char *chunks[] = {"data: one\n\n", "data: two\n\n", "data: three\n\n"};
	for (int i = 0; i < 3; i++) {
		usleep(20 * 1000);
		CHECK(http_stream_write(st, chunks[i], strlen(chunks[i])) == 0);
	}
	http_stream_close(st);
	return NULL;
}

static void h_stream(struct http_req *r)
{
	struct http_stream *st = http_stream_open(r, 200, "text/event-stream");
	pthread_t t;
	pthread_create(&t, NULL, feed, st);
	pthread_detach(t);
}

static void h_stream_forever(struct http_req *r)
{
	stream = http_stream_open(r, 200, "text/event-stream");
	http_stream_write(stream, "data: hello\n\n", 13);
}

static void routes(void)
{
	http_route_add(HTTP_GET, "/defer-thread", HTTP_ROUTE_PUBLIC, h_defer_thread);
	http_route_add(HTTP_GET, "/defer-now", HTTP_ROUTE_PUBLIC, h_defer_now);
	http_route_add(HTTP_GET, "/park", HTTP_ROUTE_PUBLIC, h_park);
	http_route_add(HTTP_GET, "/release", HTTP_ROUTE_PUBLIC, h_release);
	http_route_add(HTTP_GET, "/stream", HTTP_ROUTE_PUBLIC, h_stream);
	http_route_add(HTTP_GET, "/stream-forever", HTTP_ROUTE_PUBLIC, h_stream_forever);
	http_route_add(HTTP_GET, "/items/{id}/x/{sub}", HTTP_ROUTE_PUBLIC, h_defer_now);
}

/* ---- tests ---- */

static void test_deferred_from_a_thread(void)
{
	start();
	char *r = get("/defer-thread");
	CHECK(strstr(r, "HTTP/1.1 200"));
	CHECK(strstr(r, "{\"from\":\"thread\"}"));
	CHECK(strstr(r, "X-Request-Id: req_"));
	free(r);
}

static void test_deferred_completed_before_parking(void)
{
	start();
	char *r = get("/defer-now");
	CHECK(strstr(r, "HTTP/1.1 201"));
	CHECK(strstr(r, "{\"from\":\"handler\"}"));
	free(r);
}

static void test_a_parked_request_holds_no_thread(void)
{
	/* One HTTP thread: if /park held it, /release could never run and this would hang. */
	start();
	int a = dial();
	send_get(a, "/park");
	for (;;) { /* wait until the handler has parked it */
		pthread_mutex_lock(&parked_lock);
		bool ok = parked != NULL;
		pthread_mutex_unlock(&parked_lock);
		if (ok)
			break;
		usleep(1000);
	}
	char *rel = get("/release");
	CHECK(strstr(rel, "{\"released\":true}"));
	char *r = read_all(a);
	CHECK(strstr(r, "HTTP/1.1 200"));
	CHECK(strstr(r, "released_by"));
	free(r);
	free(rel);
}

static void test_stream_from_a_thread(void)
{
	start();
	char *r = get("/stream");
	CHECK(strstr(r, "HTTP/1.1 200"));
	CHECK(strstr(r, "Content-Type: text/event-stream"));
	char *one = strstr(r, "data: one"), *two = strstr(r, "data: two"),
	     *three = strstr(r, "data: three");
	CHECK(one && two && three && one < two && two < three);
	free(r);
}

static void test_stream_writer_learns_the_client_left(void)
{
	start();
	int fd = dial();
	send_get(fd, "/stream-forever");
	char buf[4096];
	size_t got = 0;
	while (!strstr(buf, "data: hello") && got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		CHECK(n > 0);
		got += (size_t)n;
		buf[got] = 0;
	}
	close(fd);
	/* The server notices on its next write or poll; until then writes are accepted. */
	int rc;
	while ((rc = http_stream_write(stream, "data: more\n\n", 12)) == 0)
		usleep(5000);
	CHECK(rc == -EPIPE);
	http_stream_close(stream);
}

static void test_shutdown_answers_pending_with_503(void)
{
	start();
	int a = dial();
	send_get(a, "/park");
	for (;;) {
		pthread_mutex_lock(&parked_lock);
		bool ok = parked != NULL;
		pthread_mutex_unlock(&parked_lock);
		if (ok)
			break;
		usleep(1000);
	}
	http_abort_pending();
	char *r = read_all(a);
	CHECK(strstr(r, "HTTP/1.1 503"));
	CHECK(strstr(r, "\"code\":\"overloaded\""));
	CHECK(strstr(r, "Retry-After: 1"));
	/* The owner's late completion is harmless. */
	http_deferred_json(parked, 200, json_pack("{}"));
	http_stop();
	free(r);
}

static void test_route_params_and_405(void)
{
	start();
	char *r = get("/items/abc/x/42");
	CHECK(strstr(r, "HTTP/1.1 201"));
	free(r);
	r = get("/items/abc/x/");
	CHECK(strstr(r, "HTTP/1.1 404"));
	free(r);
	int fd = dial();
	const char req[] = "DELETE /defer-now HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	CHECK(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
	r = read_all(fd);
	CHECK(strstr(r, "HTTP/1.1 405"));
	free(r);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{"deferred reply from a thread", test_deferred_from_a_thread},
	{"deferred reply completed before parking", test_deferred_completed_before_parking},
	{"a parked request holds no thread", test_a_parked_request_holds_no_thread},
	{"stream fed from a thread", test_stream_from_a_thread},
	{"stream writer learns the client left", test_stream_writer_learns_the_client_left},
	{"shutdown answers pending requests with 503", test_shutdown_answers_pending_with_503},
	{"route params and 405", test_route_params_and_405},
};

int main(void)
{
	int passed = 0, failed = 0;
	size_t n = sizeof(tests) / sizeof(tests[0]);
	signal(SIGPIPE, SIG_IGN);
	routes();
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(30);
			/* The request log goes to stderr: keep the TAP output readable. */
			if (!freopen("/dev/null", "w", stderr))
				_exit(1);
			tests[i].fn();
			_exit(0);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1, tests[i].name);
		ok ? passed++ : failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
