/*
 * The AArch64 boot configuration: struct pvm_boot_config (pvm_abi.h) built from the FDT the VMM
 * wrote (the AArch64 guest contract, GuestImages/README.md), so the common code reads the same
 * fields on both architectures. pvmfw and every payload run it on the same blob. The host is not
 * trusted: anything missing, duplicated, of the wrong size or out of place refuses the FDT.
 */
#include "pvm_guest.h"
#include "fdt.h"

/* The one child of `parent` named `base` or `base@...`: 1, 0 (none) or -1 (two, or malformed). */
static int find_child(const struct fdt *f, int parent, const char *base, int *found)
{
    int child = -1, r, n = 0;
    while ((r = fdt_next_child(f, parent, &child)) == 1) {
        if (fdt_node_is(f, child, base)) {
            *found = child;
            n++;
        }
    }
    if (r < 0 || n > 1)
        return -1;
    return n;
}

/* A property of exactly `size` bytes: 1, 0 (absent) or -1 (malformed or another size). */
static int prop_sized(const struct fdt *f, int node, const char *name, uint32_t size,
                      const u8 **value)
{
    uint32_t len;
    int r = fdt_prop(f, node, name, value, &len);
    if (r == 1 && len != size)
        return -1;
    return r;
}

/* A u32 cell. */
static bool prop_u32(const struct fdt *f, int node, const char *name, u32 *out)
{
    const u8 *v;
    if (prop_sized(f, node, name, 4, &v) != 1)
        return false;
    *out = fdt_be32(v);
    return true;
}

/* A number of one or two cells: crosvm writes kernel-address/size as u32, pvm as u64. */
static bool prop_number(const struct fdt *f, int node, const char *name, u64 *out)
{
    const u8 *v;
    uint32_t len;
    if (fdt_prop(f, node, name, &v, &len) != 1)
        return false;
    if (len == 4)
        *out = fdt_be32(v);
    else if (len == 8)
        *out = fdt_be64(v);
    else
        return false;
    return true;
}

/*
 * The console: the node /chosen/stdout-path names ("/<node>[:options]", a child of the root,
 * compatible with "arm,pl011"), or PVM_A64_UART_MMIO_GPA without one.
 */
static const char *console_address(const struct fdt *f, int chosen, u64 *gpa)
{
    const u8 *path;
    uint32_t len;
    int r = chosen >= 0 ? fdt_prop(f, chosen, "stdout-path", &path, &len) : 0;
    if (r < 0)
        return "FDT: bad /chosen";
    if (r == 0) {
        *gpa = PVM_A64_UART_MMIO_GPA;
        return NULL;
    }
    if (len < 2 || path[len - 1] != 0 || path[0] != '/')
        return "FDT: stdout-path is not an absolute path";
    uint32_t n = 1;
    while (path[n] != 0 && path[n] != ':') {
        if (path[n] == '/')
            return "FDT: stdout-path is not a child of the root";
        n++;
    }
    if (n == 1)
        return "FDT: stdout-path names no node";

    int child = -1, uart = -1, matches = 0;
    while ((r = fdt_next_child(f, f->root, &child)) == 1) {
        if (fdt_node_name_eq(f, child, (const char *)path + 1, n - 1)) {
            uart = child;
            matches++;
        }
    }
    if (r < 0 || matches != 1)
        return "FDT: stdout-path does not name exactly one node";
    const u8 *compatible, *reg;
    uint32_t clen;
    if (fdt_prop(f, uart, "compatible", &compatible, &clen) != 1 ||
        !fdt_string_list_has(compatible, clen, "arm,pl011"))
        return "FDT: the stdout-path node is not an arm,pl011";
    if (prop_sized(f, uart, "reg", 16, &reg) != 1)
        return "FDT: the stdout-path node has no reg of one (address, size) pair";
    *gpa = fdt_be64(reg);
    return NULL;
}

const char *pvm_boot_config_from_fdt(u64 fdt_gpa, u64 avail, struct pvm_boot_config *c)
{
    if ((fdt_gpa & 7) != 0 || fdt_gpa > UINT64_MAX - avail)
        return "FDT: misaligned or wrapping address";
    struct fdt f;
    const char *why = fdt_open(&f, (const void *)(uintptr_t)fdt_gpa, avail);
    if (why != NULL)
        return why;

    /* Root: reg values are (u64 address, u64 size). */
    u32 address_cells, size_cells;
    if (!prop_u32(&f, f.root, "#address-cells", &address_cells) ||
        !prop_u32(&f, f.root, "#size-cells", &size_cells) || address_cells != 2 || size_cells != 2)
        return "FDT: the root's #address-cells and #size-cells must be 2";

    int memory = -1, cpus = -1, chosen = -1, config = -1;
    if (find_child(&f, f.root, "memory", &memory) != 1)
        return "FDT: not exactly one /memory node";
    if (find_child(&f, f.root, "cpus", &cpus) != 1)
        return "FDT: not exactly one /cpus node";
    if (find_child(&f, f.root, "chosen", &chosen) < 0)
        return "FDT: two /chosen nodes";
    if (find_child(&f, f.root, "config", &config) != 1)
        return "FDT: not exactly one /config node";

    /* RAM: one region, and the FDT inside it. */
    const u8 *v;
    if (prop_sized(&f, memory, "reg", 16, &v) != 1)
        return "FDT: /memory reg is not one (address, size) pair";
    u64 ram_base = fdt_be64(v), ram_size = fdt_be64(v + 8), ram_end;
    if (ram_size == 0 || __builtin_add_overflow(ram_base, ram_size, &ram_end))
        return "FDT: bad /memory reg";
    if (fdt_gpa < ram_base || fdt_gpa + f.size > ram_end)
        return "FDT: the blob is not inside RAM";

    /* vCPUs: the cpu@N nodes. */
    u32 vcpus = 0;
    int child = -1, r;
    while ((r = fdt_next_child(&f, cpus, &child)) == 1) {
        if (fdt_node_is(&f, child, "cpu"))
            vcpus++;
    }
    if (r < 0 || vcpus == 0)
        return "FDT: no /cpus/cpu@N node";

    u64 console_mmio;
    if ((why = console_address(&f, chosen, &console_mmio)) != NULL)
        return why;
    /* The payloads map the first GiB as Device memory: the UART must be a page in there. */
    if ((console_mmio & (PVM_PAGE_SIZE - 1)) != 0 || console_mmio > (1ULL << 30) - PVM_PAGE_SIZE)
        return "FDT: the console is not a page in the first GiB";

    /* /config: the payload and its load window. */
    u64 payload_gpa, payload_size, argument = 0;
    if (!prop_number(&f, config, "kernel-address", &payload_gpa) ||
        !prop_number(&f, config, "kernel-size", &payload_size))
        return "FDT: bad /config kernel-address or kernel-size";
    const u8 *sha256, *window;
    if (prop_sized(&f, config, "pvm,payload-sha256", 32, &sha256) != 1)
        return "FDT: bad /config pvm,payload-sha256";
    if ((r = prop_sized(&f, config, "pvm,payload-argument", 8, &v)) < 0)
        return "FDT: bad /config pvm,payload-argument";
    if (r == 1)
        argument = fdt_be64(v);
    if (prop_sized(&f, config, "pvm,load-window", 16, &window) != 1)
        return "FDT: bad /config pvm,load-window";
    int protected_vm = prop_sized(&f, config, "pvm,protected", 0, &v);
    if (protected_vm < 0)
        return "FDT: bad /config pvm,protected (must be empty)";
    u64 window_start = fdt_be64(window), window_end = fdt_be64(window + 8);
    /* The load window ends where the FDT starts: loading the payload must not overwrite it. */
    if (window_end > fdt_gpa)
        return "FDT: the load window overlaps the FDT";

    c->magic = PVM_CONFIG_MAGIC;
    c->version = PVM_CONFIG_VERSION;
    c->total_size = PVM_CONFIG_SIZE;
    c->flags = protected_vm == 1 ? PVM_CONFIG_FLAG_PROTECTED : 0;
    c->payload_gpa = payload_gpa;
    c->payload_size = payload_size;
    memcpy(c->payload_sha256, sha256, 32);
    c->ram_base = ram_base;
    c->ram_size = ram_size;
    c->console_page_gpa = 0;  /* a PL011 needs no buffer page */
    c->console_mmio_gpa = console_mmio;
    c->vcpu_count = vcpus;
    c->reserved = 0;
    c->payload_argument = argument;
    c->load_window_start = window_start;
    c->load_window_end = window_end;
    return NULL;
}
