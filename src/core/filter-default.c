/* The run-time half of the seccomp layer, without libseccomp: the default filter as compiled
 * at build time by tools/gen-filter.c (the same rules as filter_build(); tests/unit-filter
 * checks the two are identical), and its loading in the child. */
#include <errno.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "filter.h"
#include "filter-bpf.inc"

void filter_default(struct sock_fprog *ret)
{
	ret->len = sizeof(filter_default_bpf) / sizeof(filter_default_bpf[0]);
	ret->filter = (struct sock_filter *)filter_default_bpf;
}

int filter_load(const struct sock_fprog *prog)
{
	if (!prog || !prog->filter || prog->len == 0)
		return -EINVAL;
	/* flags 0: no TSYNC (single-threaded child), no SPEC_ALLOW (keep the kernel's
	 * speculative-store-bypass mitigation for filtered tasks). */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return -errno;
	return 0;
}
