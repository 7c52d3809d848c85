/* Safe extraction of an untrusted tar archive with libarchive.
 *
 * Two layers keep every write inside the target directory:
 *  1. our own check of each entry: its name and a hardlink's target are made relative and
 *     normalized ("./a//b" -> "a/b"), absolute names and ".." components fail the whole
 *     import, and no existing component on the way may be a symlink;
 *  2. libarchive's ARCHIVE_EXTRACT_SECURE_* flags, which refuse the same things again.
 * archive_write_disk resolves names against the working directory, so we chdir into the
 * target for the duration. */
#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

/* What we restore: permissions (minus setuid/setgid, dropped per entry) and times. Left out on
 * purpose: ARCHIVE_EXTRACT_OWNER (files would belong to arbitrary host uids), XATTR (e.g.
 * security.capability: file capabilities), ACL and FFLAGS (an immutable flag would make the
 * image impossible to remove). */
#define EXTRACT_FLAGS                                                                              \
	(ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |                    \
	 ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |                       \
	 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

/* Normalize an entry name into out: relative, no "." or empty components. Returns 0, 1 for the
 * archive's root itself ("." or "./"), or -errno for a name we refuse. */
static int extract_clean_path(const char *in, char *out, size_t size)
{
	if (!in)
		return -EILSEQ; /* not representable: libarchive could not convert it */
	size_t len = strlen(in);
	if (len > EXTRACT_MAX_PATH || len >= size)
		return -ENAMETOOLONG;
	if (in[0] == '/')
		return -EINVAL;
	size_t o = 0, depth = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.')) {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
		if (++depth > EXTRACT_MAX_DEPTH)
			return -E2BIG;
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = 0;
	return o == 0 ? 1 : 0;
}

/* Walk the directories leading to path (relative to rootfd) without following symlinks.
 * Components not created yet are fine unless must_exist (a hardlink's target); one that is a
 * symlink or not a directory is refused: writing through it could land outside the root. */
static int extract_check_parents(int rootfd, const char *path, bool must_exist)
{
	char comp[NAME_MAX + 1];
	int fd = -1;
	int cur = rootfd;
	int ret = 0;
	for (const char *p = path;;) {
		size_t n = strcspn(p, "/");
		if (!p[n])
			break; /* the last component: the entry itself */
		if (n > NAME_MAX) {
			ret = -ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			ret = errno == ENOENT && !must_exist ? 0 : -errno;
			break;
		}
		if (fd >= 0)
			close(fd);
		fd = cur = next;
		p += n + 1;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

static const char *extract_reason(int r)
{
	switch (r) {
	case -EINVAL:
		return "absolute path or .. component";
	case -ENAMETOOLONG:
		return "name over 4096 bytes";
	case -E2BIG:
		return "over 256 directory levels";
	case -ELOOP:
	case -ENOTDIR:
		return "a symlink or a file on the way";
	case -EILSEQ:
		return "name not valid in this locale";
	default:
		return strerror(-r);
	}
}

/* Rewrite entry in place for a safe extraction. 1: skip it; 0: extract; -1: refuse (err). */
static int extract_prepare(struct archive_entry *entry, int rootfd, struct cdn_err *err)
{
	char path[EXTRACT_MAX_PATH + 2];
	const char *name = archive_entry_pathname(entry);
	int r = extract_clean_path(name, path, sizeof(path));
	if (r == 0)
		r = extract_check_parents(rootfd, path, false);
	if (r < 0)
		return err_set(err, 0, "entry \"%.200s\": %s", name ? name : "?", extract_reason(r));
	if (r == 1)
		return 1; /* the root itself: ours, already made */

	const char *link = archive_entry_hardlink(entry);
	if (link) {
		char target[EXTRACT_MAX_PATH + 2];
		int l = extract_clean_path(link, target, sizeof(target));
		if (l == 0)
			l = extract_check_parents(rootfd, target, true);
		if (l != 0)
			return err_set(err, 0, "entry \"%.200s\": hardlink target \"%.200s\": %s",
				       path, link, l == 1 ? "the root" : extract_reason(l));
		archive_entry_set_hardlink(entry, target);
	} else {
		/* Device nodes would hand the sandbox host devices (and need privileges); FIFOs and
		 * sockets have no place in an image. */
		mode_t type = archive_entry_filetype(entry);
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
			return 1;
	}
	archive_entry_set_pathname(entry, path);
	/* No setuid/setgid programs in images: inside the sandbox no_new_privs ignores them, but
	 * an image is also a directory on the host. */
	archive_entry_set_perm(entry, archive_entry_perm(entry) & ~(mode_t)(S_ISUID | S_ISGID));
	return 0;
}

static int extract_copy_data(struct archive *in, struct archive *out, struct extract_stats *st,
			     const struct extract_limits *lim, const char *path, struct cdn_err *err)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(in, &buf, &size, &offset);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return err_set(err, 0, "reading \"%.200s\": %s", path, archive_error_string(in));
		if (size > lim->max_bytes - st->bytes)
			return err_set(err, EFBIG, "archive holds over %llu bytes of data",
				       (unsigned long long)lim->max_bytes);
		st->bytes += size;
		if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_OK)
			return err_set(err, 0, "writing \"%.200s\": %s", path,
				       archive_error_string(out));
	}
}

static int extract_entry(struct archive *in, struct archive *out, struct archive_entry *entry,
			 int rootfd, struct extract_stats *st, const struct extract_limits *lim,
			 struct cdn_err *err)
{
	int r = extract_prepare(entry, rootfd, err);
	if (r < 0)
		return r;
	if (r == 1) {
		if (archive_entry_filetype(entry) != AE_IFDIR)
			st->skipped++;
		return 0;
	}
	const char *path = archive_entry_pathname(entry);
	if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0 &&
	    (uint64_t)archive_entry_size(entry) > lim->max_bytes - st->bytes)
		return err_set(err, EFBIG, "archive holds over %llu bytes of data",
			       (unsigned long long)lim->max_bytes);
	/* ARCHIVE_WARN is about metadata we could not restore (a time); the SECURE_* refusals
	 * are ARCHIVE_FAILED. */
	if (archive_write_header(out, entry) < ARCHIVE_WARN)
		return err_set(err, 0, "extracting \"%.200s\": %s", path, archive_error_string(out));
	r = extract_copy_data(in, out, st, lim, path, err);
	if (r < 0)
		return r;
	if (archive_write_finish_entry(out) < ARCHIVE_WARN)
		return err_set(err, 0, "extracting \"%.200s\": %s", path, archive_error_string(out));
	st->entries++;
	return 0;
}

static struct archive *extract_reader(int fd, struct cdn_err *err)
{
	struct archive *in = archive_read_new();
	if (!in) {
		err_set(err, ENOMEM, "archive_read_new");
		return NULL;
	}
	/* tar only (ustar, pax, GNU): every other format parser is attack surface we do not
	 * need. The compressions of CLI.md's tar.gz, tar.zst... */
	archive_read_support_format_tar(in);
	archive_read_support_filter_gzip(in);
	archive_read_support_filter_bzip2(in);
	archive_read_support_filter_xz(in);
	archive_read_support_filter_lzma(in);
	archive_read_support_filter_zstd(in);
	archive_read_support_filter_lz4(in);
	if (archive_read_open_fd(in, fd, 64 * 1024) != ARCHIVE_OK) {
		err_set(err, 0, "reading the archive: %s", archive_error_string(in));
		archive_read_free(in);
		return NULL;
	}
	return in;
}

static int extract_all(struct archive *in, struct archive *out, int rootfd,
		       struct extract_stats *st, const struct extract_limits *lim,
		       struct cdn_err *err)
{
	uint64_t seen = 0;
	for (;;) {
		struct archive_entry *entry;
		int r = archive_read_next_header(in, &entry);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return err_set(err, 0, "reading the archive: %s", archive_error_string(in));
		if (++seen > lim->max_entries)
			return err_set(err, 0, "archive has over %llu entries",
				       (unsigned long long)lim->max_entries);
		r = extract_entry(in, out, entry, rootfd, st, lim, err);
		if (r < 0)
			return r;
	}
	/* Applies what libarchive deferred (permissions and times of directories). */
	if (archive_write_close(out) < ARCHIVE_WARN)
		return err_set(err, 0, "finishing the extraction: %s", archive_error_string(out));
	return 0;
}

int extract_tar(int archive_fd, int rootfd, struct extract_stats *ret, struct cdn_err *err)
{
	static const struct extract_limits limits = {.max_bytes = EXTRACT_MAX_BYTES,
						     .max_entries = EXTRACT_MAX_ENTRIES};
	const struct extract_limits *lim = &limits;
	*ret = (struct extract_stats){0};
	_cleanup_close_ int oldcwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (oldcwd < 0)
		return err_set(err, errno, "opening the working directory");
	struct archive *in = extract_reader(archive_fd, err);
	if (!in)
		return -EINVAL;
	struct archive *out = archive_write_disk_new();
	if (!out) {
		archive_read_free(in);
		return err_set(err, ENOMEM, "archive_write_disk_new");
	}
	archive_write_disk_set_options(out, EXTRACT_FLAGS);
	int r;
	if (fchdir(rootfd) < 0)
		r = err_set(err, errno, "entering the image directory");
	else
		r = extract_all(in, out, rootfd, ret, lim, err);
	archive_write_free(out);
	archive_read_free(in);
	if (fchdir(oldcwd) < 0 && r == 0)
		r = err_set(err, errno, "returning to the working directory");
	return r;
}

/* ---- extract_tar_at: the *at() writer ------------------------------------------------------ */

/* Open the directory that will hold path's last component, creating missing directories on
 * the way (0755). A component that exists and is not a directory (a symlink included: O_NOFOLLOW
 * refuses it) fails. *ret_base points into path. */
static int at_open_parent(int rootfd, char *path, const char **ret_base)
{
	int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	char *p = path;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = 0;
		if (strlen(p) > NAME_MAX) {
			*slash = '/';
			close(cur);
			return -ENAMETOOLONG;
		}
		if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
			int e = -errno;
			*slash = '/';
			close(cur);
			return e;
		}
		int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = -errno;
		*slash = '/';
		close(cur);
		if (next < 0)
			return e == -ELOOP ? -ENOTDIR : e;
		cur = next;
		p = slash + 1;
	}
	if (strlen(p) > NAME_MAX) {
		close(cur);
		return -ENAMETOOLONG;
	}
	*ret_base = p;
	return cur;
}

/* Make room for a new entry: whatever is there that is not a directory goes. */
static int at_clear(int dirfd, const char *base, bool for_dir)
{
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		return for_dir ? 1 : -EISDIR;
	return unlinkat(dirfd, base, 0) < 0 ? -errno : 0;
}

static int at_write_file(struct archive *in, int dirfd, const char *base, mode_t mode,
			 uint64_t max_bytes, struct extract_stats *st, const char *path,
			 struct cdn_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, base,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(err, errno, "creating \"%.200s\"", path);
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(in, &buf, &size, &offset);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return err_set(err, 0, "reading \"%.200s\": %s", path, archive_error_string(in));
		if (size > max_bytes - st->bytes)
			return err_set(err, EFBIG, "archive holds over %llu bytes of data",
				       (unsigned long long)max_bytes);
		st->bytes += size;
		for (size_t done = 0; done < size;) {
			ssize_t w = pwrite(fd, (const char *)buf + done, size - done,
					   (off_t)offset + (off_t)done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return err_set(err, w < 0 ? errno : EIO, "writing \"%.200s\"", path);
			done += (size_t)w;
		}
	}
	return 0;
}

static void at_set_time(int dirfd, const char *base, struct archive_entry *e)
{
	if (!archive_entry_mtime_is_set(e))
		return;
	struct timespec ts[2] = {
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
	};
	utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW); /* best effort, like libarchive's */
}

static int at_entry(struct archive *in, struct archive_entry *e, int rootfd, uint64_t max_bytes,
		    struct extract_stats *st, struct cdn_err *err)
{
	char path[EXTRACT_MAX_PATH + 2];
	const char *name = archive_entry_pathname(e);
	int r = extract_clean_path(name, path, sizeof(path));
	if (r < 0)
		return err_set(err, 0, "entry \"%.200s\": %s", name ? name : "?", extract_reason(r));
	if (r == 1)
		return 0; /* the root itself */
	if (archive_entry_hardlink(e))
		return err_set(err, 0, "entry \"%.200s\": hard links are refused", path);
	mode_t type = archive_entry_filetype(e);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
		st->skipped++; /* devices would be host devices; FIFOs, sockets: no use */
		return 0;
	}
	/* No setuid/setgid/sticky: the workspace is a host directory too. */
	mode_t mode = archive_entry_perm(e) & 0777;
	char walk[EXTRACT_MAX_PATH + 2];
	memcpy(walk, path, strlen(path) + 1);
	const char *base = NULL;
	int dirfd = at_open_parent(rootfd, walk, &base);
	if (dirfd < 0)
		return err_set(err, 0, "entry \"%.200s\": %s", path, extract_reason(dirfd));
	_cleanup_close_ int dfd = dirfd;
	r = at_clear(dfd, base, type == AE_IFDIR);
	if (r < 0)
		return err_set(err, -r, "entry \"%.200s\": replacing what is there", path);
	if (type == AE_IFDIR) {
		if (r == 0 && mkdirat(dfd, base, 0700) < 0)
			return err_set(err, errno, "creating directory \"%.200s\"", path);
		/* The owner keeps access whatever the archive says: the walk must get through. */
		if (fchmodat(dfd, base, mode | 0700, 0) < 0)
			return err_set(err, errno, "chmod \"%.200s\"", path);
	} else if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);
		if (!target || strlen(target) > EXTRACT_MAX_PATH)
			return err_set(err, 0, "entry \"%.200s\": bad symlink target", path);
		if (symlinkat(target, dfd, base) < 0)
			return err_set(err, errno, "creating symlink \"%.200s\"", path);
	} else {
		r = at_write_file(in, dfd, base, mode, max_bytes, st, path, err);
		if (r < 0)
			return r;
	}
	at_set_time(dfd, base, e);
	st->entries++;
	return 0;
}

int extract_tar_at(int archive_fd, int rootfd, const struct extract_limits *lim,
		   struct extract_stats *ret, struct cdn_err *err)
{
	*ret = (struct extract_stats){0};
	uint64_t max_entries = lim && lim->max_entries ? lim->max_entries : EXTRACT_MAX_ENTRIES;
	uint64_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : EXTRACT_MAX_BYTES;
	struct archive *in = extract_reader(archive_fd, err);
	if (!in)
		return -EINVAL;
	int r = 0;
	for (uint64_t seen = 0;;) {
		struct archive_entry *entry;
		int ar = archive_read_next_header(in, &entry);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar < ARCHIVE_WARN) {
			r = err_set(err, 0, "reading the archive: %s", archive_error_string(in));
			break;
		}
		if (++seen > max_entries) {
			r = err_set(err, 0, "archive has over %llu entries",
				    (unsigned long long)max_entries);
			break;
		}
		if ((r = at_entry(in, entry, rootfd, max_bytes, ret, err)) < 0)
			break;
	}
	archive_read_free(in);
	return r;
}
