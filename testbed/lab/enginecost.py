"""What a correspondent costs in-process, measured beside a load run (same machine, same run).

- ``EngineTransport``: the CN engine (``testbed.mip6.cn``) behind the load driver's transport
  interface. The driver sends it the very packets it sends the agent (the same fleet, rounds
  and return-routability exchanges), and it records them with the time it gave the engine.
- ``replay_cost``: those packets replayed, in order and with the same times, into a fresh
  engine made alike (same random source, so the same RR key and nonces), each
  ``engine.receive`` timed alone in a tight loop with the garbage collector off, as
  benchmarks/test_cn_bu_cost.py does (parse, checks, authenticator, sequence number,
  binding, the BA built). Timed between the driver's own steps, the same calls took up to
  40 % longer (cold caches), which would flatter the agent's ratio. The engine's Persist
  actions are not carried out, as in the benchmark: the durable write is measured on its own.
- ``durable_write_cost``: the agents' store (``FileSequenceStore``) on a given directory's
  file system: a put for a known peer (one pwrite + fdatasync) and the first put for a new
  peer (file created, fsynced, directory fsynced).
- ``key_loading_cost``: reading and checking N key files and building the engine's peers,
  the in-process part of an agent's start-up.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from testbed.lab.fleet import Fleet
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.actions import Send
from testbed.mip6.persistence import SeqRecord
from testbed.storage.keyfiles import load_preconfigured
from testbed.storage.sequences import FileSequenceStore


class EngineTransport:
    """A load driver's transport that hands each packet to an in-process CN engine."""

    def __init__(self, engine: CorrespondentNode) -> None:
        self.engine = engine
        self.times_ns: dict[str, list[int]] = defaultdict(list)  # what -> engine time of each call
        self.sent: list[tuple[bytes, str, int]] = []  # (packet, what, the engine's now), in order
        self._out: list[tuple[bytes, int]] = []
        self.idle_ns = 0  # it never polls

    def send(self, packet: bytes, what: str) -> int:
        now = time.monotonic_ns()
        clock = time.perf_counter_ns
        t0 = clock()
        actions = self.engine.receive(packet, now)
        self.times_ns[what].append(clock() - t0)
        self.sent.append((packet, what, now))
        stamp = time.monotonic_ns()
        self._out += [(a.packet, stamp) for a in actions if type(a) is Send]
        return now

    def receive(self, timeout_s: float) -> list[tuple[bytes, int]]:
        out, self._out = self._out, []
        return out


def replay_cost(engine: CorrespondentNode, sent: list[tuple[bytes, str, int]]) -> tuple[dict[str, list[int]], int]:
    """Engine time of each packet of ``sent`` replayed into ``engine`` (see the module doc),
    and how many BAs it accepted with (every BU of the run, when the replay went alike)."""
    times: dict[str, list[int]] = defaultdict(list)
    clock = time.perf_counter_ns
    receive = engine.receive
    answers = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for packet, what, now in sent:
            t0 = clock()
            actions = receive(packet, now)
            times[what].append(clock() - t0)
            answers.append(actions)
    finally:
        if enabled:
            gc.enable()
    accepted = 0
    for actions in answers:
        for action in actions:
            reply = Fleet.classify(action.packet) if type(action) is Send else None
            if reply is not None and reply.kind == "ba" and reply.status < 128:
                accepted += 1
    return times, accepted


def median_us(values: list[int]) -> float | None:
    return round(statistics.median(values) / 1000, 2) if values else None


def mean_us(values: list[int]) -> float | None:
    return round(statistics.fmean(values) / 1000, 2) if values else None


def durable_write_cost(directory: Path, updates: int = 200, new_peers: int = 50) -> dict:
    """Median and p99 (us) of FileSequenceStore puts in a fresh directory under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="writecost-", dir=directory) as tmp:
        store = FileSequenceStore(Path(tmp) / "sequence")
        try:
            created = []
            for i in range(new_peers):
                t0 = time.perf_counter_ns()
                store.put(f"cn/cost/{i}", SeqRecord(1, 1))
                created.append(time.perf_counter_ns() - t0)
            updated = []
            for i in range(updates):
                t0 = time.perf_counter_ns()
                store.put("cn/cost/0", SeqRecord((i + 2) & 0xFFFF, i + 2))
                updated.append(time.perf_counter_ns() - t0)
        finally:
            store.close()
    return {"update_median_us": median_us(updated), "update_p99_us": _p99_us(updated),
            "new_peer_median_us": median_us(created), "new_peer_p99_us": _p99_us(created)}


def _p99_us(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] / 1000, 2)


def key_loading_cost(paths: list[Path], address: bytes) -> tuple[dict, list]:
    """Seconds to read and check ``paths`` (as the agent does), and to build a CN engine's
    peers from them; returns the figures and the loaded data."""
    t0 = time.perf_counter()
    peers = [load_preconfigured(p) for p in paths]
    t1 = time.perf_counter()
    CorrespondentNode(address, peers=peers)  # R10 checks, tokens
    t2 = time.perf_counter()
    return {"files": len(paths), "read_and_check_s": round(t1 - t0, 3), "engine_build_s": round(t2 - t1, 3)}, peers
