/* `cordon __spawn --runtimes`: what GET /v1/runtimes answers. For each runtime of the table:
 * its name, the version of the Debian package that provides it (read from the image's dpkg
 * database, so no program has to be started), the image, whether its program is there, and
 * the default limits of a run (trust level low, the API's default) in the API's units. */
#include "spawn.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/limits.h"

/* "1:3.11.2-1+b1" -> "3.11.2": no epoch, no Debian revision. */
static void upstream_version(const char *v, char *buf, size_t size)
{
	const char *colon = strchr(v, ':');
	if (colon)
		v = colon + 1;
	size_t n = strcspn(v, "\n");
	const char *dash = NULL;
	for (const char *p = v; p < v + n; p++)
		if (*p == '-')
			dash = p;
	if (dash)
		n = (size_t)(dash - v);
	snprintf(buf, size, "%.*s", (int)n, v);
}

int spawn_pkg_version(const char *root, const char *package, char *buf, size_t size)
{
	_cleanup_close_ int rootfd = open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	/* An imported image is not ours to trust: its status file may be a symlink to a host
	 * file, so it is opened the way the sandbox would see it. */
	int fd = runtime_open_in_root(rootfd, "/var/lib/dpkg/status", O_RDONLY | O_NOCTTY);
	/* Kernels before 5.6 lack openat2: the host's own database is safe to open directly. */
	if (fd == -ENOSYS && !root) {
		fd = open("/var/lib/dpkg/status", O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -errno;
	}
	if (fd < 0)
		return fd;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	_cleanup_fclose_ FILE *ff = f;
	char line[4096], version[256] = "";
	bool mine = false, installed = false, bol = true;
	size_t plen = strlen(package);
	while (fgets(line, sizeof(line), f)) {
		bool start = bol;
		bol = strchr(line, '\n') != NULL;
		if (!start)
			continue; /* the rest of a long line */
		if (line[0] == '\n') {
			if (mine && installed && version[0]) {
				upstream_version(version, buf, size);
				return 0;
			}
			mine = installed = false;
			version[0] = 0;
		} else if (!strncmp(line, "Package: ", 9)) {
			mine = !strncmp(line + 9, package, plen) && line[9 + plen] == '\n';
		} else if (!strncmp(line, "Status: ", 8)) {
			installed = strstr(line, " installed") != NULL;
		} else if (!strncmp(line, "Version: ", 9)) {
			snprintf(version, sizeof(version), "%.200s", line + 9);
		}
	}
	if (mine && installed && version[0]) {
		upstream_version(version, buf, size);
		return 0;
	}
	return -ENOENT;
}

static json_t *limits_json(const struct sbx_limits *l)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < limit_table_len; i++) {
		const struct limit_def *d = &limit_table[i];
		uint64_t v = *(const uint64_t *)((const char *)l + d->offset);
		const char *n = d->name;
		if (strlen(n) > 3 && !strcmp(n + strlen(n) - 3, "_mb"))
			v >>= 20;
		json_object_set_new(o, n, json_integer((json_int_t)v));
	}
	return o;
}

int spawn_runtimes_main(const char *state_dir)
{
	(void)state_dir; /* runtimes run in the host image by default; named images: later */
	json_t *list = json_array();
	struct sbx_limits def, cc;
	limits_default(TRUST_LOW, &def);
	runtime_compile_limits(&def, NULL, &cc);
	for (size_t i = 0; list && runtime_at(i); i++) {
		const struct runtime *rt = runtime_at(i);
		char path[512], version[128];
		bool available = runtime_locate(rt, NULL, path, sizeof(path)) >= 0;
		bool have_version = spawn_pkg_version(NULL, rt->package, version, sizeof(version)) >= 0;
		json_t *o = json_pack("{s:s, s:o, s:s, s:b, s:o}", "name", rt->name, "version",
				      have_version ? json_string(version) : json_null(), "image",
				      "host", "available", available, "default_limits",
				      limits_json(&def));
		if (o && rt->compiled)
			json_object_set_new(o, "compile_limits", limits_json(&cc));
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	_cleanup_free_ char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	if (!text) {
		cli_error("listing runtimes: out of memory");
		return EXIT_CORDON;
	}
	if (puts(text) < 0) {
		cli_error("writing stdout: %m");
		return EXIT_CORDON;
	}
	return 0;
}
