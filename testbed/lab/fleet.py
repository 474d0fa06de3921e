"""Emulated mobile nodes for load runs: addresses, keys and the packets they exchange with
one correspondent, built with testbed.mip6's codec and sealing (never scapy).

Mobile node ``I`` has the home address ``HOME_BASE + I``; in round ``R`` (0: its first
registration, then one move per round) its care-of address is ``careof(I, R)`` =
``2001:db8:a:R::1 + I``. A mobile node either has RFC 4449 preconfigured data with the
correspondent (``data``) or uses return routability (``data`` None): then its BU needs a home
keygen token (HoTI/HoT, reused while it is younger than RFC 6275's token lifetime) and a
care-of keygen token for the round's care-of address (CoTI/CoT).

Everything here is pure: packets in and out as bytes, time as an argument. ``classify``
reads the few fields the load driver needs from a received packet without a full parse;
``check_ba`` verifies a BA's authenticator afterwards.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from testbed.mip6.constants import (
    IPPROTO_MH,
    IPPROTO_ROUTING,
    MAX_TOKEN_LIFETIME_S,
    ROUTING_TYPE_2,
    SECOND_NS,
    MHType,
)
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.errors import CodecError
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.messages import BindingAck, BindingUpdate, CareofTestInit, HomeTestInit, decode, encode
from testbed.mip6.options import NonceIndices
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import bad_valid, seal_bad

HOME_BASE = ipaddress.IPv6Address("2001:db8:1::1:0:0")
CAREOF_NET = ipaddress.IPv6Network("2001:db8:a::/48")
MAX_MOBILES = 1 << 20  # home addresses stay inside HOME_BASE's /96; care-of host ids inside a /64
MAX_ROUND = 0xFFFF
BU_LIFETIME_UNITS = 1000  # 4000 s asked; the CN grants return-routability peers 420 s at most
TOKEN_REUSE_NS = (MAX_TOKEN_LIFETIME_S - 30) * SECOND_NS  # a home token is fetched again after 3 minutes

_COOKIE = struct.Struct("!II")  # mobile index, round: the reply names the job it answers
_U16 = struct.Struct("!H")


def home_address(index: int) -> bytes:
    return (HOME_BASE + index).packed


def careof(index: int, round_: int) -> bytes:
    """Mobile ``index``'s care-of address in round ``round_``: 2001:db8:a:<round>::<index + 1>."""
    return (CAREOF_NET.network_address + (round_ << 64) + index + 1).packed


def is_return_routability(index: int, rr_share: float) -> bool:
    """Whether mobile ``index`` uses return routability: a share ``rr_share`` of all mobiles,
    spread evenly over the indices (so every stretch of a round has the same mix)."""
    return int((index + 1) * rr_share) > int(index * rr_share)


@dataclass(slots=True)
class Mobile:
    index: int
    home: bytes
    data: PreconfiguredData | None  # None: return routability
    last_seq: int = 0  # the last sequence number it sent
    home_token: bytes | None = field(default=None, repr=False)  # return routability: the last home keygen token and its nonce index
    home_nonce_index: int = 0
    home_token_ns: int = 0
    _home_kgt: bytes | None = field(default=None, repr=False)  # precomputed: the fixed home keygen token
    _kbm: tuple[bytes, bytes] | None = field(default=None, repr=False)  # (care-of address, Kbm), last used

    @property
    def mechanism(self) -> str:
        return "rr" if self.data is None else "precomputed"

    def precomputed_kbm(self, coa: bytes) -> bytes:
        cached = self._kbm
        if cached is not None and cached[0] == coa:
            return cached[1]
        data = self.data
        if self._home_kgt is None:
            self._home_kgt = home_keygen_token(data.kcn, self.home, data.home_nonce)
        kbm = binding_management_key(self._home_kgt, careof_keygen_token(data.kcn, coa, data.careof_nonce))
        self._kbm = (coa, kbm)
        return kbm

    def home_token_fresh(self, now: int) -> bool:
        return self.home_token is not None and now - self.home_token_ns < TOKEN_REUSE_NS


def rr_kbm(mobile: Mobile, careof_token: bytes) -> bytes:
    return binding_management_key(mobile.home_token, careof_token)


@dataclass(frozen=True, slots=True)
class Reply:
    """What ``classify`` found in a packet from the correspondent."""

    kind: str  # "ba", "hot", "cot" or "be"
    home: bytes | None  # BA: the type 2 routing header's address; BE: its home address
    seq: int = 0  # BA
    status: int = 0  # BA, BE
    index: int = -1  # HoT, CoT: from the cookie
    round: int = -1
    nonce_index: int = 0
    token: bytes = field(default=b"", repr=False)  # HoT, CoT: a keygen token, never in a repr


class Fleet:
    """The emulated mobile nodes of one load run, all talking to ``correspondent``."""

    def __init__(self, correspondent: bytes, mobiles: list[Mobile]) -> None:
        if len(mobiles) > MAX_MOBILES:
            raise ValueError(f"at most {MAX_MOBILES} mobile nodes")
        self.correspondent = correspondent
        self.mobiles = mobiles
        self.by_home = {m.home: m for m in mobiles}

    @classmethod
    def build(cls, correspondent: bytes, count: int, peers: dict[int, PreconfiguredData]) -> Fleet:
        """``count`` mobiles; those whose index is in ``peers`` have preconfigured data."""
        return cls(correspondent, [Mobile(i, home_address(i), peers.get(i)) for i in range(count)])

    # ------------------------------------------------------------------ packets out

    def precomputed_binding_update(self, mobile: Mobile, seq: int, coa: bytes) -> bytes:
        """A BU (A flag set) from ``coa`` for ``mobile``'s home address, sealed with the Kbm
        its preconfigured data gives for ``coa`` (RFC 4449)."""
        mh = seal_bad(BindingUpdate(seq, BU_LIFETIME_UNITS, ack=True), mobile.precomputed_kbm(coa), coa,
                      self.correspondent)
        return build_packet(coa, self.correspondent, IPPROTO_MH, mh, home_address=mobile.home)

    def rr_binding_update(self, mobile: Mobile, seq: int, coa: bytes, careof_index: int, careof_token: bytes) -> bytes:
        """A BU sealed with the Kbm of ``mobile``'s home token and this care-of token, with
        their nonce indices (RFC 6275 5.2.6)."""
        kbm = rr_kbm(mobile, careof_token)
        msg = BindingUpdate(seq, BU_LIFETIME_UNITS, ack=True,
                            options=(NonceIndices(mobile.home_nonce_index, careof_index),))
        mh = seal_bad(msg, kbm, coa, self.correspondent)
        return build_packet(coa, self.correspondent, IPPROTO_MH, mh, home_address=mobile.home)

    def home_test_init(self, mobile: Mobile, round_: int) -> bytes:
        """HoTI from the home address (the load node is the mobiles' home network: no tunnel)."""
        mh = encode(HomeTestInit(_COOKIE.pack(mobile.index, round_)))
        return build_packet(mobile.home, self.correspondent, IPPROTO_MH, mh)

    def careof_test_init(self, mobile: Mobile, round_: int, coa: bytes) -> bytes:
        mh = encode(CareofTestInit(_COOKIE.pack(mobile.index, round_)))
        return build_packet(coa, self.correspondent, IPPROTO_MH, mh)

    # ------------------------------------------------------------------ packets in

    @staticmethod
    def classify(packet: bytes) -> Reply | None:
        """The BA, HoT, CoT or BE in ``packet`` (the fields the driver needs), else None.

        Reads fixed offsets: IPv6 header, an optional type 2 routing header, a Mobility
        Header. Checksums and authenticators are not checked here (``check_ba`` does, later)."""
        if len(packet) < 48:
            return None
        nh = packet[6]
        off = 40
        home = None
        if nh == IPPROTO_ROUTING:
            if len(packet) < 72 or packet[42] != ROUTING_TYPE_2:
                return None
            home = packet[48:64]
            nh = packet[40]
            off = 64
        if nh != IPPROTO_MH or len(packet) < off + 8:
            return None
        mh_type = packet[off + 2]
        if mh_type == MHType.BA:
            if len(packet) < off + 12:
                return None
            return Reply("ba", home if home is not None else packet[24:40],
                         seq=_U16.unpack_from(packet, off + 8)[0], status=packet[off + 6])
        if mh_type == MHType.HOT or mh_type == MHType.COT:
            if len(packet) < off + 24:
                return None
            index, round_ = _COOKIE.unpack_from(packet, off + 8)
            return Reply("hot" if mh_type == MHType.HOT else "cot", None, index=index, round=round_,
                         nonce_index=_U16.unpack_from(packet, off + 6)[0], token=packet[off + 16 : off + 24])
        if mh_type == MHType.BE:
            if len(packet) < off + 24:
                return None
            return Reply("be", packet[off + 8 : off + 24], status=packet[off + 6])
        return None

    def check_ba(self, packet: bytes, kbm: bytes, coa: bytes) -> BindingAck | None:
        """The BA in ``packet`` if it parses and its authenticator is right for ``kbm`` and
        ``coa`` (R7), else None."""
        try:
            parsed = parse_packet(packet)
            msg = decode(parsed.payload)
        except CodecError:
            return None
        if type(msg) is not BindingAck or not bad_valid(msg, kbm, coa, self.correspondent):
            return None
        return msg
