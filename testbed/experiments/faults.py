"""``testbed experiment faults``: our CN agent under storage faults and kills (issue 11 item 4).

The invariant judged throughout: **no acknowledged sequence number is ever lost**. Every BA 0
the tester receives names a number the CN said was durable; after whatever happened (a
SIGKILL at a random moment of a BU flood, a SIGKILL injected by strace at one system call of
the sequence store's write, a full or read-only state directory and a restart) a BU carrying
that number again must be refused (BA 135 with a number at least as high), never accepted.
And the CN keeps serving what it can, and says why it cannot (``store_failed``,
``store_read_only`` events).

Same lab, results and verdicts as ``testbed experiment security`` (``docs/conformance.md``).
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from testbed.experiments.conformance import plan
from testbed.experiments.conformance.context import CheckFailed, Context, check
from testbed.experiments.conformance.suite import _session
from testbed.experiments.conformance.target import load_target
from testbed.experiments.verdicts import Outcome, evidence_sections, verdict_table, write_outcomes
from testbed.lab import craft
from testbed.lab.lab import Lab
from testbed.lab.tester import NodeWire

FAULTS: list = []
SETTINGS = {"kills": 20, "seed": 1, "flood": 150}
P = plan.PEERS
COAS = plan.CAREOF[:2]
STORE_STEPS = (
    # (what, system calls, which occurrence since the start): the store's write path
    ("first record: write of the temporary file", "pwrite64", 1),
    ("first record: fsync of the temporary file", "fsync", 1),
    ("first record: rename into place", "rename,renameat,renameat2", 1),
    ("first record: fsync of the directory", "fsync", 2),
    ("update: write of the slot", "pwrite64", 2),
    ("update: fdatasync", "fdatasync", 1),
)


def fault(id, title):
    return check(id, "rfc4449", title, "R4", None, registry=FAULTS)


def _newer_or_same(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFF) < 0x8000


def _acked(ctx: Context, since: int, deadline_s: float) -> list[int]:
    return [h.seq for h in ctx.heard(since, deadline_s, None, mh_type=craft.BA) if h.status == 0]


def _check_kept(ctx: Context, home: str, acked: list[int], what: str) -> int:
    """Each acknowledged number sent again must be refused with BA 135 carrying it or a
    later one; returns the CN's last number (what the next BU goes on from)."""
    if not acked:
        return ctx.seq.get(home, 0)
    top = acked[-1]
    for n in sorted(set(acked))[-3:]:  # the last few acknowledged (the last is what matters)
        pkt = ctx.bu(home, seq=n, coa=COAS[0])
        ba = ctx.ask(pkt, mh_type=craft.BA, dst=COAS[0])
        if ba is None:
            raise CheckFailed(f"{what}: no answer to the acknowledged number {n} sent again")
        if ba.status == 0:
            raise CheckFailed(f"{what}: the acknowledged number {n} was accepted again: it was lost")
        if ba.status != 135 or not _newer_or_same(ba.seq, n):
            raise CheckFailed(f"{what}: number {n} sent again drew BA {ba.status} with {ba.seq}")
        top = ba.seq
    ctx.seq[home] = top
    return top


def _wipe_store(ctx: Context) -> None:
    ctx.iut.kill()
    shutil.rmtree(ctx.iut.state_dir / "sequence", ignore_errors=True)
    ctx.seq.clear()


def _node(ctx: Context, command: str) -> str:
    done = ctx.iut.run_in_node(["sh", "-c", command], timeout=20)
    if done.returncode != 0:
        raise CheckFailed(f"{command!r} in the node failed: {(done.stderr or done.stdout).strip()[:200]}")
    return done.stdout


@fault("kill-during-flood", "SIGKILL at a random moment of a BU flood, again and again: no acknowledged number "
       "is lost across the restarts")
def kill_during_flood(ctx: Context) -> str:
    rng = random.Random(SETTINGS["seed"])
    home, n = P.restart, SETTINGS["flood"]
    rounds, acked_total, moments = [], 0, []
    for r in range(SETTINGS["kills"]):
        base = ctx.seq.get(home, 0)
        batch = [ctx.bu(home, seq=(base + i + 1) & 0xFFFF, coa=COAS[i % 2]) for i in range(n)]
        delay = rng.uniform(0.02, n * 0.002 * 0.9)
        moments.append(round(delay * 1000))
        killer = threading.Timer(delay, ctx.iut.kill)
        t = ctx.wire.now()
        killer.start()
        ctx.wire.send(*batch, gap_us=2000)
        killer.join()
        acked = _acked(ctx, t, 0.2)
        acked_total += len(acked)
        ctx.trace.append(f"-- round {r + 1}: BUs {base + 1}..{base + n} at 500/s, SIGKILL after {delay * 1000:.0f} ms; "
                         f"{len(acked)} acknowledged (last {acked[-1] if acked else '-'}) --")
        ctx.iut.start()
        last = _check_kept(ctx, home, acked, f"round {r + 1}")
        rounds.append({"acked": len(acked), "last_acked": acked[-1] if acked else None, "cn_last": last})
    ctx.fuzz_figures = {"rounds": rounds, "kill_after_ms": moments}  # type: ignore[attr-defined]
    return (f"{len(rounds)} kills during floods of {n} BUs; {acked_total} BUs acknowledged in all; after every "
            "restart each last acknowledged number drew BA 135 (none lost)")


@fault("kill-at-store-step", "SIGKILL injected (strace) at each system call of the store's write, first record "
       "and update: no acknowledged number is lost, the peer binds after the restart")
def kill_at_store_step(ctx: Context) -> str:
    if shutil.which("strace") is None:
        raise CheckFailed("strace is not installed (scripts/install installs it)")
    home = P.restart
    results = []
    for what, calls, when in STORE_STEPS:
        _wipe_store(ctx)
        ctx.iut.start(wrapper=["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
                               "-e", f"inject={calls}:signal=KILL:when={when}"],
                      env={"PYTHONDONTWRITEBYTECODE": "1"})
        t = ctx.wire.now()
        acked: list[int] = []
        for seq in (1, 2):
            if not ctx.iut.alive():
                break
            ctx.send(ctx.bu(home, seq=seq, coa=COAS[0]))
            acked += _acked(ctx, t, 0.6)
            t = ctx.wire.now()
        end = time.monotonic() + 5
        while ctx.iut.alive() and time.monotonic() < end:
            time.sleep(0.05)
        if ctx.iut.alive():
            raise CheckFailed(f"{what}: the agent was not killed: the step {calls} #{when} never ran")
        ctx.trace.append(f"-- killed at {what} ({calls} #{when}); acknowledged before: {acked or 'none'} --")
        ctx.iut.process.stop()
        ctx.iut.start()
        last = _check_kept(ctx, home, sorted(acked), what)
        # the next number after everything sent (a number sent but not acknowledged may be durable)
        seq = (max(last, 2) + 1) & 0xFFFF
        ba = ctx.ask(ctx.bu(home, seq=seq, coa=COAS[1]), mh_type=craft.BA, dst=COAS[1])
        if ba is None or ba.status != 0:
            raise CheckFailed(f"{what}: after the restart BU {seq} got {'no BA' if ba is None else f'BA {ba.status}'}")
        ctx.seq[home] = seq
        results.append(f"{what}: acked {acked or 'none'}, kept; then BU {seq} BA 0")
    return "; ".join(results)


@fault("state-dir-full", "the CN's state directory full: no BA 0 for a number it cannot make durable, a store_failed "
       "event says why, return routability still served, and what it acknowledged survives a kill")
def state_dir_full(ctx: Context) -> str:
    state = ctx.iut.state_dir
    a, b = P.main, P.other
    _wipe_store(ctx)
    state.mkdir(parents=True, exist_ok=True)
    _node(ctx, f"mount -t tmpfs -o size=64k,mode=0700 mip6conf-full {state}")
    try:
        ctx.iut.start()
        acked = _acked_bind(ctx, a, 1)
        _node(ctx, f"cat /dev/zero > {state}/filler 2>/dev/null; test -s {state}/filler")
        t = ctx.wire.now()
        ba = ctx.ask(ctx.bu(a, seq=2, coa=COAS[1]), mh_type=craft.BA, dst=COAS[1])
        if ba is not None and ba.status == 0:
            acked.append(2)  # an update in place needs no new space: fine, if it is durable (checked below)
        got = ctx.quiet(ctx.bu(b, seq=1, coa=COAS[0]), mh_type=craft.BA)
        if any(h.status == 0 for h in got):
            raise CheckFailed("BA 0 for a new peer whose first record cannot be written (disk full)")
        failed = ctx.node_events(t, "store_failed")
        if not failed or "No space left" not in str(failed[-1].get("reason")):
            raise CheckFailed("no store_failed event naming the full disk")
        cookie = b"fullfull"
        hot = ctx.ask(craft.home_test_init(plan.RR_HOMES[0], plan.CN_ADDRESS, cookie), mh_type=craft.HOT)
        if hot is None or hot.cookie != cookie:
            raise CheckFailed("with a full state directory the CN stopped serving return routability")
        ctx.iut.kill()
        ctx.trace.append("-- CN killed (SIGKILL) and started again, the disk still full --")
        ctx.iut.start()
        _check_kept(ctx, a, acked, "after a restart on a full disk")
        _node(ctx, f"rm -f {state}/filler")
        ctx.seq[b] = 1
        seq = _acked_bind(ctx, b, 2)
        return (f"full: peer {a} acknowledged {acked}, kept across a kill; new peer {b}: no BA 0, store_failed "
                f"({str(failed[-1].get('reason'))[-60:]}); HoT still sent; space back: {b} bound with {seq}")
    finally:
        ctx.iut.kill()
        ctx.iut.run_in_node(["umount", "-l", str(state)])
        ctx.seq.clear()
        ctx.iut.start()


def _acked_bind(ctx: Context, home: str, seq: int) -> list[int]:
    ctx.expect_ba(ctx.bu(home, seq=seq, coa=COAS[0]), home, COAS[0], status=0, seq=seq,
                  key=ctx.pairs[home].kbm(craft.a16(COAS[0])), what=f"BU {seq} of {home}")
    ctx.seq[home] = seq
    return [seq]


@fault("state-dir-read-only", "the CN's state directory read-only: it starts and says so (store_read_only), "
       "refuses what needs a write (no BA 0), still refuses replays of what it stored, and binds return-routability "
       "peers")
def state_dir_read_only(ctx: Context) -> str:
    state = ctx.iut.state_dir
    a = P.main
    _wipe_store(ctx)
    ctx.iut.start()
    acked = _acked_bind(ctx, a, 5)
    ctx.iut.kill()
    _node(ctx, f"mount --bind {state} {state} && mount -o remount,bind,ro {state}")
    try:
        t = ctx.wire.now()
        ctx.iut.start()
        said = ctx.node_events(t, "store_read_only")
        if not said:
            raise CheckFailed("the CN did not report its read-only state directory")
        _check_kept(ctx, a, acked, "read-only")
        got = ctx.quiet(ctx.bu(a, seq=6, coa=COAS[1]), mh_type=craft.BA)
        if any(h.status == 0 for h in got):
            raise CheckFailed("BA 0 for a number the CN could not write (read-only state directory)")
        if not ctx.node_events(t, "store_failed"):
            raise CheckFailed("no store_failed event for the BU it could not make durable")
        from testbed.experiments.conformance import checks_cn

        rr = checks_cn.rr_bind(ctx)
        return (f"started, store_read_only; stored number {acked[-1]} still refused when sent again; BU 6: no BA 0, "
                f"store_failed; return routability: {rr}")
    finally:
        ctx.iut.kill()
        ctx.iut.run_in_node(["umount", "-l", str(state)])
        ctx.seq.clear()
        ctx.iut.start()


def run_faults(out: Path, *, kills: int, seed: int, only: set[str] | None = None, weaken: tuple[str, ...] = (),
               progress: Callable[[Outcome], None] | None = None) -> dict:
    SETTINGS.update(kills=kills, seed=seed)
    target = load_target("ours")
    outcomes: list[Outcome] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    with Lab("conformance", run_dir=out / "lab") as lab:
        iut_mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        capture = lab.capture("tester", plan.TESTER_IFACE)
        wire = NodeWire(lab, "tester", plan.TESTER_IFACE, dst_mac=iut_mac)
        try:
            todo = [f for f in FAULTS if only is None or f.id in only]
            sessions = [_session(lab, wire, target, "cn", "rfc4449", todo, out, weaken, outcomes, progress)]
        finally:
            wire.close()
            capture.stop()
    lines = ["# Faults: kills and storage failures at our CN", "",
             "The invariant: no acknowledged sequence number is lost (a BU carrying it again after the fault draws BA "
             "135, never BA 0), and the CN keeps serving what it can, saying why it cannot.", ""]
    if weaken:
        lines += [f"**The CN ran with test-only weakenings: {', '.join(weaken)}** (this run shows the checks can fail).", ""]
    lines += verdict_table(outcomes, name_header="fault")
    lines += ["", "## Evidence", ""] + evidence_sections(outcomes, packets=40)
    return write_outcomes(out, "faults", outcomes, report="\n".join(lines) + "\n", started=started, kills=kills,
                          seed=seed, sessions=sessions, weakened=list(weaken))

