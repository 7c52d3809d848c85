/* The `cordon` command line: one file per subcommand around the sandbox core (src/core/).
 * Only this layer prints and chooses exit statuses (CLI.md); everything below it returns
 * -errno and fills a struct cdn_err. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "core/util.h"

#define CORDON_VERSION "0.1.0"

/* Exit status when cordon itself failed (bad option, host lacks a feature, setup failed). */
#define EXIT_CORDON 125

/* Print "cordon: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ __attribute__((cleanup(fclosep)))

/* Subcommands: argv[0] is the subcommand's name; they return the process exit status. */
int run_main(int argc, char **argv);
int image_main(int argc, char **argv);
int doctor_main(int argc, char **argv);
int spawn_main(int argc, char **argv);

/* state.c: the state directory and the image store below it. */

/* Resolve the state directory: `dir` if not NULL, else $CORDON_STATE_DIR, else
 * /var/lib/cordon (root) or $XDG_STATE_HOME/cordon, ~/.local/state/cordon (other users). With create, make it (mode 0700) if missing. Refuses a directory that is not
 * ours or that other users can write. *ret is an absolute path to free. */
int state_dir_resolve(const char *dir, bool create, char **ret, struct cdn_err *err);
/* Image names are one path component: [a-z0-9][a-z0-9._-]{0,63}. */
bool state_image_name_valid(const char *name);
/* "<state>/images/NAME/rootfs" if that directory exists (-ENOENT otherwise). */
int state_image_rootfs(const char *state_dir, const char *name, char **ret, struct cdn_err *err);
/* Create "<state>/images" (0700) if missing; *ret is its path. */
int state_images_dir(const char *state_dir, bool create, char **ret, struct cdn_err *err);

/* Small string helpers (cli.c). */
bool streq(const char *a, const char *b);
/* malloc'd printf; NULL when out of memory. */
char *strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Normalize an absolute path lexically: collapse "//" and "/./", drop a trailing "/"; refuse
 * ".." components (-EINVAL), relative paths and paths over PATH_MAX. */
int path_normalize_abs(const char *path, char **ret);
