/* Workspaces: a host directory bound read-write into a sandbox (the daiv endpoint: an
 * archive in, the files its commands changed out).
 *
 * A workspace is <state>/work/<id>, a tmpfs of a bounded size mounted by the daemon (so what
 * sandboxes write there costs bounded memory, never the host's disk, and a reboot clears it).
 * The daemon fills it from an untrusted archive (extract_tar_at: nothing lands outside it),
 * remembers a digest of every file, and after the commands packs what is new or changed into
 * a tar.gz. Reading back what sandboxes wrote never follows a symlink and opens regular files
 * only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define WS_MAX_ENTRIES 100000      /* files + dirs + symlinks in one workspace */
#define WS_MAX_DEPTH 128           /* directory levels walked */
#define WS_MAX_OUT_BYTES (256u << 20) /* the changed-files archive, before base64 */

struct ws_snapshot;

struct workspace {
	char *path;    /* <state>/work/<id> */
	int fd;        /* the root, O_PATH */
	bool mounted;
};

/* Create and mount the workspace (tmpfs of disk_bytes, max_files inodes). */
int ws_create(const char *state_dir, const char *id, uint64_t disk_bytes, uint64_t max_files,
	      struct workspace *ret, struct cdn_err *err);
/* Unmount and remove. */
void ws_destroy(struct workspace *w);
/* At daemon start: unmount and remove every workspace a previous daemon left (kill -9). */
int ws_sweep(const char *state_dir, uint64_t *ret_n, struct cdn_err *err);

/* Extract a tar (gz, ...) held in memory into the workspace. */
int ws_extract(struct workspace *w, const void *tar, size_t len, struct cdn_err *err);

/* Digest of every regular file and symlink below the root. */
int ws_snapshot_take(struct workspace *w, struct ws_snapshot **ret, struct cdn_err *err);
void ws_snapshot_free(struct ws_snapshot *s);
/* A tar.gz of the regular files and symlinks that are new or differ (content, mode, link
 * target) from before. *ret_len 0 and *ret NULL when nothing changed. */
int ws_changed_tar(struct workspace *w, const struct ws_snapshot *before, void **ret,
		   size_t *ret_len, struct cdn_err *err);

/* Base64 (RFC 4648, no line breaks) with libcrypto. decode: -EINVAL on bad input. */
int ws_b64_decode(const char *in, size_t len, void **ret, size_t *ret_len);
char *ws_b64_encode(const void *in, size_t len);
