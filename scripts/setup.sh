#!/usr/bin/env bash
# One command from a fresh Debian machine to a booted demo VM: installs packages,
# builds volt-vmm and its workers (release, and the shipped static-runtime set in
# .build/static/release), the test guests, the guest kernel and a busybox initramfs,
# then boots the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release
scripts/build-static.sh
make -s -C guests
.build/release/volt-vmm kernel build
mkdir -p artifacts
scripts/build-initrd.sh artifacts/initrd.cpio.gz
scripts/demo.sh
