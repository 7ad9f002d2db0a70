#!/bin/sh
# Builds a busybox-static initramfs for volt-vmm tests and demos.
#
#   scripts/build-initrd.sh OUT.cpio.gz [EXTRA_INIT_SCRIPT]
#
# /init mounts proc, sys, dev (devtmpfs) and tmp, prints one line with the kernel release, CPU
# count and memory, runs EXTRA_INIT_SCRIPT (stored as /etc/volt-init.sh) if one was given, prints
# "VOLT-INIT: ok" when everything succeeded (else "VOLT-INIT: FAILED ..."), and ends the VM with
# `reboot -f` (boot with reboot=k or reboot=t so that a reboot exits the VMM). With `volt.shell`
# on the kernel command line it starts an interactive shell instead.
#
# The output is deterministic: fixed mtimes, uid/gid 0, sorted names, `cpio --reproducible`,
# `gzip -n`. Needs busybox-static, cpio and gzip; runs without root (the /dev/console node the
# kernel needs before /init runs is written as a separate newc archive by hand below).
set -eu

usage() { echo "usage: $0 OUT.cpio.gz [EXTRA_INIT_SCRIPT]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
extra=${2:-}

busybox=${BUSYBOX:-/bin/busybox}
if ! [ -x "$busybox" ] || ! "$busybox" --list-full >/dev/null 2>&1; then
    echo "error: busybox not found at $busybox — apt-get install busybox-static (or set BUSYBOX=PATH)" >&2
    exit 1
fi
case $(od -An -tx1 -j4 -N1 "$busybox" 2>/dev/null | tr -d ' ') in
    02) ;;
    *) echo "error: $busybox is not a 64-bit ELF — apt-get install busybox-static" >&2; exit 1 ;;
esac
if command -v ldd >/dev/null 2>&1 && ldd "$busybox" >/dev/null 2>&1; then
    echo "error: $busybox is dynamically linked; the initramfs has no libc — apt-get install busybox-static" >&2
    exit 1
fi
for tool in cpio gzip; do
    command -v $tool >/dev/null 2>&1 || { echo "error: $tool not found — apt-get install $tool" >&2; exit 1; }
done
if [ -n "$extra" ] && ! [ -f "$extra" ]; then
    echo "error: extra init script $extra not found — pass an existing file or omit it" >&2
    exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/volt-initrd.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" \
         "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/root" "$root/mnt"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# One relative symlink per applet, at the path busybox itself reports (bin/sh, sbin/reboot, ...).
"$busybox" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    dir=$(dirname "$applet")
    if [ "$dir" = . ]; then up=.; else up=$(echo "$dir" | sed 's|[^/][^/]*|..|g'); fi
    ln -sf "$up/bin/busybox" "$root/$applet"
done

cat > "$root/init" <<'INIT'
#!/bin/sh
# volt-vmm test init: mount the basics, report, run the extra script, end the VM.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mount -t tmpfs tmpfs /tmp
cpus=$(grep -c '^processor' /proc/cpuinfo)
mem=$(sed -n 's/^MemTotal: *//p' /proc/meminfo)
echo "VOLT-INIT: kernel $(uname -r), $cpus cpus, $mem, cmdline: $(cat /proc/cmdline)"
status=0
if [ -x /etc/volt-init.sh ]; then
    /etc/volt-init.sh || status=$?
fi
if [ "$status" -eq 0 ]; then
    echo "VOLT-INIT: ok"
else
    echo "VOLT-INIT: FAILED (/etc/volt-init.sh exited $status)"
fi
if grep -qw volt.shell /proc/cmdline; then
    exec setsid cttyhack sh
fi
sync
reboot -f
INIT
chmod 0755 "$root/init"
if [ -n "$extra" ]; then
    cp "$extra" "$root/etc/volt-init.sh"
    chmod 0755 "$root/etc/volt-init.sh"
fi
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

# newc header for one entry with no data: name, mode (octal), rdev major, rdev minor.
newc_entry() {
    namesize=$(( ${#1} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
        0 "$((0$2))" 0 0 1 0 0 0 0 "$3" "$4" "$namesize" 0 "$1"
    # header (110 bytes) + name + NUL is padded to a multiple of 4
    pad=$(( (4 - (110 + namesize) % 4) % 4 ))
    [ $pad -eq 0 ] || head -c $pad /dev/zero
}

tmp_out="$out.tmp.$$"
{
    # Archive 1: /dev/console, which the kernel opens for init's stdio before /init runs.
    { newc_entry dev 040755 0 0; newc_entry dev/console 020600 5 1; newc_entry 'TRAILER!!!' 0 0 0; } | gzip -n -9
    # Archive 2: everything else. The kernel unpacks concatenated archives in order.
    cd "$root"
    find . -mindepth 1 -exec touch -h -d @0 {} +
    find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort \
        | cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -9
} > "$tmp_out"
mv "$tmp_out" "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
