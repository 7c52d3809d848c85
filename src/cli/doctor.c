/* `cordon doctor`: check this host for what `cordon run` needs, one line per check with ok, warn
 * or fail and the fix. The probes themselves are mechanism and live in the core (probe.h); this
 * file adds the state directory check and turns the report into text or JSON.
 *
 * Exit status: 0 when `cordon run` can work here with all of its layers (warnings allowed: a
 * fallback or a lesser feature), 1 when a check failed (a run is refused, or goes on without
 * a layer), 125 when the doctor itself could not run (bad option). */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "core/probe.h"

#define EXIT_DOCTOR_FAILED 1

static const char doctor_usage[] =
	"usage: cordon doctor [--json] [--state-dir DIR]\n"
	"\n"
	"Check this host: kernel, user namespaces, cgroups and each controller, seccomp and\n"
	"user notification, Landlock, clone3 / CLONE_INTO_CGROUP, pidfd, the mount API, tmpfs,\n"
	"overlayfs, /proc, containers and the state directory. Each check is tried for real\n"
	"(in children of this process, in a cgroup it creates and removes). One line each:\n"
	"ok, warn (a fallback is used) or fail (cordon run is refused, or runs without a layer),\n"
	"with the fix.\n"
	"\n"
	"  --json            one JSON object on stdout instead of the lines\n"
	"  --state-dir DIR   the state directory to check (default $CORDON_STATE_DIR or\n"
	"                    /var/lib/cordon)\n"
	"\n"
	"Exit status: 0 when cordon run can work with all layers, 1 when a check failed,\n"
	"125 when the doctor itself failed.\n";

/* The state directory: as root a missing one is fine (cordon run creates it 0700); rootless
 * it holds the slot locks, so it is created here as cordon run would. One that another user
 * owns or can write is refused by every command. */
static int doctor_state_dir(struct probe_check *c, const char *dir, char **ret_path)
{
	struct cdn_err err = {0};
	bool rootless = geteuid() != 0;
	int r = state_dir_resolve(dir, rootless, ret_path, &err);
	c->name = "state_dir";
	if (r == -ENOENT && !rootless) {
		c->status = PROBE_OK;
		snprintf(c->detail, sizeof(c->detail), "%s; cordon run creates it (mode 0700)",
			 err.msg);
		return 0;
	}
	if (r < 0) {
		c->status = PROBE_FAIL;
		c->impact = PROBE_RUN_BROKEN;
		snprintf(c->detail, sizeof(c->detail), "%s", err.msg);
		snprintf(c->fix, sizeof(c->fix),
			 "chown it to the user running cordon and chmod 700 it, or pass --state-dir");
		return r;
	}
	struct stat st;
	if (stat(*ret_path, &st) < 0) {
		c->status = PROBE_FAIL;
		c->impact = PROBE_RUN_BROKEN;
		snprintf(c->detail, sizeof(c->detail), "\"%s\": %s", *ret_path, strerror(errno));
		return -errno;
	}
	c->status = PROBE_OK;
	snprintf(c->detail, sizeof(c->detail),
		 "\"%s\" is owned by uid %u, mode %04o, writable by its owner only", *ret_path,
		 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Text from probes may quote host names and paths: no control characters on the terminal. */
static void doctor_print_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

struct tally {
	size_t ok, warn, fail, broken, missing;
};

static struct tally doctor_tally(const struct probe_report *rep)
{
	struct tally t = {0};
	for (size_t i = 0; i < rep->n; i++) {
		const struct probe_check *c = &rep->checks[i];
		if (c->status == PROBE_OK)
			t.ok++;
		else if (c->status == PROBE_WARN)
			t.warn++;
		else
			t.fail++;
		if (c->status == PROBE_FAIL && c->impact == PROBE_RUN_BROKEN)
			t.broken++;
		if (c->status == PROBE_FAIL && c->impact != PROBE_RUN_BROKEN)
			t.missing++;
	}
	return t;
}

static void doctor_print_text(const struct probe_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct probe_check *c = &rep->checks[i];
		printf("%-4s  %-18s ", probe_status_name(c->status), c->name);
		doctor_print_clean(stdout, c->detail);
		if (c->fix[0]) {
			fputs(" (fix: ", stdout);
			doctor_print_clean(stdout, c->fix);
			fputc(')', stdout);
		}
		fputc('\n', stdout);
	}
	struct tally t = doctor_tally(rep);
	if (t.fail == 0)
		printf("cordon run can work here with all layers (%zu ok, %zu warn)\n", t.ok,
		       t.warn);
	else if (t.broken)
		printf("cordon run cannot work here as it should: %zu check%s failed\n", t.fail,
		       t.fail == 1 ? "" : "s");
	else
		printf("cordon run works here, but without %zu of its layers (see fail above)\n",
		       t.fail);
}

static int doctor_print_json(const struct probe_report *rep)
{
	struct tally t = doctor_tally(rep);
	json_t *checks = json_array();
	json_t *root = json_pack("{s:s, s:b, s:b, s:b, s:{s:I, s:I, s:I}}", "cordon_version",
				 CORDON_VERSION, "ok", t.fail == 0, "run_works", t.broken == 0,
				 "all_layers", t.fail == 0, "counts", "ok", (json_int_t)t.ok, "warn",
				 (json_int_t)t.warn, "fail", (json_int_t)t.fail);
	if (!checks || !root) {
		json_decref(checks);
		json_decref(root);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rep->n; i++) {
		const struct probe_check *c = &rep->checks[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", c->name, "status",
				      probe_status_name(c->status), "impact",
				      probe_impact_name(c->impact), "detail", c->detail, "fix",
				      c->fix[0] ? json_string(c->fix) : json_null());
		if (!o || json_array_append_new(checks, o) < 0) {
			json_decref(checks);
			json_decref(root);
			return -ENOMEM;
		}
	}
	json_object_set_new(root, "checks", checks);
	int r = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (r < 0)
		return -EIO;
	fputc('\n', stdout);
	return 0;
}

int doctor_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"state-dir", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool json = false;
	const char *state_dir = NULL;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+:h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'h':
			fputs(doctor_usage, stdout);
			return 0;
		case ':':
			cli_error("option \"%s\" needs a value (cordon doctor --help)",
				  argv[optind - 1]);
			return EXIT_CORDON;
		default:
			cli_error("unknown option \"%s\" (cordon doctor --help)", argv[optind - 1]);
			return EXIT_CORDON;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\" (cordon doctor --help)", argv[optind]);
		return EXIT_CORDON;
	}
	struct probe_report *rep = calloc(1, sizeof(*rep));
	if (!rep) {
		cli_error("out of memory");
		return EXIT_CORDON;
	}
	/* The state dir first (the rootless probes need it), reported last. */
	struct probe_check sd = {0};
	_cleanup_free_ char *path = NULL;
	doctor_state_dir(&sd, state_dir, &path);
	probe_host(rep, path);
	struct probe_check *c = probe_add(rep, sd.name, sd.status, sd.impact, sd.fix, "%s",
					  sd.detail);
	if (!c) {
		cli_error("too many checks");
		free(rep);
		return EXIT_CORDON;
	}
	int status = doctor_tally(rep).fail ? EXIT_DOCTOR_FAILED : 0;
	if (json) {
		if (doctor_print_json(rep) < 0) {
			cli_error("writing the JSON report failed");
			status = EXIT_CORDON;
		}
	} else {
		doctor_print_text(rep);
	}
	free(rep);
	return status;
}
