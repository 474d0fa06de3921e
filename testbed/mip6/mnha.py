"""RFC 4285 MN-HA security associations: the key a mobile node shares with its home agent.

File (YAML, mode 0600 or stricter)::

    home_address: "2001:db8:1::100"
    home_agent: "2001:db8:1::1"
    spi: "4097"              # Mobility SPI, 256..4294967295 (0-255 are reserved)
    key: "<at least 40 hex digits>"

The same file serves both ends: the MN loads its one file, the home agent one per MN. Pure:
the files are read by ``testbed.storage.keyfiles``.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from testbed.errors import ConfigError
from testbed.mip6.entropy import kcn_weakness
from testbed.mip6.keytext import (
    fail,
    load_strict_yaml,
    parse_hex,
    shown,
)

FIELDS = ("home_address", "home_agent", "spi", "key")
MIN_KEY_OCTETS = 20
MIN_SPI = 256  # RFC 4285: SPI values 0-255 are reserved


@dataclass(frozen=True, slots=True)
class MnHaSecurityAssociation:
    home_address: ipaddress.IPv6Address
    home_agent: ipaddress.IPv6Address
    spi: int
    key: bytes = field(repr=False)
    source: str = "<memory>"

    def __str__(self) -> str:
        return f"MN-HA association home {self.home_address} home agent {self.home_agent} SPI {self.spi} ({self.source})"


def _address(value: object, name: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(value if isinstance(value, str) else "")
    except ValueError:
        raise ValueError(f"{name} {shown(value)} is not an IPv6 address") from None


def parse_mn_ha(text: str, source: str) -> MnHaSecurityAssociation:
    doc = load_strict_yaml(text, source, FIELDS)
    try:
        home = _address(doc["home_address"], "home_address")
        agent = _address(doc["home_agent"], "home_agent")
        spi_text = doc["spi"]
        if not isinstance(spi_text, str) or not spi_text.isdigit():
            raise ValueError(f"spi {shown(spi_text)} is not a whole number")
        spi = int(spi_text)
        if not MIN_SPI <= spi <= 0xFFFFFFFF:
            raise ValueError(f"spi {spi} is outside {MIN_SPI}..4294967295 (0-255 are reserved)")
        key = parse_hex(doc["key"], "key")
        if len(key) < MIN_KEY_OCTETS:
            raise ValueError(f"key is {len(key)} octets, at least {MIN_KEY_OCTETS} are needed")
        weakness = kcn_weakness(key)
        if weakness is not None:
            raise ValueError(weakness.replace("Kcn", "key"))
    except ValueError as exc:
        raise fail(source, str(exc)) from None
    return MnHaSecurityAssociation(home, agent, spi, key, source)


def index_by_home(items: Iterable[MnHaSecurityAssociation]) -> dict[bytes, MnHaSecurityAssociation]:
    """The home agent's associations by home address; two for one MN, or a shared key, is an error."""
    out: dict[bytes, MnHaSecurityAssociation] = {}
    keys: dict[bytes, MnHaSecurityAssociation] = {}
    for sa in items:
        other = out.get(sa.home_address.packed)
        if other is not None:
            raise ConfigError(f"{other.source} and {sa.source} are both for home address {sa.home_address}")
        other = keys.get(sa.key)
        if other is not None:
            raise ConfigError(f"{other.source} and {sa.source} hold the same MN-HA key")
        out[sa.home_address.packed] = sa
        keys[sa.key] = sa
    return out


def generate_mn_ha(home_address: str, home_agent: str, *, spi: int | None = None) -> MnHaSecurityAssociation:
    while True:
        key = secrets.token_bytes(MIN_KEY_OCTETS)
        if kcn_weakness(key) is None:
            break
    if spi is None:
        spi = MIN_SPI + secrets.randbelow(0xFFFFFFFF - MIN_SPI)
    return MnHaSecurityAssociation(ipaddress.IPv6Address(home_address), ipaddress.IPv6Address(home_agent), spi, key)


def dump_mn_ha(sa: MnHaSecurityAssociation) -> str:
    return (
        f'home_address: "{sa.home_address}"\nhome_agent: "{sa.home_agent}"\n'
        f'spi: "{sa.spi}"\nkey: "{sa.key.hex()}"\n'
    )
