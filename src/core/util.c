#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int err_set(struct cdn_err *err, int errnum, const char *fmt, ...)
{
	if (errnum < 0)
		errnum = -errnum;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->errnum = errnum;
		if (errnum) {
			size_t n = strlen(err->msg);
			snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
		}
	}
	return errnum ? -errnum : -EINVAL;
}

int err_wrap(struct cdn_err *err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL;
	char ctx[256], old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation keeps the start of the message, which says what failed first. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", ctx, old) < 0)
		err->msg[0] = 0;
	return err->errnum ? -err->errnum : -EINVAL;
}

int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* Split "123abc" into its number and suffix; the number part must be non-empty. */
static int split_number(const char *s, uint64_t *ret_num, const char **ret_suffix)
{
	char digits[32];
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n >= sizeof(digits))
		return n ? -ERANGE : -EINVAL;
	memcpy(digits, s, n);
	digits[n] = 0;
	*ret_suffix = s + n;
	return parse_u64(digits, ret_num);
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *ret)
{
	if (b && a > UINT64_MAX / b)
		return -ERANGE;
	*ret = a * b;
	return 0;
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	uint64_t num, mul;
	const char *suf;
	int r = split_number(s ? s : "", &num, &suf);
	if (r < 0)
		return r;
	if (!*suf || !strcmp(suf, "B"))
		mul = 1;
	else if (!strcmp(suf, "K") || !strcmp(suf, "k") || !strcmp(suf, "KB"))
		mul = 1ULL << 10;
	else if (!strcmp(suf, "M") || !strcmp(suf, "m") || !strcmp(suf, "MB"))
		mul = 1ULL << 20;
	else if (!strcmp(suf, "G") || !strcmp(suf, "g") || !strcmp(suf, "GB"))
		mul = 1ULL << 30;
	else if (!strcmp(suf, "T") || !strcmp(suf, "t") || !strcmp(suf, "TB"))
		mul = 1ULL << 40;
	else
		return -EINVAL;
	return mul_checked(num, mul, ret_bytes);
}

int parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	uint64_t num, mul;
	const char *suf;
	int r = split_number(s ? s : "", &num, &suf);
	if (r < 0)
		return r;
	if (!*suf || !strcmp(suf, "ms"))
		mul = 1;
	else if (!strcmp(suf, "s"))
		mul = 1000;
	else if (!strcmp(suf, "m"))
		mul = 60000;
	else if (!strcmp(suf, "h"))
		mul = 3600000;
	else
		return -EINVAL;
	return mul_checked(num, mul, ret_ms);
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	while (off + 1 < size) {
		ssize_t n = read(fd, buf + off, size - 1 - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = 0;
	return (ssize_t)off;
}

int write_file_at(int dirfd, const char *path, const char *s)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s);
	ssize_t n = write(fd, s, len);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}
