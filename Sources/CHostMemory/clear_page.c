#include "chostmemory.h"
#include <string.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

void pvm_clear_page(void *page) {
#if defined(__x86_64__)
    __m128i zero = _mm_setzero_si128();
    __m128i *p = (__m128i *)page;
    for (int i = 0; i < 4096 / 16; i += 4) {
        _mm_stream_si128(p + i, zero);
        _mm_stream_si128(p + i + 1, zero);
        _mm_stream_si128(p + i + 2, zero);
        _mm_stream_si128(p + i + 3, zero);
    }
    /* Order the streaming stores before any later store that publishes the page. */
    _mm_sfence();
#else
    memset(page, 0, 4096);
#endif
}
