"""Put raw IPv6 packets on the wire from inside a lab node (attacks: replays, forgeries).

``python -m testbed.lab.inject HEX [HEX ...]`` sends each packet, given as hex, through a raw
IPv6 socket with the header included, routed by its destination; prints one line per packet.
"""

from __future__ import annotations

import socket
import sys


def send(packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for packet in packets:
            sock.sendto(packet, (socket.inet_ntop(socket.AF_INET6, packet[24:40]), 0))
            print(f"sent {len(packet)} octets to {socket.inet_ntop(socket.AF_INET6, packet[24:40])}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        packets = [bytes.fromhex(a) for a in args]
    except ValueError:
        print("inject: error: arguments must be IPv6 packets in hex", file=sys.stderr)
        return 2
    if not packets or any(len(p) < 40 or p[0] >> 4 != 6 for p in packets):
        print("inject: error: give at least one whole IPv6 packet", file=sys.stderr)
        return 2
    send(packets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
