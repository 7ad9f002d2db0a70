#!/usr/bin/env python3
"""Start-up breakdown (not a test): `volt-vmm run --trace-startup`, N runs per scenario, the
median of each phase in µs since exec (exec-stamp's CLOCK_MONOTONIC just before execve),
volt-vmm's phases and each spawned worker's on one time line.

Scenarios: hello (no devices), hello --disk, and with --net (root: a TAP in a network
namespace this script makes and removes) hello --disk --net. The guest is hello.elf: it
marks the boot timer and prints its line first thing, so "guest: first serial output byte"
is as early as a guest can print.

Usage: sudo bench/trace.py [--runs 20] [--volt PATH] [--net]
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot import ROOT, finish, header, time_to_marker, volt_cmd  # noqa: E402

LINE = re.compile(r"^startup (\S+): \+(-?\d+) us \(\+-?\d+\) (.*)$")


class NetNamespace:
    """A namespace with `count` TAPs tapN (IFF_TAP|IFF_VNET_HDR, up); deleted on exit."""

    def __init__(self, name, count=1):
        self.name, self.count = name, count

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        for i in range(self.count):
            subprocess.run(["ip", "-n", self.name, "tuntap", "add", f"tap{i}", "mode", "tap", "vnet_hdr"], check=True)
            subprocess.run(["ip", "-n", self.name, "link", "set", f"tap{i}", "up"], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    @property
    def prefix(self):
        return ["ip", "netns", "exec", self.name]


def disk_image(directory, name="disk.img", size=1 << 20):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def traced_run(volt, extra, prefix=()):
    t, proc, err = time_to_marker(volt_cmd(volt, 256, "bench", ["--trace-startup", *extra]), prefix=prefix)
    log = finish(proc, err)
    marks, seen = {}, collections.Counter()
    for line in log.splitlines():
        m = LINE.match(line)
        if m:
            program, us, phase = m.group(1), int(m.group(2)), m.group(3)
            seen[(program, phase)] += 1   # repeated phases (one seccomp filter per thread): numbered
            n = seen[(program, phase)]
            marks[(program, phase if n == 1 else f"{phase} ({n})")] = us
    if not marks:
        raise RuntimeError(f"no startup lines from {volt}: {log[-400:]}")
    return t * 1e6, marks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    shipped = os.path.join(ROOT, ".build/static/release/volt-vmm")
    ap.add_argument("--volt", default=shipped if os.path.exists(shipped) else os.path.join(ROOT, ".build/release/volt-vmm"))
    ap.add_argument("--net", action="store_true", help="also a scenario with --net (root)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="volt-trace-") as tmp, NetNamespace(f"volt-trace-{os.getpid()}") as ns \
            if args.net else _Nothing() as ns:
        image = disk_image(tmp)
        scenarios = [("hello", [], ()), ("hello --disk", ["--disk", f"path={image}"], ())]
        if ns:
            scenarios.append(("hello --disk --net", ["--disk", f"path={image}", "--net", "tap=tap0"], ns.prefix))
        results = {name: ([], collections.defaultdict(list)) for name, _, _ in scenarios}
        for _ in range(args.runs):
            for name, extra, prefix in scenarios:
                total, marks = traced_run(args.volt, extra, prefix)
                totals, phases = results[name]
                totals.append(total)
                for key, us in marks.items():
                    phases[key].append(us)
    header(f"--trace-startup, {args.runs} runs per scenario taking turns; {os.path.relpath(args.volt, ROOT)}; "
           "µs since exec (median), Δ = from the row above")
    for name, (totals, phases) in results.items():
        print(f"\n### {name}: exec -> marker line read by the bench, median {statistics.median(totals):.0f} µs")
        print(f"| process | phase | µs since exec | Δ µs |\n|:--|:--|--:|--:|")
        rows = sorted(((statistics.median(v), k) for k, v in phases.items() if len(v) * 2 > args.runs))
        previous = 0
        for us, (program, phase) in rows:
            print(f"| {program} | {phase} | {us:.0f} | {us - previous:.0f} |")
            previous = us


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
