#!/usr/bin/env python3
"""Boot benchmark (not a test): exec -> guest's first serial marker, volt-vmm vs QEMU microvm.

Both VMMs boot the same PVH test guest (guests/out/hello.elf) on KVM. The time is taken
by this script from just before exec to the moment the guest's marker line arrives on
the VMM's stdout, so both are measured the same way. volt-vmm's own boot-timer line
(port 0x440, time since its start) is shown alongside.

Memory: the guest is told to halt instead of resetting ("halt" on its cmdline), then the
PSS of the VMM process and its children (volt-vmm's launcher; QEMU has none here) is read
from /proc/PID/smaps with the guest-RAM mapping left out.

Usage: bench/boot.py [--runs 20] [--volt PATH] [--qemu PATH] [--memory 256]
"""
import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = b"VOLT-GUEST hello: ok"


def volt_cmd(args, guest, cmdline):
    return [args.volt, "run", "--kernel", guest, "--memory", str(args.memory), "--vcpus", "1",
            "--cmdline", cmdline]


def qemu_cmd(args, guest, cmdline):
    return [args.qemu, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off,pit=on,pic=on",
            "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", f"{args.memory}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-display", "none",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", guest, "-append", cmdline]


def time_to_marker(cmd, timeout=20.0):
    """Seconds from exec to MARKER on stdout, plus the process (still running or not)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = b""
    fd = proc.stdout.fileno()
    while MARKER not in buf:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            proc.kill()
            raise RuntimeError(f"no marker within {timeout}s from {cmd[0]}: {buf[-200:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait()
                raise RuntimeError(f"{cmd[0]} exited {proc.returncode} before the marker: "
                                   f"{proc.stderr.read()[-400:]!r}")
            buf += chunk
    return time.perf_counter() - start, proc


def finish(proc):
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stderr.read().decode(errors="replace")


def pss_without_guest_ram(pid, guest_bytes):
    """PSS (KiB) of all mappings except guest RAM (the volt memfd, or QEMU's RAM block)."""
    total = 0
    skip = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                name = line.split()[-1] if len(line.split()) >= 6 else ""
                skip = "volt-guest-ram" in line or (hi - lo) >= guest_bytes
            elif line.startswith("Pss:") and not skip:
                total += int(line.split()[1])
    return total


def children(pid):
    """Direct children of every thread of pid."""
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(x) for x in f.read().split()]
    return kids


def pss_tree_without_guest_ram(pid, guest_bytes):
    """PSS (KiB) of pid and its children, guest RAM left out; and the children's share."""
    own = pss_without_guest_ram(pid, guest_bytes)
    kids = sum(pss_without_guest_ram(kid, guest_bytes) for kid in children(pid))
    return own + kids, kids


def stats(samples):
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
    return s[0], statistics.median(s), p95


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--memory", type=int, default=256)
    # The shipped binaries (scripts/build-static.sh) if built, else the plain release build.
    shipped = os.path.join(ROOT, ".build/static/release/volt-vmm")
    ap.add_argument("--volt", default=shipped if os.path.exists(shipped) else os.path.join(ROOT, ".build/release/volt-vmm"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    args = ap.parse_args()
    guest = os.path.join(ROOT, "guests/out/hello.elf")
    for path in (args.volt, guest):
        if not os.path.exists(path):
            sys.exit(f"{path} missing — run scripts/setup.sh (or swift build -c release; make -C guests)")

    results = {}
    boot_timer = []
    for name, make in (("volt-vmm", volt_cmd), ("qemu microvm", qemu_cmd)):
        times = []
        for _ in range(args.runs):
            t, proc = time_to_marker(make(args, guest, "bench"))
            err = finish(proc)
            times.append(t * 1000)
            m = re.search(r"boot-timer: ([0-9.]+) ms", err)
            if name == "volt-vmm" and m:
                boot_timer.append(float(m.group(1)))
        t, proc = time_to_marker(make(args, guest, "bench halt"))
        time.sleep(0.2)
        pss, kids = pss_tree_without_guest_ram(proc.pid, args.memory << 20)
        if kids:
            print(f"{name}: children's PSS {kids / 1024:.2f} MiB included", file=sys.stderr)
        proc.send_signal(signal.SIGTERM)
        finish(proc)
        results[name] = (stats(times), pss)

    (vmin, vmed, vp95), vpss = results["volt-vmm"]
    (qmin, qmed, qp95), qpss = results["qemu microvm"]
    print(f"boot: exec -> guest marker, {args.runs} runs each, same PVH guest, KVM, {args.memory} MiB, 1 vCPU; volt-vmm = {os.path.relpath(args.volt, ROOT)}")
    print(f"{'':14}{'min ms':>9}{'median ms':>11}{'p95 ms':>9}{'PSS-RAM MiB':>13}")
    for name, ((a, b, c), pss) in results.items():
        print(f"{name:14}{a:9.2f}{b:11.2f}{c:9.2f}{pss / 1024:13.2f}")
    print(f"{'ratio v/q':14}{vmin / qmin:9.2f}{vmed / qmed:11.2f}{vp95 / qp95:9.2f}{vpss / qpss:13.2f}")
    if boot_timer:
        print(f"volt-vmm boot-timer port (since main): median {statistics.median(boot_timer):.2f} ms")


if __name__ == "__main__":
    main()
