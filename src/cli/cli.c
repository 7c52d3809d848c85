/* Helpers shared by the subcommands: cordon's one-line error messages and small string
 * utilities (cli.h). */
#include "cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cli_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote names from hostile places (archive entries, the caller's paths): a
	 * newline or a terminal escape in one must not forge a second line or garble the
	 * terminal. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "cordon: %s\n", msg);
}

bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

char *strprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

int path_normalize_abs(const char *path, char **ret)
{
	size_t len = strlen(path);
	if (path[0] != '/' || len >= PATH_MAX)
		return -EINVAL;
	char *out = malloc(len + 2);
	if (!out)
		return -ENOMEM;
	size_t o = 0;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.')) {
			p += n;
			continue;
		}
		/* ".." could climb out of the place the caller meant; never guess, refuse. */
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			return -EINVAL;
		}
		out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = 0;
	*ret = out;
	return 0;
}
