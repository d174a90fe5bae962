#!/bin/sh
# Builds an arm64 Linux kernel Image for pvm's protected VMs: Debian's linux-source-6.12 with
# CONFIG_ARM_PKVM_GUEST=y and the smallest configuration that boots on pvm's AArch64 machine
# (GICv3, generic timer, PL011, PSCI over HVC, device tree, gzip initramfs, virtio-mmio).
#
#   scripts/build-pkvm-guest-kernel.sh [--refresh] [--print-kernel] [--help]
#
# Prints "kernel=/abs/path/Image" (--print-kernel: the bare path); progress goes to stderr.
# The source package is fetched with `scripts/fetch-linux.sh --download` (its private arm64 apt
# configuration, no mirror named here) and extracted once into the cache, where it stays.
# The configuration is `make allnoconfig` with the fragment below forced in (KCONFIG_ALLCONFIG),
# then `make olddefconfig`; every fragment line is checked in the resulting .config.
#
# Cache: ${PVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvm}/linux/pkvm-guest/
#   source/<version>/linux-source-6.12/   the extracted tree (1.6 GB), reused by every build;
#                                          a newer version replaces it
#   <key>/Image, System.map, vmlinux, config, manifest
#                                          key = sha256 of the source package version, the config
#                                          fragment and SCRIPT_VERSION (bump it when the build
#                                          changes); the build runs in build/<key>/ (O=), which
#                                          is removed once the Image is in place
#   current                                the source version in use, so a warm run stays offline
# A warm run prints the cached Image (its sha256 re-checked) without building; --refresh asks
# apt for the newest source package again and rebuilds from a clean build directory.
#
# Needs: make, flex, bison, bc, perl, xz, dpkg-deb (Debian packages: make flex bison bc perl
# xz-utils dpkg) and clang, ld.lld, llvm-ar, llvm-nm, llvm-objcopy, llvm-objdump from one
# directory: $PVM_LLVM if set, else the directory of swiftc (or of what it links to), else that
# of clang on PATH (Swift toolchains lack llvm-readelf and llvm-strip; only a readelf is needed,
# for the vDSO check: llvm-readelf from there or PATH, else binutils' readelf). No libelf,
# libssl or pahole: the configuration has no modules, signing, BTF or objtool. $PVM_JOBS sets
# make -j (default nproc). A cold build of Image takes about 7 minutes on 2 cores (6.12.95 with
# the Swift toolchain's clang 21); the Image is about 4.5 MiB.
set -eu

SCRIPT_VERSION=1
PKG=linux-source-6.12

usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p;}' "$0"; }
say() { echo "build-pkvm-guest-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

REFRESH=0 PRINT=kernel=
for arg in "$@"; do
    case $arg in
    --refresh) REFRESH=1 ;;
    --print-kernel) PRINT= ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-pkvm-guest-kernel: unknown argument '$arg' (see --help)" >&2; exit 64 ;;
    esac
done

# The configuration fragment (part of the cache key). allnoconfig already gives arm64's
# selected basics (OF, ARM_AMBA, COMMON_CLK, ARM_GIC_V3, ARM_ARCH_TIMER, ARM_PSCI_FW with
# HAVE_ARM_SMCCC_DISCOVERY, SWIOTLB) and, with EXPERT off, MULTIUSER, FUTEX, EPOLL, SIGNALFD,
# TIMERFD, EVENTFD, SHMEM, POSIX_TIMERS, FILE_LOCKING, BLOCK.
FRAGMENT='CONFIG_LOCALVERSION="-pvm-pkvm-guest"
CONFIG_SMP=y
CONFIG_NR_CPUS=8
CONFIG_ARM64_4K_PAGES=y
CONFIG_ARM64_VA_BITS_48=y
CONFIG_ARM64_PAN=y
CONFIG_ARM64_USE_LSE_ATOMICS=y
CONFIG_NO_HZ_IDLE=y
CONFIG_HZ_100=y
CONFIG_PRINTK=y
CONFIG_BUG=y
CONFIG_TTY=y
CONFIG_SERIAL_AMBA_PL011=y
CONFIG_SERIAL_AMBA_PL011_CONSOLE=y
CONFIG_SERIAL_EARLYCON=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_DEVTMPFS=y
CONFIG_DEVTMPFS_MOUNT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_VIRT_DRIVERS=y
CONFIG_ARM_PKVM_GUEST=y
CONFIG_DMA_RESTRICTED_POOL=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_MMIO=y
CONFIG_VIRTIO_CONSOLE=y
CONFIG_HW_RANDOM=y
CONFIG_HW_RANDOM_VIRTIO=y'
# Symbols the fragment reaches only indirectly, checked as well.
DERIVED='CONFIG_ARM64_LSE_ATOMICS=y
CONFIG_HAVE_ARM_SMCCC_DISCOVERY=y
CONFIG_ARM_GIC_V3=y
CONFIG_ARM_ARCH_TIMER=y
CONFIG_ARM_PSCI_FW=y
CONFIG_OF=y
CONFIG_COMMON_CLK=y
CONFIG_SWIOTLB=y
CONFIG_OF_RESERVED_MEM=y
CONFIG_VIRTIO=y'

for tool in sha256sum make perl bc tar xz od dd; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done
missing=
for tool in flex bison; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
[ -z "$missing" ] || die "kbuild needs$missing: install the Debian packages (apt-get install flex bison)"

# --- the LLVM toolchain: one directory holding clang and the binutils replacements --------------
llvm_dir() {
    if [ -n "${PVM_LLVM:-}" ]; then echo "${PVM_LLVM%/}"; return; fi
    if s=$(command -v swiftc 2>/dev/null); then
        for d in "$(dirname -- "$s")" "$(dirname -- "$(readlink -f -- "$s")")"; do
            [ -x "$d/clang" ] && { echo "$d"; return; }
        done
    fi
    if s=$(command -v clang 2>/dev/null); then dirname -- "$(readlink -f -- "$s")"; return; fi
    return 1
}
L=$(llvm_dir) || die "no clang found (set PVM_LLVM to a directory with clang and ld.lld)"
L=$(cd -- "$L" && pwd -P) || die "PVM_LLVM=$L is not a directory"
for t in clang ld.lld llvm-ar llvm-nm llvm-objcopy llvm-objdump; do
    [ -x "$L/$t" ] || die "$L has no $t (set PVM_LLVM to a directory with clang, ld.lld, llvm-ar, llvm-nm, llvm-objcopy, llvm-objdump)"
done
if [ -x "$L/llvm-readelf" ]; then READELF=$L/llvm-readelf
elif READELF=$(command -v llvm-readelf 2>/dev/null); then :
elif READELF=$(command -v readelf 2>/dev/null); then :
else die "no llvm-readelf or readelf found (Debian package binutils)"; fi

C=${PVM_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/pvm}/linux/pkvm-guest
mkdir -p "$C/source" "$C/build" || die "cannot create cache directory $C"
C=$(cd -- "$C" && pwd -P)
if command -v flock >/dev/null 2>&1; then
    exec 9>"$C/.lock"
    flock -n 9 || { say "waiting for another build in $C"; flock 9; }
fi
WORK=$(mktemp -d "$C/.work.XXXXXX") || die "cannot create a work directory in $C"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

sha() { sha256sum <"$1" | cut -d' ' -f1; }
bytes() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
field() { [ -f "$1" ] && sed -n "s/^$2=//p" "$1" | head -n 1; }
key_of() { printf 'package=%s\nversion=%s\nscript=%s\n%s\n' "$PKG" "$1" "$SCRIPT_VERSION" "$FRAGMENT" | sha256sum | cut -d' ' -f1; }
# answer IMAGE: records the Image in `current` (pvm's LinuxCache reads its kernel= line), prints it.
answer() {
    printf 'package=%s\nsource_version=%s\nkernel=%s\n' "$PKG" "$VER" "${1#"$C"/}" >"$WORK/current.answer" &&
        mv -f "$WORK/current.answer" "$C/current"
    echo "$PRINT$1"
    exit 0
}

# --- the warm path: the recorded source version's Image, its sha256 still right -------------------
VER=
if [ "$REFRESH" = 0 ]; then
    VER=$(field "$C/current" source_version) || VER=
    if [ -n "$VER" ]; then
        K=$C/$(key_of "$VER")
        ISHA=$(field "$K/manifest" image_sha256) || ISHA=
        if [ -n "$ISHA" ] && [ -f "$K/Image" ] && [ "$(sha "$K/Image")" = "$ISHA" ]; then answer "$K/Image"; fi
        [ -f "$C/source/$VER/.complete" ] || VER=
    fi
fi

# --- the source: download and extract only when the version's tree is not in the cache ----------
if [ -z "$VER" ]; then
    command -v dpkg-deb >/dev/null 2>&1 || die "required tool 'dpkg-deb' not found (a Debian host is needed to fetch)"
    FETCH=$(dirname -- "$0")/fetch-linux.sh
    [ -x "$FETCH" ] || die "$FETCH not found"
    DEB=$("$FETCH" --download "$PKG" "$WORK") || die "fetching $PKG failed"
    DEB=${DEB#deb=}
    VER=$(dpkg-deb -f "$DEB" Version) || die "cannot read the version of $DEB"
    if [ -f "$C/source/$VER/.complete" ]; then
        say "$PKG $VER is already extracted"
    else
        say "extracting $PKG $VER"
        rm -rf "$C/source/$VER"
        mkdir -p "$WORK/src"
        dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - "./usr/src/$PKG.tar.xz" | tar -xJf - -C "$WORK/src" ||
            die "cannot extract usr/src/$PKG.tar.xz from $DEB"
        [ -f "$WORK/src/$PKG/Makefile" ] || die "$DEB: usr/src/$PKG.tar.xz has no $PKG/Makefile"
        touch "$WORK/src/.complete"
        mv "$WORK/src" "$C/source/$VER"
        for d in "$C/source"/*; do # older versions' trees (1.6 GB each) are not needed again
            [ "$d" = "$C/source/$VER" ] || { say "removing the older tree ${d##*/}"; rm -rf "$d"; }
        done
    fi
    rm -f "$DEB"
    printf 'package=%s\nsource_version=%s\n' "$PKG" "$VER" >"$WORK/current"
    mv -f "$WORK/current" "$C/current"
fi
SRC=$C/source/$VER/$PKG
KEY=$(key_of "$VER")
K=$C/$KEY B=$C/build/$KEY
if [ "$REFRESH" = 0 ]; then
    ISHA=$(field "$K/manifest" image_sha256) || ISHA=
    if [ -n "$ISHA" ] && [ -f "$K/Image" ] && [ "$(sha "$K/Image")" = "$ISHA" ]; then answer "$K/Image"; fi
else
    rm -rf "$B"
fi

# --- configure: allnoconfig with the fragment forced in, olddefconfig, every line checked --------
JOBS=${PVM_JOBS:-$(nproc 2>/dev/null || echo 2)}
mkdir -p "$B"
# The clang in Swift toolchains (Apple's fork, with -fbounds-safety work) accepts the
# counted_by attribute, so Kconfig sets CC_HAS_COUNTED_BY, but rejects typeof on such an array
# ("__typeof__ on an expression of type ... __counted_by(...) is not yet supported"), which the
# kernel's struct_size()/__must_be_array() do. If the probe below fails, __counted_by() is
# redefined empty after compiler_types.h (it only feeds bounds checks; the code is the same).
KCFLAGS=
cat >"$WORK/cb.c" <<'EOF'
struct flex { int n; int *a[] __attribute__((__counted_by__(n))); };
int f(struct flex *p) { return __builtin_types_compatible_p(typeof(p->a), typeof(&p->a[0])); }
EOF
if ! "$L/clang" --target=aarch64-linux-gnu -c "$WORK/cb.c" -o "$WORK/cb.o" 2>/dev/null; then
    printf '#undef __counted_by\n#define __counted_by(member)\n' >"$B/pvm-no-counted-by.h"
    KCFLAGS="-include $B/pvm-no-counted-by.h"
    say "$L/clang rejects typeof on __counted_by arrays: building with __counted_by() empty"
fi
set -- -C "$SRC" O="$B" ARCH=arm64 LLVM="$L/" READELF="$READELF" KCFLAGS="$KCFLAGS" \
    KBUILD_BUILD_USER=pvm KBUILD_BUILD_HOST=pvm KBUILD_BUILD_VERSION=1 \
    KBUILD_BUILD_TIMESTAMP='1970-01-01 00:00:00 UTC'
printf '%s\n' "$FRAGMENT" >"$WORK/fragment.config"
say "configuring $PKG $VER in $B (clang from $L)"
make -s "$@" KCONFIG_ALLCONFIG="$WORK/fragment.config" allnoconfig >&2 || die "make allnoconfig failed"
make -s "$@" olddefconfig >&2 || die "make olddefconfig failed"
bad=0
printf '%s\n%s\n' "$FRAGMENT" "$DERIVED" >"$WORK/want"
while IFS= read -r line; do
    grep -qxF -- "$line" "$B/.config" || {
        say "the configuration lost '$line' (has: $(grep -E "^(# )?${line%%=*}[= ]" "$B/.config" || echo nothing))"
        bad=1
    }
done <"$WORK/want"
[ "$bad" = 0 ] || die "configuration check failed: see $B/.config"

# --- build the Image ------------------------------------------------------------------------
say "building Image with make -j$JOBS (a cold build takes several minutes)"
t0=$(date +%s)
make "$@" -j"$JOBS" Image >&2 || die "make Image failed (build directory $B kept; rerun to resume)"
t1=$(date +%s)
IMG=$B/arch/arm64/boot/Image
[ -f "$IMG" ] && [ "$(bytes "$IMG" 56 4)" = 41524d64 ] || die "$IMG is not an arm64 Image (no ARM\\x64 magic at 0x38)"
mkdir -p "$WORK/out"
cp "$IMG" "$WORK/out/Image"
cp "$B/System.map" "$WORK/out/System.map"
cp "$B/vmlinux" "$WORK/out/vmlinux"
cp "$B/.config" "$WORK/out/config"
cat >"$WORK/out/manifest" <<EOF
# pvm pKVM guest kernel (scripts/build-pkvm-guest-kernel.sh)
package=$PKG
source_version=$VER
kernel_release=$(cat "$B/include/config/kernel.release" 2>/dev/null || echo unknown)
script_version=$SCRIPT_VERSION
toolchain=$("$L/clang" --version | head -n 1)
build_seconds=$((t1 - t0))
image_sha256=$(sha "$WORK/out/Image")
EOF
rm -rf "$K"
mv "$WORK/out" "$K"
rm -rf "$B"
say "built $PKG $VER in $((t1 - t0)) s: $K/Image"
answer "$K/Image"
