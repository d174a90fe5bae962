/* One regression check printed as a console line (GuestImages/include/payload.h). */
#include "payload.h"

void checks_record(struct checks *c, const char *name, u64 got, u64 expected)
{
    c->run++;
    console_puts(c->prefix);
    if (got == expected) {
        console_puts(": ok ");
        console_puts(name);
        console_putc('\n');
        return;
    }
    c->failed++;
    console_puts(": FAIL ");
    console_puts(name);
    console_puts(" got ");
    console_hex(got);
    console_puts(" expected ");
    console_hex(expected);
    console_putc('\n');
}
