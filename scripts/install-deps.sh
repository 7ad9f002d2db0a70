#!/usr/bin/env bash
# Installs the Debian packages volt-vmm needs to build, test and benchmark.
# Swift itself (6.x) must already be on PATH: https://www.swift.org/install/linux/
set -euo pipefail

PACKAGES=(
  gcc make                                   # test guests, C shim
  libseccomp-dev libcap-dev                  # worker sandboxing
  libhttp-parser-dev                         # HTTP/1.1 framing of the API socket (APIServer; its .a is linked in)
  linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio xz-utils lz4   # guest kernel build
  busybox-static e2fsprogs                   # test initramfs and ext4 images
  qemu-system-x86 qemu-system-common qemu-utils   # QEMU peers: TCG frontend, storage daemon, benchmarks
  iproute2 python3                           # TAP/bridge/netns tests, guest test tools, benchmarks
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift not found on PATH — install Swift 6 from swift.org" >&2; exit 1; }
