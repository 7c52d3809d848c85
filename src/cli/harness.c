/* Embeds src/cli/harness/ in the binary (see harness.h). The files stay readable programs in
 * the repository; the assembler's .incbin copies their bytes in at build time (paths are
 * relative to the repository root, where make runs; the Makefile makes this object depend on
 * them). */
#include "harness.h"

#include "cli.h"

#define HARNESS_EMBED(sym, file)                                                                   \
	__asm__(".section .rodata\n"                                                               \
		".balign 16\n"                                                                     \
		".hidden " #sym "_start\n"                                                         \
		".hidden " #sym "_end\n"                                                           \
		".global " #sym "_start\n"                                                         \
		".global " #sym "_end\n" #sym "_start:\n"                                          \
		".incbin \"" file "\"\n" #sym "_end:\n"                                            \
		".byte 0\n"                                                                        \
		".previous\n");                                                                    \
	extern const char sym##_start[], sym##_end[]

HARNESS_EMBED(harness_python, "src/cli/harness/python.py");
HARNESS_EMBED(harness_node, "src/cli/harness/node.js");
HARNESS_EMBED(harness_edge, "src/cli/harness/edge.mjs");

static struct harness_file harnesses[3];

const struct harness_file *harness_for(const char *runtime)
{
	if (!harnesses[0].runtime) {
		harnesses[0] = (struct harness_file){"python", "/tmp/.cordon/harness.py",
						     harness_python_start, 0, false};
		harnesses[0].len = (size_t)(harness_python_end - harness_python_start);
		harnesses[1] = (struct harness_file){"node", "/tmp/.cordon/harness.js",
						     harness_node_start, 0, false};
		harnesses[1].len = (size_t)(harness_node_end - harness_node_start);
		harnesses[2] = (struct harness_file){"edge", "/tmp/.cordon/edge.mjs",
						     harness_edge_start, 0, true};
		harnesses[2].len = (size_t)(harness_edge_end - harness_edge_start);
	}
	for (size_t i = 0; i < ARRAY_SIZE(harnesses); i++)
		if (streq(harnesses[i].runtime, runtime))
			return &harnesses[i];
	return NULL;
}
