#!/bin/sh
# Provides an arm64 Linux kernel Image and a busybox initramfs for pvm's AArch64 interpreter.
#
#   scripts/fetch-linux.sh [--refresh] [--print-kernel | --print-initrd] [--help]
#   scripts/fetch-linux.sh --download PACKAGE DIR
#
# Prints "kernel=/abs/<sha256>.Image" and "initrd=/abs/<sha256>.cpio" (progress on stderr).
# The kernel is Debian's newest linux-image-6.12.*-cloud-arm64-unsigned (or $PVM_LINUX_PACKAGE),
# busybox is busybox-static: arm64 .debs fetched on any host with `apt-get download` under a
# private apt configuration (own lists, cache and preferences, status /dev/null, architecture
# arm64), so the system's apt state is untouched and root is not needed. No mirror is named
# here: the URIs (and keyring) come from the system's first non-security Debian source, suites
# rewritten to "$CODENAME-backports $CODENAME" (codename from /etc/os-release, or
# $PVM_DEBIAN_SUITE); $PVM_APT_SOURCES may name a deb822 .sources file to use instead.
#
# Cache: ${PVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvm}/linux/, content-addressed: files are
# named by their sha256 (images/<sha>.Image, busybox/<sha>.busybox, initramfs/<sha>.cpio), so
# a path names exact bytes and is never rewritten in place. The manifest "current" records the
# versions and hashes; a warm run re-checks the hashes and stays off the network (--refresh
# fetches again). The initramfs is rebuilt each run from the cached busybox, deterministically
# (newc cpio sorted, mtime/uid/gid 0, uncompressed), so an unchanged /init keeps its hash and path.
# Everything is built in a work directory inside the cache and renamed into place.
#
# --download PACKAGE DIR only fetches PACKAGE's candidate .deb (arm64 or all) into DIR with the
# same private configuration (always after an apt-get update) and prints "deb=/abs/path.deb";
# scripts/build-pkvm-guest-kernel.sh uses it for linux-source-6.12.
set -eu

usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p;}' "$0"; }
say() { echo "fetch-linux: $*" >&2; }
die() { say "$*"; exit 1; }

REFRESH=0 PRINT=both DLPKG= DLDIR=
while [ $# -gt 0 ]; do
    case $1 in
    --refresh) REFRESH=1 ;;
    --print-kernel) PRINT=kernel ;;
    --print-initrd) PRINT=initrd ;;
    --download)
        [ $# -ge 3 ] || { echo "fetch-linux: --download needs PACKAGE and DIR (see --help)" >&2; exit 64; }
        DLPKG=$2 DLDIR=$3; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fetch-linux: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done

for tool in sha256sum gzip perl od dd; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found"
done

C=${PVM_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/pvm}/linux
mkdir -p "$C/images" "$C/busybox" "$C/initramfs" || die "cannot create cache directory $C"
C=$(cd -- "$C" && pwd -P)
MANIFEST=$C/current
WORK=$(mktemp -d "$C/.work.XXXXXX") || die "cannot create a work directory in $C"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

sha() { sha256sum <"$1" | cut -d' ' -f1; }
verify() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; } # file, expected sha256
bytes() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'; }
field() { sed -n "s/^$1=//p" "$MANIFEST" | head -n 1; }

# store FILE DIR EXT: moves FILE to DIR/<sha256>.EXT unless a good copy is there; STORED=sha256.
store() {
    STORED=$(sha "$1")
    if verify "$C/$2/$STORED.$3" "$STORED"; then rm -f "$1"; else mv -f "$1" "$C/$2/$STORED.$3"; fi
}

# private_apt: writes the private apt configuration under $C/apt (arm64, the system's first
# non-security Debian source), exports APT_CONFIG and runs apt-get update; sets CODE.
private_apt() {
    for tool in apt-get apt-cache dpkg-deb tar awk; do
        command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found (a Debian host is needed to fetch)"
    done
    CODE=${PVM_DEBIAN_SUITE:-$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"' | head -n 1)}
    [ -n "$CODE" ] || die "cannot read VERSION_CODENAME from /etc/os-release (set PVM_DEBIAN_SUITE)"
    A=$C/apt
    mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial" "$A/sources.list.d" "$A/preferences.d"
    if [ -n "${PVM_APT_SOURCES:-}" ]; then
        cp -- "$PVM_APT_SOURCES" "$WORK/pvm.sources" || die "cannot read PVM_APT_SOURCES=$PVM_APT_SOURCES"
    else
        set --
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] && set -- "$@" "$f"
        done
        [ $# -gt 0 ] || die "no apt sources found in /etc/apt/sources.list{,.d}"
        # The first enabled "deb" source for suite $CODENAME that is not a security archive,
        # one-line or deb822, written as one deb822 stanza with the suites rewritten.
        awk -v code="$CODE" '
        function out(types, uris, suites, enabled, extra) {
            if (done || types !~ /(^|[ \t])deb([ \t]|$)/ || uris ~ /security/ || enabled ~ /^(no|false)/ ||
                (" " suites " ") !~ ("[ \t]" code "[ \t]")) return
            printf "Types: deb\nURIs: %s\nSuites: %s-backports %s\nComponents: main\nTargets: Packages\n%s", uris, code, code, extra
            done = 1
        }
        function flush() { if (n) out(t, u, s, e, x); n = 0; t = u = s = e = x = ""; keep = 0 }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*#/) next
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^[ \t]/) { if (keep) x = x $0 "\n"; next }
            k = tolower($0); sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v); n++; keep = 0
            if (k == "types") t = v; else if (k == "uris") u = v; else if (k == "suites") s = v
            else if (k == "enabled") e = tolower(v)
            else if (k == "signed-by" || k == "trusted") { keep = 1; x = x $0 "\n" }
            next
        }
        $1 == "deb" {
            extra = ""; i = 2
            if ($2 ~ /^\[/) {
                for (; i <= NF; i++) {
                    o = $i; gsub(/[][]/, "", o)
                    if (o ~ /^signed-by=/) { sub(/^signed-by=/, "", o); extra = extra "Signed-By: " o "\n" }
                    if (o ~ /^trusted=/) { sub(/^trusted=/, "", o); extra = extra "Trusted: " o "\n" }
                    if ($i ~ /\]$/) { i++; break }
                }
            }
            out("deb", $i, $(i + 1), "", extra)
        }
        END { flush() }' "$@" >"$WORK/pvm.sources"
        [ -s "$WORK/pvm.sources" ] || die "no non-security 'deb' source for suite $CODE in /etc/apt/sources.list{,.d} (set PVM_APT_SOURCES)"
    fi
    mv -f "$WORK/pvm.sources" "$A/sources.list.d/pvm.sources"
    {
        echo "Dir::State \"$A/state/\"; Dir::State::Lists \"$A/state/lists/\"; Dir::State::Status \"/dev/null\";"
        echo "Dir::Cache \"$A/cache/\"; Dir::Etc::SourceList \"/dev/null\"; Dir::Etc::SourceParts \"$A/sources.list.d/\";"
        echo "Dir::Etc::Preferences \"/dev/null\"; Dir::Etc::PreferencesParts \"$A/preferences.d/\";"
        echo "APT::Architectures { \"arm64\"; }; APT::Architecture \"arm64\"; Acquire::Languages \"none\";"
        [ "$(id -u)" != 0 ] || echo 'APT::Sandbox::User "root";'
    } >"$A/apt.conf"
    export APT_CONFIG="$A/apt.conf"
    say "apt-get update (arm64, suites $CODE-backports $CODE, private state in $A)"
    apt-get -q update >&2 || die "apt-get update failed (private configuration $A/apt.conf)"
}

# --- --download PACKAGE DIR: one .deb through the private configuration, nothing cached -------
if [ -n "$DLPKG" ]; then
    mkdir -p -- "$DLDIR" && DLDIR=$(cd -- "$DLDIR" && pwd -P) || die "cannot create $DLDIR"
    private_apt
    apt-cache policy "$DLPKG" 2>/dev/null | grep -q 'Candidate: [^(]' || die "package $DLPKG not found (arm64, $CODE-backports $CODE)"
    say "downloading $DLPKG"
    (cd "$WORK" && apt-get -q download "$DLPKG" >&2) || die "apt-get download $DLPKG failed"
    set -- "$WORK/${DLPKG}"_*.deb
    [ -f "$1" ] || die "download of $DLPKG left no .deb"
    mv -f "$1" "$DLDIR/" && echo "deb=$DLDIR/${1##*/}"
    exit 0
fi

# --- the warm path: a manifest whose kernel and busybox still hash right -----------------------
have=0
if [ "$REFRESH" = 0 ] && [ -f "$MANIFEST" ]; then
    KPKG=$(field kernel_package) KVER=$(field kernel_version) KREL=$(field kernel_release)
    BVER=$(field busybox_version) KSHA=$(field kernel_sha256) BSHA=$(field busybox_sha256)
    if [ -n "${PVM_LINUX_PACKAGE:-}" ] && [ "$PVM_LINUX_PACKAGE" != "$KPKG" ]; then
        say "cache holds $KPKG, PVM_LINUX_PACKAGE asks for $PVM_LINUX_PACKAGE: fetching"
    elif [ -n "$KSHA" ] && [ -n "$BSHA" ] && verify "$C/images/$KSHA.Image" "$KSHA" &&
        verify "$C/busybox/$BSHA.busybox" "$BSHA"; then
        have=1
    else
        say "cached files missing or failing their sha256 check: fetching again"
    fi
fi

# --- the cold path: private apt configuration, download, extract, check ------------------------
if [ "$have" = 0 ]; then
    private_apt
    KPKG=${PVM_LINUX_PACKAGE:-$(apt-cache search --names-only '^linux-image-6\.12\..*-cloud-arm64-unsigned$' |
        cut -d' ' -f1 | sort -V | tail -n 1)}
    [ -n "$KPKG" ] || die "no linux-image-6.12.*-cloud-arm64-unsigned package found in $CODE-backports/$CODE"
    for p in "$KPKG" busybox-static; do
        apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' || die "package $p not found (arm64, $CODE-backports $CODE)"
    done
    say "downloading $KPKG busybox-static"
    (cd "$WORK" && apt-get -q download "$KPKG" busybox-static >&2) || die "apt-get download $KPKG busybox-static failed"
    set -- "$WORK/${KPKG}"_*.deb
    [ -f "$1" ] || die "download of $KPKG left no .deb"
    KVER=$(dpkg-deb -f "$1" Version)
    mkdir "$WORK/k" "$WORK/b"
    dpkg-deb --fsys-tarfile "$1" | tar -xf - -C "$WORK/k" --wildcards './boot/vmlinuz-*' ||
        die "cannot extract boot/vmlinuz-* from $1"
    set -- "$WORK/k/boot/vmlinuz-"*
    [ -f "$1" ] || die "no boot/vmlinuz-* in $KPKG"
    KREL=${1##*/vmlinuz-}
    if [ "$(bytes "$1" 0 2)" = 1f8b ]; then gzip -dc <"$1" >"$WORK/Image" || die "gunzip of $1 failed"; else mv "$1" "$WORK/Image"; fi
    [ "$(bytes "$WORK/Image" 56 4)" = 41524d64 ] || die "$KPKG: vmlinuz is not an arm64 Image (no ARM\\x64 magic at 0x38)"
    set -- "$WORK"/busybox-static_*.deb
    [ -f "$1" ] || die "download of busybox-static left no .deb"
    BVER=$(dpkg-deb -f "$1" Version)
    m=$(dpkg-deb --fsys-tarfile "$1" | tar -tf - | grep -E '^\./(usr/)?bin/busybox$' | head -n 1) || m=
    [ -n "$m" ] || die "no bin/busybox in $1"
    dpkg-deb --fsys-tarfile "$1" | tar -xf - -C "$WORK/b" "$m" || die "cannot extract $m from $1"
    [ "$(bytes "$WORK/b/$m" 0 4)" = 7f454c46 ] && [ "$(bytes "$WORK/b/$m" 18 2)" = b700 ] ||
        die "busybox-static: $m is not an AArch64 ELF file"
    store "$WORK/Image" images Image; KSHA=$STORED
    store "$WORK/b/$m" busybox busybox; BSHA=$STORED
    rm -f "$WORK"/*.deb
    say "cached $KPKG $KVER ($KREL) and busybox-static $BVER"
fi

# --- the initramfs: /init, busybox and its links, a deterministic newc cpio ---------------------
cat >"$WORK/init" <<'EOF'
#!/bin/sh
# pvm initramfs /init (written by scripts/fetch-linux.sh). Every line it prints starts pvm-init:.
export PATH=/bin HOME=/root
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "pvm-init: Linux $(uname -r) on $(uname -m)"
echo "pvm-init: version: $(cat /proc/version)"
echo "pvm-init: cmdline: $(cat /proc/cmdline)"
echo "pvm-init: cpus: $(grep -c ^processor /proc/cpuinfo)"
grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo | sed 's/^/pvm-init: meminfo: /'
sed 's/^/pvm-init: iomem: /' /proc/iomem
case " $(cat /proc/cmdline) " in
*" pvm.shell "* | *" pvm.shell="*)
    /bin/busybox --install -s /bin 2>/dev/null
    export PS1='pvm> '
    echo "pvm-init: shell ready"
    setsid cttyhack sh -i
    echo "pvm-init: shell exited, powering off" ;;
*) echo "pvm-init: done, powering off" ;;
esac
sync
poweroff -f
echo "pvm-init: poweroff -f failed"
exit 1
EOF
cat >"$WORK/newc.pl" <<'EOF'
# Reads "TYPE MODE PATH [SOURCE | TARGET | MAJOR MINOR]" lines (TYPE d, f, l or c), writes a newc
# cpio of them to stdout: sorted by path, inodes numbered in that order, uid/gid/mtime 0.
use strict; use warnings; binmode STDOUT;
my %type = (d => 0040000, f => 0100000, l => 0120000, c => 0020000);
my @entries = map { chomp; [split ' ', $_, 4] } grep { /\S/ } <STDIN>; # the 4th may hold spaces
my $ino = 0;
sub entry {
    my ($name, $mode, $nlink, $major, $minor, $data) = @_;
    my $namesize = length($name) + 1;
    printf "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", $name eq 'TRAILER!!!' ? 0 : ++$ino,
        $mode, 0, 0, $nlink, 0, length($data), 0, 0, $major, $minor, $namesize, 0;
    print $name, "\0" x (1 + (4 - (110 + $namesize) % 4) % 4), $data, "\0" x ((4 - length($data) % 4) % 4);
}
for my $e (sort { $a->[2] cmp $b->[2] } @entries) {
    my ($t, $mode, $path, $arg) = @$e;
    my @x = $t eq 'c' ? split(' ', $arg) : ($arg);
    die "newc: bad line @$e\n" unless exists $type{$t};
    my $data = '';
    if ($t eq 'f') { open(my $fh, '<:raw', $x[0]) or die "newc: $x[0]: $!\n"; local $/; $data = <$fh>; }
    $data = $x[0] if $t eq 'l';
    entry($path, $type{$t} | oct($mode), $t eq 'd' ? 2 : 1, $t eq 'c' ? @x[0, 1] : (0, 0), $data);
}
entry('TRAILER!!!', 0, 1, 0, 0, '');
EOF
{
    for d in bin dev proc sys tmp root; do echo "d 0755 $d"; done
    echo "c 0600 dev/console 5 1"
    echo "f 0755 bin/busybox $C/busybox/$BSHA.busybox"
    echo "f 0755 init $WORK/init"
    for a in sh mount umount cat grep sed uname head setsid cttyhack poweroff reboot sync sleep \
        ls dmesg ps free mkdir; do echo "l 0777 bin/$a busybox"; done
} >"$WORK/spec"
perl "$WORK/newc.pl" <"$WORK/spec" >"$WORK/initramfs.cpio" || die "writing the initramfs cpio failed"
# Uncompressed: the kernel copies it instead of inflating it (the gzip cost Debian's kernel 28 M
# instructions on pvm's interpreter), and pvmfw hashes its 2.6 MiB with the SHA-256 instructions.
store "$WORK/initramfs.cpio" initramfs cpio; ISHA=$STORED

# --- the manifest, then the answer ------------------------------------------------------------
cat >"$WORK/current" <<EOF
# pvm Linux cache (scripts/fetch-linux.sh); paths are relative to this directory
kernel_package=$KPKG
kernel_version=$KVER
kernel_release=$KREL
busybox_package=busybox-static
busybox_version=$BVER
kernel_sha256=$KSHA
busybox_sha256=$BSHA
initrd_sha256=$ISHA
kernel=images/$KSHA.Image
busybox=busybox/$BSHA.busybox
initrd=initramfs/$ISHA.cpio
EOF
if cmp -s "$WORK/current" "$MANIFEST"; then :; else mv -f "$WORK/current" "$MANIFEST"; fi
case $PRINT in
kernel) echo "$C/images/$KSHA.Image" ;;
initrd) echo "$C/initramfs/$ISHA.cpio" ;;
*) echo "kernel=$C/images/$KSHA.Image" && echo "initrd=$C/initramfs/$ISHA.cpio" ;;
esac
