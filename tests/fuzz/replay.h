/* Corpus replay for a fuzz target built without libFuzzer (included at the end of a target's
 * file): `unit-fuzz-NAME [DIR]` runs every file of DIR (default FUZZ_CORPUS, relative to the
 * repository root) through LLVMFuzzerTestOneInput and prints TAP-like lines and the summary
 * "N passed, N failed". A crash or an invariant's abort() ends the program without a summary,
 * which scripts/test counts as a failure. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_REPLAY_MAX_INPUT (16u << 20)

static int replay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : FUZZ_CORPUS;
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: corpus \"%s\": %s\n", dir, strerror(errno));
		printf("0 passed, 1 failed\n");
		return 1;
	}
	char *names[4096];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < sizeof(names) / sizeof(names[0]))
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), replay_cmp);
	unsigned passed = 0, failed = 0;
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		uint8_t *buf = malloc(FUZZ_REPLAY_MAX_INPUT);
		size_t len = f && buf ? fread(buf, 1, FUZZ_REPLAY_MAX_INPUT, f) : 0;
		if (!f || !buf) {
			printf("not ok %zu - %s (cannot read)\n", i + 1, names[i]);
			failed++;
		} else {
			fflush(stdout);
			LLVMFuzzerTestOneInput(buf, len);
			printf("ok %zu - %s (%zu bytes)\n", i + 1, names[i], len);
			passed++;
		}
		if (f)
			fclose(f);
		free(buf);
		free(names[i]);
	}
	if (n == 0) {
		printf("not ok 1 - corpus \"%s\" is empty\n", dir);
		failed++;
	}
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
