/* hello: the smallest guest. Says hello, describes the machine, powers off. */
#include "payload.h"

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);
    console_puts(is_protected(config) ? "Hello from a protected pvm guest!\n"
                                      : "Hello from a non-protected pvm guest!\n");
    console_puts("vCPUs: ");
    console_dec(config->vcpu_count);
    console_puts(", RAM: ");
    console_dec(config->ram_size >> 20);
    console_puts(" MiB\n");
    psci_system_off();
}
