/* cordon-image: `cordon image ...` as its own program. It links libarchive (and through it
 * libxml2, ICU, ...), whose loading would otherwise cost every `cordon run` several
 * milliseconds; `cordon image` execs this binary from cordon's own directory. */
#include <stdio.h>

#include "cli.h"

int main(int argc, char **argv)
{
	int status = image_main(argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (status == 0) {
			cli_error("writing stdout: %m");
			status = EXIT_CORDON;
		}
	}
	return status;
}
