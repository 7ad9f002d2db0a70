#!/usr/bin/env bash
# Runs the whole test suite. Builds what the tests boot (guests, kernel, initramfs) first;
# the kernel build (~3 min) is reused when its config is unchanged. Then the VM tests once
# more against the shipped static-runtime binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build
make -s -C guests
.build/debug/volt-vmm kernel build
mkdir -p artifacts
scripts/build-initrd.sh artifacts/initrd.cpio.gz
swift test 2>&1 | tee artifacts/test.log
status=${PIPESTATUS[0]}

# The shipped binaries (static Swift runtime, scripts/build-static.sh) boot guests, spawn
# and jail workers too: the VM, worker, lock-down and hostile-input tests again, against them.
scripts/build-static.sh
VOLT_PRODUCTS_DIR=.build/static/release swift test --skip-build \
    --filter "DiskWorkerTests|IntegrationTests|VMMSeccompTests|HostileFrontendTests|EntropyDeviceTests|EntropyWorkerTests.ProcessTests" 2>&1 | tee -a artifacts/test.log
static_status=${PIPESTATUS[0]}
exit $(( status != 0 ? status : static_status ))
