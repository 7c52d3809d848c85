/* The default seccomp filter as compiled at build time by tools/gen-filter.c (the same rules
 * as filter_build(); tests/unit-filter checks the two are identical). */
#include <string.h>

#include "filter.h"
#include "filter-bpf.inc"

void filter_default(struct sock_fprog *ret)
{
	ret->len = sizeof(filter_default_bpf) / sizeof(filter_default_bpf[0]);
	ret->filter = (struct sock_filter *)filter_default_bpf;
}
