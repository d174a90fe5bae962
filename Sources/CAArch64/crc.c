#include "caarch64.h"

/* Eight tables per polynomial: table[k][b] is the CRC of byte b followed by k zero bytes. */
static uint32_t tables[2][8][256];
static int ready[2];

static void build(int which)
{
    uint32_t poly = which ? 0x82F63B78u : 0xEDB88320u;  /* reflected polynomials */
    for (int b = 0; b < 256; b++) {
        uint32_t c = (uint32_t)b;
        for (int i = 0; i < 8; i++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
        tables[which][0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++) {
            uint32_t c = tables[which][k - 1][b];
            tables[which][k][b] = tables[which][0][c & 0xFF] ^ (c >> 8);
        }
    __atomic_store_n(&ready[which], 1, __ATOMIC_RELEASE);
}

uint32_t pvm_crc32(uint32_t crc, uint64_t data, int bytes, int castagnoli)
{
    int which = castagnoli ? 1 : 0;
    /* Building twice from two threads writes the same values: harmless. */
    if (!__atomic_load_n(&ready[which], __ATOMIC_ACQUIRE))
        build(which);
    const uint32_t (*t)[256] = tables[which];
    if (bytes == 8) {
        uint64_t x = data ^ crc;
        return t[7][x & 0xFF] ^ t[6][(x >> 8) & 0xFF] ^ t[5][(x >> 16) & 0xFF] ^ t[4][(x >> 24) & 0xFF] ^
               t[3][(x >> 32) & 0xFF] ^ t[2][(x >> 40) & 0xFF] ^ t[1][(x >> 48) & 0xFF] ^ t[0][x >> 56];
    }
    for (int i = 0; i < bytes; i++) {
        crc = t[0][(crc ^ (uint32_t)(data >> (8 * i))) & 0xFF] ^ (crc >> 8);
    }
    return crc;
}
