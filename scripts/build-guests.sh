#!/bin/sh
# Builds the pvm firmware (Firmware/) and guest images (GuestImages/) with clang and ld.lld,
# then writes a Swift file embedding them as base64 strings.
#
#   scripts/build-guests.sh OUT_SWIFT_FILE [WORKDIR]
#
# The ELF files land in WORKDIR (default: the directory of OUT_SWIFT_FILE). Tools: $CLANG and
# $LD_LLD if set, else the clang and ld.lld next to the swiftc on PATH, else clang and ld.lld on
# PATH. The guest ABI is docs/abi.md.
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

CFLAGS="--target=x86_64-unknown-none-elf -ffreestanding -fno-stack-protector -fno-pic -fno-pie
 -mno-red-zone -mgeneral-regs-only -fno-builtin -O2 -Wall -Wextra -Werror -nostdlib -std=c11
 -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
 -mcmodel=small -I$ROOT/GuestImages/include"
LDFLAGS="-nostdlib -static --no-dynamic-linker -z max-page-size=4096 -z norelro --gc-sections
 --build-id=none"

# compile SRC OBJ [extra flags...]
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
    "$LD" $LDFLAGS -T "$ROOT/$script" -o "$out" "$@"
}

# --- shared library ----------------------------------------------------------------------------
LIB=""
for name in console string psci check; do
    compile "GuestImages/lib/$name.c" "$OBJ/lib_$name.o"
    LIB="$LIB $OBJ/lib_$name.o"
done

# --- firmware ----------------------------------------------------------------------------------
FW_OBJS=""
for src in entry.S main.c loader.c sha256.c; do
    o=$OBJ/fw_${src%.*}.o
    compile "Firmware/$src" "$o" -I"$ROOT/Firmware"
    FW_OBJS="$FW_OBJS $o"
done
# shellcheck disable=SC2086
link "$WORK/firmware.elf" Firmware/firmware.ld $FW_OBJS $LIB

# --- guest images ------------------------------------------------------------------------------
compile GuestImages/lib/start.S "$OBJ/start.o"
compile GuestImages/share_entry.S "$OBJ/share_entry.o"
for image in hello share giveaway bench dma; do
    compile "GuestImages/$image.c" "$OBJ/$image.o"
    extra=""
    [ "$image" = share ] && extra="$OBJ/share_entry.o"
    # shellcheck disable=SC2086
    link "$WORK/$image.elf" GuestImages/payload.ld "$OBJ/start.o" "$OBJ/$image.o" $extra $LIB
done

# --- checks (only with the tools at hand) -------------------------------------------------------
READELF=""
for candidate in "$(dirname -- "$CC")/llvm-readelf" llvm-readelf; do
    if command -v "$candidate" >/dev/null 2>&1; then
        READELF=$candidate
        break
    fi
done
if [ -n "$READELF" ]; then
    for elf in firmware hello share giveaway bench dma; do
        headers=$("$READELF" -h -l -W "$WORK/$elf.elf")
        case $headers in
        *"Advanced Micro Devices X86-64"*) ;;
        *) echo "build-guests.sh: $elf.elf is not an x86-64 ELF" >&2; exit 1 ;;
        esac
        case $headers in
        *"EXEC (Executable file)"*) ;;
        *) echo "build-guests.sh: $elf.elf is not ET_EXEC" >&2; exit 1 ;;
        esac
        case $headers in
        *INTERP* | *DYNAMIC*) echo "build-guests.sh: $elf.elf is dynamic" >&2; exit 1 ;;
        esac
        # Every PT_LOAD inside its window (docs/abi.md): the firmware in 0x10000..<0x80000,
        # the images from the load window start, 0x1000000.
        echo "$headers" | while read -r type offset vaddr paddr filesz memsz rest; do
            [ "$type" = LOAD ] || continue
            start=$((vaddr))
            end=$((vaddr + memsz))
            if [ "$elf" = firmware ]; then
                ok=$((start >= 0x10000 && end <= 0x80000))
            else
                ok=$((start >= 0x1000000))
            fi
            if [ "$ok" != 1 ]; then
                echo "build-guests.sh: $elf.elf: PT_LOAD $vaddr+$memsz is outside its window" >&2
                exit 1
            fi
        done
    done
fi

# --- Swift source ------------------------------------------------------------------------------
mkdir -p -- "$(dirname -- "$OUT")"
TMP=$(mktemp "$(dirname -- "$OUT")/.EmbeddedImageData.XXXXXX")
trap 'rm -f -- "$TMP"' EXIT
{
    echo "// Generated by scripts/build-guests.sh from Firmware/ and GuestImages/. Do not edit."
    echo "enum EmbeddedImageData {"
    for elf in firmware hello share giveaway bench dma; do
        printf '    static let %s = "%s"\n' "$elf" "$(base64 -w0 < "$WORK/$elf.elf")"
    done
    echo "}"
} > "$TMP"
chmod 644 "$TMP"
mv -f -- "$TMP" "$OUT"
trap - EXIT
