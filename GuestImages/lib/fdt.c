/*
 * Read-only FDT parser (include/fdt.h; Devicetree Specification v0.4, chapter 5). All offsets
 * are checked against the block they point into before use, with 64-bit sums so that no
 * untrusted number can wrap, and every token is read once into a local before it is checked.
 */
#include "fdt.h"

#define FDT_BEGIN_NODE 1U
#define FDT_END_NODE   2U
#define FDT_PROP       3U
#define FDT_NOP        4U
#define FDT_END        9U
#define FDT_BAD        0U   /* not a token: a malformed one */

uint32_t fdt_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t fdt_be64(const uint8_t *p)
{
    return (uint64_t)fdt_be32(p) << 32 | fdt_be32(p + 4);
}

/* One token of the structure block, as next_token checked it. */
struct token {
    uint32_t tag;
    uint32_t name;      /* BEGIN_NODE: name offset in the structure block; PROP: in strings */
    uint32_t name_max;  /* bytes from `name` to the end of its block (the name's NUL is inside) */
    uint32_t value;     /* PROP: value offset in the structure block */
    uint32_t len;       /* PROP: value length */
};

/* Length of the NUL-terminated string at p[0..max), or -1 if there is no NUL there. */
static int64_t bounded_strlen(const uint8_t *p, uint32_t max)
{
    for (uint32_t i = 0; i < max; i++) {
        if (p[i] == 0)
            return i;
    }
    return -1;
}

static uint64_t align4(uint64_t x) { return (x + 3) & ~(uint64_t)3; }

/* Reads the token at *off and moves *off past it; FDT_BAD when anything is out of bounds. */
static uint32_t next_token(const struct fdt *f, uint32_t *off, struct token *t)
{
    const uint8_t *s = f->blob + f->struct_off;
    uint64_t p = *off;
    if ((p & 3) != 0 || p + 4 > f->struct_size)
        return FDT_BAD;
    t->tag = fdt_be32(s + p);
    p += 4;
    switch (t->tag) {
    case FDT_BEGIN_NODE: {
        int64_t n = bounded_strlen(s + p, f->struct_size - (uint32_t)p);
        if (n < 0)
            return FDT_BAD;
        t->name = (uint32_t)p;
        t->name_max = f->struct_size - (uint32_t)p;
        p = align4(p + (uint64_t)n + 1);
        break;
    }
    case FDT_PROP: {
        if (p + 8 > f->struct_size)
            return FDT_BAD;
        uint32_t len = fdt_be32(s + p);
        uint32_t nameoff = fdt_be32(s + p + 4);
        p += 8;
        if ((uint64_t)len > f->struct_size - p)
            return FDT_BAD;
        if (nameoff >= f->strings_size ||
            bounded_strlen(f->blob + f->strings_off + nameoff, f->strings_size - nameoff) < 0)
            return FDT_BAD;
        t->name = nameoff;
        t->name_max = f->strings_size - nameoff;
        t->value = (uint32_t)p;
        t->len = len;
        p = align4(p + len);
        break;
    }
    case FDT_END_NODE:
    case FDT_NOP:
    case FDT_END:
        break;
    default:
        return FDT_BAD;
    }
    if (p > f->struct_size)
        return FDT_BAD;
    *off = (uint32_t)p;
    return t->tag;
}

/* Whether the string at p[0..max) (NUL-terminated inside, or not at all) equals s. */
static bool bounded_streq(const uint8_t *p, uint32_t max, const char *s)
{
    uint32_t i = 0;
    for (; s[i] != 0; i++) {
        if (i >= max || p[i] != (uint8_t)s[i])
            return false;
    }
    return i < max && p[i] == 0;
}

const char *fdt_open(struct fdt *f, const void *blob, uint64_t avail)
{
    const uint8_t *b = blob;
    f->blob = b;
    f->size = 0;
    f->struct_off = f->struct_size = f->strings_off = f->strings_size = 0;
    f->root = -1;

    if (avail < FDT_HEADER_SIZE)
        return "FDT: no room for a header";
    uint32_t magic = fdt_be32(b), totalsize = fdt_be32(b + 4), off_struct = fdt_be32(b + 8),
             off_strings = fdt_be32(b + 12), off_rsvmap = fdt_be32(b + 16),
             version = fdt_be32(b + 20), last_comp = fdt_be32(b + 24),
             size_strings = fdt_be32(b + 32), size_struct = fdt_be32(b + 36);
    if (magic != FDT_MAGIC)
        return "FDT: bad magic";
    if (totalsize < FDT_HEADER_SIZE || totalsize > avail)
        return "FDT: bad totalsize";
    if (version < 16 || last_comp > 17)
        return "FDT: unsupported version";
    if (version < 17) {  /* v16 has no size_dt_struct: the block runs to the strings or the end */
        uint32_t struct_end = off_strings > off_struct ? off_strings : totalsize;
        size_struct = off_struct <= struct_end ? struct_end - off_struct : 0;
    }

    if (off_rsvmap < FDT_HEADER_SIZE || (off_rsvmap & 7) != 0 || off_rsvmap > totalsize)
        return "FDT: bad memory reservation map offset";
    if (off_struct < FDT_HEADER_SIZE || (off_struct & 3) != 0 ||
        (uint64_t)off_struct + size_struct > totalsize)
        return "FDT: structure block outside the blob";
    if (off_strings < FDT_HEADER_SIZE || (uint64_t)off_strings + size_strings > totalsize)
        return "FDT: strings block outside the blob";
    if ((uint64_t)off_struct < (uint64_t)off_strings + size_strings &&
        (uint64_t)off_strings < (uint64_t)off_struct + size_struct)
        return "FDT: the structure and strings blocks overlap";

    /* The memory reservation map: 16-byte entries up to an all-zero one, inside the blob. */
    for (uint64_t p = off_rsvmap;; p += 16) {
        if (p + 16 > totalsize)
            return "FDT: memory reservation map not terminated";
        if (fdt_be64(b + p) == 0 && fdt_be64(b + p + 8) == 0)
            break;
    }

    f->size = totalsize;
    f->struct_off = off_struct;
    f->struct_size = size_struct;
    f->strings_off = off_strings;
    f->strings_size = size_strings;

    /* The structure block: the root node (empty name) first, as libfdt and dtc expect it at
     * offset 0, then NOPs and FDT_END. */
    uint32_t off = 0, depth = 0;
    bool props_allowed = false;
    struct token t;
    for (;;) {
        uint32_t at = off;
        uint32_t tag = next_token(f, &off, &t);
        switch (tag) {
        case FDT_NOP:
            if (f->root < 0)
                return "FDT: the structure block does not start with the root node";
            continue;
        case FDT_BEGIN_NODE:
            if (depth == 0) {
                if (f->root >= 0)
                    return "FDT: more than one root node";
                if (bounded_strlen(f->blob + off_struct + t.name, t.name_max) != 0)
                    return "FDT: the root node has a name";
                f->root = (int)at;
            } else if (bounded_strlen(f->blob + off_struct + t.name, t.name_max) == 0) {
                return "FDT: a node without a name";
            }
            if (++depth > FDT_MAX_DEPTH)
                return "FDT: nodes nested too deep";
            props_allowed = true;
            continue;
        case FDT_PROP:
            if (depth == 0 || !props_allowed)
                return "FDT: a property outside a node or after a subnode";
            continue;
        case FDT_END_NODE:
            if (depth == 0)
                return "FDT: unbalanced FDT_END_NODE";
            depth--;
            props_allowed = false;  /* the parent has had a subnode */
            continue;
        case FDT_END:
            if (depth != 0 || f->root < 0)
                return "FDT: FDT_END inside a node or before the root";
            return NULL;
        default:
            return "FDT: bad token or token outside the structure block";
        }
    }
}

/* Moves *off past the BEGIN_NODE token at *off; false if it is not one. */
static bool enter_node(const struct fdt *f, int node, uint32_t *off)
{
    struct token t;
    if (node < 0)
        return false;
    *off = (uint32_t)node;
    return next_token(f, off, &t) == FDT_BEGIN_NODE;
}

int fdt_next_child(const struct fdt *f, int node, int *child)
{
    uint32_t off;
    struct token t;
    if (*child < 0) {
        if (!enter_node(f, node, &off))
            return -1;
    } else {
        /* Skip the current child's subtree. */
        off = (uint32_t)*child;
        uint32_t depth = 0;
        do {
            switch (next_token(f, &off, &t)) {
            case FDT_BEGIN_NODE: depth++; break;
            case FDT_END_NODE: depth--; break;
            case FDT_PROP:
            case FDT_NOP: break;
            default: return -1;
            }
        } while (depth != 0);
    }
    for (;;) {
        uint32_t at = off;
        switch (next_token(f, &off, &t)) {
        case FDT_PROP:
        case FDT_NOP:
            continue;
        case FDT_BEGIN_NODE:
            *child = (int)at;
            return 1;
        case FDT_END_NODE:
            return 0;
        default:
            return -1;
        }
    }
}

/* The node's name and the bytes left in the structure block from it, or false. */
static bool node_name(const struct fdt *f, int node, const uint8_t **name, uint32_t *max)
{
    uint32_t off;
    struct token t;
    if (node < 0)
        return false;
    off = (uint32_t)node;
    if (next_token(f, &off, &t) != FDT_BEGIN_NODE)
        return false;
    *name = f->blob + f->struct_off + t.name;
    *max = t.name_max;
    return true;
}

bool fdt_node_is(const struct fdt *f, int node, const char *base)
{
    const uint8_t *name;
    uint32_t max, i = 0;
    if (!node_name(f, node, &name, &max))
        return false;
    for (; base[i] != 0; i++) {
        if (i >= max || name[i] != (uint8_t)base[i])
            return false;
    }
    return i < max && (name[i] == 0 || name[i] == '@');
}

bool fdt_node_name_eq(const struct fdt *f, int node, const char *s, uint32_t len)
{
    const uint8_t *name;
    uint32_t max;
    if (!node_name(f, node, &name, &max) || len >= max)
        return false;
    for (uint32_t i = 0; i < len; i++) {
        if (s[i] == 0 || name[i] != (uint8_t)s[i])
            return false;
    }
    return name[len] == 0;
}

int fdt_prop(const struct fdt *f, int node, const char *name, const uint8_t **value, uint32_t *len)
{
    uint32_t off;
    struct token t;
    int found = 0;
    if (!enter_node(f, node, &off))
        return -1;
    for (;;) {
        switch (next_token(f, &off, &t)) {
        case FDT_NOP:
            continue;
        case FDT_PROP:
            if (!bounded_streq(f->blob + f->strings_off + t.name, t.name_max, name))
                continue;
            if (found)
                return -1;  /* defined twice: which one would the other parser take? */
            found = 1;
            *value = f->blob + f->struct_off + t.value;
            *len = t.len;
            continue;
        case FDT_BEGIN_NODE:
        case FDT_END_NODE:
            return found;
        default:
            return -1;
        }
    }
}

bool fdt_string_list_has(const uint8_t *value, uint32_t len, const char *s)
{
    if (len == 0 || value[len - 1] != 0)
        return false;
    for (uint32_t i = 0; i < len;) {
        int64_t n = bounded_strlen(value + i, len - i);
        if (n < 0)
            return false;
        if (bounded_streq(value + i, len - i, s))
            return true;
        i += (uint32_t)n + 1;
    }
    return false;
}
