/* Regression checks printed as console lines (GuestImages/include/payload.h). */
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

void checks_summary(const struct checks *c)
{
    console_puts(c->prefix);
    if (c->failed == 0) {
        console_puts(": ");
        console_dec(c->run);
        console_putc('/');
        console_dec(c->run);
        console_puts(" checks passed\n");
    } else {
        console_puts(": FAILED ");
        console_dec(c->failed);
        console_puts(" of ");
        console_dec(c->run);
        console_puts(" checks\n");
    }
}
