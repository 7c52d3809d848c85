#include "redact.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int redact_init(struct redactor *r, const char *const *secrets, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->secrets = secrets;
	r->n_secrets = n;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(secrets[i]);
		if (len > r->max_len)
			r->max_len = len;
	}
	if (r->max_len > 0) {
		r->pending = malloc(r->max_len);
		if (!r->pending)
			return -ENOMEM;
	}
	return 0;
}

void redact_release(struct redactor *r)
{
	free(r->pending);
	free(r->work);
	r->pending = r->work = NULL;
}

/* 1: a secret matches completely at buf[0..] (the longest one, its length in *ret_len);
 * 0: none can match; -1: a secret longer than any full match may still match, more bytes are
 * needed to decide (never at the end of the stream, `final`). Preferring the longest match keeps "abc" from revealing the tail of a
 * secret "abcdef". */
static int match_at(const struct redactor *r, const char *buf, size_t avail, bool final,
		    size_t *ret_len)
{
	size_t best = 0;
	bool partial = false;
	for (size_t i = 0; i < r->n_secrets; i++) {
		size_t len = strlen(r->secrets[i]);
		if (len == 0)
			continue;
		if (avail >= len) {
			if (len > best && !memcmp(buf, r->secrets[i], len))
				best = len;
		} else if (!memcmp(buf, r->secrets[i], avail)) {
			partial = true;
		}
	}
	if (partial && !final)
		return -1;
	*ret_len = best;
	return best ? 1 : 0;
}

/* Scan buf; emit everything that is decided; return how many trailing bytes must wait. */
static size_t scan(struct redactor *r, const char *buf, size_t len, redact_emit_fn emit,
		   void *ud, int final)
{
	size_t start = 0, i = 0;
	while (i < len) {
		size_t mlen = 0;
		int m = match_at(r, buf + i, len - i, final, &mlen);
		if (m == 1) {
			if (i > start)
				emit(ud, buf + start, i - start);
			emit(ud, REDACTED, strlen(REDACTED));
			i += mlen;
			start = i;
		} else if (m == -1) {
			break;
		} else {
			i++;
		}
	}
	if (i > start)
		emit(ud, buf + start, i - start);
	return len - i;
}

int redact_feed(struct redactor *r, const char *buf, size_t len, redact_emit_fn emit, void *ud)
{
	if (r->max_len == 0) {
		if (len)
			emit(ud, buf, len);
		return 0;
	}
	/* Scan the held-back bytes followed by the new chunk as one buffer. */
	size_t total = r->n_pending + len;
	if (total > r->cap) {
		char *nb = realloc(r->work, total);
		if (!nb)
			return -ENOMEM;
		r->work = nb;
		r->cap = total;
	}
	memcpy(r->work, r->pending, r->n_pending);
	memcpy(r->work + r->n_pending, buf, len);
	size_t keep = scan(r, r->work, total, emit, ud, 0);
	/* keep < max_len: a proper prefix of a secret is shorter than the secret. */
	memcpy(r->pending, r->work + total - keep, keep);
	r->n_pending = keep;
	return 0;
}

void redact_flush(struct redactor *r, redact_emit_fn emit, void *ud)
{
	if (r->n_pending)
		scan(r, r->pending, r->n_pending, emit, ud, 1);
	r->n_pending = 0;
}
