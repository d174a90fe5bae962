/*
 * AArch64 memset and memcpy: plain loops, eight bytes at a time where the pointers allow it.
 * Every access is naturally aligned, so they also work with the MMU off (pvmfw), where data
 * accesses are Device memory and an unaligned one faults. Built with -fno-builtin, so clang
 * does not turn the loops back into calls to themselves.
 */
#include "pvm_guest.h"

typedef u64 __attribute__((may_alias)) word;

void *memset(void *dst, int c, size_t n)
{
    u8 *d = dst;
    u8 b = (u8)c;
    while (n > 0 && ((uintptr_t)d & 7) != 0) {
        *d++ = b;
        n--;
    }
    u64 w = b * 0x0101010101010101ULL;
    for (; n >= 8; n -= 8, d += 8)
        *(word *)d = w;
    while (n-- > 0)
        *d++ = b;
    return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    if ((((uintptr_t)d ^ (uintptr_t)s) & 7) == 0) {
        while (n > 0 && ((uintptr_t)d & 7) != 0) {
            *d++ = *s++;
            n--;
        }
        for (; n >= 8; n -= 8, d += 8, s += 8)
            *(word *)d = *(const word *)s;
    }
    while (n-- > 0)
        *d++ = *s++;
    return dst;
}
