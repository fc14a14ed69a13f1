/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC-32C (Castagnoli), via isa-l's crc32_iscsi.
 *
 * crc32c() is the standard CRC-32C (init ~0, final xor ~0):
 * crc32c(0, "123456789", 9) == 0xe3069283. It chains:
 * crc32c(crc32c(0, a, la), b, lb) == crc32c(0, a||b, la+lb).
 */
#ifndef KEEL_COMMON_CRC_H
#define KEEL_COMMON_CRC_H

#include <stddef.h>
#include <stdint.h>

#define KEEL_BLOCK_SIZE 4096u
#define KEEL_BLOCK_SHIFT 12

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* CRC-32C of each KEEL_BLOCK_SIZE block of @buf; @len must be a multiple of
 * the block size. Writes len / KEEL_BLOCK_SIZE values to @out. */
void crc32c_blocks(const void *buf, size_t len, uint32_t *out);

/* CRC-32C of a block of zeroes (precomputed). */
uint32_t crc32c_zero_block(void);

#endif
