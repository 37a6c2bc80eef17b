#ifndef FORYOU_CCHECKSUM_H
#define FORYOU_CCHECKSUM_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the SSE 4.2 CRC32 instruction (CRC-32C in hardware), else 0.
int foryou_crc32c_hw_available(void);
/// Continues a CRC-32C (the running, not yet inverted, value) over n bytes with the CRC32
/// instruction. Only call when foryou_crc32c_hw_available() says 1.
uint32_t foryou_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n);

#endif
