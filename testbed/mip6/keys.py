"""RFC 4449 preconfigured data for one MN-CN pair (R1, R3, R10): load, validate, generate, write.

The file (design.md) is YAML, mode 0600 or stricter::

    home_address: "2001:db8:0:1::1234"
    correspondent: "2001:db8:0:3::1"
    kcn: "<at least 40 hex digits>"
    home_nonce: "<16 hex digits>"
    careof_nonce: "<16 hex digits>"

Every scalar is read as a string (no YAML number or date guessing, so an unquoted nonce
``1111111111111111`` stays the hex it looks like). Unknown and duplicate keys are refused.
Every refusal is a ``ConfigError`` with one line ``<file>: <reason>`` that never contains a
secret. ``PreconfiguredData`` never prints Kcn or the nonces; ``key_id`` names a key safely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import yaml

from testbed.errors import ConfigError
from testbed.mip6.entropy import kcn_weakness

KCN_MIN_OCTETS = 20
"""R1: Kcn is at least 20 octets."""
KCN_DEFAULT_OCTETS = 20
NONCE_OCTETS = 8
"""Home and care-of nonces are 64 bits (RFC 6275 section 5.2)."""
FIELDS = ("home_address", "correspondent", "kcn", "home_nonce", "careof_nonce")
MAX_FILE_BYTES = 64 * 1024
_KEY_ID_LABEL = b"mip6-testbed key id v1\x00"

Role = Literal["mn", "cn"]


@dataclass(frozen=True, slots=True)
class PreconfiguredData:
    """Kcn and the two nonces one MN shares with one CN, bound to the MN's home address (R1).

    ``repr`` and ``str`` show the addresses, the ``key_id`` and the source, never the secrets.
    Building one directly checks only the shape (lengths, types); ``load_preconfigured`` and
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


class _StrictLoader(yaml.BaseLoader):
    """All scalars as strings; a mapping with a key twice is an error."""

    def construct_mapping(self, node, deep=False):  # noqa: D401 - PyYAML hook
        seen: set[str] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str):
                if key in seen:
                    raise _DuplicateKey(key)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    pass


def _fail(source: str, reason: str) -> ConfigError:
    return ConfigError(f"{_one_line(source)}: {reason}")


def _one_line(text: object) -> str:
    text = str(text)
    return " ".join(text.split()) if any(c in text for c in "\r\n\v\f\x85\u2028\u2029") else text


_HEX_RUN = re.compile(r"[0-9a-fA-F]{16,}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")


def _shown(value: object) -> str:
    """``value`` quoted for a message, unless it might be (part of) a secret or is long."""
    text = str(value)
    if len(text) > 45 or _HEX_RUN.search(text):
        return "(value not shown)"
    return repr(_one_line(text))


def _shown_key(key: object) -> str:
    text = str(key)
    if _NAME.fullmatch(text) and not all(c in "0123456789abcdefABCDEF" for c in text):
        return repr(text)
    return "(a key not shown)"


def _address(value: object, what: str) -> ipaddress.IPv6Address:
    """A unicast IPv6 address usable as a home address or correspondent, or ValueError(reason)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is empty or not a string")
    shown = _shown(value)
    try:
        addr = ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError(f"{what} {shown} is not an IPv6 address") from None
    if addr.scope_id is not None:
        raise ValueError(f"{what} {shown} has a zone index; give the bare address")
    for bad, flag in (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("multicast", addr.is_multicast),
        ("link-local", addr.is_link_local),
    ):
        if flag:
            raise ValueError(f"{what} {addr} is a {bad} address, not a usable unicast address")
    return addr


def _hex(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is empty or not a hex string")
    if len(value) % 2:
        raise ValueError(f"{name} has an odd number of hex digits ({len(value)})")
    if any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"{name} is not a hex string (only 0-9 and a-f allowed, no prefix or spaces)")
    return bytes.fromhex(value)


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
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    except _DuplicateKey as dup:
        raise _fail(source, f"key {_shown_key(dup)} appears twice") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise _fail(source, f"not valid YAML{where}: {_one_line(problem)}") from None
    if not isinstance(doc, dict):
        raise _fail(source, "not a YAML mapping of " + ", ".join(FIELDS))
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        shown = ", ".join(_shown_key(k) for k in unknown[:3])
        raise _fail(source, f"unknown key {shown}; allowed: " + ", ".join(FIELDS))
    missing = [k for k in FIELDS if k not in doc]
    if missing:
        raise _fail(source, "missing key " + ", ".join(missing))
    try:
        home = _address(doc["home_address"], "home_address")
        correspondent = _address(doc["correspondent"], "correspondent")
        if home == correspondent:
            raise ValueError("home_address and correspondent are the same address")
        kcn = _hex(doc["kcn"], "kcn")
        nonces = {}
        for name in ("home_nonce", "careof_nonce"):
            nonces[name] = _hex(doc[name], name)
            if len(nonces[name]) != NONCE_OCTETS:
                raise ValueError(
                    f"{name} is {len(nonces[name])} octets, it must be {NONCE_OCTETS} "
                    f"({2 * NONCE_OCTETS} hex digits)"
                )
        _validate_kcn(kcn)
    except ValueError as exc:
        raise _fail(source, str(exc)) from None
    return PreconfiguredData(home, correspondent, kcn, nonces["home_nonce"], nonces["careof_nonce"], source)


def load_preconfigured(path: str | os.PathLike) -> PreconfiguredData:
    """Read and validate one preconfigured-data file (R1, R3); ConfigError naming the file and why.

    Refused: missing or unreadable, not a regular file, any permission bit for group or
    others, larger than 64 KiB, not UTF-8, and everything ``parse_preconfigured`` refuses.
    """
    source = os.fspath(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise _fail(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(source, "not a regular file")
        if st.st_mode & 0o077:
            raise _fail(
                source,
                f"mode {stat.S_IMODE(st.st_mode):04o} lets group or others access the keys; "
                "it must be 0600 or stricter (chmod 600)",
            )
        if st.st_size > MAX_FILE_BYTES:
            raise _fail(source, f"{st.st_size} bytes, too large for preconfigured data")
        chunks = []
        while chunk := os.read(fd, MAX_FILE_BYTES + 1):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_FILE_BYTES:
                raise _fail(source, "too large for preconfigured data")
    except OSError as exc:
        raise _fail(source, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(source, "not UTF-8 text") from None
    return parse_preconfigured(text, source)


# ---------------------------------------------------------------- sets of peers (R10)


def check_distinct_kcn(items: Iterable[PreconfiguredData]) -> None:
    """R10: ConfigError naming both files if two entries share a Kcn."""
    seen: dict[bytes, PreconfiguredData] = {}
    for item in items:
        other = seen.setdefault(item.kcn, item)
        if other is not item:
            raise ConfigError(
                f"{_one_line(other.source)} and {_one_line(item.source)} hold the same Kcn "
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
                f"{_one_line(other.source)} and {_one_line(item.source)} are both for home address "
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
                f"{_one_line(first.source)} and {_one_line(item.source)} differ in {what} "
                f"({getattr(first, own_attr)} and {getattr(item, own_attr)}); "
                f"the files of one {role.upper()} must share it"
            )
        peers[getattr(item, peer_attr)] = item
    return peers


def load_peer_set(
    paths: Iterable[str | os.PathLike], role: Role
) -> dict[ipaddress.IPv6Address, PreconfiguredData]:
    """Load every file (stopping at the first bad one), then ``index_peers`` them for ``role``."""
    return index_peers([load_preconfigured(p) for p in paths], role)


# ---------------------------------------------------------------- generation and writing


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


def write_new(path: str | os.PathLike, data: PreconfiguredData) -> PreconfiguredData:
    """Create ``path`` (0600, O_EXCL: never overwrites) holding ``dump(data)``, fsync it and its directory.

    Returns ``data`` with ``source`` set to ``path``. ConfigError if the file exists or cannot
    be created; a file this call created is removed again if writing it fails.
    """
    target = os.fspath(path)
    payload = dump(data).encode("ascii")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise _fail(target, "already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise _fail(target, f"cannot create: {exc.strerror or exc}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        os.unlink(target)
        raise _fail(target, f"cannot write: {exc.strerror or exc}") from None
    _fsync_dir(os.path.dirname(os.path.abspath(target)))
    return dataclasses.replace(data, source=target)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
