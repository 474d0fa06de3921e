"""Fuzzing packets: mutations of valid Mobile IPv6 messages, and malformed packets generated
with scapy. Pure functions of a seeded ``random.Random``: a run is repeatable from its seed.

``Mutator(seeds, rng)`` yields ``(strategy, packet)`` pairs. A strategy changes a valid
packet in one way a parser has to survive:

- ``bitflip``/``bytes``: random bits, or octets set to boundary values (0, 1, 0x7f, 0x80, 0xff);
- ``truncate``/``extend``: the packet cut short or lengthened (payload length fixed or not);
- ``mh_field``: one Mobility Header field set to an edge value: Header Len, MH type,
  Payload Proto, the sequence number, lifetime, flags, status;
- ``options``: mobility options duplicated, dropped, swapped, given a wrong length, or a
  random option inserted (known types with bad lengths, unknown types, padding runs);
- ``ext_header``: extension headers added or broken: a Destination Options header with an
  unknown option of each action, a second Home Address option, a Home Address option of a
  wrong length, routing headers of type 0 or 2 with bad lengths or segments, a Fragment header;
- ``splice``: the front of one seed and the back of another;
- ``generated``: packets scapy's ``fuzz()`` made from its Mobile IPv6 layers (made once per
  run into a pool: scapy takes about a millisecond a packet).

After a mutation the Mobility Header checksum is recomputed with probability
``FIX_CHECKSUM`` (else nearly every mutant would stop at the checksum check and the parser
behind it would never be reached) and the IPv6 payload length with ``FIX_LENGTH``. The IPv6
destination address is left alone: the packets must reach the node under test.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

from testbed.lab import craft

FIX_CHECKSUM = 0.75
FIX_LENGTH = 0.85
EDGE_OCTETS = (0, 1, 0x7F, 0x80, 0xFF)
EDGE_16 = (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF)
STRATEGIES = ("bitflip", "bytes", "truncate", "extend", "mh_field", "options", "ext_header", "splice",
              "generated")
MAX_PACKET = 1400  # stays under the links' MTU once framed


def _mh_offset(packet: bytes) -> int | None:
    try:
        r = craft.read(packet)
    except ValueError:
        return None
    return r.payload_offset if r.next_header == craft.MH else None


def fix_lengths(packet: bytes, rng: random.Random) -> bytes:
    """Recompute the IPv6 payload length and the MH checksum, each with its probability."""
    out = bytearray(packet[:MAX_PACKET])
    if len(out) >= 40 and rng.random() < FIX_LENGTH:
        out[4:6] = struct.pack("!H", len(out) - 40)
    if rng.random() < FIX_CHECKSUM:
        off = _mh_offset(bytes(out))
        if off is not None and len(out) >= off + 6:
            try:
                out = bytearray(craft._finish(bytes(out)))
            except (ValueError, struct.error):
                pass
    return bytes(out)


class Mutator:
    """Mutants of ``seeds`` (whole IPv6 packets), plus ``generated`` ones when given."""

    def __init__(self, seeds: list[bytes], rng: random.Random, generated: list[bytes] | None = None) -> None:
        if not seeds:
            raise ValueError("fuzzing needs at least one seed packet")
        self.seeds = [s for s in seeds if len(s) >= 40]
        self.rng = rng
        self.generated = list(generated or [])
        self.strategies = [s for s in STRATEGIES if s != "generated" or self.generated]

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            yield self.next()

    def next(self) -> tuple[str, bytes]:
        rng = self.rng
        strategy = rng.choice(self.strategies)
        seed = rng.choice(self.seeds)
        if strategy == "generated":
            base = rng.choice(self.generated)
            return strategy, fix_lengths(base, rng) if rng.random() < 0.5 else base
        mutate = getattr(self, f"_{strategy}")
        try:
            out = mutate(bytearray(seed))
        except (IndexError, ValueError, struct.error):
            out = bytearray(seed)
            out[-1] ^= 0xFF
        if strategy in ("bitflip", "bytes"):
            return strategy, bytes(out[:MAX_PACKET])  # lengths as the mutation left them
        return strategy, fix_lengths(bytes(out), rng)

    # -- strategies ------------------------------------------------------------------------

    def _positions(self, p: bytearray) -> list[int]:
        # anywhere but the destination address (octets 24..39)
        return [i for i in range(len(p)) if not 24 <= i < 40]

    def _bitflip(self, p: bytearray) -> bytearray:
        positions = self._positions(p)
        for _ in range(self.rng.randint(1, 4)):
            p[self.rng.choice(positions)] ^= 1 << self.rng.randrange(8)
        return fix_lengths(bytes(p), self.rng) if self.rng.random() < 0.5 else p

    def _bytes(self, p: bytearray) -> bytearray:
        positions = [i for i in self._positions(p) if i >= 40] or self._positions(p)
        for _ in range(self.rng.randint(1, 3)):
            p[self.rng.choice(positions)] = self.rng.choice(EDGE_OCTETS)
        return bytearray(fix_lengths(bytes(p), self.rng)) if self.rng.random() < 0.7 else p

    def _truncate(self, p: bytearray) -> bytearray:
        return p[: self.rng.randint(40, max(40, len(p) - 1))]

    def _extend(self, p: bytearray) -> bytearray:
        n = self.rng.choice((1, 2, 7, 8, 16, self.rng.randint(1, 300)))
        return p + bytearray(self.rng.getrandbits(8) for _ in range(n))

    def _mh_field(self, p: bytearray) -> bytearray:
        off = _mh_offset(bytes(p))
        if off is None or len(p) < off + 8:
            return self._bytes(p)
        field = self.rng.choice(("payload_proto", "header_len", "mh_type", "reserved", "word6", "word8",
                                 "word10", "status"))
        if field == "payload_proto":
            p[off] = self.rng.choice((0, 6, 17, 41, 58, 60, 135, 255))
        elif field == "header_len":
            p[off + 1] = self.rng.choice(EDGE_OCTETS + (p[off + 1] - 1 & 0xFF, p[off + 1] + 1 & 0xFF))
        elif field == "mh_type":
            p[off + 2] = self.rng.choice(tuple(range(0, 12)) + (16, 42, 255))
        elif field == "reserved":
            p[off + 3] = self.rng.choice(EDGE_OCTETS)
        elif field == "status":
            p[off + 6] = self.rng.choice((0, 1, 127, 128, 131, 135, 136, 137, 138, 139, 144, 145, 146, 255))
        else:
            at = off + int(field[4:])
            if at + 2 <= len(p):
                p[at : at + 2] = struct.pack("!H", self.rng.choice(EDGE_16))
        return p

    def _options(self, p: bytearray) -> bytearray:
        off = _mh_offset(bytes(p))
        if off is None:
            return self._bytes(p)
        r = craft.read(bytes(p))
        fixed = {craft.BU: 12, craft.BA: 12, craft.BE: 24, craft.BRR: 8, craft.HOTI: 16, craft.COTI: 16,
                 craft.HOT: 24, craft.COT: 24}.get(r.mh_type, 8)
        head, opts = bytes(p[off : off + fixed]), _split_options(r.payload[fixed:])
        action = self.rng.choice(("duplicate", "drop", "swap", "bad_length", "insert", "pad_run"))
        if action == "duplicate" and opts:
            i = self.rng.randrange(len(opts))
            opts.insert(self.rng.randrange(len(opts) + 1), opts[i])
        elif action == "drop" and opts:
            opts.pop(self.rng.randrange(len(opts)))
        elif action == "swap" and len(opts) > 1:
            i, j = self.rng.sample(range(len(opts)), 2)
            opts[i], opts[j] = opts[j], opts[i]
        elif action == "bad_length" and opts:
            i = self.rng.randrange(len(opts))
            o = bytearray(opts[i])
            if len(o) >= 2:
                o[1] = self.rng.choice((0, 1, o[1] - 1 & 0xFF, o[1] + 1 & 0xFF, 255))
            opts[i] = bytes(o)
        elif action == "pad_run":
            n = self.rng.choice((0, 4, 6, 20))
            opts.insert(self.rng.randrange(len(opts) + 1), bytes((1, n)) + bytes(n))
        else:
            kind = self.rng.choice((2, 3, 4, 5, 9, 10, 6, 7, 8, 11, 0x20, 0x7F, 0xFF))
            length = self.rng.choice((0, 1, 2, 4, 8, 12, 16, 17, 30))
            opts.insert(self.rng.randrange(len(opts) + 1), bytes((kind, length)) + bytes(self.rng.getrandbits(8) for _ in range(length)))
        body = bytearray(head + b"".join(opts))
        body += bytes((-len(body)) % 8)
        if self.rng.random() < 0.8:
            body[1] = max(0, len(body) // 8 - 1) & 0xFF
        return p[:off] + body

    def _ext_header(self, p: bytearray) -> bytearray:
        r = craft.read(bytes(p))
        off = r.payload_offset
        choice = self.rng.choice(("unknown_option", "second_hao", "hao_length", "rh0", "rh2_bad", "fragment",
                                  "hop_by_hop", "empty_dstopts"))
        nh = r.next_header
        if choice == "unknown_option":
            otype = self.rng.choice((0x1E, 0x3E, 0x5E, 0x7E, 0x9E, 0xBE, 0xDE, 0xFE))
            hdr = bytes((nh, 0, otype, 2, 0, 0, 1, 0))
            proto = craft.DSTOPTS
        elif choice == "second_hao":
            hdr = bytes((nh, 2, 1, 2, 0, 0, 201, 16)) + bytes(self.rng.getrandbits(8) for _ in range(16))
            proto = craft.DSTOPTS
        elif choice == "hao_length":
            length = self.rng.choice((0, 8, 15, 17))
            hdr = bytes((nh, 2, 201, length)) + bytes(20)
            proto = craft.DSTOPTS
        elif choice == "rh0":
            hdr = bytes((nh, 2, 0, 1, 0, 0, 0, 0)) + bytes(16)
            proto = craft.ROUTING
        elif choice == "rh2_bad":
            hdr = bytes((nh, self.rng.choice((0, 4)), 2, self.rng.choice((0, 1, 2)), 0, 0, 0, 0)) + bytes(16)
            proto = craft.ROUTING
        elif choice == "fragment":
            hdr = bytes((nh, 0, 0, 1)) + struct.pack("!I", self.rng.getrandbits(32))
            proto = craft.FRAGMENT
        elif choice == "hop_by_hop":
            hdr = bytes((nh, 0, self.rng.choice((5, 0xC2, 0x3E, 0x7E)), 2, 0, 0, 1, 0))
            proto = craft.HOPOPTS
        else:
            hdr = bytes((nh, 0, 1, 4, 0, 0, 0, 0))
            proto = craft.DSTOPTS
        if proto == craft.HOPOPTS:  # it must come first: right after the IPv6 header
            out = p[:40] + bytearray((p[6],)) + hdr[1:] + p[40:]
            out[6] = craft.HOPOPTS
            return out
        at = craft._next_header_field(bytes(p), off)
        out = p[:off] + hdr + p[off:]
        out[at] = proto
        return out

    def _splice(self, p: bytearray) -> bytearray:
        other = self.rng.choice(self.seeds)
        cut = self.rng.randint(40, max(40, len(p)))
        cut2 = self.rng.randint(40, max(40, len(other)))
        return p[:cut] + bytearray(other[cut2:])


def _split_options(data: bytes) -> list[bytes]:
    """Mobility options (padding included as options) of a message's option area."""
    out, pos = [], 0
    while pos < len(data):
        if data[pos] == 0:
            out.append(b"\0")
            pos += 1
            continue
        if pos + 1 >= len(data):
            out.append(bytes(data[pos:]))
            break
        end = min(len(data), pos + 2 + data[pos + 1])
        out.append(bytes(data[pos:end]))
        pos = end
    return [o for o in out if o not in (b"\0",) and not (o[0] == 1 and not any(o[2:]))]


def generated_pool(rng: random.Random, sources: list[tuple[bytes, bytes]], size: int) -> list[bytes]:
    """``size`` packets made with scapy's ``fuzz()`` on its Mobile IPv6 message layers, from
    ``sources`` (source, destination address pairs, 16 octets each); some with a Home
    Address option or a type 2 routing header."""
    from scapy.layers.inet6 import (
        HAO,
        MIP6MH_BA,
        MIP6MH_BE,
        MIP6MH_BRR,
        MIP6MH_BU,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrRouting,
        MIP6MH_CoT,
        MIP6MH_CoTI,
        MIP6MH_HoT,
        MIP6MH_HoTI,
        MIP6OptAltCoA,
        MIP6OptBindingAuthData,
        MIP6OptBRAdvice,
        MIP6OptMsgAuth,
        MIP6OptNonceIndices,
        MIP6OptReplayProtection,
    )
    from scapy.packet import fuzz
    from scapy.volatile import RandNum

    import scapy.config

    scapy.config.conf.random_seed = rng.getrandbits(32)  # scapy's Rand* use the random module
    random.seed(rng.getrandbits(64))
    layers = (MIP6MH_BU, MIP6MH_BA, MIP6MH_BE, MIP6MH_BRR, MIP6MH_HoTI, MIP6MH_CoTI, MIP6MH_HoT, MIP6MH_CoT)
    options = (MIP6OptAltCoA, MIP6OptBindingAuthData, MIP6OptBRAdvice, MIP6OptMsgAuth, MIP6OptNonceIndices,
               MIP6OptReplayProtection)
    out = []
    for _ in range(size):
        src, dst = rng.choice(sources)
        base = IPv6(src=craft.text(src), dst=craft.text(dst))
        extra = rng.random()
        if extra < 0.3:
            base = base / IPv6ExtHdrDestOpt(options=[HAO(hoa=craft.text(bytes(rng.getrandbits(8) for _ in range(16))))])
        elif extra < 0.4:
            base = base / IPv6ExtHdrRouting(type=2, segleft=RandNum(0, 3), addresses=[craft.text(src)])
        layer = rng.choice(layers)
        kw = {}
        if "options" in [f.name for f in layer.fields_desc]:
            kw["options"] = [fuzz(rng.choice(options)()) for _ in range(rng.randint(0, 3))]
        try:
            out.append(bytes(base / fuzz(layer(**kw)))[:MAX_PACKET])
        except Exception:  # noqa: BLE001 - scapy cannot build every random field combination
            continue
    return out
