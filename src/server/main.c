/* cordon-serve: options, startup, signals and the shutdown sequence (server.h has the theory
 * of operation). `cordon serve ARGS` execs this program. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "store/store.h"
#include "validate.h"

#define EXIT_CORDON 125

struct srv *srv_global;

static const struct srv_module *modules[SRV_MAX_MODULES];
static size_t n_modules;

int srv_module_add(const struct srv_module *m)
{
	if (n_modules >= SRV_MAX_MODULES)
		return -E2BIG;
	modules[n_modules++] = m;
	return 0;
}

int srv_modules_ready(struct srv *s, const char **ret_module, const char **ret_reason);
int srv_modules_ready(struct srv *s, const char **ret_module, const char **ret_reason)
{
	for (size_t i = 0; i < n_modules; i++) {
		if (!modules[i]->ready)
			continue;
		int rc = modules[i]->ready(s, ret_reason);
		if (rc < 0) {
			*ret_module = modules[i]->name;
			return rc;
		}
	}
	return 0;
}

/* The store is a module too, for /readyz. */
static int store_ready(struct srv *s, const char **ret_reason)
{
	static _Thread_local struct cdn_err err;
	int rc = store_ping(s->store, &err);
	if (rc < 0)
		*ret_reason = err.msg;
	return rc;
}

static const struct srv_module store_module = {.name = "store", .ready = store_ready};

static void store_register(void)
{
	srv_module_add(&store_module);
}

/* Every part of the daemon registers its routes and module here, in this order. */
static void (*const registrations[])(void) = {
	store_register,
	ops_register,
	tenants_register,
	exec_register,
};

static const char usage[] =
	"usage: cordon serve [--listen 127.0.0.1:7070] [--state-dir DIR] [--database URL]\n"
	"                    [--no-auth] [--limit NAME=VALUE]... [--log-level LEVEL]\n"
	"\n"
	"The REST API daemon (API.md). Auth is on: the first start creates an admin key,\n"
	"prints it once and writes it to DIR/admin.key (mode 0600). --no-auth is refused unless\n"
	"the listener is on a loopback address (127.0.0.0/8). SIGTERM or SIGINT stop it: new\n"
	"requests get 503, running executions get shutdown_grace_ms, then are cancelled.\n"
	"\n"
	"Limits (--limit NAME=VALUE; sizes take K/M/G, durations ms/s/m):\n";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "cordon: %s\n", buf);
	exit(EXIT_CORDON);
}

/* "HOST:PORT" with an IPv4 literal or "localhost". */
static void parse_listen(const char *arg, struct srv_config *cfg)
{
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg)
		fail("--listen wants HOST:PORT, not \"%s\"", arg);
	size_t hlen = (size_t)(colon - arg);
	if (hlen >= sizeof(cfg->listen_host))
		fail("--listen: host too long");
	memcpy(cfg->listen_host, arg, hlen);
	cfg->listen_host[hlen] = 0;
	if (!strcmp(cfg->listen_host, "localhost"))
		snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	struct in_addr a;
	if (inet_pton(AF_INET, cfg->listen_host, &a) != 1)
		fail("--listen: \"%s\" is not an IPv4 address", cfg->listen_host);
	uint64_t port;
	if (parse_u64(colon + 1, &port) < 0 || port > 65535)
		fail("--listen: bad port \"%s\"", colon + 1);
	cfg->listen_port = (uint16_t)port;
	cfg->loopback_only = (ntohl(a.s_addr) >> 24) == 127;
}

/* The state directory: created 0700 if missing; refused if it is not ours or others may
 * write it (the admin key and the database live there). */
static char *state_dir_prepare(const char *dir)
{
	if (!dir)
		dir = getenv("CORDON_STATE_DIR");
	if (!dir || !*dir)
		dir = "/var/lib/cordon";
	if (dir[0] != '/')
		fail("the state directory must be an absolute path: \"%s\"", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		fail("creating the state directory \"%s\": %m", dir);
	struct stat st;
	if (lstat(dir, &st) < 0)
		fail("state directory \"%s\": %m", dir);
	if (!S_ISDIR(st.st_mode))
		fail("state directory \"%s\" is not a directory", dir);
	if (st.st_uid != geteuid())
		fail("state directory \"%s\" belongs to uid %u, not to us", dir, st.st_uid);
	if (st.st_mode & 022)
		fail("state directory \"%s\" is writable by others (mode %03o)", dir,
		     st.st_mode & 0777);
	char *copy = strdup(dir);
	if (!copy)
		fail("out of memory");
	return copy;
}

/* One daemon per state directory: a second one would take the first's running executions for
 * a crash's leftovers and fail them. The lock lives as long as the process (fd kept open,
 * CLOEXEC so __spawn children do not hold it). */
static void state_dir_lock(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/serve.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		fail("opening \"%s\": %m", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			fail("another cordon serve is using the state directory \"%s\"", dir);
		fail("locking \"%s\": %m", path);
	}
}

static char *sibling_path(const char *name)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		fail("finding cordon-serve's own path: %m");
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	size_t len = strlen(self) + strlen(name) + 2;
	char *p = malloc(len);
	if (!p)
		fail("out of memory");
	snprintf(p, len, "%s/%s", self, name);
	return p;
}

static void parse_options(int argc, char **argv, struct srv_config *cfg)
{
	enum { OPT_LISTEN = 256, OPT_STATE, OPT_DB, OPT_NOAUTH, OPT_LIMIT, OPT_LOGLEVEL };
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"state-dir", required_argument, NULL, OPT_STATE},
		{"database", required_argument, NULL, OPT_DB},
		{"no-auth", no_argument, NULL, OPT_NOAUTH},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"log-level", required_argument, NULL, OPT_LOGLEVEL},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state = NULL;
	parse_listen("127.0.0.1:7070", cfg);
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		char msg[256];
		switch (c) {
		case OPT_LISTEN:
			parse_listen(optarg, cfg);
			break;
		case OPT_STATE:
			state = optarg;
			break;
		case OPT_DB:
			cfg->database_url = optarg;
			break;
		case OPT_NOAUTH:
			cfg->no_auth = true;
			break;
		case OPT_LIMIT:
			if (srv_limit_set(optarg, msg, sizeof(msg)) < 0)
				fail("%s", msg);
			break;
		case OPT_LOGLEVEL:
			if (!strcmp(optarg, "debug"))
				log_set_level(LOG_DEBUG);
			else if (!strcmp(optarg, "info"))
				log_set_level(LOG_INFO);
			else if (!strcmp(optarg, "warn"))
				log_set_level(LOG_WARN);
			else if (!strcmp(optarg, "error"))
				log_set_level(LOG_ERROR);
			else
				fail("--log-level: debug, info, warn or error, not \"%s\"", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			srv_limits_print(stdout);
			exit(0);
		default:
			fprintf(stderr, "%s", usage);
			exit(EXIT_CORDON);
		}
	}
	if (optind < argc)
		fail("unexpected argument \"%s\"", argv[optind]);
	/* Without keys anyone who can connect runs code: only acceptable when "anyone" is this
	 * host's own users. */
	if (cfg->no_auth && !cfg->loopback_only)
		fail("--no-auth is refused on a non-loopback listener (%s): anyone who can reach it "
		     "could run code",
		     cfg->listen_host);
	cfg->state_dir = state_dir_prepare(state);
	state_dir_lock(cfg->state_dir);
	cfg->cordon_bin = sibling_path("cordon");
}

static void shutdown_sequence(struct srv *s, int signo)
{
	atomic_store(&s->draining, true);
	http_quiesce();
	uint64_t grace = srv_limit("shutdown_grace_ms");
	log_msg(LOG_INFO, "shutting down",
		json_pack("{ss sI si}", "signal", strsignal(signo), "grace_ms", (json_int_t)grace,
			  "requests_in_progress", (int)http_active()));
	uint64_t deadline = now_ns() + grace * 1000000ULL;
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i]->drain)
			modules[i]->drain(s, deadline);
	http_abort_pending();
	/* Let the 503s just queued reach their clients before the connections close (bounded:
	 * a client that does not read is not waited for). */
	for (int i = 0; i < 200 && http_active() > 0; i++)
		usleep(10 * 1000);
	http_stop();
	for (size_t i = n_modules; i-- > 0;)
		if (modules[i]->stop)
			modules[i]->stop(s);
	log_msg(LOG_INFO, "stopped", NULL);
}

int main(int argc, char **argv)
{
	static struct srv s;
	srv_global = &s;
	s.started_ns = now_ns();
	parse_options(argc, argv, &s.cfg);

	/* Signals are taken by the main thread only, through a signalfd: block them before any
	 * thread exists so every thread inherits the mask. A client that hangs up must not kill
	 * the daemon with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		fail("blocking signals: %m");
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		fail("signalfd: %m");

	for (size_t i = 0; i < ARRAY_SIZE(registrations); i++)
		registrations[i]();

	struct cdn_err err = {0};
	const char *url = s.cfg.database_url ? s.cfg.database_url : s.cfg.state_dir;
	if (store_open(url, &s.store, &err) < 0)
		fail("opening the store: %s", err.msg);
	if (auth_init(&s, &err) < 0)
		fail("%s%s%s", err.msg, err.errnum ? ": " : "",
		     err.errnum ? strerror(err.errnum) : "");
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i]->start && modules[i]->start(&s) < 0)
			fail("starting %s failed (see the log)", modules[i]->name);

	uint16_t port = 0;
	int rc = http_start(&s, s.cfg.listen_host, s.cfg.listen_port, &port);
	if (rc < 0)
		fail("listening on %s:%u: %s", s.cfg.listen_host, s.cfg.listen_port, strerror(-rc));
	log_msg(LOG_INFO, "listening",
		json_pack("{ss si sb ss}", "address", s.cfg.listen_host, "port", (int)port, "auth",
			  !s.cfg.no_auth, "state_dir", s.cfg.state_dir));

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(si))
			fail("reading signals: %m");
		if (si.ssi_signo == SIGHUP)
			continue; /* no configuration to reload */
		shutdown_sequence(&s, (int)si.ssi_signo);
		break;
	}
	close(sfd);
	store_close(s.store);
	free(s.cfg.state_dir);
	free(s.cfg.cordon_bin);
	return 0;
}
