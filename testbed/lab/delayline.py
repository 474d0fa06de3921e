"""A user-space delay line: the link-delay backend for kernels without ``sch_netem``.

The line runs inside a namespace (a middle Mininet host) that holds two interfaces, A and B,
each the far end of a veth pair whose near ends belong to the two nodes of the delayed link::

    node X  [X-eth] ==veth== [A]  delay line  [B] ==veth== [Y-eth]  node Y

Every Ethernet frame received on A is sent out of B ``--delay-ms`` after it arrived, and
every frame received on B is sent out of A ``--delay-b-ms`` (default: the same) after it
arrived; order is preserved in each direction. Everything is delayed: ND, RAs, MH, data.

Usage (the argv is built by :func:`delayline_argv`)::

    python -m testbed.lab.delayline --if-a A --if-b B --delay-ms D [--delay-b-ms D2]
                                    [--tag RUNID] [--stats] [--spin-us 300] [--no-prepare]

- Prints exactly one line ``ready`` on stdout (flushed) once both sockets are bound and set
  up; wait for it before using the link. SIGUSR1 prints one JSON line of counters per
  direction (frames received/sent/queued, drops by reason, how late frames left: max, mean
  and a histogram in us); with ``--stats`` that line is also printed on exit. Log lines go
  to stderr.
- SIGTERM or SIGINT: closes its sockets and exits 0 (frames still in flight are dropped).
- ``--tag`` only marks the process (its command line) and its log lines with the run's id.
- Exit status: 0 after SIGTERM/SIGINT, 1 when an interface disappears (logged), 2 for bad
  arguments or an interface that cannot be opened (``delayline: error: ...`` on stderr).
- Interface down (ENETDOWN): the line logs it and waits for the interface to come back up
  (the kernel re-attaches the packet socket on up); frames that are due on a down interface
  are dropped and counted. If the interface is deleted (or replaced by one with a new index)
  the line logs the reason and exits 1.

How it works: one thread, one ``select`` loop over two ``AF_PACKET``/``ETH_P_ALL`` sockets
(frames the line itself sends are not read back: ``PACKET_IGNORE_OUTGOING``, and frames
marked ``PACKET_OUTGOING`` are skipped anyway). Each frame is stamped with its kernel
receive time (``SO_TIMESTAMPNS``, converted to ``time.monotonic_ns``) so a late wake-up does
not add to the delay, and queued in a FIFO per direction (the delay is constant per
direction, so the FIFO is also the due-time order). The loop blocks in ``select`` while
idle, sleeps with a 1 ns timer slack until ~300 us before the next frame is due, then spins.
Sockets use ``PACKET_VNET_HDR`` so checksum-offload and GSO metadata travel with a frame:
frames with unfinished checksums or of GSO size (up to 64 KiB) pass intact (sent through
the normal transmit path, which segments them if B cannot take them). The line also turns
offloads off on A and B (``ethtool -K <if> tx off tso off gso off``) and disables IPv6 on
them (so the middle node takes no addresses and answers no ND); both are best effort,
logged when they fail, and skipped with ``--no-prepare``.

Advice for the lab (wiring a delayed link):

- One middle node per delayed link with two interfaces A and B; no addresses on it; IPv6
  disabled on A and B (``net.ipv6.conf.<if>.disable_ipv6=1``, the line also does this).
- Turn offloads off on the END interfaces: ``ethtool -K <if> tx off tso off gso off``.
  Thanks to ``PACKET_VNET_HDR`` the line works without it (tested), but then a TCP burst
  crosses the line as one 64 KiB GSO frame with one due time; offloads off keeps frames
  wire-sized, one due time per wire frame.
- Start the line with :func:`delayline_argv` inside the middle node, wait for ``ready`` with
  a deadline, stop it with SIGTERM and wait for exit status 0.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import errno
import gc
import json
import logging
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from testbed.errors import ConfigError

log = logging.getLogger("testbed.lab.delayline")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PR_SET_TIMERSLACK = 29

VNET_HDR_LEN = 10  # struct virtio_net_hdr, in front of every frame on our sockets
RECV_SIZE = 65535 + VNET_HDR_LEN  # GSO frames can be up to 64 KiB
SOCKET_BUFFER = 8 * 1024 * 1024
SPIN_US = 300  # default: sleep until this long before a frame is due, then spin
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # per direction; beyond this new frames are dropped
DRAIN_BATCH = 16  # frames read from one socket before the loop looks at due frames again
MAX_DELAY_MS = 60_000.0
LATE_BUCKETS_US = (10, 25, 50, 100, 200, 500, 1000, 10_000)  # histogram upper bounds
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_IFNAMSIZ = 16


def delayline_argv(
    if_a: str,
    if_b: str,
    delay_ms: float,
    delay_b_ms: float | None = None,
    *,
    tag: str | None = None,
    stats: bool = False,
    python: str | None = None,
) -> list[str]:
    """The command line that starts a delay line between ``if_a`` and ``if_b``.

    ``delay_ms`` delays frames received on ``if_a`` (sent out of ``if_b``); ``delay_b_ms``
    (default ``delay_ms``) the other way. ``python`` defaults to this interpreter.
    Raises ConfigError naming the parameter when a name or a delay is bad.
    """
    _check_ifname(if_a, "if_a")
    _check_ifname(if_b, "if_b")
    if if_a == if_b:
        raise ConfigError(f"delay line: if_a and if_b are both {if_a!r}; they must differ")
    _check_delay(delay_ms, "delay_ms")
    argv = [python or sys.executable, "-m", "testbed.lab.delayline",
            "--if-a", if_a, "--if-b", if_b, "--delay-ms", _fmt_ms(delay_ms)]
    if delay_b_ms is not None:
        _check_delay(delay_b_ms, "delay_b_ms")
        argv += ["--delay-b-ms", _fmt_ms(delay_b_ms)]
    if tag:
        argv += ["--tag", str(tag)]
    if stats:
        argv.append("--stats")
    return argv


def _fmt_ms(value: float) -> str:
    return format(float(value), ".6g")


def _check_ifname(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or len(name) >= _IFNAMSIZ or "/" in name \
            or any(c.isspace() for c in name):
        raise ConfigError(f"delay line: {what}={name!r} is not a valid interface name")


def _check_delay(value: float, what: str) -> None:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"delay line: {what}={value!r} is not a number of milliseconds") from None
    if not math.isfinite(ms) or ms < 0 or ms > MAX_DELAY_MS:
        raise ConfigError(f"delay line: {what}={value!r} must be between 0 and {MAX_DELAY_MS:g} ms")


@dataclass
class Direction:
    """Frames received on ``rx`` and sent out of ``tx`` after ``delay_ns``, in order."""

    name: str
    rx: socket.socket
    tx: socket.socket
    rx_if: str
    tx_if: str
    delay_ns: int
    queue: deque = field(default_factory=deque)  # (due_ns, frame), due times ascending
    queued_bytes: int = 0
    received: int = 0
    sent: int = 0
    drops: dict = field(default_factory=dict)  # reason -> count
    late_max_ns: int = 0
    late_total_ns: int = 0
    late_hist: list = field(default_factory=lambda: [0] * (len(LATE_BUCKETS_US) + 1))

    def drop(self, reason: str, detail: str = "") -> None:
        count = self.drops.get(reason, 0) + 1
        self.drops[reason] = count
        if count in (1, 10, 100, 1000) or count % 10000 == 0:
            log.warning("%s: dropped frame #%d (%s)%s", self.name, count, reason,
                        f": {detail}" if detail else "")

    def stats(self) -> dict:
        labels = [f"<={b}" for b in LATE_BUCKETS_US] + [f">{LATE_BUCKETS_US[-1]}"]
        return {
            "received": self.received,
            "sent": self.sent,
            "queued": len(self.queue),
            "drops": dict(self.drops),
            "late_max_us": round(self.late_max_ns / 1000, 1),
            "late_avg_us": round(self.late_total_ns / self.sent / 1000, 2) if self.sent else 0.0,
            "late_us_hist": dict(zip(labels, self.late_hist, strict=True)),
        }


class InterfaceGone(Exception):
    """An interface of the line was deleted or replaced while it ran."""


class DelayLine:
    """Two packet sockets and the loop that copies frames between them after the delays."""

    def __init__(self, if_a: str, if_b: str, delay_a_ns: int, delay_b_ns: int,
                 spin_ns: int = SPIN_US * 1000) -> None:
        self.if_a, self.if_b = if_a, if_b
        self.spin_ns = spin_ns
        self.sock_a = open_packet_socket(if_a)
        try:
            self.sock_b = open_packet_socket(if_b)
        except BaseException:
            self.sock_a.close()
            raise
        self.ifindex = {if_a: socket.if_nametoindex(if_a), if_b: socket.if_nametoindex(if_b)}
        self.ab = Direction(f"{if_a}->{if_b}", self.sock_a, self.sock_b, if_a, if_b, delay_a_ns)
        self.ba = Direction(f"{if_b}->{if_a}", self.sock_b, self.sock_a, if_b, if_a, delay_b_ns)
        self._by_fd = {self.sock_a.fileno(): self.ab, self.sock_b.fileno(): self.ba}
        self._stopping = False

    def close(self) -> None:
        self.sock_a.close()
        self.sock_b.close()

    def stop(self) -> None:
        self._stopping = True

    def stats(self) -> dict:
        return {self.ab.name: self.ab.stats(), self.ba.name: self.ba.stats()}

    def run(self, wakeup_fd: int | None = None, on_wakeup=None) -> None:
        """Copy frames until :meth:`stop`; ``on_wakeup(data)`` handles bytes on ``wakeup_fd``.

        Raises InterfaceGone when A or B is deleted or replaced.
        """
        rfds = [self.sock_a.fileno(), self.sock_b.fileno()]
        if wakeup_fd is not None:
            rfds.append(wakeup_fd)
        ab, ba, spin_ns = self.ab, self.ba, self.spin_ns
        mono = time.monotonic_ns
        while not self._stopping:
            now = mono()
            if ab.queue and ab.queue[0][0] <= now:
                self._send_due(ab)
            if ba.queue and ba.queue[0][0] <= now:
                self._send_due(ba)
            due = None
            if ab.queue:
                due = ab.queue[0][0]
            if ba.queue and (due is None or ba.queue[0][0] < due):
                due = ba.queue[0][0]
            if due is None:
                timeout = None  # idle: block until a frame or a signal arrives
            else:
                # select() sleeps with microsecond resolution (poll/epoll: milliseconds);
                # inside the spin window it only polls the sockets.
                wait = due - mono() - spin_ns
                timeout = wait / 1e9 if wait > 0 else 0.0
            readable, _, _ = select.select(rfds, [], [], timeout)
            for fd in readable:
                direction = self._by_fd.get(fd)
                if direction is not None:
                    self._receive(direction)
                elif on_wakeup is not None:
                    on_wakeup(os.read(fd, 512))

    def _receive(self, d: Direction) -> None:
        sock = d.rx
        offset: int | None | object = _UNREAD  # realtime - monotonic, read once per batch
        for _ in range(DRAIN_BATCH):
            try:
                frame, anc, _flags, addr = sock.recvmsg(RECV_SIZE, _CMSG_SPACE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:
                    self._interface_down(d.rx_if)
                    return
                raise
            now = time.monotonic_ns()
            if addr[2] == PACKET_OUTGOING:
                continue
            d.received += 1
            rx_ns = now
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    if offset is _UNREAD:
                        offset = realtime_offset_ns()
                    if offset is None:
                        break
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    stamped = sec * 1_000_000_000 + nsec - offset
                    # the kernel's stamp, unless the realtime clock was stepped meanwhile
                    if now - 1_000_000_000 < stamped <= now:
                        rx_ns = stamped
            if d.queued_bytes + len(frame) > MAX_QUEUED_BYTES:
                d.drop("queue full", f"{d.queued_bytes} bytes already waiting")
                continue
            d.queued_bytes += len(frame)
            d.queue.append((rx_ns + d.delay_ns, frame))

    def _send_due(self, d: Direction) -> None:
        queue, send, hist = d.queue, d.tx.send, d.late_hist
        mono = time.monotonic_ns
        now = mono()
        while queue and queue[0][0] <= now:
            due, frame = queue.popleft()
            d.queued_bytes -= len(frame)
            try:
                send(frame)
            except OSError as exc:
                self._send_failed(d, frame, exc)
                continue
            late = mono() - due
            d.sent += 1
            d.late_max_ns = max(d.late_max_ns, late)
            d.late_total_ns += late
            hist[bisect.bisect_left(LATE_BUCKETS_US, late / 1000)] += 1
            now = mono()

    def _send_failed(self, d: Direction, frame: bytes, exc: OSError) -> None:
        size = len(frame) - VNET_HDR_LEN
        if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
            d.drop(f"{d.tx_if} down")
            if exc.errno != errno.ENETDOWN:
                self._check_interface(d.tx_if)
        elif exc.errno == errno.EMSGSIZE:
            d.drop("too big", f"{size} bytes exceed {d.tx_if}'s MTU")
        elif exc.errno in (errno.EAGAIN, errno.ENOBUFS):
            d.drop("no buffer space", f"{d.tx_if} did not take a {size}-byte frame")
        elif exc.errno == errno.EINVAL:
            d.drop("rejected", f"{d.tx_if} refused a {size}-byte frame: {exc.strerror}")
        else:
            raise exc

    def _interface_down(self, ifname: str) -> None:
        self._check_interface(ifname)
        log.warning("%s went down; waiting for it to come back up "
                    "(frames due on it meanwhile are dropped)", ifname)

    def _check_interface(self, ifname: str) -> None:
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            raise InterfaceGone(f"interface {ifname} disappeared") from None
        if index != self.ifindex[ifname]:
            raise InterfaceGone(f"interface {ifname} was replaced (index "
                                f"{self.ifindex[ifname]} -> {index})")


_UNREAD = object()


def realtime_offset_ns(max_span_ns: int = 50_000) -> int | None:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now, from a pair of readings not split by a stall.

    Kernel receive stamps are realtime; the line schedules in monotonic time. A reading
    interrupted between its two clocks (a preempted or paused VM) would shift every frame of
    the batch, early frames included, so the tightest of a few readings is used, and None
    returned (use the time of reading instead) when even that one spans more than
    ``max_span_ns``.
    """
    mono, real = time.monotonic_ns, time.time_ns
    best_span, best = None, 0
    for _ in range(4):
        m0 = mono()
        r = real()
        m1 = mono()
        if best_span is None or m1 - m0 < best_span:
            best_span, best = m1 - m0, r - (m0 + m1) // 2
        if best_span < 20_000:
            break
    return best if best_span <= max_span_ns else None


def open_packet_socket(ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` for all protocols: non-blocking, promiscuous,
    with virtio-net headers and kernel receive timestamps. ConfigError if it cannot bind."""
    # Protocol 0 receives nothing until bind() names the interface and ETH_P_ALL, so no frame
    # of another interface slips in between socket() and bind().
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        # No PACKET_QDISC_BYPASS: its direct path drops a GSO frame that B must segment.
        _try_setsockopt(sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING")
        _try_setsockopt(sock, socket.SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS")
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF),
                             (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        try:
            sock.bind((ifname, ETH_P_ALL))
            index = socket.if_nametoindex(ifname)
        except OSError as exc:
            raise ConfigError(f"delay line: cannot open interface {ifname!r}: "
                              f"{exc.strerror or exc}") from None
        mreq = struct.pack("@iHH8s", index, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _try_setsockopt(sock: socket.socket, level: int, opt: int, value: int, name: str) -> None:
    try:
        sock.setsockopt(level, opt, value)
    except OSError as exc:
        log.info("%s not available (%s); continuing without it", name, exc.strerror or exc)


def set_timer_slack_ns(ns: int = 1) -> bool:
    """Ask the kernel to fire this thread's timers within ``ns`` of their due time."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def prepare_interface(ifname: str) -> None:
    """Best effort: offloads off and IPv6 off on one of the line's own interfaces."""
    try:
        done = subprocess.run(["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off"],
                              check=False, capture_output=True, text=True, timeout=5)
        if done.returncode != 0:
            log.info("ethtool -K %s failed: %s", ifname, done.stderr.strip())
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("ethtool -K %s not run: %s", ifname, exc)
    # /proc/sys/net follows the writer's network namespace.
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    try:
        with open(path, "w") as fh:
            fh.write("1\n")
    except OSError as exc:
        log.info("could not disable IPv6 on %s: %s", ifname, exc.strerror or exc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m testbed.lab.delayline",
        description="Copy Ethernet frames between two interfaces after a fixed one-way delay.")
    p.add_argument("--if-a", required=True, metavar="A", help="first interface")
    p.add_argument("--if-b", required=True, metavar="B", help="second interface")
    p.add_argument("--delay-ms", required=True, type=float, metavar="D",
                   help="one-way delay of frames received on A (and on B unless --delay-b-ms)")
    p.add_argument("--delay-b-ms", type=float, metavar="D2",
                   help="one-way delay of frames received on B (default: D)")
    p.add_argument("--tag", default="", metavar="RUNID", help="run id marking this process")
    p.add_argument("--stats", action="store_true", help="print counters as JSON on exit")
    p.add_argument("--spin-us", type=int, default=SPIN_US, metavar="US",
                   help=f"spin this long before a frame is due (default {SPIN_US})")
    p.add_argument("--no-prepare", action="store_true",
                   help="leave offloads and IPv6 of A and B alone")
    return p


def _say(text: str) -> None:
    """One line on stdout; a reader that went away is not the line's problem."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, OSError) as exc:
        log.info("stdout closed (%s); not printed: %s", exc, text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefix = f"delayline[{args.tag}]" if args.tag else "delayline"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"{prefix}: %(levelname)s %(message)s")
    try:
        delayline_argv(args.if_a, args.if_b, args.delay_ms, args.delay_b_ms)  # validates
        if not 0 <= args.spin_us <= 100_000:
            raise ConfigError(f"delay line: --spin-us {args.spin_us} must be 0..100000")
        delay_b = args.delay_ms if args.delay_b_ms is None else args.delay_b_ms
        if not args.no_prepare:
            prepare_interface(args.if_a)
            prepare_interface(args.if_b)
        line = DelayLine(args.if_a, args.if_b, round(args.delay_ms * 1e6), round(delay_b * 1e6),
                         spin_ns=args.spin_us * 1000)
    except ConfigError as exc:
        print(f"delayline: error: {exc}", file=sys.stderr)
        return 2
    if not set_timer_slack_ns(1):
        log.info("could not set timer slack to 1 ns; wake-ups may be ~50 us late")

    rd, wr = os.pipe()
    os.set_blocking(rd, False)
    os.set_blocking(wr, False)

    def on_wakeup(data: bytes) -> None:
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                line.stop()
            elif signum == signal.SIGUSR1:
                _say(json.dumps(line.stats()))

    # The handlers do nothing themselves: the signal number arrives on the wake-up pipe,
    # which the select loop watches, so a signal is handled at once even while it sleeps.
    previous = {s: signal.signal(s, lambda *_: None)
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    old_fd = signal.set_wakeup_fd(wr, warn_on_full_buffer=False)
    status = 0
    try:
        log.info("%s <-> %s, delay %g ms / %g ms", args.if_a, args.if_b, args.delay_ms, delay_b)
        # What is loaded now lives as long as the line: out of the collector's sight, so
        # that a full collection (several ms here) cannot hold frames past their time.
        gc.collect()
        gc.freeze()
        _say("ready")
        line.run(wakeup_fd=rd, on_wakeup=on_wakeup)
    except InterfaceGone as exc:
        log.error("%s; exiting", exc)
        status = 1
    finally:
        signal.set_wakeup_fd(old_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        line.close()
        os.close(rd)
        os.close(wr)
    if args.stats:
        _say(json.dumps(line.stats()))
    return status


if __name__ == "__main__":
    sys.exit(main())
