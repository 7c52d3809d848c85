/* cordon: the command dispatcher. Each subcommand lives in its own file and returns the exit
 * status; this file only picks one. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char main_usage[] =
	"usage: cordon COMMAND [ARGS]\n"
	"\n"
	"cordon runs code it does not trust in a fresh sandbox.\n"
	"\n"
	"  run [OPTIONS] -- COMMAND [ARG...]       run a command in a fresh sandbox\n"
	"  run [OPTIONS] --runtime NAME -c CODE    run code with a runtime (or FILE)\n"
	"  image ls | import NAME TARBALL | rm NAME\n"
	"                                          manage root filesystem images\n"
	"  serve [--listen 127.0.0.1:7070] [--state-dir DIR] [--no-auth]\n"
	"                                          the REST API daemon (`cordon serve --help`)\n"
	"  doctor [--json]                         check this host: what works, what does not, the fix\n"
	"  version                                 print the version\n"
	"  help                                    this text\n"
	"\n"
	"`cordon run --help` lists the options of a run.\n"
	"Exit status 125 means cordon itself failed; the message says why.\n";

static int main_version(void)
{
	printf("cordon %s\n", CORDON_VERSION);
	return 0;
}

/* Run a sibling program of this binary (same directory): the subcommands that need heavy
 * libraries live in their own executables so that `cordon run` loads none of them. */
static int main_exec_sibling(const char *prog, char **argv)
{
	char self[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		cli_error("finding cordon's own path: %m");
		return EXIT_CORDON;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	if (snprintf(path, sizeof(path), "%s/%s", self, prog) >= (int)sizeof(path)) {
		cli_error("path of %s is too long", prog);
		return EXIT_CORDON;
	}
	argv[0] = (char *)prog;
	execv(path, argv);
	cli_error("running \"%s\": %m (is cordon installed completely?)", path);
	return EXIT_CORDON;
}

static int main_dispatch(int argc, char **argv)
{
	if (argc < 2) {
		fputs(main_usage, stderr);
		return EXIT_CORDON;
	}
	const char *cmd = argv[1];
	if (streq(cmd, "run"))
		return run_main(argc - 1, argv + 1);
	if (streq(cmd, "doctor"))
		return doctor_main(argc - 1, argv + 1);
	/* Hidden: the daemon's spawner (SPAWN-PROTOCOL.md), not for people. */
	if (streq(cmd, "__spawn"))
		return spawn_main(argc - 1, argv + 1);
	if (streq(cmd, "image"))
		return main_exec_sibling("cordon-image", argv + 1);
	if (streq(cmd, "serve"))
		return main_exec_sibling("cordon-serve", argv + 1);
	if (streq(cmd, "version") || streq(cmd, "--version"))
		return main_version();
	if (streq(cmd, "help") || streq(cmd, "--help") || streq(cmd, "-h")) {
		fputs(main_usage, stdout);
		return 0;
	}
	cli_error("unknown command \"%s\"", cmd);
	return EXIT_CORDON;
}

int main(int argc, char **argv)
{
	int status = main_dispatch(argc, argv);
	/* Output through stdio (lists, version, help) must not be lost silently: a full disk or a
	 * closed pipe is a failure of cordon. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (status == 0) {
			cli_error("writing stdout: %m");
			status = EXIT_CORDON;
		}
	}
	return status;
}
