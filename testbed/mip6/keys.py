"""RFC 4449 preconfigured data for one MN-CN pair (R1, R3, R10): parse, validate, generate, dump.

The file (docs/architecture.md) is YAML, mode 0600 or stricter::

    home_address: "2001:db8:0:1::1234"
    correspondent: "2001:db8:0:3::1"
    kcn: "<at least 40 hex digits>"
    home_nonce: "<16 hex digits>"
    careof_nonce: "<16 hex digits>"

Every scalar is read as a string (no YAML number or date guessing, so an unquoted nonce
``1111111111111111`` stays the hex it looks like). Unknown and duplicate keys are refused.
Every refusal is a ``ConfigError`` with one line ``<file>: <reason>`` that never contains a
secret. ``PreconfiguredData`` never prints Kcn or the nonces; ``key_id`` names a key safely.
Pure: the files are read and written by ``testbed.storage.keyfiles``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from testbed.errors import ConfigError
from testbed.mip6.entropy import kcn_weakness
from testbed.mip6.keytext import (
    MAX_FILE_BYTES,
    fail,
    load_strict_yaml,
    one_line,
    parse_hex,
    shown,
)

KCN_MIN_OCTETS = 20
"""R1: Kcn is at least 20 octets."""
KCN_DEFAULT_OCTETS = 20
NONCE_OCTETS = 8
"""Home and care-of nonces are 64 bits (RFC 6275 section 5.2)."""
FIELDS = ("home_address", "correspondent", "kcn", "home_nonce", "careof_nonce")
_KEY_ID_LABEL = b"mip6-testbed key id v1\x00"

Role = Literal["mn", "cn"]


@dataclass(frozen=True, slots=True)
class PreconfiguredData:
    """Kcn and the two nonces one MN shares with one CN, bound to the MN's home address (R1).

    ``repr`` and ``str`` show the addresses, the ``key_id`` and the source, never the secrets.
    Building one directly checks only the shape (lengths, types); ``parse_preconfigured`` and
    ``generate`` also apply the entropy checks of R3.
    """

    home_address: ipaddress.IPv6Address
    correspondent: ipaddress.IPv6Address
    kcn: bytes = field(repr=False)
    home_nonce: bytes = field(repr=False)
    careof_nonce: bytes = field(repr=False)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        for name in ("home_address", "correspondent"):
            value = getattr(self, name)
            if not isinstance(value, ipaddress.IPv6Address):
                object.__setattr__(self, name, ipaddress.IPv6Address(value))
        for name in ("kcn", "home_nonce", "careof_nonce"):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
            object.__setattr__(self, name, bytes(value))
        if len(self.kcn) < KCN_MIN_OCTETS:
            raise ValueError(f"Kcn is {len(self.kcn)} octets, R1 needs at least {KCN_MIN_OCTETS}")
        for name in ("home_nonce", "careof_nonce"):
            if len(getattr(self, name)) != NONCE_OCTETS:
                raise ValueError(f"{name} must be {NONCE_OCTETS} octets")

    @property
    def key_id(self) -> str:
        """16 hex digits naming this Kcn without revealing it (SHA-256 of a label and Kcn).

        Use it to key the sequence store and to name the key in events and messages.
        """
        return hashlib.sha256(_KEY_ID_LABEL + self.kcn).hexdigest()[:16]

    def __str__(self) -> str:
        return (
            f"preconfigured data home {self.home_address} correspondent {self.correspondent} "
            f"key {self.key_id} ({self.source})"
        )


# ---------------------------------------------------------------- parsing and validation


def _address(value: object, what: str) -> ipaddress.IPv6Address:
    """A unicast IPv6 address usable as a home address or correspondent, or ValueError(reason)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is empty or not a string")
    quoted = shown(value)
    try:
        addr = ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError(f"{what} {quoted} is not an IPv6 address") from None
    if addr.scope_id is not None:
        raise ValueError(f"{what} {quoted} has a zone index; give the bare address")
    for bad, flag in (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("multicast", addr.is_multicast),
        ("link-local", addr.is_link_local),
    ):
        if flag:
            raise ValueError(f"{what} {addr} is a {bad} address, not a usable unicast address")
    return addr


def _validate_kcn(kcn: bytes) -> None:
    if len(kcn) < KCN_MIN_OCTETS:
        raise ValueError(
            f"kcn is {len(kcn)} octets, R1 needs at least {KCN_MIN_OCTETS} "
            f"({2 * KCN_MIN_OCTETS} hex digits)"
        )
    weakness = kcn_weakness(kcn)
    if weakness is not None:
        raise ValueError(weakness)


def parse_preconfigured(text: str, source: str) -> PreconfiguredData:
    """Validate YAML ``text`` (everything but the file's mode); ``source`` names it in errors."""
    doc = load_strict_yaml(text, source, FIELDS)
    try:
        home = _address(doc["home_address"], "home_address")
        correspondent = _address(doc["correspondent"], "correspondent")
        if home == correspondent:
            raise ValueError("home_address and correspondent are the same address")
        kcn = parse_hex(doc["kcn"], "kcn")
        nonces = {}
        for name in ("home_nonce", "careof_nonce"):
            nonces[name] = parse_hex(doc[name], name)
            if len(nonces[name]) != NONCE_OCTETS:
                raise ValueError(
                    f"{name} is {len(nonces[name])} octets, it must be {NONCE_OCTETS} "
                    f"({2 * NONCE_OCTETS} hex digits)"
                )
        _validate_kcn(kcn)
    except ValueError as exc:
        raise fail(source, str(exc)) from None
    return PreconfiguredData(home, correspondent, kcn, nonces["home_nonce"], nonces["careof_nonce"], source)


# ---------------------------------------------------------------- sets of peers (R10)


def check_distinct_kcn(items: Iterable[PreconfiguredData]) -> None:
    """R10: ConfigError naming both files if two entries share a Kcn."""
    seen: dict[bytes, PreconfiguredData] = {}
    for item in items:
        other = seen.setdefault(item.kcn, item)
        if other is not item:
            raise ConfigError(
                f"{one_line(other.source)} and {one_line(item.source)} hold the same Kcn "
                f"(key {item.key_id}); R10 needs a different Kcn for every MN-CN pair"
            )


def check_distinct_pairs(items: Iterable[PreconfiguredData]) -> None:
    """ConfigError naming both files if two entries are for the same (home address, correspondent)."""
    seen: dict[tuple, PreconfiguredData] = {}
    for item in items:
        pair = (item.home_address, item.correspondent)
        other = seen.setdefault(pair, item)
        if other is not item:
            raise ConfigError(
                f"{one_line(other.source)} and {one_line(item.source)} are both for home address "
                f"{item.home_address} and correspondent {item.correspondent}"
            )


def index_peers(
    items: Iterable[PreconfiguredData], role: Role
) -> dict[ipaddress.IPv6Address, PreconfiguredData]:
    """The peers of one node, keyed by the peer's address, after the R10 checks.

    ``role="mn"``: keyed by correspondent; every entry must have the same home address.
    ``role="cn"``: keyed by home address; every entry must have the same correspondent.
    """
    if role not in ("mn", "cn"):
        raise ValueError(f"role must be 'mn' or 'cn', not {role!r}")
    items = list(items)
    check_distinct_pairs(items)
    check_distinct_kcn(items)
    own_attr, peer_attr = ("home_address", "correspondent") if role == "mn" else ("correspondent", "home_address")
    peers: dict[ipaddress.IPv6Address, PreconfiguredData] = {}
    for item in items:
        first = items[0]
        if getattr(item, own_attr) != getattr(first, own_attr):
            what = "home_address" if role == "mn" else "correspondent"
            raise ConfigError(
                f"{one_line(first.source)} and {one_line(item.source)} differ in {what} "
                f"({getattr(first, own_attr)} and {getattr(item, own_attr)}); "
                f"the files of one {role.upper()} must share it"
            )
        peers[getattr(item, peer_attr)] = item
    return peers


# ---------------------------------------------------------------- generation


def generate(
    home_address: str | ipaddress.IPv6Address,
    correspondent: str | ipaddress.IPv6Address,
    *,
    kcn_len: int = KCN_DEFAULT_OCTETS,
) -> PreconfiguredData:
    """Fresh preconfigured data from the OS CSPRNG (``secrets``), R1 and R3 by construction.

    ConfigError (one line) for a bad address or ``kcn_len`` under 20.
    """
    try:
        home = _address(str(home_address), "home address")
        cn = _address(str(correspondent), "correspondent")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if home == cn:
        raise ConfigError("home address and correspondent are the same address")
    if not isinstance(kcn_len, int) or kcn_len < KCN_MIN_OCTETS:
        raise ConfigError(f"Kcn length {kcn_len} octets is under the R1 minimum of {KCN_MIN_OCTETS}")
    if kcn_len > MAX_FILE_BYTES // 4:
        raise ConfigError(f"Kcn length {kcn_len} octets is unreasonably long")
    while True:  # a CSPRNG key is refused with probability < 1e-8; draw again if so
        kcn = secrets.token_bytes(kcn_len)
        if kcn_weakness(kcn) is None:
            break
    return PreconfiguredData(
        home, cn, kcn, secrets.token_bytes(NONCE_OCTETS), secrets.token_bytes(NONCE_OCTETS), "<generated>"
    )


def dump(data: PreconfiguredData) -> str:
    """The YAML text of ``data`` (every value quoted, so any YAML reader gets strings)."""
    return (
        "# RFC 4449 preconfigured data for one MN-CN pair. Secret: keep this file mode 0600.\n"
        f"# key id {data.key_id}\n"
        f'home_address: "{data.home_address}"\n'
        f'correspondent: "{data.correspondent}"\n'
        f'kcn: "{data.kcn.hex()}"\n'
        f'home_nonce: "{data.home_nonce.hex()}"\n'
        f'careof_nonce: "{data.careof_nonce.hex()}"\n'
    )
