#!/bin/sh
# Builds the pvm firmware (Firmware/) and guest images (GuestImages/) with clang and ld.lld,
# for x86-64 and for AArch64 from the same sources, then writes a Swift file embedding them as
# base64 strings.
#
#   scripts/build-guests.sh OUT_SWIFT_FILE [WORKDIR]
#
# The ELF files land in WORKDIR (default: the directory of OUT_SWIFT_FILE): NAME.elf for x86-64,
# NAME-aarch64.elf for AArch64; the Swift names are NAME and NAME_aarch64. Tools: $CLANG and
# $LD_LLD if set, else the clang and ld.lld next to the swiftc on PATH, else clang and ld.lld on
# PATH. The guest ABI is docs/abi.md (x86-64) and GuestImages/README.md (AArch64).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUT_SWIFT_FILE [WORKDIR]" >&2
    exit 64
fi
OUT=$1
WORK=${2:-$(dirname -- "$OUT")}

ROOT=$(cd -- "$(dirname -- "$0")/.." && pwd)

# --- tools -------------------------------------------------------------------------------------
find_tool() { # name, env override
    if [ -n "$2" ]; then
        echo "$2"
        return 0
    fi
    if swiftc_path=$(command -v swiftc 2>/dev/null); then
        swift_bin=$(dirname -- "$swiftc_path")
        if [ -x "$swift_bin/$1" ]; then
            echo "$swift_bin/$1"
            return 0
        fi
        # swiftc may be a symlink into the toolchain (e.g. /usr/bin/swiftc -> /opt/swift/...).
        if real=$(readlink -f -- "$swiftc_path" 2>/dev/null); then
            real_bin=$(dirname -- "$real")
            if [ -x "$real_bin/$1" ]; then
                echo "$real_bin/$1"
                return 0
            fi
        fi
    fi
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
        return 0
    fi
    echo "build-guests.sh: cannot find $1 (set \$CLANG / \$LD_LLD)" >&2
    return 1
}
CC=$(find_tool clang "${CLANG:-}")
LD=$(find_tool ld.lld "${LD_LLD:-}")

mkdir -p -- "$WORK"
WORK=$(cd -- "$WORK" && pwd)
OBJ=$WORK/obj
mkdir -p -- "$OBJ"

ABI_TABLE=$ROOT/GuestImages/include/pvm_abi_table.h
# abi_value NAME: a layout number from the generated pvm_abi_table.h, without its C suffix (the
# linker scripts and the checks below use the same numbers as the C code).
abi_value() {
    v=$(sed -n "s/^#define $1  *\([0-9A-Fa-fx]*\)U*L*L*\$/\1/p" "$ABI_TABLE")
    if [ -z "$v" ]; then
        echo "build-guests.sh: $1 is not in $ABI_TABLE" >&2
        return 1
    fi
    echo "$v"
}

IMAGES="hello share giveaway bench dma abi convert"
COMMON_CFLAGS="-ffreestanding -fno-stack-protector -fno-pic -fno-pie -fno-builtin -O2 -Wall -Wextra
 -Werror -nostdlib -std=c11 -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables
 -fno-unwind-tables -mcmodel=small -I$ROOT/GuestImages/include"
LDFLAGS="-nostdlib -static --no-dynamic-linker -z max-page-size=4096 -z norelro --gc-sections
 --build-id=none"

# arch_setup ARCH: what differs between the architectures. Sources are relative to GuestImages/
# (LIB_SRCS, START_SRCS) and Firmware/ (FW_SRCS); link order is the order given.
arch_setup() {
    ARCH=$1
    case $ARCH in
    x86_64)
        SUFFIX=""
        TARGET_CFLAGS="--target=x86_64-unknown-none-elf -mno-red-zone -mgeneral-regs-only"
        FW_CFLAGS=""
        LIB_SRCS="lib/arch/x86_64/console.c lib/console.c lib/arch/x86_64/string.c lib/string.c
 lib/psci.c lib/check.c"
        START_SRCS="lib/arch/x86_64/start.S"
        FW_SRCS="arch/x86_64/entry.S arch/x86_64/linux.c main.c loader.c sha256.c"
        LD_DEFS=""
        MACHINE="Advanced Micro Devices X86-64"
        FW_START=$(abi_value PVM_FIRMWARE_BASE)
        FW_END=$(abi_value PVM_FIRMWARE_END)
        IMAGE_START=$(abi_value PVM_LOAD_WINDOW_START)
        FW_ENTRY_AT_START=0
        ;;
    aarch64)
        SUFFIX="-aarch64"
        # Payloads run with the MMU on and may use FP/SIMD (start.S enables it), so clang may
        # emit SIMD copies. The firmware runs with the MMU off, where every data access is
        # Device memory and must be aligned; it keeps to general registers (vectorized loops
        # under -mstrict-align only assemble bytes through the stack).
        TARGET_CFLAGS="--target=aarch64-none-elf -march=armv8-a+crc+lse"
        FW_CFLAGS="-mstrict-align -mgeneral-regs-only"
        LIB_SRCS="lib/arch/aarch64/console.c lib/console.c lib/arch/aarch64/string.c lib/string.c
 lib/psci.c lib/check.c lib/fdt.c lib/arch/aarch64/boot_config.c lib/arch/aarch64/exception.c
 lib/arch/aarch64/vectors.S"
        START_SRCS="lib/arch/aarch64/start.S lib/arch/aarch64/boot.c"
        FW_SRCS="arch/aarch64/entry.S arch/aarch64/boot.c arch/aarch64/linux.c arch/aarch64/sha256_ce.S main.c loader.c sha256.c"
        FW_START=$(abi_value PVM_A64_FIRMWARE_BASE)
        FW_END=$(abi_value PVM_A64_FIRMWARE_IMAGE_END)
        IMAGE_START=$(abi_value PVM_A64_LOAD_WINDOW_START)
        LD_DEFS="--defsym=PVM_A64_FIRMWARE_BASE=$FW_START --defsym=PVM_A64_FIRMWARE_IMAGE_END=$FW_END
 --defsym=PVM_A64_LOAD_WINDOW_START=$IMAGE_START"
        MACHINE="AArch64"
        FW_ENTRY_AT_START=1
        ;;
    esac
    CFLAGS="$TARGET_CFLAGS $COMMON_CFLAGS -I$ROOT/GuestImages/include/arch/$ARCH"
    AOBJ=$OBJ/$ARCH
    mkdir -p -- "$AOBJ"
}

# obj_name SRC [PREFIX]: the object file of a source (its path with / turned into _)
obj_name() {
    echo "$AOBJ/${2:-}$(echo "${1%.*}" | tr / _).o"
}

# compile SRC OBJ [extra flags...] (SRC relative to the repository)
compile() {
    src=$1
    out=$2
    shift 2
    # shellcheck disable=SC2086
    "$CC" $CFLAGS "$@" -c "$ROOT/$src" -o "$out"
}

# link OUT_ELF LINKER_SCRIPT OBJS...
link() {
    out=$1
    script=$2
    shift 2
    # shellcheck disable=SC2086
    "$LD" $LDFLAGS $LD_DEFS -T "$ROOT/$script" -o "$out" "$@"
}

# build_arch ARCH: the firmware and every image for one architecture.
build_arch() {
    arch_setup "$1"

    # Shared library: once for the images, and again for the firmware when it needs other flags.
    LIB=""
    for src in $LIB_SRCS; do
        o=$(obj_name "GuestImages/$src")
        compile "GuestImages/$src" "$o"
        LIB="$LIB $o"
    done
    FW_LIB=$LIB
    if [ -n "$FW_CFLAGS" ]; then
        FW_LIB=""
        for src in $LIB_SRCS; do
            o=$(obj_name "GuestImages/$src" fw_)
            # shellcheck disable=SC2086
            compile "GuestImages/$src" "$o" $FW_CFLAGS
            FW_LIB="$FW_LIB $o"
        done
    fi

    # Firmware.
    FW_OBJS=""
    for src in $FW_SRCS; do
        o=$(obj_name "Firmware/$src" fw_)
        # shellcheck disable=SC2086
        compile "Firmware/$src" "$o" -I"$ROOT/Firmware" -I"$ROOT/Firmware/arch/$ARCH" $FW_CFLAGS
        FW_OBJS="$FW_OBJS $o"
    done
    # shellcheck disable=SC2086
    link "$WORK/firmware$SUFFIX.elf" "Firmware/arch/$ARCH/firmware.ld" $FW_OBJS $FW_LIB

    # Guest images.
    START=""
    for src in $START_SRCS; do
        o=$(obj_name "GuestImages/$src")
        compile "GuestImages/$src" "$o"
        START="$START $o"
    done
    compile "GuestImages/arch/$ARCH/share_entry.S" "$AOBJ/share_entry.o"
    for image in $IMAGES; do
        compile "GuestImages/$image.c" "$AOBJ/$image.o"
        extra=""
        [ "$image" = share ] && extra="$AOBJ/share_entry.o"
        # shellcheck disable=SC2086
        link "$WORK/$image$SUFFIX.elf" "GuestImages/arch/$ARCH/payload.ld" \
            $START "$AOBJ/$image.o" $extra $LIB
    done
}

# check_arch ARCH READELF: machine, type, static, every PT_LOAD inside its window.
check_arch() {
    arch_setup "$1"
    for elf in firmware $IMAGES; do
        file=$elf$SUFFIX.elf
        headers=$("$2" -h -l -W "$WORK/$file")
        case $headers in
        *"Machine:"*"$MACHINE"*) ;;
        *) echo "build-guests.sh: $file is not an $MACHINE ELF" >&2; exit 1 ;;
        esac
        case $headers in
        *"EXEC (Executable file)"*) ;;
        *) echo "build-guests.sh: $file is not ET_EXEC" >&2; exit 1 ;;
        esac
        case $headers in
        *INTERP* | *DYNAMIC*) echo "build-guests.sh: $file is dynamic" >&2; exit 1 ;;
        esac
        if [ "$elf" = firmware ] && [ "$FW_ENTRY_AT_START" = 1 ]; then
            entry=$(echo "$headers" | sed -n 's/^ *Entry point address: *//p')
            if [ $((entry)) != $((FW_START)) ]; then
                echo "build-guests.sh: $file: entry $entry is not its first byte $FW_START" >&2
                exit 1
            fi
        fi
        # Every PT_LOAD inside its window: the firmware in [FW_START, FW_END), the images from
        # the load window start.
        echo "$headers" | while read -r type offset vaddr paddr filesz memsz rest; do
            [ "$type" = LOAD ] || continue
            start=$((vaddr))
            end=$((vaddr + memsz))
            if [ "$elf" = firmware ]; then
                ok=$((start >= FW_START && end <= FW_END))
            else
                ok=$((start >= IMAGE_START))
            fi
            if [ "$ok" != 1 ]; then
                echo "build-guests.sh: $file: PT_LOAD $vaddr+$memsz is outside its window" >&2
                exit 1
            fi
        done
    done
}

ARCHS="x86_64 aarch64"
for arch in $ARCHS; do
    build_arch "$arch"
done

# --- the EL2 stand-in `pvm bench interp` runs under qemu-system-aarch64 (Bench/qemu-el2-stub) ----
STUB_OBJ=$OBJ/aarch64
"$CC" --target=aarch64-none-elf -ffreestanding -fno-pic -fno-pie -O2 -mgeneral-regs-only -mstrict-align \
    -Wall -Wextra -Werror -nostdlib -fno-stack-protector -c "$ROOT/Bench/qemu-el2-stub/stub.c" -o "$STUB_OBJ/el2_stub_c.o"
"$CC" --target=aarch64-none-elf -c "$ROOT/Bench/qemu-el2-stub/stub.S" -o "$STUB_OBJ/el2_stub_s.o"
"$LD" -nostdlib -static --no-dynamic-linker --build-id=none -T "$ROOT/Bench/qemu-el2-stub/stub.ld" \
    -o "$WORK/qemu-el2-stub-aarch64.elf" "$STUB_OBJ/el2_stub_s.o" "$STUB_OBJ/el2_stub_c.o"

# --- checks (only with the tools at hand) -------------------------------------------------------
READELF=""
for candidate in "$(dirname -- "$CC")/llvm-readelf" llvm-readelf; do
    if command -v "$candidate" >/dev/null 2>&1; then
        READELF=$candidate
        break
    fi
done
if [ -n "$READELF" ]; then
    for arch in $ARCHS; do
        check_arch "$arch" "$READELF"
    done
fi

# --- Swift source ------------------------------------------------------------------------------
mkdir -p -- "$(dirname -- "$OUT")"
TMP=$(mktemp "$(dirname -- "$OUT")/.EmbeddedImageData.XXXXXX")
trap 'rm -f -- "$TMP"' EXIT
{
    echo "// Generated by scripts/build-guests.sh from Firmware/ and GuestImages/. Do not edit."
    echo "enum EmbeddedImageData {"
    for elf in firmware $IMAGES; do
        printf '    static let %s = "%s"\n' "$elf" "$(base64 -w0 < "$WORK/$elf.elf")"
    done
    printf '    static let qemuEL2Stub = "%s"\n' "$(base64 -w0 < "$WORK/qemu-el2-stub-aarch64.elf")"
    for elf in firmware $IMAGES; do
        printf '    static let %s_aarch64 = "%s"\n' "$elf" "$(base64 -w0 < "$WORK/$elf-aarch64.elf")"
    done
    echo "}"
} > "$TMP"
chmod 644 "$TMP"
mv -f -- "$TMP" "$OUT"
trap - EXIT
