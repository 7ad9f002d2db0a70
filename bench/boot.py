#!/usr/bin/env python3
"""Boot benchmark (not a test): exec -> the guest's first serial line, side by side in one run:
the KVM floor program (bench/kvm-floor.c), volt-vmm builds, QEMU microvm.

Every command is started through bench/out/exec-stamp, which takes CLOCK_MONOTONIC just before
its execve and prints it on stderr; the time is from that stamp to the moment the marker line
"VOLT-GUEST hello: ok" arrives on the command's stdout (read by this script), so exec, the
dynamic loader, runtime start, VM setup and the guest's own code up to its line are all in it,
the same for every command. The commands take turns (A B C ... A B C ...), so drift hits all.

volt-vmm and QEMU boot the same PVH test guest (guests/out/hello.elf, 1 vCPU, --memory MiB);
the floor program runs 15 bytes of real-mode code in 128 MiB of memfd RAM that write the same
line (one port exit per byte, as hello's polled UART does). volt-vmm's own boot-timer line
(port 0x440, time since its main) is shown alongside.

Memory: the guest is told to halt instead of resetting ("halt" on its cmdline), then the PSS
of the VMM process and its children (volt-vmm's launcher; QEMU has none here) is read from
/proc/PID/smaps with the guest-RAM mapping left out.

Usage: bench/boot.py [--runs 20] [--volt LABEL=PATH ...] [--qemu PATH | --no-qemu] [--memory 256]
Needs: make -C guests; make -C bench; swift build -c release and/or scripts/build-static.sh.
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
STAMP = os.path.join(ROOT, "bench/out/exec-stamp")
FLOOR = os.path.join(ROOT, "bench/out/kvm-floor")
GUEST = os.path.join(ROOT, "guests/out/hello.elf")


def volt_cmd(volt, memory, cmdline, extra=()):
    return [volt, "run", "--kernel", GUEST, "--memory", str(memory), "--vcpus", "1", "--cmdline", cmdline, *extra]


def qemu_cmd(qemu, memory, cmdline):
    return [qemu, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off,pit=on,pic=on",
            "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", f"{memory}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-display", "none",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-kernel", GUEST, "-append", cmdline]


def time_to_marker(cmd, timeout=20.0, prefix=()):
    """Seconds from exec-stamp's CLOCK_MONOTONIC stamp (just before the command's execve) to
    MARKER on its stdout, plus the process (still running or not) and stderr read so far.
    `prefix` runs before exec-stamp (e.g. ip netns exec NS) and is not timed."""
    proc = subprocess.Popen([*prefix, STAMP, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = b"", b""
    deadline = time.monotonic() + timeout
    fds = [proc.stdout.fileno(), proc.stderr.fileno()]
    while MARKER not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise RuntimeError(f"no marker within {timeout}s from {cmd[0]}: {out[-200:]!r} {err[-400:]!r}")
        ready, _, _ = select.select(fds, [], [], left)
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if fd == fds[1]:
                err += chunk
                continue
            if not chunk:
                proc.wait()
                raise RuntimeError(f"{cmd[0]} exited {proc.returncode} before the marker: "
                                   f"{err[-400:] + proc.stderr.read()[-400:]!r}")
            out += chunk
    m = re.search(rb"exec-stamp (\d+)", err)
    if not m:
        raise RuntimeError(f"no exec-stamp line from {STAMP}: {err[-200:]!r}")
    return (now - int(m.group(1))) / 1e9, proc, err


def finish(proc, err=b""):
    """Waits (5 s, then kill) and returns all of stderr."""
    try:
        rest = proc.communicate(timeout=5)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        rest = proc.communicate()[1]
    return (err + rest).decode(errors="replace")


def pss_without_guest_ram(pid, guest_bytes):
    """PSS (KiB) of all mappings except guest RAM (the volt memfd, or QEMU's RAM block)."""
    return smaps_totals(pid, guest_bytes)["Pss"]


def smaps_totals(pid, guest_bytes):
    """Pss, Private (clean + dirty), Private_Dirty, Rss in KiB over all mappings but guest RAM."""
    totals = {"Pss": 0, "Private": 0, "Private_Dirty": 0, "Rss": 0}
    skip = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                skip = "volt-guest-ram" in line or "floor-ram" in line or (hi - lo) >= guest_bytes
                continue
            if skip:
                continue
            key, _, rest = line.partition(":")
            if key in ("Pss", "Rss", "Private_Dirty"):
                totals[key] += int(rest.split()[0])
            if key in ("Private_Clean", "Private_Dirty"):
                totals["Private"] += int(rest.split()[0])
    return totals


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


def header(what):
    load = open("/proc/loadavg").read().split()[:3]
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {os.uname().release}, {os.cpu_count()} CPUs, "
          f"load {' '.join(load)}; {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--volt", action="append", metavar="LABEL=PATH",
                    help="a volt-vmm binary to time (repeatable; default: the release and static builds that exist)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args()
    volts = [v.split("=", 1) for v in args.volt] if args.volt else [
        (label, os.path.join(ROOT, path)) for label, path in
        (("volt release", ".build/release/volt-vmm"), ("volt static", ".build/static/release/volt-vmm"))
        if os.path.exists(os.path.join(ROOT, path))]
    for path in [GUEST, STAMP, FLOOR] + [p for _, p in volts]:
        if not os.path.exists(path):
            sys.exit(f"{path} missing — run make -C guests, make -C bench, swift build -c release (or scripts/build-static.sh)")

    commands = [("kvm floor", lambda cmdline: [FLOOR])]
    commands += [(label, lambda cmdline, p=path: volt_cmd(p, args.memory, cmdline)) for label, path in volts]
    if not args.no_qemu:
        commands.append(("qemu microvm", lambda cmdline: qemu_cmd(args.qemu, args.memory, cmdline)))

    times = {label: [] for label, _ in commands}
    boot_timer = {label: [] for label, _ in commands}
    for make in (m for _, m in commands):   # one warm-up each
        _, proc, err = time_to_marker(make("bench"))
        finish(proc, err)
    for _ in range(args.runs):
        for label, make in commands:
            t, proc, err = time_to_marker(make("bench"))
            log = finish(proc, err)
            times[label].append(t * 1000)
            m = re.search(r"boot-timer: ([0-9.]+) ms", log)
            if m:
                boot_timer[label].append(float(m.group(1)))
    pss = {}
    for label, make in commands:
        if label == "kvm floor":
            continue
        _, proc, err = time_to_marker(make("bench halt"))
        time.sleep(0.3)
        pss[label] = pss_tree_without_guest_ram(proc.pid, args.memory << 20)
        proc.send_signal(signal.SIGTERM)
        finish(proc, err)

    header(f"exec -> guest's first line, {args.runs} runs each taking turns, 1 vCPU, {args.memory} MiB "
           f"(floor: 128 MiB); {', '.join(f'{l} = {os.path.relpath(p, ROOT)}' for l, p in volts)}")
    floor_median = statistics.median(times["kvm floor"])
    qemu_median = statistics.median(times["qemu microvm"]) if "qemu microvm" in times else None
    print(f"{'':14}{'min ms':>9}{'median ms':>11}{'p95 ms':>9}{'/floor':>8}{'/qemu':>8}{'PSS-RAM MiB':>13}{'of it children':>16}")
    for label, _ in commands:
        lo, med, p95 = stats(times[label])
        q = f"{med / qemu_median:8.2f}" if qemu_median else f"{'':8}"
        p = f"{pss[label][0] / 1024:13.2f}{pss[label][1] / 1024:16.2f}" if label in pss else ""
        print(f"{label:14}{lo:9.2f}{med:11.2f}{p95:9.2f}{med / floor_median:8.2f}{q}{p}")
    for label, samples in boot_timer.items():
        if samples:
            print(f"{label}: boot-timer port (since its main) median {statistics.median(samples):.2f} ms")


if __name__ == "__main__":
    main()
