/* Extracting an untrusted tar archive (tar, tar.gz, tar.xz, tar.zst, ...) into a directory
 * without ever writing outside it. */
#pragma once

#include <stdint.h>

#include "core/util.h"

#define EXTRACT_MAX_ENTRIES 200000
#define EXTRACT_MAX_BYTES (8ULL << 30) /* file data written, all entries together */
#define EXTRACT_MAX_PATH 4096          /* bytes of one entry's name */
#define EXTRACT_MAX_DEPTH 256          /* components of one entry's name */

struct extract_stats {
	uint64_t entries;   /* entries extracted */
	uint64_t bytes;     /* file data written */
	uint64_t skipped;   /* device nodes, FIFOs and sockets left out */
};

/* Extract the archive read from archive_fd into the directory rootfd. Entries are written
 * relative to rootfd only; absolute names and ".." components fail the extraction, device
 * nodes, FIFOs and sockets are skipped (counted in ret->skipped), owners are not restored
 * and setuid/setgid bits are dropped. On failure the directory holds a partial tree that the
 * caller removes. Changes the working directory (restored before returning). */
int extract_tar(int archive_fd, int rootfd, struct extract_stats *ret, struct cdn_err *err);

/* Bounds of one extraction (at most the EXTRACT_MAX_* ones make sense): the daemon's archive
 * uploads take far less than an image. */
struct extract_limits {
	uint64_t max_bytes;   /* file data written, all entries together */
	uint64_t max_entries; /* entries read */
};

/* The same for a threaded caller (the daemon: a daiv workspace): no chdir and no
 * archive_write_disk; every entry is created with *at() calls relative to rootfd, each
 * directory on the way opened with O_NOFOLLOW. Regular files, directories and symlinks are
 * created (a symlink is stored as it is and never followed, neither here nor by a later
 * entry); hard links are refused (a link could name a file the caller must not publish),
 * device nodes, FIFOs and sockets are skipped. Files belong to the caller, setuid/setgid/
 * sticky bits are dropped, mtimes restored. lim may be NULL (the EXTRACT_MAX_* bounds; a 0
 * member too). On failure the directory holds a partial tree. */
int extract_tar_at(int archive_fd, int rootfd, const struct extract_limits *lim,
		   struct extract_stats *ret, struct cdn_err *err);
