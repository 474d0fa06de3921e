"""Mobile IPv6 packets built, authenticated and read without ``testbed.mip6``: for the tester
node of the conformance suite, the attacker of the security scenarios and the fuzzer.

A check that judges an implementation with that implementation's own code would share its
mistakes, so this module has its own: scapy lays the packets out (its Mobile IPv6 layers),
``hmac``/``hashlib`` compute the keygen tokens, Kbm and the authenticators (RFC 6275 5.2.5,
5.2.6; RFC 4285 for MN-HA), and ``read`` walks a received IPv6 packet's headers itself. Only
the key *files* are read with ``testbed.mip6`` (they are the inputs, not the thing judged).

Every builder returns a whole IPv6 packet (bytes) with the Mobility Header checksum computed
here over the pseudo-header RFC 6275 6.1.1 asks for (source = the Home Address option's
address when there is one, destination = the type 2 routing header's address when there is
one). scapy's traps (docs/host.md): Nonce Indices and Binding Authorization Data need their
lengths set (4, 12); the BAD authenticator is an integer field.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass, field

from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_Generic,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptMsgAuth,
    MIP6OptNonceIndices,
    MIP6OptReplayProtection,
    MIP6OptUnknown,
    PadN,
)

MH = 135
DSTOPTS = 60
ROUTING = 43
HOPOPTS = 0
FRAGMENT = 44
ICMPV6 = 58
IPV6_IN_IPV6 = 41
NO_NEXT = 59
AUTH_LEN = 12

BU, BA, BE, BRR, HOTI, COTI, HOT, COT = 5, 6, 7, 0, 1, 2, 3, 4
MH_NAMES = {BRR: "BRR", HOTI: "HoTI", COTI: "CoTI", HOT: "HoT", COT: "CoT", BU: "BU", BA: "BA", BE: "BE"}
OPT_BAD, OPT_NONCE, OPT_ALT_COA, OPT_MSG_AUTH, OPT_REPLAY = 5, 4, 3, 9, 10


def a16(address: str | bytes | ipaddress.IPv6Address) -> bytes:
    """16 octets of an address given as text, octets or ``IPv6Address``."""
    if isinstance(address, bytes):
        return address
    return ipaddress.IPv6Address(str(address)).packed


def text(address: bytes | str | ipaddress.IPv6Address) -> str:
    return str(ipaddress.IPv6Address(address)) if isinstance(address, bytes) else str(ipaddress.IPv6Address(str(address)))


# ---------------------------------------------------------------------------------- crypto


def _hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def kbm(kcn: bytes, home: bytes, home_nonce: bytes, careof: bytes | None, careof_nonce: bytes) -> bytes:
    """Kbm from Kcn and the nonces (RFC 6275 5.2.5; RFC 4449 uses the same formulas);
    ``careof`` None: the de-registration key SHA1(home keygen token)."""
    home_token = _hmac_sha1(kcn, home + home_nonce + b"\x00")[:8]
    if careof is None:
        return hashlib.sha1(home_token).digest()
    careof_token = _hmac_sha1(kcn, careof + careof_nonce + b"\x01")[:8]
    return hashlib.sha1(home_token + careof_token).digest()


def kbm_from_tokens(home_token: bytes, careof_token: bytes | None) -> bytes:
    return hashlib.sha1(home_token + (careof_token or b"")).digest()


def bad_authenticator(key: bytes, careof: bytes, correspondent: bytes, mh_data: bytes) -> bytes:
    """RFC 6275 5.2.6: first 96 bits of HMAC_SHA1(Kbm, care-of | correspondent | MH Data)."""
    return _hmac_sha1(key, careof + correspondent + mh_data)[:AUTH_LEN]


def mn_ha_authenticator(key: bytes, careof: bytes, home: bytes, mh_data: bytes) -> bytes:
    """RFC 4285: first 96 bits of HMAC_SHA1(key, care-of | home address | MH Data up to the SPI)."""
    return _hmac_sha1(key, careof + home + mh_data)[:AUTH_LEN]


@dataclass(frozen=True)
class PairKeys:
    """What the tester knows of one MN-CN pair's preconfigured data (never shown by repr)."""

    home: bytes
    correspondent: bytes
    kcn: bytes = field(repr=False)
    home_nonce: bytes = field(repr=False)
    careof_nonce: bytes = field(repr=False)

    @classmethod
    def of(cls, data) -> PairKeys:
        """From a ``testbed.mip6.keys.PreconfiguredData`` (or anything with its fields)."""
        return cls(a16(data.home_address), a16(data.correspondent), data.kcn, data.home_nonce, data.careof_nonce)

    def kbm(self, careof: bytes | None) -> bytes:
        """Kbm for ``careof``; the de-registration Kbm when ``careof`` is None or the home address."""
        if careof is None or careof == self.home:
            return kbm(self.kcn, self.home, self.home_nonce, None, self.careof_nonce)
        return kbm(self.kcn, self.home, self.home_nonce, careof, self.careof_nonce)


@dataclass(frozen=True)
class MnHaKeys:
    home: bytes
    home_agent: bytes
    spi: int
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, sa) -> MnHaKeys:
        """From a ``testbed.mip6.mnha.MnHaSecurityAssociation``."""
        return cls(a16(sa.home_address), a16(sa.home_agent), sa.spi, sa.key)


# ---------------------------------------------------------------------------------- checksum


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def upper_checksum(src: bytes, dst: bytes, proto: int, body: bytes) -> int:
    """RFC 8200 8.1: the upper-layer checksum of ``body`` (its checksum field zero)."""
    return _checksum(src + dst + struct.pack("!I3xB", len(body), proto) + body)


# ---------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reply:
    """An IPv6 packet as the tester reads it: addresses, the Mobile IPv6 headers, the upper layer."""

    raw: bytes
    src: bytes
    dst: bytes
    next_header: int  # upper layer (135, 58, 41, ...)
    payload: bytes  # upper-layer octets (for MH: as Header Len delimits it, when it fits)
    home_address: bytes | None = None  # Home Address option
    rh2: bytes | None = None  # type 2 routing header address
    payload_offset: int = 0

    @property
    def final_destination(self) -> bytes:
        return self.rh2 if self.rh2 is not None else self.dst

    @property
    def mh_type(self) -> int | None:
        return self.payload[2] if self.next_header == MH and len(self.payload) >= 6 else None

    @property
    def mh_name(self) -> str:
        t = self.mh_type
        return "-" if t is None else MH_NAMES.get(t, f"MH{t}")

    # Binding Acknowledgement / Error fields
    @property
    def status(self) -> int | None:
        return self.payload[6] if self.mh_type in (BA, BE) and len(self.payload) > 6 else None

    @property
    def seq(self) -> int | None:
        if self.mh_type == BA and len(self.payload) >= 12:
            return struct.unpack_from("!H", self.payload, 8)[0]
        if self.mh_type == BU and len(self.payload) >= 12:
            return struct.unpack_from("!H", self.payload, 6)[0]
        return None

    @property
    def lifetime(self) -> int | None:
        if self.mh_type == BA and len(self.payload) >= 12:
            return struct.unpack_from("!H", self.payload, 10)[0]
        if self.mh_type == BU and len(self.payload) >= 12:
            return struct.unpack_from("!H", self.payload, 10)[0]
        return None

    @property
    def bu_flags(self) -> int | None:
        return struct.unpack_from("!H", self.payload, 8)[0] if self.mh_type == BU and len(self.payload) >= 12 else None

    @property
    def be_home_address(self) -> bytes | None:
        return self.payload[8:24] if self.mh_type == BE and len(self.payload) >= 24 else None

    def options(self) -> list[tuple[int, bytes]]:
        """The mobility options (type, data) after the message's fixed part, padding skipped."""
        start = {BU: 12, BA: 12, BE: 24, BRR: 8, HOTI: 16, COTI: 16, HOT: 24, COT: 24}.get(self.mh_type)
        if start is None:
            return []
        out, pos, data = [], start, self.payload
        while pos < len(data):
            kind = data[pos]
            if kind == 0:
                pos += 1
                continue
            if pos + 2 > len(data) or pos + 2 + data[pos + 1] > len(data):
                break
            if kind != 1:
                out.append((kind, data[pos + 2 : pos + 2 + data[pos + 1]]))
            pos += 2 + data[pos + 1]
        return out

    def option(self, kind: int) -> bytes | None:
        return next((d for k, d in self.options() if k == kind), None)

    @property
    def cookie(self) -> bytes | None:
        if self.mh_type in (HOTI, COTI):
            return self.payload[8:16]
        if self.mh_type in (HOT, COT):
            return self.payload[8:16]
        return None

    @property
    def token(self) -> bytes | None:
        return self.payload[16:24] if self.mh_type in (HOT, COT) else None

    @property
    def nonce_index(self) -> int | None:
        return struct.unpack_from("!H", self.payload, 6)[0] if self.mh_type in (HOT, COT) else None

    # checks
    def mh_checksum_ok(self) -> bool:
        mh = self.payload
        if self.next_header != MH or len(mh) < 8:
            return False
        src = self.home_address if self.home_address is not None else self.src
        return upper_checksum(src, self.final_destination, MH, mh) == 0

    def bad_valid(self, key: bytes, careof: bytes, correspondent: bytes) -> bool:
        """The message ends with a Binding Authorization Data option whose authenticator is
        right for ``key`` (Kbm)."""
        mh = self.payload
        if len(mh) < 16 or mh[-14] != OPT_BAD or mh[-13] != AUTH_LEN:
            return False
        data = mh[:4] + b"\0\0" + mh[6:-AUTH_LEN]
        return hmac.compare_digest(bad_authenticator(key, careof, correspondent, data), mh[-AUTH_LEN:])

    def mn_ha_valid(self, key: bytes, careof: bytes, home: bytes) -> bool:
        mh = self.payload
        opt = self.option(OPT_MSG_AUTH)
        if opt is None or len(opt) != 5 + AUTH_LEN or mh[-AUTH_LEN:] != opt[5:]:
            return False
        data = mh[:4] + b"\0\0" + mh[6:-AUTH_LEN]
        return hmac.compare_digest(mn_ha_authenticator(key, careof, home, data), opt[5:])

    def replay_timestamp(self) -> int | None:
        opt = self.option(OPT_REPLAY)
        return struct.unpack("!Q", opt)[0] if opt is not None and len(opt) == 8 else None

    def inner(self) -> Reply | None:
        """The packet inside an IPv6-in-IPv6 tunnel."""
        if self.next_header != IPV6_IN_IPV6:
            return None
        try:
            return read(self.payload)
        except ValueError:
            return None

    @property
    def kind(self) -> str:
        """What it is, in a word or two: "BA", "ICMPv6 type 4", "IPv6-in-IPv6", "proto 17"."""
        if self.next_header == MH:
            return self.mh_name
        if self.next_header == ICMPV6:
            return f"ICMPv6 type {self.payload[0]}" if self.payload else "ICMPv6"
        return "IPv6-in-IPv6" if self.next_header == IPV6_IN_IPV6 else f"proto {self.next_header}"

    def summary(self) -> str:
        parts = [f"{text(self.src)} > {text(self.dst)}", self.kind]
        if self.home_address is not None:
            parts.append(f"HAO {text(self.home_address)}")
        if self.rh2 is not None:
            parts.append(f"RH2 {text(self.rh2)}")
        if self.status is not None:
            parts.append(f"status {self.status}")
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        if self.next_header == ICMPV6 and len(self.payload) > 1:
            parts.append(f"code {self.payload[1]}")
        inner = self.inner()
        if inner is not None:
            parts.append(f"[{inner.summary()}]")
        return " ".join(parts)


def read(data: bytes) -> Reply:
    """Read an IPv6 packet down to its upper layer; ValueError when it is not one."""
    if len(data) < 40 or data[0] >> 4 != 6:
        raise ValueError("not an IPv6 packet")
    plen = struct.unpack_from("!H", data, 4)[0]
    end = min(len(data), 40 + plen)
    nh, pos = data[6], 40
    home = rh2 = None
    while nh in (HOPOPTS, ROUTING, DSTOPTS):
        if pos + 8 > end:
            raise ValueError("truncated extension header")
        hlen = (data[pos + 1] + 1) * 8
        if pos + hlen > end:
            raise ValueError("extension header overruns the packet")
        if nh == ROUTING and data[pos + 2] == 2 and hlen == 24:
            rh2 = bytes(data[pos + 8 : pos + 24])
        elif nh == DSTOPTS:
            p = pos + 2
            while p < pos + hlen:
                if data[p] == 0:
                    p += 1
                    continue
                if p + 1 >= pos + hlen:
                    break
                if data[p] == 201 and data[p + 1] == 16:
                    home = bytes(data[p + 2 : p + 18])
                p += 2 + data[p + 1]
        nh, pos = data[pos], pos + hlen
    payload = bytes(data[pos:end])
    if nh == MH and len(payload) >= 2 and (payload[1] + 1) * 8 <= len(payload):
        payload = payload[: (payload[1] + 1) * 8]
    return Reply(bytes(data), data[8:24], data[24:40], nh, payload, home, rh2, pos)


# ---------------------------------------------------------------------------------- building


def _ip(src, dst, *, home=None, rh2=None, hlim: int = 64):
    pkt = IPv6(src=text(src), dst=text(dst), hlim=hlim)
    if rh2 is not None:
        pkt = pkt / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[text(rh2)])
    if home is not None:
        pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=text(home))])
    return pkt


def _finish(pkt) -> bytes:
    """The packet's octets (a scapy packet or bytes) with its Mobility Header checksum
    computed here (RFC 6275 6.1.1: the Home Address option's address as source, the type 2
    routing header's as destination, when present)."""
    raw = bytearray(bytes(pkt))
    r = read(bytes(raw))
    if r.next_header != MH or len(r.payload) < 6:
        return bytes(raw)
    off = r.payload_offset
    mh = bytearray(r.payload)
    mh[4:6] = b"\0\0"
    src = r.home_address if r.home_address is not None else r.src
    mh[4:6] = struct.pack("!H", upper_checksum(src, r.final_destination, MH, bytes(mh)))
    raw[off : off + len(mh)] = mh
    return bytes(raw)


def _fill_authenticator(pkt: bytes, key: bytes, first: bytes, second: bytes, *, mn_ha: bool) -> bytes:
    """Compute the 12-octet authenticator of ``pkt``'s Mobility Header (the data of its
    last BAD or MN-HA option: normally the last 12 octets) over the octets before it,
    checksum zero; write it there and redo the checksum."""
    r = read(pkt)
    mh = bytearray(r.payload)
    mh[4:6] = b"\0\0"
    at = _authenticator_offset(bytes(mh), OPT_MSG_AUTH if mn_ha else OPT_BAD)
    mh[at : at + AUTH_LEN] = (mn_ha_authenticator if mn_ha else bad_authenticator)(key, first, second, bytes(mh[:at]))
    off = r.payload_offset
    return _finish(pkt[:off] + bytes(mh) + pkt[off + len(mh):])


def _authenticator_offset(mh: bytes, kind: int) -> int:
    """Where the authenticator of the last option of ``kind`` starts in ``mh``."""
    start = {BU: 12, BA: 12}.get(mh[2], 8)
    pos, found = start, None
    while pos + 1 < len(mh):
        if mh[pos] == 0:
            pos += 1
            continue
        if mh[pos] == kind:
            found = pos + 2 + (5 if kind == OPT_MSG_AUTH else 0)
        pos += 2 + mh[pos + 1]
    if found is None:
        raise ValueError(f"no option {kind} to authenticate")
    return found


def _set_tail(pkt: bytes, tail: bytes) -> bytes:
    """``pkt`` with its last octets replaced by ``tail`` (an authenticator), checksum redone."""
    return _finish(pkt[: len(pkt) - len(tail)] + tail)


def binding_update(src, dst, *, seq: int, lifetime: int = 100, ack: bool = True, home_reg: bool = False,
                   home=None, options: list | None = None, key: bytes | None = None,
                   careof=None, bad: bool = True, auth: bytes | None = None, flags: str | None = None,
                   after_bad: list | None = None) -> bytes:
    """A Binding Update from ``src`` to ``dst`` (with a Home Address option when ``home`` is
    given). ``options``: scapy mobility options before the BAD (Nonce Indices, Alternate CoA,
    unknown ones...). With ``bad`` a Binding Authorization Data option follows, its
    authenticator computed with ``key`` (Kbm) over ``careof`` (default: the Alternate CoA,
    else ``src``), ``dst`` and the octets before it, or set to ``auth`` as given.
    ``after_bad``: options after the BAD (RFC 6275 6.2.7 forbids any: a receiver must drop
    the BU however right the authenticator over what precedes it)."""
    options = list(options or [])
    if flags is None:
        flags = ("A" if ack else "") + ("H" if home_reg else "")
    if bad:
        options.append(MIP6OptBindingAuthData(olen=AUTH_LEN, authenticator=0))
    options += list(after_bad or [])
    mh = MIP6MH_BU(seq=seq, flags=flags, mhtime=lifetime, options=options)
    pkt = _finish(_ip(src, dst, home=home) / mh)
    if not bad:
        return pkt
    if auth is not None:
        r = read(pkt)
        at = r.payload_offset + _authenticator_offset(r.payload, OPT_BAD)
        return _finish(pkt[:at] + auth + pkt[at + AUTH_LEN:])
    if careof is None:
        alt = next((o for o in options if isinstance(o, MIP6OptAltCoA)), None)
        careof = alt.acoa if alt is not None else src
    return _fill_authenticator(pkt, key if key is not None else bytes(20), a16(careof), a16(dst), mn_ha=False)


def home_registration(careof, home_agent, *, home, seq: int, lifetime: int = 100, timestamp: int | None,
                      spi: int, key: bytes, ack: bool = True, auth_ok: bool = True) -> bytes:
    """An RFC 4285 home registration: BU with H (and A), Replay Protection (when
    ``timestamp`` is given), then the MN-HA Mobility Message Authentication option."""
    options = [] if timestamp is None else [MIP6OptReplayProtection(timestamp=timestamp)]
    options.append(MIP6OptMsgAuth(subtype=1, mspi=spi, authdata=bytes(AUTH_LEN)))
    mh = MIP6MH_BU(seq=seq, flags=("A" if ack else "") + "H", mhtime=lifetime, options=options)
    pkt = _finish(_ip(careof, home_agent, home=home) / mh)
    signed = _fill_authenticator(pkt, key, a16(careof), a16(home), mn_ha=True)
    if auth_ok:
        return signed
    return _set_tail(signed, bytes(b ^ 0x5A for b in signed[-AUTH_LEN:]))


def binding_ack(src, careof, *, home, status: int, seq: int, lifetime: int = 0, key: bytes | None = None,
                timestamp: int | None = None, mn_ha: MnHaKeys | None = None) -> bytes:
    """A BA from ``src`` to the mobile node at ``careof`` (type 2 routing header with
    ``home`` unless ``careof`` is the home address). ``key``: a Kbm to end it with BAD;
    ``mn_ha``: RFC 4285 authentication (with ``timestamp`` echoed) instead."""
    rh2 = None if a16(careof) == a16(home) else home
    options = []
    if mn_ha is not None:
        if timestamp is not None:
            options.append(MIP6OptReplayProtection(timestamp=timestamp))
        options.append(MIP6OptMsgAuth(subtype=1, mspi=mn_ha.spi, authdata=bytes(AUTH_LEN)))
    elif key is not None:
        options.append(MIP6OptBindingAuthData(olen=AUTH_LEN, authenticator=0))
    mh = MIP6MH_BA(status=status, flags=0, seq=seq, mhtime=lifetime, options=options)
    pkt = _finish(_ip(src, careof, rh2=rh2) / mh)
    if mn_ha is not None:
        return _fill_authenticator(pkt, mn_ha.key, a16(careof), a16(home), mn_ha=True)
    if key is not None:
        return _fill_authenticator(pkt, key, a16(careof), a16(src), mn_ha=False)
    return pkt


def with_header_len(packet: bytes, header_len: int, *, key: bytes | None = None, careof=None,
                    correspondent=None) -> bytes:
    """``packet`` with its Mobility Header's Header Len field set to ``header_len``, whatever
    the header's real length, every other octet as it was; its checksum (and, with ``key``,
    the authenticator of its BAD for ``careof`` and ``correspondent``) computed over every
    octet of the IPv6 payload, as a receiver that ignored Header Len would compute them. The
    Mobility Header must be the packet's last header."""
    r = read(packet)
    off = r.payload_offset
    mh = bytearray(packet[off:])
    mh[1] = header_len
    mh[4:6] = b"\0\0"
    if key is not None:
        at = _authenticator_offset(bytes(mh), OPT_BAD)
        mh[at : at + AUTH_LEN] = bad_authenticator(key, a16(careof), a16(correspondent), bytes(mh[:at]))
    src = r.home_address if r.home_address is not None else r.src
    mh[4:6] = struct.pack("!H", upper_checksum(src, r.final_destination, MH, bytes(mh)))
    return packet[:off] + bytes(mh)


def malformed_mh(src, dst) -> list[bytes]:
    """Two Mobility Headers no receiver can read: a Binding Refresh Request whose Header Len
    says 48 octets in a payload of 8, and 4 octets (shorter than any Mobility Header)."""
    brr = bytearray(_finish(_ip(src, dst) / MIP6MH_BRR()))
    brr[40 + 1] = 5
    return [bytes(brr), plain(src, dst, bytes((NO_NEXT, 0, 0, 0)), proto=MH)]


def binding_error(src, dst, *, status: int, home=b"\0" * 16) -> bytes:
    return _finish(_ip(src, dst) / MIP6MH_BE(status=status, ha=text(home)))


def binding_refresh_request(src, careof, *, home) -> bytes:
    rh2 = None if a16(careof) == a16(home) else home
    return _finish(_ip(src, careof, rh2=rh2) / MIP6MH_BRR())


def home_test_init(home, cn, cookie: bytes) -> bytes:
    return _finish(_ip(home, cn) / MIP6MH_HoTI(cookie=cookie))


def careof_test_init(careof, cn, cookie: bytes) -> bytes:
    return _finish(_ip(careof, cn) / MIP6MH_CoTI(cookie=cookie))


def home_test(cn, home, *, cookie: bytes, token: bytes, index: int) -> bytes:
    return _finish(_ip(cn, home) / MIP6MH_HoT(index=index, cookie=cookie, token=token))


def careof_test(cn, careof, *, cookie: bytes, token: bytes, index: int) -> bytes:
    return _finish(_ip(cn, careof) / MIP6MH_CoT(index=index, cookie=cookie, token=token))


def unknown_mh(src, dst, mh_type: int = 42, *, home=None) -> bytes:
    return _finish(_ip(src, dst, home=home) / MIP6MH_Generic(mhtype=mh_type, msg=b"\0\0"))


def with_home_address(src, dst, home, *, proto: int = NO_NEXT, payload: bytes = b"") -> bytes:
    """A non-Mobility-Header packet carrying a Home Address option (no binding: Binding Error 1)."""
    pkt = _ip(src, dst, home=home)
    pkt[IPv6ExtHdrDestOpt].nh = proto
    return bytes(pkt / payload) if payload else bytes(pkt)


def plain(src, dst, payload: bytes = b"", *, proto: int = NO_NEXT) -> bytes:
    """A bare IPv6 packet (no next header by default) carrying ``payload``."""
    return bytes(IPv6(src=text(src), dst=text(dst), nh=proto, plen=len(payload))) + payload


def with_destination_option(packet: bytes, option_type: int) -> bytes:
    """``packet`` with an unrecognised destination option of ``option_type`` (2 data octets)
    placed in a Destination Options header of its own before its upper layer."""
    r = read(packet)
    hdr = bytes((r.next_header, 0, option_type, 2, 0, 0)) + bytes((1, 0))
    # the option header goes right before the upper layer; its predecessor points at it
    raw = bytearray(packet[: r.payload_offset] + hdr + packet[r.payload_offset:])
    prev = _next_header_field(packet, r.payload_offset)
    raw[prev] = DSTOPTS
    raw[4:6] = struct.pack("!H", len(raw) - 40)
    return bytes(raw)


def _next_header_field(data: bytes, upper: int) -> int:
    """Offset of the Next Header octet that names the upper layer at ``upper``."""
    nh_at, pos, nh = 6, 40, data[6]
    while pos < upper and nh in (HOPOPTS, ROUTING, DSTOPTS):
        nh_at, nh, pos = pos, data[pos], pos + (data[pos + 1] + 1) * 8
    return nh_at


def tunnelled(outer_src, outer_dst, inner: bytes) -> bytes:
    return bytes(IPv6(src=text(outer_src), dst=text(outer_dst), nh=IPV6_IN_IPV6) / inner)


def router_advertisement(router, mac: str, prefix: str, *, lifetime: int = 1800, preferred: int = 14400,
                         valid: int = 86400) -> bytes:
    net = ipaddress.IPv6Network(prefix)
    pkt = (IPv6(src=text(router), dst="ff02::1", hlim=255)
           / ICMPv6ND_RA(routerlifetime=lifetime)
           / ICMPv6NDOptPrefixInfo(prefixlen=net.prefixlen, prefix=str(net.network_address),
                                   validlifetime=valid, preferredlifetime=preferred)
           / ICMPv6NDOptSrcLLAddr(lladdr=mac))
    return bytes(pkt)


__all__ = [
    "HAO", "MIP6OptAltCoA", "MIP6OptNonceIndices", "MIP6OptUnknown", "PadN", "MIP6OptBindingAuthData",
    "MIP6OptReplayProtection", "MIP6OptMsgAuth",
]
