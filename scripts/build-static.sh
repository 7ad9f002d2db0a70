#!/usr/bin/env bash
# The shipped binaries: volt-vmm and its workers with the Swift runtime linked in
# (bench/boot.py: exec -> guest ~5 ms faster, less private memory than loading and
# relocating the shared runtime). Their own build path: switching build modes in one
# .build folder rebuilds everything each time. The workers sit next to volt-vmm, where
# it looks for them.
set -euo pipefail
cd "$(dirname "$0")/.."
for product in volt-vmm volt-blk-worker volt-net-worker volt-rng-worker; do
  swift build -c release --static-swift-stdlib --build-path .build/static --product "$product"
done
echo "static binaries in .build/static/release"
