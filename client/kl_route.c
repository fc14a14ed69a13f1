/* SPDX-License-Identifier: Apache-2.0 */
/* libkeel pure helpers: split, route, retry verdicts, iovec copies. */
#include <errno.h>
#include <string.h>

#include "client/kl_int.h"

void kl_split_next(uint64_t off, uint64_t end, uint32_t object_size, struct kl_extent *out)
{
	uint64_t in_obj = off % object_size;
	uint64_t len = end - off;

	if (len > object_size - in_obj) {
		len = object_size - in_obj;
	}
	if (len > KP_MAX_DATA) {
		len = KP_MAX_DATA;
	}
	out->objno = off / object_size;
	out->obj_off = (uint32_t)in_obj;
	out->len = (uint32_t)len;
}

int kl_route_object(const struct cmap *m, uint32_t pool, uint64_t inode, uint64_t objno,
		    struct kl_route *out)
{
	const struct cmap_pool *p;
	const struct cmap_pg *pg;
	const struct cmap_server *srv;
	uint32_t pgno;

	memset(out, 0, sizeof(*out));
	if (!m) {
		return -ENOENT;
	}
	p = cmap_pool(m, pool);
	if (!p || !p->pg_count) {
		return -ENOENT;
	}
	pgno = cmap_object_pg(inode, objno, p->pg_count);
	out->pgid = KP_PGID(pool, pgno);
	pg = cmap_pg(m, pool, pgno);
	if (!pg || !pg->primary) {
		return -EAGAIN;
	}
	srv = cmap_server(m, pg->primary);
	if (!srv || !srv->addr[0] || srv->id > KL_MAX_SERVER_ID) {
		return -EAGAIN;
	}
	out->server = srv->id;
	out->addr = srv->addr;
	return 0;
}

enum kl_verdict kl_classify(uint16_t opcode, int err, int *surface)
{
	*surface = 0;
	switch (-err) {
	case 0:
		return KL_V_OK;
	case ESTALE:
		return KL_V_RETRY_MAP;
	case EROFS:
		return KL_V_REOPEN;
	case EAGAIN:
	case EBUSY:
	case ETIMEDOUT:
	case EBADMSG: /* transit corruption: resend */
		return KL_V_RETRY_BACKOFF;
	case ENOENT:
		if (opcode != KP_OP_READ && opcode != KP_OP_WRITE) {
			return KL_V_OK;
		}
		*surface = -EIO;
		return KL_V_FAIL;
	case EINVAL:
	case ERANGE:
	case EIO:
	case ENOSPC:
	case EPERM:
		*surface = err;
		return KL_V_FAIL;
	default:
		*surface = -EIO;
		return KL_V_FAIL;
	}
}

uint64_t kl_backoff_next(uint64_t cur)
{
	if (!cur) {
		return KL_BACKOFF_MIN_NS;
	}
	cur *= 2;
	return cur > KL_BACKOFF_MAX_NS ? KL_BACKOFF_MAX_NS : cur;
}

/* Find the entry holding byte @off: index and offset within it. */
static int iov_seek(const struct iovec *iov, int iovcnt, uint64_t off, size_t *in)
{
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (off < iov[i].iov_len) {
			break;
		}
		off -= iov[i].iov_len;
	}
	*in = (size_t)off;
	return i;
}

void kl_iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t off, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t in;
	int i = iov_seek(iov, iovcnt, off, &in);

	for (; len && i < iovcnt; i++, in = 0) {
		size_t n = iov[i].iov_len - in;

		if (n > len) {
			n = len;
		}
		memcpy(dst, (const uint8_t *)iov[i].iov_base + in, n);
		dst += n;
		len -= n;
	}
}

void kl_iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t off, const void *buf,
		     size_t len)
{
	const uint8_t *src = buf;
	size_t in;
	int i = iov_seek(iov, iovcnt, off, &in);

	for (; len && i < iovcnt; i++, in = 0) {
		size_t n = iov[i].iov_len - in;

		if (n > len) {
			n = len;
		}
		memcpy((uint8_t *)iov[i].iov_base + in, src, n);
		src += n;
		len -= n;
	}
}

const void *kl_iov_contig(const struct iovec *iov, int iovcnt, uint64_t off, size_t len)
{
	size_t in, have;
	int i = iov_seek(iov, iovcnt, off, &in);
	const uint8_t *start, *end;

	if (i >= iovcnt) {
		return NULL;
	}
	/* Vectors that follow each other in memory count as one: a guest's
	 * chain of 4 KiB descriptors over contiguous pages needs no bounce. */
	start = (const uint8_t *)iov[i].iov_base + in;
	have = iov[i].iov_len - in;
	end = start + have;
	while (have < len && ++i < iovcnt && iov[i].iov_base == end) {
		have += iov[i].iov_len;
		end += iov[i].iov_len;
	}
	return have >= len ? start : NULL;
}

uint64_t kl_iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t total = 0;

	for (int i = 0; i < iovcnt; i++) {
		if (total + iov[i].iov_len < total) {
			return UINT64_MAX;
		}
		total += iov[i].iov_len;
	}
	return total;
}
