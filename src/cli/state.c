/* The state directory (CLI.md --state-dir) and the image store under it:
 *
 *   <state>/                 ours, writable by us alone (created 0700)
 *   <state>/images/NAME/rootfs   an imported image (image.c)
 *   <state>/images/.NAME.*   work directories of an import or removal in progress
 *
 * The core keeps its slot locks under <state> as well. */
#include "cli.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define STATE_DIR_DEFAULT "/var/lib/cordon"

/* Create dir and its missing parents with mode 0700. */
static int mkdir_parents(const char *dir)
{
	_cleanup_free_ char *copy = strdup(dir);
	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

/* The state dir holds images that become the root of sandboxes and the core's locks: another
 * user able to write there could swap an image or a lock under us, so refuse such a dir. */
static int state_dir_check(const char *dir, struct cdn_err *err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return err_set(err, errno, "state dir \"%s\"", dir);
	if (!S_ISDIR(st.st_mode))
		return err_set(err, ENOTDIR, "state dir \"%s\"", dir);
	if (st.st_uid != geteuid())
		return err_set(err, 0, "state dir \"%s\" is owned by uid %u, not by us (uid %u)",
			       dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return err_set(err, 0, "state dir \"%s\" is writable by other users (chmod 700 it)",
			       dir);
	return 0;
}

/* Rootless default: the XDG state home, $XDG_STATE_HOME/cordon or ~/.local/state/cordon;
 * /var/lib is root's. NULL (and err set) when neither variable gives an absolute path. */
static char *state_dir_user_default(struct cdn_err *err)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir = NULL;
	if (xdg && xdg[0] == '/')
		dir = strprintf("%s/cordon", xdg);
	else if (home && home[0] == '/' && strcmp(home, "/"))
		dir = strprintf("%s/.local/state/cordon", home);
	else {
		err_set(err, 0,
			"no state dir for uid %u: $XDG_STATE_HOME and $HOME are unset (pass "
			"--state-dir or set CORDON_STATE_DIR)",
			(unsigned)geteuid());
		return NULL;
	}
	if (!dir)
		err_set(err, ENOMEM, "state dir");
	return dir;
}

int state_dir_resolve(const char *dir, bool create, char **ret, struct cdn_err *err)
{
	_cleanup_free_ char *user_default = NULL;
	if (!dir || !*dir)
		dir = getenv("CORDON_STATE_DIR");
	if ((!dir || !*dir) && geteuid() != 0) {
		user_default = state_dir_user_default(err);
		if (!user_default)
			return -EINVAL;
		dir = user_default;
	}
	if (!dir || !*dir)
		dir = STATE_DIR_DEFAULT;
	if (strlen(dir) >= PATH_MAX)
		return err_set(err, ENAMETOOLONG, "state dir");

	_cleanup_free_ char *abs = NULL;
	if (dir[0] == '/')
		abs = strdup(dir);
	else {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);
		if (!cwd)
			return err_set(err, errno, "state dir: getcwd");
		abs = strprintf("%s/%s", cwd, dir);
	}
	if (!abs)
		return err_set(err, ENOMEM, "state dir");
	if (create) {
		int r = mkdir_parents(abs);
		if (r < 0)
			return err_set(err, r, "creating state dir \"%s\"", abs);
	}
	int r = state_dir_check(abs, err);
	if (r < 0)
		return r;
	/* The core and the images are found below this path: resolve symlinks once, here. */
	char *real = realpath(abs, NULL);
	if (!real)
		return err_set(err, errno, "state dir \"%s\"", abs);
	*ret = real;
	return 0;
}

bool state_image_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

int state_images_dir(const char *state_dir, bool create, char **ret, struct cdn_err *err)
{
	char *dir = strprintf("%s/images", state_dir);
	if (!dir)
		return err_set(err, ENOMEM, "images dir");
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int r = err_set(err, errno, "creating \"%s\"", dir);
		free(dir);
		return r;
	}
	*ret = dir;
	return 0;
}

int state_image_rootfs(const char *state_dir, const char *name, char **ret, struct cdn_err *err)
{
	if (!state_image_name_valid(name))
		return err_set(err, EINVAL, "invalid image name \"%s\"", name);
	_cleanup_free_ char *root = strprintf("%s/images/%s/rootfs", state_dir, name);
	if (!root)
		return err_set(err, ENOMEM, "image \"%s\"", name);
	struct stat st;
	if (lstat(root, &st) < 0)
		return err_set(err, errno, "image \"%s\"", name);
	/* A symlinked rootfs would make the sandbox root a place import never checked. */
	if (!S_ISDIR(st.st_mode))
		return err_set(err, ENOTDIR, "image \"%s\"", name);
	*ret = TAKE_PTR(root);
	return 0;
}
