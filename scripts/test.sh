#!/usr/bin/env bash
# Runs the whole test suite. Builds what the tests boot (guests, kernel, initramfs) first;
# the kernel build (~3 min) is reused when its config is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build
make -s -C guests
.build/debug/volt-vmm kernel build
mkdir -p artifacts
scripts/build-initrd.sh artifacts/initrd.cpio.gz
swift test 2>&1 | tee artifacts/test.log
exit "${PIPESTATUS[0]}"
