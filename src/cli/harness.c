/* Embeds src/cli/harness/ in the binary (see harness.h). */
#include "harness.h"

#include "cli.h"

const struct harness_file *harness_for(const char *runtime)
{
	(void)runtime;
	return NULL;
}
