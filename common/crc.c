/* SPDX-License-Identifier: Apache-2.0 */
#include "crc.h"

#include <isa-l/crc.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* isa-l's crc32_iscsi neither pre- nor post-inverts. */
	return ~crc32_iscsi((unsigned char *)buf, (int)len, ~crc);
}

void crc32c_blocks(const void *buf, size_t len, uint32_t *out)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len / KEEL_BLOCK_SIZE; i++)
		out[i] = crc32c(0, p + i * KEEL_BLOCK_SIZE, KEEL_BLOCK_SIZE);
}

uint32_t crc32c_zero_block(void)
{
	static uint32_t zero_crc;
	static int done;

	if (!done) {
		static const unsigned char zero[KEEL_BLOCK_SIZE];

		zero_crc = crc32c(0, zero, sizeof(zero));
		done = 1;
	}
	return zero_crc;
}
