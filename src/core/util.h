/* Small helpers shared by every part of cordon: cleanup attributes, checked number parsing
 * and error objects. Nothing here prints or exits. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Hand ownership of a pointer or fd to the caller: the cleanup attribute then sees NULL/-1. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_tf;                                                                               \
	})

/* An error with context, filled by the library and turned into text only by main or the
 * HTTP layer. msg is lower case, what failed first: "cgroup: creating \"...\": ..." */
struct cdn_err {
	int errnum; /* positive errno, 0 when unknown */
	char msg[512];
};

/* Set err (if not NULL) from errnum and a format; returns -errnum (or -EINVAL when 0). */
int err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix the message already in err with more context: "context: old message". */
int err_wrap(struct cdn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked parsers: reject empty input, signs, overflow and trailing junk. Return 0 or -EINVAL /
 * -ERANGE. */
int parse_u64(const char *s, uint64_t *ret);
/* Sizes: plain bytes or with a K/M/G/T suffix (binary multiples), e.g. "256M". */
int parse_size(const char *s, uint64_t *ret_bytes);
/* Durations: "1500ms", "2s", "1m", or a plain number of milliseconds. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Write all of buf to fd, retrying on EINTR and short writes. Returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read a small file into buf (NUL-terminated). Returns bytes read or -errno. */
ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t size);
/* Write a string to a file that must already exist (cgroup and /proc knobs). */
int write_file_at(int dirfd, const char *path, const char *s);
