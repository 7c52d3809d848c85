/* The unit tests' harness (STYLE.md: TAP-like lines, asserts that print both values, each
 * test its own process with a timeout). A test file defines
 *     static const struct tap_test tests[] = {{"name", fn}, ...};
 * and ends with TAP_MAIN(tests, SECONDS). The last line is "N passed, N failed". */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ASSERT_EQ_I(a, b)                                                                          \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__,       \
				__LINE__, #a, _a, #b, _b);                                         \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define ASSERT_EQ_U(a, b)                                                                          \
	do {                                                                                       \
		unsigned long long _a = (a), _b = (b);                                             \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n", __FILE__,       \
				__LINE__, #a, _a, #b, _b);                                         \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define ASSERT_STR(a, b)                                                                           \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || strcmp(_a, _b)) {                                                       \
			fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__,         \
				__LINE__, #a, _a ? _a : "(null)", _b);                              \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

struct tap_test {
	const char *name;
	void (*fn)(void);
};

/* Run each test in a child with an alarm of `seconds`; print one line each and the summary. */
static inline int tap_run(const struct tap_test *tests, size_t n, unsigned seconds)
{
	int passed = 0, failed = 0;
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(seconds);
			tests[i].fn();
			exit(0); /* not _exit: LeakSanitizer checks at exit in the SAN build */
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

#define TAP_MAIN(tests, seconds)                                                                   \
	int main(void)                                                                             \
	{                                                                                          \
		return tap_run(tests, sizeof(tests) / sizeof(tests[0]), seconds);                  \
	}
