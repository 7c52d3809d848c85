/* Workspaces for the daiv endpoint: a bounded tmpfs per request, filled from an untrusted
 * archive, and the tar.gz of what the sandboxed commands changed in it. */
#include "server/workspace.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "cli/extract.h"
#include "cli/rmtree.h"

#define WS_DIR "work"

struct ws_file {
	char *path;          /* relative to the root */
	mode_t mode;         /* type and permission bits */
	unsigned char digest[32]; /* sha256 of the content, or of the symlink's target */
};

struct ws_snapshot {
	struct ws_file *files;
	size_t n, cap;
};

/* ---- create, destroy, sweep --------------------------------------------------------------- */

static int ws_parent(const char *state_dir, bool create, char **ret)
{
	if (asprintf(ret, "%s/" WS_DIR, state_dir) < 0)
		return -ENOMEM;
	if (create && mkdir(*ret, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		free(*ret);
		return e;
	}
	return 0;
}

int ws_create(const char *state_dir, const char *id, uint64_t disk_bytes, uint64_t max_files,
	      struct workspace *ret, struct cdn_err *err)
{
	*ret = (struct workspace){.fd = -1};
	_cleanup_free_ char *parent = NULL;
	int r = ws_parent(state_dir, true, &parent);
	if (r < 0)
		return err_set(err, -r, "creating the workspaces directory");
	if (asprintf(&ret->path, "%s/%s", parent, id) < 0)
		return err_set(err, ENOMEM, "workspace path");
	if (mkdir(ret->path, 0700) < 0) {
		r = err_set(err, errno, "creating workspace \"%s\"", ret->path);
		free(TAKE_PTR(ret->path));
		return r;
	}
	char opts[128];
	/* nosuid/nodev: nothing a sandbox leaves there means anything to the host. The size and
	 * inode caps bound what commands can write (host memory, never the host's disk). */
	snprintf(opts, sizeof(opts), "mode=0700,size=%llu,nr_inodes=%llu",
		 (unsigned long long)disk_bytes, (unsigned long long)max_files);
	if (mount("cordon-ws", ret->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		r = err_set(err, errno, "mounting workspace \"%s\"", ret->path);
		ws_destroy(ret);
		return r;
	}
	ret->mounted = true;
	ret->fd = open(ret->path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ret->fd < 0) {
		r = err_set(err, errno, "opening workspace \"%s\"", ret->path);
		ws_destroy(ret);
		return r;
	}
	return 0;
}

void ws_destroy(struct workspace *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (!w->path)
		return;
	if (w->mounted)
		umount2(w->path, MNT_DETACH);
	w->mounted = false;
	if (rmdir(w->path) < 0 && errno != ENOENT) {
		/* Not a mount (mount failed half way): remove what is there. */
		char *slash = strrchr(w->path, '/');
		*slash = 0;
		int pfd = open(w->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		*slash = '/';
		if (pfd >= 0) {
			rmtree_at(pfd, slash + 1);
			close(pfd);
		}
	}
	free(TAKE_PTR(w->path));
}

int ws_sweep(const char *state_dir, uint64_t *ret_n, struct cdn_err *err)
{
	*ret_n = 0;
	_cleanup_free_ char *parent = NULL;
	if (ws_parent(state_dir, false, &parent) < 0)
		return err_set(err, ENOMEM, "workspace path");
	DIR *d = opendir(parent);
	if (!d)
		return errno == ENOENT ? 0 : err_set(err, errno, "opening \"%s\"", parent);
	int rc = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		struct workspace w = {.fd = -1, .mounted = true};
		if (asprintf(&w.path, "%s/%s", parent, e->d_name) < 0) {
			rc = err_set(err, ENOMEM, "workspace path");
			break;
		}
		ws_destroy(&w);
		(*ret_n)++;
	}
	closedir(d);
	return rc;
}

/* ---- extraction --------------------------------------------------------------------------- */

int ws_extract(struct workspace *w, const void *tar, size_t len, struct cdn_err *err)
{
	/* libarchive reads from an fd: a memfd holds the decoded archive. */
	_cleanup_close_ int mfd = memfd_create("cordon-archive", MFD_CLOEXEC);
	if (mfd < 0)
		return err_set(err, errno, "memfd_create");
	int r = write_all(mfd, tar, len);
	if (r < 0 || lseek(mfd, 0, SEEK_SET) < 0)
		return err_set(err, r < 0 ? -r : errno, "buffering the archive");
	_cleanup_close_ int root = openat(w->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return err_set(err, errno, "opening the workspace");
	struct extract_stats st;
	struct extract_limits caps = {.max_entries = WS_MAX_ENTRIES};
	return extract_tar_at(mfd, root, &caps, &st, err);
}

/* ---- snapshots ---------------------------------------------------------------------------- */

static int snap_add(struct ws_snapshot *s, const char *path, mode_t mode,
		    const unsigned char *digest)
{
	if (s->n >= WS_MAX_ENTRIES)
		return -E2BIG;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct ws_file *nf = realloc(s->files, cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		s->files = nf;
		s->cap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	s->files[s->n].path = p;
	s->files[s->n].mode = mode;
	memcpy(s->files[s->n].digest, digest, 32);
	s->n++;
	return 0;
}

static int digest_fd(int fd, unsigned char out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	char buf[65536];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	unsigned int len = 32;
	if (rc == 0)
		EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* Open a regular file below dirfd for reading, never through a symlink and never a FIFO
 * or device (O_NONBLOCK: a FIFO left by a sandbox must not hang the daemon). */
static int open_regular(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int snap_walk(struct ws_snapshot *s, int dir, char *path, size_t plen, unsigned depth)
{
	if (depth > WS_MAX_DEPTH)
		return -ELOOP;
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t nl = strlen(e->d_name);
		if (plen + nl + 2 > PATH_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		size_t save = plen;
		if (plen)
			path[plen++] = '/';
		memcpy(path + plen, e->d_name, nl + 1);
		struct stat st;
		unsigned char dg[32] = {0};
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = -errno;
			} else {
				rc = snap_walk(s, sub, path, plen + nl, depth + 1);
				close(sub);
			}
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t tl = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
			if (tl < 0) {
				rc = -errno;
			} else {
				unsigned int len = 32;
				EVP_Digest(target, (size_t)tl, dg, &len, EVP_sha256(), NULL);
				rc = snap_add(s, path, st.st_mode, dg);
			}
		} else if (S_ISREG(st.st_mode)) {
			int f = open_regular(dirfd(d), e->d_name);
			rc = f < 0 ? f : digest_fd(f, dg);
			if (f >= 0)
				close(f);
			if (rc == 0)
				rc = snap_add(s, path, st.st_mode, dg);
		} /* FIFOs, sockets: not files to hand back */
		plen = save;
		path[plen] = 0;
	}
	closedir(d);
	return rc;
}

static int snap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ws_file *)a)->path, ((const struct ws_file *)b)->path);
}

int ws_snapshot_take(struct workspace *w, struct ws_snapshot **ret, struct cdn_err *err)
{
	*ret = NULL;
	struct ws_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, ENOMEM, "snapshot");
	_cleanup_close_ int root = openat(w->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char path[PATH_MAX + 1] = "";
	int r = root < 0 ? -errno : snap_walk(s, root, path, 0, 0);
	if (r < 0) {
		ws_snapshot_free(s);
		return err_set(err, -r, "reading the workspace");
	}
	qsort(s->files, s->n, sizeof(*s->files), snap_cmp);
	*ret = s;
	return 0;
}

void ws_snapshot_free(struct ws_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->files[i].path);
	free(s->files);
	free(s);
}

/* ---- the changed-files archive ------------------------------------------------------------ */

struct membuf {
	char *buf;
	size_t len, cap;
	bool over;
};

static la_ssize_t membuf_write(struct archive *a, void *ud, const void *data, size_t n)
{
	struct membuf *m = ud;
	if (m->len + n > WS_MAX_OUT_BYTES) {
		m->over = true;
		archive_set_error(a, EFBIG, "changed files over %u bytes", WS_MAX_OUT_BYTES);
		return -1;
	}
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 65536;
		while (cap < m->len + n)
			cap *= 2;
		char *nb = realloc(m->buf, cap);
		if (!nb) {
			archive_set_error(a, ENOMEM, "out of memory");
			return -1;
		}
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, data, n);
	m->len += n;
	return (la_ssize_t)n;
}

/* Open the directory holding path's last component, walking with O_NOFOLLOW. */
static int open_parent_nofollow(int rootfd, const char *path, const char **ret_base)
{
	int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	const char *p = path;
	char comp[NAME_MAX + 1];
	while (cur >= 0) {
		size_t n = strcspn(p, "/");
		if (!p[n])
			break;
		if (n > NAME_MAX) {
			close(cur);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(cur);
		cur = next;
		p += n + 1;
	}
	if (cur < 0)
		return -errno;
	*ret_base = p;
	return cur;
}

static const struct ws_file *snap_find(const struct ws_snapshot *s, const char *path)
{
	struct ws_file key = {.path = (char *)path};
	return bsearch(&key, s->files, s->n, sizeof(*s->files), snap_cmp);
}

static int tar_add(struct archive *a, int rootfd, const struct ws_file *f, struct cdn_err *err)
{
	const char *base = NULL;
	_cleanup_close_ int dfd = open_parent_nofollow(rootfd, f->path, &base);
	if (dfd < 0)
		return err_set(err, -dfd, "reading \"%.200s\"", f->path);
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return err_set(err, ENOMEM, "archive entry");
	archive_entry_set_pathname(e, f->path);
	archive_entry_set_perm(e, f->mode & 0777);
	int rc = 0;
	_cleanup_close_ int fd = -1;
	struct stat st = {0};
	if (S_ISLNK(f->mode)) {
		char target[PATH_MAX + 1];
		ssize_t tl = readlinkat(dfd, base, target, sizeof(target) - 1);
		if (tl < 0) {
			rc = err_set(err, errno, "reading symlink \"%.200s\"", f->path);
			goto out;
		}
		target[tl] = 0;
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, target);
	} else {
		fd = open_regular(dfd, base);
		if (fd < 0 || fstat(fd, &st) < 0) {
			rc = err_set(err, fd < 0 ? -fd : errno, "reading \"%.200s\"", f->path);
			goto out;
		}
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, st.st_size);
		archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	}
	if (archive_write_header(a, e) < ARCHIVE_WARN) {
		rc = err_set(err, EIO, "packing \"%.200s\": %s", f->path, archive_error_string(a));
		goto out;
	}
	for (off_t left = st.st_size; fd >= 0 && left > 0;) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf) < (size_t)left ? sizeof(buf) : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = err_set(err, n < 0 ? errno : EIO, "reading \"%.200s\"", f->path);
			goto out;
		}
		if (archive_write_data(a, buf, (size_t)n) < 0) {
			rc = err_set(err, EFBIG, "packing \"%.200s\": %s", f->path,
				     archive_error_string(a));
			goto out;
		}
		left -= n;
	}
out:
	archive_entry_free(e);
	return rc;
}

int ws_changed_tar(struct workspace *w, const struct ws_snapshot *before, void **ret,
		   size_t *ret_len, struct cdn_err *err)
{
	*ret = NULL;
	*ret_len = 0;
	struct ws_snapshot *after = NULL;
	int rc = ws_snapshot_take(w, &after, err);
	if (rc < 0)
		return rc;
	_cleanup_close_ int root = openat(w->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct membuf m = {0};
	struct archive *a = archive_write_new();
	size_t changed = 0;
	if (root < 0 || !a) {
		rc = err_set(err, root < 0 ? errno : ENOMEM, "packing the changed files");
		goto out;
	}
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	if (archive_write_open2(a, &m, NULL, membuf_write, NULL, NULL) != ARCHIVE_OK) {
		rc = err_set(err, EIO, "packing: %s", archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < after->n; i++) {
		const struct ws_file *f = &after->files[i];
		const struct ws_file *old = snap_find(before, f->path);
		if (old && old->mode == f->mode && memcmp(old->digest, f->digest, 32) == 0)
			continue;
		if ((rc = tar_add(a, root, f, err)) < 0)
			goto out;
		changed++;
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		rc = err_set(err, m.over ? EFBIG : EIO, "packing: %s", archive_error_string(a));
		goto out;
	}
	if (changed) {
		*ret = TAKE_PTR(m.buf);
		*ret_len = m.len;
	}
out:
	if (a)
		archive_write_free(a);
	free(m.buf);
	ws_snapshot_free(after);
	return rc;
}

/* ---- base64 ------------------------------------------------------------------------------- */

int ws_b64_decode(const char *in, size_t len, void **ret, size_t *ret_len)
{
	*ret = NULL;
	/* EVP_DecodeBlock wants whole quanta and no whitespace: daiv sends `base64 -w 0`. */
	if (len % 4 != 0 || len > INT_MAX)
		return -EINVAL;
	unsigned char *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0) {
		free(out);
		return -EINVAL;
	}
	/* DecodeBlock counts the padding as zero bytes: take them off. */
	size_t pad = len >= 1 && in[len - 1] == '=' ? (len >= 2 && in[len - 2] == '=' ? 2 : 1) : 0;
	*ret = out;
	*ret_len = (size_t)n - pad;
	return 0;
}

char *ws_b64_encode(const void *in, size_t len)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}
