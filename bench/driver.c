/* Timing driver for bench/launch. It measures launches with CLOCK_MONOTONIC around
 * posix_spawn() + waitpid(), so the figures hold no interpreter overhead of the caller.
 *
 *   driver interleave ROUNDS SPACE_MS  NAME ARGC ARG... [NAME ARGC ARG...]...
 *       Round-robin: each round launches every tool once, in order. With SPACE_MS > 0 the
 *       driver sleeps that long before every launch (outside the timed interval).
 *       Prints one line per launch: "NAME NANOSECONDS STATUS" (STATUS: the exit code, or
 *       128+signal). The NAME "bare" with ARGC 1 is /bin/true spawned by the driver itself.
 *
 *   driver throughput SECONDS WORKERS  ARGC ARG...
 *       WORKERS processes each launch the command back to back until SECONDS have passed.
 *       Prints "runs N failed N elapsed_ns N".
 *
 *   driver once OUTFILE  ARG...
 *       One launch with stdout to OUTFILE (the --json result). Prints "NANOSECONDS STATUS".
 *
 * Launched programs get /dev/null as stdin and stderr, and /dev/null or OUTFILE as stdout. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "driver: %s: %s\n", what, strerror(errno));
	exit(2);
}

static long parse_long(const char *s, long min, long max, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "driver: bad %s: '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Spawn argv with stdout to out_path (or /dev/null), wait, return the elapsed ns. */
static uint64_t launch(char *const *argv, const char *out_path, int *ret_status)
{
	posix_spawn_file_actions_t fa;
	if (posix_spawn_file_actions_init(&fa))
		die("posix_spawn_file_actions_init");
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);

	pid_t pid;
	int st;
	uint64_t t0 = now_ns();
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	if (r) {
		errno = r;
		die(argv[0]);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	uint64_t t1 = now_ns();
	posix_spawn_file_actions_destroy(&fa);
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return t1 - t0;
}

struct tool {
	const char *name;
	char **argv; /* NULL-terminated, points into a copy of main's argv */
};

static int cmd_interleave(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "driver: interleave ROUNDS SPACE_MS NAME ARGC ARG...\n");
		return 2;
	}
	long rounds = parse_long(argv[0], 1, 1000000, "rounds");
	long space = parse_long(argv[1], 0, 10000, "space_ms");
	struct tool tools[16];
	size_t n = 0;
	for (int i = 2; i < argc;) {
		if (n == 16 || i + 1 >= argc) {
			fprintf(stderr, "driver: bad tool list\n");
			return 2;
		}
		const char *name = argv[i];
		long k = parse_long(argv[i + 1], 1, 256, "argc");
		if (i + 2 + k > argc) {
			fprintf(stderr, "driver: tool '%s' has fewer than %ld args\n", name, k);
			return 2;
		}
		char **a = calloc((size_t)k + 1, sizeof(*a));
		if (!a)
			die("calloc");
		memcpy(a, &argv[i + 2], (size_t)k * sizeof(*a));
		tools[n++] = (struct tool){ name, a };
		i += 2 + (int)k;
	}
	for (long r = 0; r < rounds; r++)
		for (size_t t = 0; t < n; t++) {
			if (space)
				sleep_ms(space);
			int st;
			uint64_t ns = launch(tools[t].argv, NULL, &st);
			printf("%s %llu %d\n", tools[t].name, (unsigned long long)ns, st);
		}
	return 0;
}

static int cmd_throughput(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "driver: throughput SECONDS WORKERS ARGC ARG...\n");
		return 2;
	}
	long secs = parse_long(argv[0], 1, 600, "seconds");
	long workers = parse_long(argv[1], 1, 64, "workers");
	long k = parse_long(argv[2], 1, 256, "argc");
	if (3 + k != argc) {
		fprintf(stderr, "driver: argc does not match the arguments\n");
		return 2;
	}
	char **a = calloc((size_t)k + 1, sizeof(*a));
	if (!a)
		die("calloc");
	memcpy(a, &argv[3], (size_t)k * sizeof(*a));

	/* Per-worker counters in shared memory: [2*w] runs, [2*w+1] failures. */
	uint64_t *counts = mmap(NULL, sizeof(uint64_t) * 2 * (size_t)workers,
				PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		die("mmap");
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)secs * 1000000000u;
	for (long w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			while (now_ns() < deadline) {
				int st;
				launch(a, NULL, &st);
				counts[2 * w]++;
				if (st)
					counts[2 * w + 1]++;
			}
			_exit(0);
		}
	}
	for (long w = 0; w < workers; w++)
		while (wait(NULL) < 0 && errno == EINTR)
			;
	uint64_t elapsed = now_ns() - t0, runs = 0, failed = 0;
	for (long w = 0; w < workers; w++) {
		runs += counts[2 * w];
		failed += counts[2 * w + 1];
	}
	printf("runs %llu failed %llu elapsed_ns %llu\n", (unsigned long long)runs,
	       (unsigned long long)failed, (unsigned long long)elapsed);
	return 0;
}

static int cmd_once(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "driver: once OUTFILE ARG...\n");
		return 2;
	}
	int st;
	uint64_t ns = launch(&argv[1], argv[0], &st);
	printf("%llu %d\n", (unsigned long long)ns, st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "interleave"))
		return cmd_interleave(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "throughput"))
		return cmd_throughput(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "once"))
		return cmd_once(argc - 2, argv + 2);
	fprintf(stderr, "usage: driver interleave|throughput|once ...\n");
	return 2;
}
