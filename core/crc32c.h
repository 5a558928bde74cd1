/* core/crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 * Defines: cr_crc32c, cr_crc32c_extend, cr_crc32c_mask.
 *
 * Used by the TensorBoard event writer (TFRecord framing) and anything else that
 * needs the iSCSI/ext4 checksum. Table-driven, one byte at a time: the records it
 * protects are small, so speed does not matter here. */
#ifndef CRUCIBLE_CORE_CRC32C_H
#define CRUCIBLE_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes (init 0xFFFFFFFF, final xor 0xFFFFFFFF): cr_crc32c("123456789") = 0xE3069283. */
uint32_t cr_crc32c(const void *data, size_t n);
/* Continue a CRC: cr_crc32c_extend(cr_crc32c(a), b) == cr_crc32c(a || b). */
uint32_t cr_crc32c_extend(uint32_t crc, const void *data, size_t n);
/* TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8 (so that a CRC of
 * data containing CRCs is not trivially related to them). */
uint32_t cr_crc32c_mask(uint32_t crc);

#endif
