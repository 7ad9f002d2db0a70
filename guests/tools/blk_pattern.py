#!/usr/bin/env python3
"""The virtio_blk.elf data pattern, host side.

    blk_pattern.py write IMAGE --seed N --start S --sectors K   # pre-write (for blk.readonly)
    blk_pattern.py check IMAGE --seed N --start S --sectors K   # exit 0 iff every byte matches

Byte `off` (0..511) of absolute sector `sector` for seed `seed`
(all arithmetic mod 2**32):

    x = (seed * 0x9e3779b1) ^ (sector_lo * 0x85ebca77) ^ (sector_hi * 0x27d4eb2f) ^ (off * 0xc2b2ae3d)
    x ^= x >> 16;  x = x * 0x7feb352d;  x ^= x >> 15;  byte = x & 0xff

sector_lo / sector_hi are the low / high 32 bits of the sector number; the
guest uses seed mod 2**32.
"""
import argparse
import sys

M = 0xFFFFFFFF
SECTOR = 512


def pattern_byte(seed, sector, off):
    x = ((seed * 0x9E3779B1) & M) ^ (((sector & M) * 0x85EBCA77) & M) \
        ^ (((sector >> 32) * 0x27D4EB2F) & M) ^ ((off * 0xC2B2AE3D) & M)
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M
    x ^= x >> 15
    return x & 0xFF


def sector_bytes(seed, sector):
    return bytes(pattern_byte(seed, sector, off) for off in range(SECTOR))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "check"])
    ap.add_argument("image")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--sectors", type=int, default=64)
    a = ap.parse_args()
    seed = a.seed & M
    if a.mode == "write":
        with open(a.image, "r+b") as f:
            for s in range(a.start, a.start + a.sectors):
                f.seek(s * SECTOR)
                f.write(sector_bytes(seed, s))
        print(f"wrote sectors {a.start}..{a.start + a.sectors - 1} seed={seed}")
        return 0
    bad = 0
    with open(a.image, "rb") as f:
        for s in range(a.start, a.start + a.sectors):
            f.seek(s * SECTOR)
            got = f.read(SECTOR)
            if got != sector_bytes(seed, s):
                if bad < 4:
                    print(f"mismatch sector={s}")
                bad += 1
    print(f"checked={a.sectors} mismatches={bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
