"""A packet tool that runs inside a lab node (the tester, the attacker, a scripted mobile
node): frames out and in on one interface, driven by JSON commands on stdin.

    python -m testbed.lab.wiretool --iface tester-eth0 [--dst-mac MAC]

Packets leave as whole Ethernet frames on an AF_PACKET socket (so nothing in this node's
IPv6 stack, routing or netfilter changes them; a malformed packet leaves as made) to
``dst_mac`` (per command, else ``--dst-mac``; multicast destinations get their multicast
MAC). A reader thread keeps every IPv6 frame that arrives (not the ones it sent), stamped
with ``time.monotonic_ns()``, so an answer that comes before it is asked for is not lost.

One JSON object per line in, one per line out (``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``); the first line out is ``{"ready": true, "mac": ...}``. Commands:

- ``{"cmd": "send", "packets": [hex, ...], "dst_mac": MAC, "gap_us": 0}`` -> ``t_ns`` of the first;
- ``{"cmd": "recv", "since_ns": T, "deadline_s": S, "count": N, "match": {...}}``: the packets
  that arrived since ``T`` and match, waiting up to ``S`` seconds for ``N`` of them
  (``match``: ``nh``, ``mh_type``, ``src``, ``dst``, ``final_dst``, ``icmp_type``,
  ``inner_mh_type``, ``not_src``; neighbour discovery and MLD are never returned unless
  ``icmp_type`` asks for them);
- ``{"cmd": "now"}`` -> ``t_ns``;
- ``{"cmd": "bu", "key_file": PATH, ...}``: a Binding Update authenticated with the
  preconfigured data in ``PATH`` (a file of this node: a scripted mobile node uses its own
  key, which never leaves the node), sent, and returned as hex;
- ``{"cmd": "fuzz", "seeds": [hex], "count": N, "seed": S, "rate": R, "generated": G,
  "sources": [[src, dst]], "dst_mac": MAC}``: N mutants (``testbed.lab.fuzz``) at R a second;
  returns how many of each strategy, send errors, and what came back meanwhile;
- ``{"cmd": "quit"}``.

Scapy builds packets here only inside ``fuzz`` (the generated pool) and ``bu``
(``testbed.lab.craft``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import select
import socket
import sys
import threading
import time

from testbed.lab import craft

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
NEIGHBOUR_TYPES = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})  # MLD, ND, redirect
KEEP_PACKETS = 200_000
RCVBUF = 16 * 1024 * 1024


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _interface_mac(iface: str) -> str:
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def matches(packet: craft.Reply, match: dict) -> bool:
    if "nh" in match and packet.next_header != match["nh"]:
        return False
    if "mh_type" in match and packet.mh_type != match["mh_type"]:
        return False
    for key, value in (("src", packet.src), ("dst", packet.dst), ("final_dst", packet.final_destination)):
        if key in match and value != craft.a16(match[key]):
            return False
    if "not_src" in match and packet.src == craft.a16(match["not_src"]):
        return False
    if packet.next_header == craft.ICMPV6 and packet.payload:
        icmp = packet.payload[0]
        if "icmp_type" in match:
            return icmp == match["icmp_type"]
        if icmp in NEIGHBOUR_TYPES:
            return False
    elif "icmp_type" in match:
        return False
    if "inner_mh_type" in match:
        inner = packet.inner()
        return inner is not None and inner.mh_type == match["inner_mh_type"]
    return True


class WireTool:
    def __init__(self, iface: str, dst_mac: str | None = None) -> None:
        self.iface = iface
        self.mac = _interface_mac(iface)
        self.dst_mac = dst_mac
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((iface, 0))
        self.received: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=KEEP_PACKETS)
        self.arrived = threading.Condition()
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- the wire ---------------------------------------------------------------------------

    def _read(self) -> None:
        sock = self.sock
        while not self._stop:
            if not select.select([sock], [], [], 0.2)[0]:
                continue
            try:
                frame, addr = sock.recvfrom(65535)
            except OSError:
                continue
            if addr[2] == socket.PACKET_OUTGOING or frame[12:14] != b"\x86\xdd":
                continue
            t = time.monotonic_ns()
            with self.arrived:
                self.received.append((t, frame[14:]))
                self.arrived.notify_all()

    def frame(self, packet: bytes, dst_mac: str | None) -> bytes:
        dst = packet[24:40]
        if dst[0] == 0xFF:
            mac = b"\x33\x33" + dst[12:16]
        else:
            chosen = dst_mac or self.dst_mac
            if chosen is None:
                raise ValueError("no destination MAC: give dst_mac")
            mac = _mac_bytes(chosen)
        return mac + _mac_bytes(self.mac) + b"\x86\xdd" + packet

    def send(self, packets: list[bytes], dst_mac: str | None = None, gap_us: float = 0) -> int:
        first = 0
        for i, packet in enumerate(packets):
            if i and gap_us:
                time.sleep(gap_us / 1e6)
            frame = self.frame(packet, dst_mac)
            t = time.monotonic_ns()
            self.sock.send(frame)
            first = first or t
        return first

    def recv(self, since_ns: int, deadline_s: float, count: int | None, match: dict) -> list[tuple[int, bytes]]:
        end = time.monotonic() + deadline_s
        while True:
            with self.arrived:
                found = []
                for t, packet in list(self.received):
                    if t < since_ns:
                        continue
                    try:
                        reply = craft.read(packet)
                    except ValueError:
                        continue
                    if matches(reply, match):
                        found.append((t, packet))
                if count is not None and len(found) >= count:
                    return found[:count]
                left = end - time.monotonic()
                if left <= 0:
                    return found
                self.arrived.wait(min(left, 0.05))

    # -- commands ---------------------------------------------------------------------------

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if cmd == "send":
            packets = [bytes.fromhex(h) for h in request["packets"]]
            t = self.send(packets, request.get("dst_mac"), float(request.get("gap_us", 0)))
            return {"ok": True, "t_ns": t, "sent": len(packets)}
        if cmd == "recv":
            got = self.recv(int(request.get("since_ns", 0)), float(request.get("deadline_s", 0)),
                            request.get("count"), request.get("match") or {})
            return {"ok": True, "packets": [{"t_ns": t, "hex": p.hex()} for t, p in got]}
        if cmd == "now":
            return {"ok": True, "t_ns": time.monotonic_ns()}
        if cmd == "bu":
            return self._scripted_bu(request)
        if cmd == "fuzz":
            return self._fuzz(request)
        raise ValueError(f"unknown command {cmd!r}")

    def _scripted_bu(self, r: dict) -> dict:
        from testbed.storage.keyfiles import load_preconfigured

        keys = craft.PairKeys.of(load_preconfigured(r["key_file"]))
        careof = craft.a16(r["careof"])
        bound = craft.a16(r.get("alt_coa") or r["careof"])
        options = [craft.MIP6OptAltCoA(acoa=r["alt_coa"])] if r.get("alt_coa") else []
        lifetime = int(r.get("lifetime", 100))
        key = keys.kbm(None if lifetime == 0 else bound)
        packet = craft.binding_update(careof, keys.correspondent, seq=int(r["seq"]), lifetime=lifetime,
                                      home=keys.home, options=options, key=key, careof=bound)
        t = self.send([packet], r.get("dst_mac"))
        return {"ok": True, "t_ns": t, "hex": packet.hex()}

    def _fuzz(self, r: dict) -> dict:
        from testbed.lab.fuzz import Mutator, generated_pool

        rng = random.Random(int(r.get("seed", 1)))
        seeds = [bytes.fromhex(h) for h in r["seeds"]]
        sources = [(craft.a16(s), craft.a16(d)) for s, d in r.get("sources") or []]
        pool = generated_pool(rng, sources, int(r.get("generated", 0))) if sources else []
        mutator = Mutator(seeds, rng, pool)
        count, rate = int(r["count"]), float(r.get("rate", 2000))
        dst_mac = r.get("dst_mac")
        strategies: collections.Counter[str] = collections.Counter()
        errors: collections.Counter[str] = collections.Counter()
        start = time.monotonic_ns()
        batch = max(1, int(rate / 100))  # pace in slices of 10 ms
        sent = 0
        while sent < count:
            due = start + int(sent / rate * 1e9)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            for _ in range(min(batch, count - sent)):
                strategy, packet = mutator.next()
                try:
                    self.sock.send(self.frame(packet, dst_mac))
                    strategies[strategy] += 1
                except OSError as exc:
                    errors[exc.strerror or str(exc)] += 1
                sent += 1
        end = time.monotonic_ns()
        answers: collections.Counter[str] = collections.Counter()
        with self.arrived:
            for t, packet in self.received:
                if t >= start:
                    try:
                        reply = craft.read(packet)
                    except ValueError:
                        answers["not IPv6"] += 1
                        continue
                    if matches(reply, {}):
                        answers[reply.kind] += 1
        return {"ok": True, "sent": sent, "strategies": dict(strategies), "send_errors": dict(errors),
                "seconds": (end - start) / 1e9, "generated_pool": len(pool), "answers": dict(answers),
                "t_start_ns": start, "t_end_ns": end}

    def close(self) -> None:
        self._stop = True
        self._reader.join(timeout=1)
        self.sock.close()


def serve(tool: WireTool, lines, out) -> None:
    out.write(json.dumps({"ready": True, "mac": tool.mac}) + "\n")
    out.flush()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            if request.get("cmd") == "quit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            answer = tool.handle(request)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.lab.wiretool", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True)
    parser.add_argument("--dst-mac")
    args = parser.parse_args(argv)
    try:
        tool = WireTool(args.iface, args.dst_mac)
    except OSError as exc:
        print(f"wiretool: error: {args.iface}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        serve(tool, sys.stdin, sys.stdout)
    finally:
        tool.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
