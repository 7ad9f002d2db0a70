#!/usr/bin/env bash
# The default demo VM: a 2-vCPU guest that prints what volt-vmm told it (memory map,
# MP table, cmdline, initrd), a guest reading from a rate-limited entropy worker, then
# Linux from the kernel store with a busybox initramfs.
set -euo pipefail
cd "$(dirname "$0")/.."
VMM=.build/static/release/volt-vmm   # scripts/build-static.sh: the shipped binaries
[[ -x $VMM ]] || VMM=.build/release/volt-vmm
[[ -x $VMM ]] || VMM=.build/debug/volt-vmm

echo "== volt-vmm demo 1/3: the facts guest (2 vCPUs, 256 MiB) reports what the VMM handed it"
$VMM run --kernel guests/out/facts.elf --vcpus 2 --memory 256 \
    --cmdline "volt-vmm demo" --initrd artifacts/initrd.cpio.gz

echo "== volt-vmm demo 2/3: a device in its own jailed process: the virtio_rng guest reads 384 KiB"
echo "   from a volt-rng-worker limited to 256 KiB/s (the bucket starts full: 256 KiB at once, the"
echo "   rest in 0.5 s), and prints byte statistics and the time it took (elapsed_us)"
$VMM run --kernel guests/out/virtio_rng.elf --entropy rate=262144 --cmdline "rng.bytes=393216"

echo "== volt-vmm demo 3/3: Linux (kernel store 'default') with a busybox initramfs"
if [[ -d /sys/module/kvm_pvm ]]; then
  echo "   note: this host's KVM is PVM (nested, software); Linux prints its banner and early"
  echo "   boot log here, then stops with a KVM emulation failure — a limit of this host, not"
  echo "   of volt-vmm. On hardware KVM it boots to 'VOLT-INIT: ok' and resets."
  $VMM run --kernel default --initrd artifacts/initrd.cpio.gz --vcpus 2 --memory 256 || true
else
  $VMM run --kernel default --initrd artifacts/initrd.cpio.gz --vcpus 2 --memory 256
fi
