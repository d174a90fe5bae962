/*
 * A small read-only, validating flattened-devicetree parser (Devicetree Specification v0.4,
 * chapter 5 "Flattened Devicetree (DTB) Format"), for a blob the host wrote and the guest does
 * not trust. fdt_open checks the header and walks the whole structure block once; every later
 * lookup checks its bounds again, so nothing is read outside the blob even if it changed since.
 * Freestanding; also builds for the host (tests).
 */
#ifndef PVM_FDT_H
#define PVM_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FDT_MAGIC       0xd00dfeedU
#define FDT_HEADER_SIZE 40U
#define FDT_MAX_DEPTH   16U

struct fdt {
    const uint8_t *blob;
    uint32_t size;                       /* totalsize */
    uint32_t struct_off, struct_size;    /* the structure block */
    uint32_t strings_off, strings_size;  /* the strings block */
    int root;                            /* the root node */
};

/*
 * Checks the blob at `blob`, of which at most `avail` bytes may be read: magic, totalsize <=
 * avail, version >= 16 (and last_comp_version <= 17), every block inside totalsize (the
 * structure and strings blocks apart), the memory reservation map terminated, and the structure
 * block well formed: one root node, at offset 0; balanced nodes; properties before subnodes;
 * names NUL-terminated inside their block; property values inside the structure block; an
 * FDT_END. Returns NULL, or why the blob is refused.
 */
const char *fdt_open(struct fdt *fdt, const void *blob, uint64_t avail);

/* Big-endian cells, read a byte at a time (any alignment, Device memory included). */
uint32_t fdt_be32(const uint8_t *p);
uint64_t fdt_be64(const uint8_t *p);

/*
 * Nodes are offsets (into the structure block) of their FDT_BEGIN_NODE token; fdt->root is
 * the root. The lookups return 1 (found), 0 (none) or -1 (malformed).
 */

/* The children of `node`: start with *child = -1; each call moves *child to the next one. */
int fdt_next_child(const struct fdt *fdt, int node, int *child);

/* Whether the node's name is `base` or `base@<unit address>`. */
bool fdt_node_is(const struct fdt *fdt, int node, const char *base);

/* Whether the node's full name (unit address included) is name[0..len). */
bool fdt_node_name_eq(const struct fdt *fdt, int node, const char *name, uint32_t len);

/* The property `name` of `node`: its value and length. A property defined twice is malformed. */
int fdt_prop(const struct fdt *fdt, int node, const char *name, const uint8_t **value,
             uint32_t *len);

/* Whether a string-list value (NUL-terminated strings, e.g. "compatible") contains `s`. */
bool fdt_string_list_has(const uint8_t *value, uint32_t len, const char *s);

#endif /* PVM_FDT_H */
