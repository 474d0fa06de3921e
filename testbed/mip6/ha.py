"""Home agent engine: home registration (RFC 6275 10.3) authenticated per RFC 4285, and the
forwarding decisions of the home agent's user-space data plane.

Home registration BUs carry the RFC 4285 Mobility Message Replay Protection option and end
with the MN-HA Mobility Message Authentication option. The home agent checks, in order:
the option layout, the MN-HA authenticator (BA 146, unauthenticated, when it fails or no key
is configured for the home address), the replay-protection timestamp (BA 145 without it, BA
144 with our last accepted timestamp when it is not newer), the home address against the
home prefix (BA 132), the sequence number (BA 135), then registers and answers with an
authenticated BA echoing the timestamp. Every rejection leaves a ``bu_rejected`` event; every
BA after the authenticator check (132, 135, 144, 145, 0) is itself authenticated, and all but
145 echo a timestamp, so an RFC 4285 mobile node can believe them. A packet with an
unrecognised option that must not be skipped is discarded first (``testbed.mip6.icmp``).

Data plane decisions (``receive`` of any packet the home agent sees):
- a packet for a registered home address is tunnelled (IPv6-in-IPv6) to the care-of address
  (HoT messages included);
- a reverse-tunnelled packet (outer destination = the home agent) is forwarded only when its
  outer source is the care-of address registered for its inner source (HoTI included).

Timestamps are compared as strictly increasing 64-bit values per mobile node (the MN uses
monotonic nanoseconds, never going back); a time window against the HA's clock (RFC 4285's
other option) would need a wall clock, which a sans-I/O engine does not read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from testbed.mip6.bindingcache import BindingCache
from testbed.mip6.constants import (
    IPPROTO_IPV6,
    IPPROTO_MH,
    LIFETIME_UNIT_S,
    MN_HA_AUTH_SUBTYPE,
    SECOND_NS,
    BAStatus,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import Action, Send, addr
from testbed.mip6.icmp import UnrecognisedOptions
from testbed.mip6.messages import (
    BindingAck,
    BindingUpdate,
    HomeTestInit,
    decode,
    encode,
)
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.options import AlternateCoA, MobilityMessageAuth, ReplayProtection
from testbed.mip6.packet import Packet, build_packet, mh_checksum_ok, parse_packet
from testbed.mip6.sealing import (
    last_option,
    mn_ha_valid,
    option_layout_error,
    seal_mn_ha,
)
from testbed.mip6.ratelimit import TokenBucket
from testbed.mip6.seqno import seq_greater, seq_step
from testbed.mip6.seqstore import SeqRecord, SequenceStore, SequenceStoreError


@dataclass(slots=True)
class HomeBinding:
    home: bytes
    careof: bytes
    seq: int
    expires_ns: int
    lifetime_units: int


class HomeAgent(BindingCache, UnrecognisedOptions):
    EXPIRED_EVENT = "home_binding_expired"

    def __init__(
        self,
        address: bytes,
        home_prefix: ipaddress.IPv6Network,
        *,
        keys: Mapping[bytes, MnHaSecurityAssociation],
        store: SequenceStore,
        node: str = "ha",
        max_lifetime_units: int = 0xFFFF,
    ) -> None:
        self.address = address
        self.home_prefix = home_prefix
        self.node = node
        self.store = store
        self.max_lifetime_units = max_lifetime_units
        self.bindings: dict[bytes, HomeBinding] = {}
        self._keys = dict(keys)
        self._timestamps: dict[bytes, int] = {}
        self._icmp_limit = TokenBucket()

    def __repr__(self) -> str:
        return f"<HomeAgent {addr(self.address)} {self.home_prefix} {len(self._keys)} MN-HA keys, {len(self.bindings)} bindings>"

    def set_keys(self, keys: Mapping[bytes, MnHaSecurityAssociation]) -> None:
        self._keys = dict(keys)

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [self._drop(now, f"malformed packet: {exc}")]
        if packet.dst == self.address:
            if packet.unknown_option is not None:
                return self._unrecognised_option(packet, data, now)
            if packet.next_header == IPPROTO_MH:
                return self._on_mh(packet, now)
            if packet.next_header == IPPROTO_IPV6:
                return self._on_reverse_tunnel(packet, now)
            return []
        binding = self.bindings.get(packet.dst)
        if binding is not None:
            return self._tunnel_to_careof(data, packet, binding, now)
        if ipaddress.IPv6Address(packet.dst) in self.home_prefix:
            return [self._drop(now, "no binding for home address", dst=addr(packet.dst))]
        return [self._drop(now, "not for the home agent", dst=addr(packet.dst))]

    # ------------------------------------------------------------------ data plane

    def _tunnel_to_careof(self, data: bytes, packet: Packet, binding: HomeBinding, now: int) -> list[Action]:
        what = "tunnelled_to_careof"
        if packet.next_header == IPPROTO_MH and len(packet.payload) > 2 and packet.payload[2] == 3:
            what = "hot_tunnelled"
        return [
            Send(build_packet(self.address, binding.careof, IPPROTO_IPV6, bytes(data)), what),
            self._event(now, what, home=addr(packet.dst), careof=addr(binding.careof), src=addr(packet.src)),
        ]

    def _on_reverse_tunnel(self, outer: Packet, now: int) -> list[Action]:
        try:
            inner = parse_packet(outer.payload)
        except CodecError as exc:
            return [self._drop(now, f"malformed reverse-tunnelled packet: {exc}", src=addr(outer.src))]
        binding = self.bindings.get(inner.src)
        if binding is None:
            return [self._drop(now, "reverse-tunnelled packet from an unregistered home address", home=addr(inner.src), outer_src=addr(outer.src))]
        if binding.careof != outer.src:
            return [self._drop(now, "reverse-tunnelled packet whose outer source is not the registered care-of address", home=addr(inner.src), outer_src=addr(outer.src), careof=addr(binding.careof))]
        what = "reverse_tunnelled"
        if inner.next_header == IPPROTO_MH:
            try:
                if type(decode(inner.payload)) is HomeTestInit:
                    what = "hoti_forwarded"
            except CodecError as exc:
                return [self._drop(now, f"malformed reverse-tunnelled Mobility Header: {exc}", home=addr(inner.src))]
        return [
            Send(outer.payload, what),
            self._event(now, what, home=addr(inner.src), dst=addr(inner.dst), careof=addr(outer.src)),
        ]

    # ------------------------------------------------------------------ home registration

    def _on_mh(self, packet: Packet, now: int) -> list[Action]:
        try:
            msg = decode(packet.payload)
        except CodecError as exc:
            return [self._drop(now, f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        if not mh_checksum_ok(packet):  # over the Mobility Header that Header Len delimits
            return [self._drop(now, "bad Mobility Header checksum", src=addr(packet.src))]
        if type(msg) is not BindingUpdate:
            return [self._drop(now, f"unexpected {type(msg).__name__} at the home agent", src=addr(packet.src))]
        return self._on_bu(packet, msg, now)

    def _on_bu(self, packet: Packet, bu: BindingUpdate, now: int) -> list[Action]:
        home = packet.mh_source
        careof = packet.src
        for opt in bu.options:
            if type(opt) is AlternateCoA:
                careof = opt.address
        out: list[Action] = [self._event(now, "bu_received", home=addr(home), careof=addr(careof), seq=bu.seq, lifetime=bu.lifetime, home_reg=bu.home)]
        problem = option_layout_error(bu)
        if problem is not None:
            out.append(self._drop(now, f"BU dropped: {problem}", home=addr(home), seq=bu.seq))
            return out
        if not bu.home:
            out.append(self._drop(now, "BU without H flag: this home agent is not a correspondent", home=addr(home)))
            return out
        key = self._keys.get(home)
        auth = last_option(bu, MobilityMessageAuth)
        if (
            key is None or auth is None or auth.subtype != MN_HA_AUTH_SUBTYPE or auth.spi != key.spi
            or not mn_ha_valid(bu, key.key, careof, home)
        ):
            reason = "no MN-HA key for this home address" if key is None else "MN-HA authentication failed"
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, reason=reason, status=int(BAStatus.MIPV6_AUTH_FAIL)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_AUTH_FAIL, bu.seq, 0, None, None, now)
        replay = next((o for o in bu.options if type(o) is ReplayProtection), None)
        if replay is None:
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, reason="no replay protection option",
                                   status=int(BAStatus.MIPV6_MESG_ID_REQD)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_MESG_ID_REQD, bu.seq, 0, key, None, now)
        last_ts = self._timestamps.get(home)
        if last_ts is not None and replay.timestamp <= last_ts:
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, reason="replayed timestamp",
                                   status=int(BAStatus.MIPV6_ID_MISMATCH)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_ID_MISMATCH, bu.seq, 0, key, last_ts, now)
        self._timestamps[home] = replay.timestamp  # authentic and fresh: a replay of it is refused, whatever follows
        if ipaddress.IPv6Address(home) not in self.home_prefix:
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, status=int(BAStatus.NOT_HOME_SUBNET),
                                   reason=f"home address outside the home prefix {self.home_prefix}"))
            return out + self._ba(packet, home, careof, BAStatus.NOT_HOME_SUBNET, bu.seq, 0, key, replay.timestamp, now)
        store_key = f"ha/{home.hex()}"
        try:
            record = self.store.get(store_key)
        except SequenceStoreError as exc:
            out.append(self._event(now, "store_failed", home=addr(home), seq=bu.seq, reason=str(exc)))
            out.append(self._drop(now, "home registration dropped: its sequence record cannot be read", home=addr(home), seq=bu.seq))
            return out
        if record is not None and not seq_greater(bu.seq, record.last):
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, last_seq=record.last, reason="sequence number not greater",
                                   status=int(BAStatus.SEQUENCE_OUT_OF_WINDOW)))
            return out + self._ba(packet, home, careof, BAStatus.SEQUENCE_OUT_OF_WINDOW, record.last, 0, key, replay.timestamp, now)
        advance = 1 if record is None else record.advance + seq_step(bu.seq, record.last)
        try:
            self.store.put(store_key, SeqRecord(bu.seq, advance))
        except SequenceStoreError as exc:
            out.append(self._event(now, "store_failed", home=addr(home), seq=bu.seq, reason=str(exc)))
            out.append(self._drop(now, "home registration dropped: its sequence number could not be made durable", home=addr(home), seq=bu.seq))
            return out
        if bu.lifetime == 0 or careof == home:
            granted = 0
            if self.bindings.pop(home, None) is not None:
                out.append(self._event(now, "home_binding_deleted", home=addr(home), seq=bu.seq))
        else:
            granted = min(bu.lifetime, self.max_lifetime_units)
            expires = now + granted * LIFETIME_UNIT_S * SECOND_NS
            old = self.bindings.get(home)
            self.bindings[home] = HomeBinding(home, careof, bu.seq, expires, granted)
            self._expires_at(home, expires)
            name = "home_binding_created" if old is None else ("home_binding_updated" if old.careof != careof else "home_binding_refreshed")
            out.append(self._event(now, name, home=addr(home), careof=addr(careof), seq=bu.seq, lifetime=granted))
        return out + self._ba(packet, home, careof, BAStatus.ACCEPTED, bu.seq, granted, key, replay.timestamp, now)

    def _ba(self, packet: Packet, home: bytes, careof: bytes, status: int, seq: int, lifetime: int,
            key: MnHaSecurityAssociation | None, timestamp: int | None, now: int) -> list[Action]:
        options = (ReplayProtection(timestamp),) if timestamp is not None else ()
        msg = BindingAck(status, seq, lifetime, options=options)
        if key is not None:
            mh = seal_mn_ha(msg, key.spi, key.key, careof, home)
        else:
            mh = encode(msg)
        return self._ba_actions(packet, home, careof, mh, status=status, seq=seq, authenticated=key is not None,
                                now=now, what="BA home")
