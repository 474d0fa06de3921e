"""One agent process: a protocol engine wrapped in asyncio, raw sockets, timers, the data
plane, the control socket and the event log.

Start-up is staged: configuration and key files are loaded and checked first (ConfigError,
nothing touched), then the node is prepared (ICMPv6 Parameter Problem rules, TUN device),
then sockets open and the engine runs. SIGTERM/SIGINT stop it cleanly (rules and routes
removed, the event log flushed); SIGHUP reloads the key files. ``kill -9`` loses nothing
that matters: the engine's ``Persist`` actions are carried out (the record durable) before the
packets they guard leave; a write that fails stops those packets, and the engine is told.
Sequence records are read once, at start-up (``FileSequenceStore.load``), and handed to the
engine, which keeps them in memory (``persistence``: strict or a reserve, config.py).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import signal
import socket
import time
from pathlib import Path

from pyroute2 import AsyncIPRoute

from testbed.agent.config import AgentConfig
from testbed.agent.control import ControlServer
from testbed.agent.durable import TimedStore
from testbed.agent.eventlog import EventLog
from testbed.agent.events import (
    AgentStarted,
    AgentStopped,
    DurableWrite,
    InternalError,
    MovementEvent,
    PacketSent,
    ProbeReceived,
    Reloaded,
    ReloadFailed,
    RouteFailed,
    SendFailed,
    StoreReadOnly,
)
from testbed.agent.icmp_filter import ROLE_CODES, ParameterProblemFilter
from testbed.agent.limits import raise_open_files_limit
from testbed.agent.movement import Movement, MovementDetector
from testbed.agent.packetio import PacketReceiver, PacketSender
from testbed.agent.probes import parse_probe_request, probe_in, probe_packet
from testbed.agent.ra import parse_ra
from testbed.agent.rehearsal import Rehearsal
from testbed.agent.sched import request_short_slice
from testbed.agent.tun import TunDevice
from testbed.errors import ConfigError, TestbedError
from testbed.mip6.actions import Persist, Send
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import (
    IPPROTO_DSTOPTS,
    IPPROTO_ICMPV6,
    IPPROTO_IPV6,
    IPPROTO_MH,
    IPPROTO_ROUTING,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import HOME_BINDING_ADDED, HOME_BINDING_REMOVED, Drop, Event
from testbed.mip6.ha import HomeAgent
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import index_by_home
from testbed.mip6.packet import parse_packet
from testbed.mip6.weakening import KEEPS_SERVING, KEEPS_SERVING_EXIT
from testbed.storage.keyfiles import load_mn_ha, load_preconfigured
from testbed.storage.sequences import FileSequenceStore, SequenceStoreError

NEXT_HEADERS = {
    "mn": (IPPROTO_MH, IPPROTO_ROUTING, IPPROTO_IPV6),
    "cn": (IPPROTO_MH, IPPROTO_DSTOPTS),
    "ha": (IPPROTO_MH, IPPROTO_DSTOPTS, IPPROTO_IPV6),
}
TUN_EVENTS = HOME_BINDING_ADDED + HOME_BINDING_REMOVED
SETTLE_EVERY = 64  # in a flood, log and re-arm after this many inputs, not only when the socket is empty
STAMPED_SENDS = 4  # sends after each wake-up that ask for the kernel's transmit stamp (packet_sent.wire_t_ns)


def _tag(config: AgentConfig) -> str:
    return f"{config.node}-{os.getpid()}"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.role = config.role
        self._peers = self._load_peers()
        self._mn_ha = self._load_mn_ha()
        self.store: TimedStore | None = None
        self.engine = None
        self.log: EventLog | None = None
        self._receiver: PacketReceiver | None = None
        self._sender: PacketSender | None = None
        self._filter: ParameterProblemFilter | None = None
        self._tun: TunDevice | None = None
        self._ipr = None
        self._movement: MovementDetector | None = None
        self._control: ControlServer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._stop = asyncio.Event()
        self._probe_task: asyncio.Task | None = None
        self._probe_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._address = config.address.packed if config.address else None
        self._woke_ns = 0  # when the loop last woke for packets (monotonic ns)
        self._stamps_left = 0  # sends of this wake-up still to be stamped
        self._stamped = 0  # stamped sends not yet logged
        self._unlogged: list = []  # (events, sends, trigger, woke) of inputs handled, not yet logged
        self._keep_warm_ns = int(config.keep_warm_ms * 1e6)
        self._rehearsal: Rehearsal | None = None  # keep_warm_ms: the per-BU code run while idle
        self._slice_refused: str | None = None  # why the kernel refused a short time slice, if it did
        self._rehearsal_timer: asyncio.TimerHandle | None = None
        # TEST ONLY (testbed/mip6/weakening.py, keeps_serving): stop after a malformed packet's drop
        self._stop_on_malformed = bool(config.test_weaken & KEEPS_SERVING)
        self._exit_status = 0

    # ------------------------------------------------------------------ configuration

    def _load_peers(self):
        return [load_preconfigured(p) for p in self.config.preconfigured_paths()]

    def _load_mn_ha(self):
        sas = [load_mn_ha(p) for p in self.config.mn_ha_keys]
        if self.role == "mn":
            sa = sas[0]
            if sa.home_address != self.config.home_address or sa.home_agent != self.config.home_agent:
                raise ConfigError(f"{sa.source}: is for home address {sa.home_address} and home agent "
                                  f"{sa.home_agent}, not {self.config.home_address} and {self.config.home_agent}")
            return sa
        if self.role == "ha":
            return index_by_home(sas)
        return None

    def _build_engine(self, records):
        c = self.config
        if self.role == "cn":
            return CorrespondentNode(c.address.packed, peers=self._peers, records=records, persistence=c.persistence,
                                     node=c.node, precomputed_max_lifetime_units=c.precomputed_max_lifetime,
                                     weaken=c.test_weaken - KEEPS_SERVING)
        if self.role == "mn":
            return MobileNode(c.home_address.packed, c.home_agent.packed, mn_ha=self._mn_ha, records=records,
                              persistence=c.persistence, correspondents=[a.packed for a in c.correspondents],
                              peers=self._peers, node=c.node,
                              reuse_home_token=c.home_token_reuse, weaken=c.test_weaken - KEEPS_SERVING)
        return HomeAgent(c.address.packed, c.home_prefix, keys=self._mn_ha, records=records,
                         persistence=c.persistence, node=c.node, weaken=c.test_weaken - KEEPS_SERVING)

    def reload(self) -> dict:
        """Reload the key files (SIGHUP, or the control socket's ``reload``)."""
        now = time.monotonic_ns()
        try:
            peers = self._load_peers()
            mn_ha = self._load_mn_ha()
            if self.role == "cn":
                self.engine.set_peers(peers)
            elif self.role == "ha":
                self.engine.set_keys(mn_ha)
            elif self.role == "mn":
                self.engine.set_peers(peers)
        except ConfigError as exc:
            self.log.emit(ReloadFailed, now, reason=str(exc))
            self.log.flush()
            return {"ok": False, "error": str(exc)}
        self._peers, self._mn_ha = peers, mn_ha
        self.log.emit(Reloaded, now, peers=len(peers))
        self.log.flush()
        return {"ok": True, "peers": len(peers)}

    # ------------------------------------------------------------------ life cycle

    async def run(self) -> int:
        c = self.config
        self._loop = asyncio.get_running_loop()
        c.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        raise_open_files_limit()  # the store keeps a file open per peer: 10,000 peers, 10,000 files
        self._slice_refused = request_short_slice()  # run soon after a wake-up (testbed/agent/sched.py)
        self.store = TimedStore(FileSequenceStore(c.state_dir / "sequence"))
        records = self.store.load()  # every record, once: the engine keeps them in memory
        self.log = EventLog(c.event_log, c.node)
        self.engine = self._build_engine(records)
        if self._keep_warm_ns:
            self._rehearsal = Rehearsal(self.role, c.persistence)
        try:
            await self._start()
            # Everything loaded so far lives as long as the agent: out of the collector's sight,
            # so that a full collection (tens of ms here) cannot land on a BU's path.
            gc.collect()
            gc.freeze()
            self.log.emit(AgentStarted, time.monotonic_ns(), role=self.role, pid=os.getpid())
            if self.store.read_only is not None:
                self.log.emit(StoreReadOnly, time.monotonic_ns(), reason=self.store.read_only,
                              effect="nothing is acknowledged that needs a durable write; stored numbers still hold")
            self.log.flush()
            await self._stop.wait()
        finally:
            await self._shutdown()
        return self._exit_status

    async def _start(self) -> None:
        c = self.config
        loop = self._loop
        loop.set_exception_handler(self._on_loop_error)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._filter = ParameterProblemFilter(_tag(c), ROLE_CODES[self.role])
        self._filter.install()
        self._sender = PacketSender()
        self._receiver = PacketReceiver(c.interfaces, NEXT_HEADERS[self.role], router_advertisements=self.role == "mn")
        loop.add_reader(self._receiver.fileno(), self._on_readable)
        if self.role == "ha":
            self._tun = TunDevice(f"m6t{os.getpid() % 100000}")
            # No link-local address on it: the kernel would send RS and MLD into the tunnel.
            Path(f"/proc/sys/net/ipv6/conf/{self._tun.name}/addr_gen_mode").write_text("1")
            loop.add_reader(self._tun.fileno(), self._on_tun)
            self._ipr = AsyncIPRoute()
            index = (await self._ipr.link_lookup(ifname=self._tun.name))[0]
            await self._ipr.link("set", index=index, state="up")
            self._tun_index = index
        if self.role == "mn":
            self._movement = MovementDetector(c.interfaces, c.home_address, c.home_prefix, self._on_move, self.log.emit)
            await self._movement.start()
        self._control = ControlServer(c.control_socket, self._on_control)
        await self._control.start()
        if self._rehearsal is not None:
            self._rehearsal_timer = loop.call_later(self._keep_warm_ns / 1e9, self._on_rehearsal)

    def _on_loop_error(self, loop, context: dict) -> None:
        """A callback or task failed: log it (the agent keeps serving)."""
        exc = context.get("exception")
        self.log.emit(InternalError, time.monotonic_ns(), message=context.get("message"),
                      error=repr(exc) if exc is not None else None)
        self.log.flush()

    async def _shutdown(self) -> None:
        loop = self._loop
        if self._probe_task is not None:
            self._probe_task.cancel()
        if self._control is not None:
            await self._control.stop()
        if self._movement is not None:
            await self._movement.stop()
        if self._receiver is not None:
            loop.remove_reader(self._receiver.fileno())
            self._receiver.close()
        if self._tun is not None:
            loop.remove_reader(self._tun.fileno())
            self._tun.close()
        if self._ipr is not None:
            self._ipr.close()
        if self._sender is not None:
            self._sender.close()
        if self._filter is not None:
            self._filter.remove()
        if self._timer is not None:
            self._timer.cancel()
        if self._rehearsal_timer is not None:
            self._rehearsal_timer.cancel()
        if self.log is not None:
            self.log.emit(AgentStopped, time.monotonic_ns())
            self.log.close()
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------------ packets

    def _on_readable(self) -> None:
        engine = self.engine
        role = self.role
        self._woke_ns = time.monotonic_ns()  # logged with what it sends: wake-up vs handling time
        self._stamps_left = STAMPED_SENDS
        handled = 0
        for packet, t_ns, interface in self._receiver.drain():
            handled += 1
            if handled % SETTLE_EVERY == 0:  # a flood: its log lines and the timer must not wait for its end
                self._settle()
            if role == "mn":
                nh = packet[6]
                if nh == IPPROTO_ICMPV6:
                    ra = parse_ra(packet)
                    if ra is not None:
                        self._movement.on_router_advertisement(ra, t_ns, interface)
                    continue
                if nh != IPPROTO_MH and self._probe(packet, t_ns):
                    continue
            elif role == "ha" and packet[24:40] != self._address:
                continue  # packets for home addresses come through the TUN device
            self._engine_call("receive", engine.receive, packet, t_ns)
        self._settle()

    def _on_tun(self) -> None:
        self._woke_ns = time.monotonic_ns()
        self._stamps_left = STAMPED_SENDS
        for packet in self._tun.drain():
            self._engine_call("receive", self.engine.receive, packet, time.monotonic_ns())
        self._settle()

    def _engine_call(self, where: str, call, arg, t_ns: int) -> None:
        """Hand one input (a packet, a timer, a move) to the engine and carry out its actions.
        The engines turn bad input and store failures into events; should one still raise,
        the input is dropped with the error as its reason, the timer re-armed, and the agent
        goes on."""
        try:
            actions = call(arg, t_ns)
        except Exception as exc:  # noqa: BLE001 - one input must not stop the agent
            self._log_later(InternalError(t_ns, self.config.node, where=where, error=f"{type(exc).__name__}: {exc}"))
            self._rearm()
            return
        self._apply(actions, t_ns)

    def _probe(self, data: bytes, t_ns: int) -> bool:
        try:
            packet = parse_packet(data)
        except CodecError:
            return False
        arrival = probe_in(packet, self.config.probe_port)
        if arrival is None:
            return False
        self._log_later(ProbeReceived(t_ns, self.config.node, number=arrival.number, path=arrival.path,
                                           to=str(ipaddress.IPv6Address(arrival.to)), sent_t_ns=arrival.sent_ns,
                                           one_way_us=(t_ns - arrival.sent_ns) / 1000))
        return True

    def _apply(self, actions: list, trigger_ns: int) -> None:
        """Carry out the engine's actions in order (a Persist's record durable before what it
        guards, packets sent at once); what is to be logged waits for ``_settle``, which the
        callback calls once it has handled every input that woke it: logging, the timer and
        the HA's routes are not on the send path of any packet of the batch."""
        sent: list[tuple[int, str, str | None, int | None]] = []  # (returned, what, error, stamp number)
        events: list[Event] = []
        self._carry_out(actions, sent, events)
        self._unlogged.append((events, sent, trigger_ns, self._woke_ns))
        if self._stop_on_malformed and any(type(e) is Drop and e.reason.startswith("malformed") for e in events):
            self._exit_status = KEEPS_SERVING_EXIT  # TEST ONLY: an agent that does not keep serving
            self._stop.set()

    def _log_later(self, event: Event) -> None:
        """An event of the batch being handled, logged in its place by ``_settle``."""
        self._unlogged.append(((event,), (), 0, 0))

    def _settle(self) -> None:
        """After a batch of inputs: their events and sends logged (with the durable writes),
        the HA's routes asked for, the engine's timer re-armed, the log flushed."""
        log = self.log
        node = self.config.node
        ha = self.role == "ha"
        write_all = log.write_all
        stamps = self._sender.stamps(self._stamped) if self._stamped else {}
        self._stamped = 0
        for events, sent, trigger_ns, woke_ns in self._unlogged:
            write_all(events)
            if ha:
                for event in events:
                    if isinstance(event, TUN_EVENTS):
                        self._loop.create_task(self._route_home(event))
            for t_ns, what, error, number in sent:
                if error is None:
                    log.write(PacketSent(t_ns, node, what=what, trigger_t_ns=trigger_ns, woke_t_ns=woke_ns,
                                         wire_t_ns=stamps.get(number)))
                else:
                    log.write(SendFailed(t_ns, node, what=what, error=error))
        self._unlogged.clear()
        for start, end, key in self.store.take():
            log.write(DurableWrite(start, node, end_t_ns=end, key=key))
        self._rearm()
        log.flush()

    def _carry_out(self, actions: list, sent: list, events: list) -> None:
        """Send and persist in order; collect the events. A Persist that fails stops the
        actions it guards, and what the engine says instead is carried out in their place."""
        skip = 0
        for action in actions:
            if skip:
                skip -= 1
                continue
            kind = type(action)
            if kind is Send:
                stamp = self._stamps_left > 0
                try:
                    number = self._sender.send(action.packet, stamp)
                except OSError as exc:
                    sent.append((time.monotonic_ns(), action.what, exc.strerror or str(exc), None))
                    continue
                sent.append((time.monotonic_ns(), action.what, None, number))
                if number is not None:
                    self._stamps_left -= 1
                    self._stamped += 1
            elif kind is Persist:
                try:
                    self.store.put(action.store_key, action.record)
                except SequenceStoreError as exc:
                    skip = action.guards
                    self._carry_out(self.engine.persist_failed(action, str(exc), time.monotonic_ns()), sent, events)
            else:
                events.append(action)

    async def _route_home(self, event: Event) -> None:
        """Route a registered home address into the TUN device (and stop when it is not)."""
        home = f"{event.home}/128"
        command = "replace" if isinstance(event, HOME_BINDING_ADDED) else "del"
        try:
            await self._ipr.route(command, dst=home, oif=self._tun_index, family=socket.AF_INET6)
        except Exception as exc:  # a route already gone, say: log it, keep serving
            self.log.emit(RouteFailed, time.monotonic_ns(), home=home, command=command, error=str(exc))

    # ------------------------------------------------------------------ timers and movement

    def _rearm(self) -> None:
        at = self.engine.next_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            delay = max(0.0, (at - time.monotonic_ns()) / 1e9)
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._woke_ns = time.monotonic_ns()
        self._stamps_left = STAMPED_SENDS
        self._engine_call("timer", lambda _, t: self.engine.handle_timer(t), None, now)
        self._settle()

    def _on_move(self, movement: Movement) -> None:
        place = len(self._unlogged)
        now = self._woke_ns = time.monotonic_ns()
        self._stamps_left = STAMPED_SENDS
        self._engine_call("move", self.engine.move, movement.careof.packed, now)
        # made after the BUs left (three addresses as text: 0.03 ms), logged before their lines
        self._unlogged.insert(place, ((MovementEvent(movement.usable_t_ns, self.config.node,
                                                     prefix=str(movement.prefix), router=str(movement.router),
                                                     careof=str(movement.careof), ra_t_ns=movement.ra_t_ns),),
                                      (), 0, 0))
        self._settle()

    def _on_rehearsal(self) -> None:
        """keep_warm_ms: rehearse the per-BU code once the agent has been idle that long (an
        input since then puts the rehearsal off). A rehearsal that fails is logged once and
        the rehearsals stop; the agent goes on serving."""
        self._rehearsal_timer = None
        due = self._woke_ns + self._keep_warm_ns
        now = time.monotonic_ns()
        if now >= due:
            try:
                self._rehearsal.run()
            except Exception as exc:  # noqa: BLE001 - a rehearsal must never stop the agent
                self.log.emit(InternalError, now, where="rehearsal", error=f"{type(exc).__name__}: {exc}")
                self.log.flush()
                return
            due = time.monotonic_ns() + self._keep_warm_ns
        self._rehearsal_timer = self._loop.call_at(due / 1e9, self._on_rehearsal)

    # ------------------------------------------------------------------ probes (CN)

    async def _probe_loop(self, home: bytes, rate: float, count: int | None) -> None:
        interval = 1e9 / rate
        start = time.monotonic_ns()
        number = 0
        port = self.config.probe_port
        while count is None or number < count:
            due = start + int(number * interval)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            binding = self.engine.binding_for(home)
            careof = binding.careof if binding is not None else None
            now = time.monotonic_ns()
            try:
                self._sender.send(probe_packet(self._address, home, careof, port, number, now))
            except OSError as exc:
                self.log.emit(SendFailed, now, what="probe", error=exc.strerror or str(exc))
            number += 1
            self._probe_count = number

    # ------------------------------------------------------------------ control

    def _on_control(self, request: dict) -> dict:
        cmd = request["cmd"]
        e = self.engine
        if cmd == "status":
            out = {"ok": True, "role": self.role, "node": self.config.node, "pid": os.getpid(),
                   "persistence": self.config.persistence.describe(), "peers": len(self._peers),
                   "keep_warm_ms": self.config.keep_warm_ms,
                   "rehearsals": 0 if self._rehearsal is None else self._rehearsal.runs,
                   "short_slice": self._slice_refused or "granted"}
            if self.role == "mn":
                out["careof"] = None if e.careof is None else str(ipaddress.IPv6Address(e.careof))
            return out
        if cmd == "bindings" and self.role in ("cn", "ha"):
            return {"ok": True, "bindings": [
                {"home": str(ipaddress.IPv6Address(b.home)), "careof": str(ipaddress.IPv6Address(b.careof)),
                 "seq": b.seq, "lifetime": b.lifetime_units, "mechanism": getattr(b, "mechanism", "home")}
                for b in e.bindings.values()]}
        if cmd == "bul" and self.role == "mn":
            return {"ok": True, "entries": [
                {"peer": str(ipaddress.IPv6Address(x.peer)), "mechanism": x.mechanism, "state": x.state, "seq": x.seq,
                 "careof": None if x.bound_careof is None else str(ipaddress.IPv6Address(x.bound_careof))}
                for x in e.entries()]}
        if cmd == "probe_start" and self.role == "cn":
            home, rate, count = parse_probe_request(request)
            if self._probe_task is not None:
                self._probe_task.cancel()
            self._probe_task = self._loop.create_task(self._probe_loop(home, rate, count))
            return {"ok": True}
        if cmd == "probe_stop" and self.role == "cn":
            if self._probe_task is not None:
                self._probe_task.cancel()
                self._probe_task = None
            return {"ok": True, "sent": self._probe_count}
        if cmd == "reload":
            return self.reload()
        if cmd == "flush":
            self.log.flush()
            return {"ok": True}
        raise ValueError(f"unknown command {cmd!r} for a {self.role} agent")


def run_agent(config: AgentConfig) -> int:
    agent = Agent(config)  # loads and checks the key files before touching the node
    try:
        return asyncio.run(agent.run())
    except OSError as exc:  # a socket, device or file the node would not give us
        raise TestbedError(f"{config.source}: the {config.role} agent could not run: {exc}") from None

