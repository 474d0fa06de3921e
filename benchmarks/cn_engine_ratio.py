"""The CN engine's cost per BU for a precomputed peer against the plain-Python floor, in one run.

The engine (``CorrespondentNode.receive``): parse the IPv6 packet and the Mobility Header,
check the option layout, the checksum and the authenticator (Kbm cached per care-of address),
compare the sequence number, update the binding, build and seal the BA; its Persist action is
returned, not carried out (the durable write is measured on its own: tests/unit/test_seqstore.py).

The floor: only what no implementation can skip, in plain Python on the same packets: the BU's
checksum and authenticator checked, the BA's authenticator and checksum computed (two one-shot
``hmac.digest`` calls, two checksums with ``testbed.mip6.packet.internet_checksum``), the BA's
octets from a template.

Both are timed call by call (``time.perf_counter_ns``, the garbage collector off), in
alternating batches so that whatever else the machine does falls on both alike; the medians
and their ratio are printed (goal, issue 12: the engine at most 3x the floor), with the
machine's load and the CPU time other processes took meanwhile.

Usage: .venv/bin/python benchmarks/cn_engine_ratio.py [BUS] [BATCH]
"""

from __future__ import annotations

import gc
import hmac
import ipaddress
import os
import statistics
import struct
import sys
import time

from testbed.mip6.actions import Send
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import IPPROTO_MH
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.messages import BindingAck, BindingUpdate
from testbed.mip6.packet import build_packet, internet_checksum
from testbed.mip6.sealing import seal_bad

HOME = ipaddress.IPv6Address("2001:db8:1::100")
COA = ipaddress.IPv6Address("2001:db8:11::100").packed
CN = ipaddress.IPv6Address("2001:db8:3::1").packed
GOAL_RATIO = 3.0
_KCN = bytes.fromhex("5c1e0a93d27f46b8e01d9a3c77f2b5046ea18d3f")  # a fixed, well-mixed test key
_NONCES = (bytes.fromhex("a1b2c3d4e5f60718"), bytes.fromhex("8f7e6d5c4b3a2910"))


def setup(bus: int) -> tuple[CorrespondentNode, bytes, list[bytes]]:
    """An engine with one precomputed peer, its Kbm for COA, and ``bus`` BUs (numbers 1..bus)."""
    data = PreconfiguredData(HOME, ipaddress.IPv6Address(CN), _KCN, *_NONCES)
    engine = CorrespondentNode(CN, peers=[data])
    kbm = binding_management_key(home_keygen_token(data.kcn, HOME.packed, data.home_nonce),
                                 careof_keygen_token(data.kcn, COA, data.careof_nonce))
    packets = [build_packet(COA, CN, IPPROTO_MH, seal_bad(BindingUpdate(seq, 105, ack=True), kbm, COA, CN),
                            home_address=HOME.packed) for seq in range(1, bus + 1)]
    return engine, kbm, packets


def ba_template(kbm: bytes) -> bytes:
    """An accepted BA's Mobility Header as the engine lays it out (options and padding), to
    fill in per BU."""
    return seal_bad(BindingAck(0, 0, 105), kbm, COA, CN)


def floor(packet: bytes, kbm: bytes, template: bytes) -> bytes:
    """What any CN must do for one precomputed BU, in plain Python: the BU's checksum and
    authenticator checked, a BA sealed and checksummed. Returns the BA's Mobility Header."""
    mh = packet[64:]  # IPv6 header (40) + Destination Options with the Home Address option (24)
    home = packet[48:64]  # (the option's address, at the end of the extension header)
    careof, cn = packet[8:24], packet[24:40]
    if internet_checksum(home + cn + struct.pack("!I3xB", len(mh), IPPROTO_MH) + mh) != 0:
        raise ValueError("bad checksum")
    want = hmac.digest(kbm, careof + cn + mh[:4] + b"\0\0" + mh[6:-12], "sha1")[:12]
    if not hmac.compare_digest(want, mh[-12:]):
        raise ValueError("bad authenticator")
    head = template[:4] + b"\0\0" + template[6:8] + mh[6:8] + template[10:-12]  # the BU's number
    ba = head + hmac.digest(kbm, careof + cn + head, "sha1")[:12]
    checksum = internet_checksum(cn + home + struct.pack("!I3xB", len(ba), IPPROTO_MH) + ba)
    return ba[:4] + checksum.to_bytes(2, "big") + ba[6:]


def measure(bus: int = 20000, batch: int = 500) -> dict:
    """Per-call times (ns) of the engine and of the floor on the same BUs, interleaved by batch."""
    engine, kbm, packets = setup(bus)
    template = ba_template(kbm)
    clock = time.perf_counter_ns
    receive = engine.receive
    engine_ns: list[int] = []
    floor_ns: list[int] = []
    accepted = 0
    now = 1_000_000_000
    enabled = gc.isenabled()
    gc.disable()
    try:
        for start in range(0, bus, batch):
            chunk = packets[start:start + batch]
            for packet in chunk:
                t0 = clock()
                floor(packet, kbm, template)
                floor_ns.append(clock() - t0)
            for packet in chunk:
                t0 = clock()
                actions = receive(packet, now)
                engine_ns.append(clock() - t0)
                accepted += sum(1 for a in actions if type(a) is Send)
                now += 1000
    finally:
        if enabled:
            gc.enable()
    return {"engine_ns": engine_ns, "floor_ns": floor_ns, "accepted": accepted, "bus": bus}


def _busy_elsewhere(since: dict[int, int]) -> list[tuple[str, float]]:
    """CPU seconds other processes used since ``since`` (pid -> clock ticks), busiest first."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for pid, ticks in _cpu_ticks().items():
        if pid == os.getpid():
            continue
        used = ticks - since.get(pid, 0)  # a process started meanwhile: all of its time
        if used / tick >= 0.05:
            out.append((f"{pid} {_comm(pid)}", used / tick))
    return sorted(out, key=lambda x: -x[1])[:5]


def _cpu_ticks() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(name)] = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def main() -> int:
    bus = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    before = _cpu_ticks()
    wall = time.monotonic()
    result = measure(bus, batch)
    wall = time.monotonic() - wall
    eng, flo = result["engine_ns"], result["floor_ns"]
    e50, f50 = statistics.median(eng) / 1e3, statistics.median(flo) / 1e3
    q = lambda v, p: sorted(v)[int(p * (len(v) - 1))] / 1e3  # noqa: E731
    print(f"BUs {bus} (precomputed peer, one care-of address, Kbm cached), {result['accepted']} accepted")
    print(f"{'':10} {'median us':>10} {'p10 us':>8} {'p90 us':>8}")
    print(f"{'engine':10} {e50:>10.2f} {q(eng, 0.1):>8.2f} {q(eng, 0.9):>8.2f}")
    print(f"{'floor':10} {f50:>10.2f} {q(flo, 0.1):>8.2f} {q(flo, 0.9):>8.2f}")
    ratio = e50 / f50
    print(f"ratio engine/floor {ratio:.2f} (goal <= {GOAL_RATIO:g}): {'met' if ratio <= GOAL_RATIO else 'NOT met'}")
    load = os.getloadavg()
    others = ", ".join(f"{name} {s:.1f}s" for name, s in _busy_elsewhere(before))
    print(f"machine: {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"over the {wall:.1f} s run other processes used: {others or 'nothing measurable'}")
    return 0 if result["accepted"] == bus else 1


if __name__ == "__main__":
    sys.exit(main())
