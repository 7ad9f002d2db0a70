#!/usr/bin/env python3
"""Host-side peer for virtio_net.elf on a TAP (or any) interface, via AF_PACKET.

    net_peer.py IFACE [--expect-tx N] [--send M] [--send-first] [--text TEXT] [--timeout S]

Captures frames with ethertype 0x88b5 arriving from the guest and prints
`tx <len> <payload text>` for each.  After the first guest frame arrives
(so the guest's RX buffers are posted) it sends M broadcast frames with
ethertype 0x88b5 and payload `VOLT-NET-RX <TEXT> <i>` (zero padded to a
60-byte frame); with --send-first it sends them at once instead (a guest
restored from a snapshot already has its buffers posted).  Exits 0 when N
guest frames were seen (and M sent).
Run it before starting QEMU; print `ready` is the signal that it listens.
"""
import argparse
import socket
import sys
import time

ETH_P_VOLT = 0x88B5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("--expect-tx", type=int, default=4)
    ap.add_argument("--send", type=int, default=1)
    ap.add_argument("--text", default="hello")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--send-first", action="store_true")
    a = ap.parse_args()

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_VOLT))
    s.bind((a.iface, ETH_P_VOLT))
    s.settimeout(0.2)
    print("ready", flush=True)
    seen, sent = 0, 0

    def send_all():
        nonlocal sent
        while sent < a.send:
            body = f"VOLT-NET-RX {a.text} {sent}".encode()
            out = b"\xff" * 6 + bytes.fromhex("020000aa0001") + ETH_P_VOLT.to_bytes(2, "big") + body
            s.send(out.ljust(60, b"\0"))
            sent += 1

    if a.send_first:
        send_all()
    deadline = time.time() + a.timeout
    while time.time() < deadline and (seen < a.expect_tx or sent < a.send):
        try:
            frame, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue                                 # our own transmissions
        payload = frame[14:].split(b"\0", 1)[0]
        text = "".join(chr(c) if 0x20 <= c < 0x7F else "?" for c in payload)
        print(f"tx {len(frame)} src={frame[6:12].hex(':')} dst={frame[0:6].hex(':')} {text}", flush=True)
        seen += 1
        send_all()
    print(f"peer seen={seen} sent={sent}", flush=True)
    return 0 if seen >= a.expect_tx and sent >= a.send else 1


if __name__ == "__main__":
    sys.exit(main())
