"""Key files on disk: RFC 4449 preconfigured data (``testbed.mip6.keys``) and RFC 4285 MN-HA
keys (``testbed.mip6.mnha``), read, checked and written.

Reading: the file must pass ``testbed.storage.secretfiles`` (a regular file, mode 0600 or
stricter, at most 64 KiB of UTF-8), then everything the parser checks. Writing: created 0600
with O_EXCL, never overwriting, fsynced with its directory. Every refusal is a ConfigError
of one line naming the file and why, never showing a secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable

from testbed.mip6.keys import PreconfiguredData, Role, dump, index_peers, parse_preconfigured
from testbed.mip6.mnha import MnHaSecurityAssociation, dump_mn_ha, parse_mn_ha
from testbed.storage.secretfiles import read_secret_text, write_secret_text


def load_preconfigured(path: str | os.PathLike) -> PreconfiguredData:
    """Read and validate one preconfigured-data file (R1, R3); ConfigError naming the file and why.

    Refused: missing or unreadable, not a regular file, any permission bit for group or
    others, larger than 64 KiB, not UTF-8, and everything ``parse_preconfigured`` refuses.
    """
    source = os.fspath(path)
    return parse_preconfigured(read_secret_text(source, "preconfigured data"), source)


def load_peer_set(
    paths: Iterable[str | os.PathLike], role: Role
) -> dict[ipaddress.IPv6Address, PreconfiguredData]:
    """Load every file (stopping at the first bad one), then ``index_peers`` them for ``role``."""
    return index_peers([load_preconfigured(p) for p in paths], role)


def write_new(path: str | os.PathLike, data: PreconfiguredData) -> PreconfiguredData:
    """Create ``path`` (0600, O_EXCL: never overwrites) holding ``dump(data)``, fsync it and its directory.

    Returns ``data`` with ``source`` set to ``path``. ConfigError if the file exists or cannot
    be created; a file this call created is removed again if writing it fails.
    """
    target = os.fspath(path)
    write_secret_text(target, dump(data))
    return dataclasses.replace(data, source=target)


def load_mn_ha(path: str | os.PathLike) -> MnHaSecurityAssociation:
    """Read and validate one MN-HA key file; ConfigError naming the file and why."""
    source = os.fspath(path)
    return parse_mn_ha(read_secret_text(source, "an MN-HA key"), source)


def write_mn_ha(path: str | os.PathLike, sa: MnHaSecurityAssociation) -> MnHaSecurityAssociation:
    """Create ``path`` (0600, O_EXCL) holding ``dump_mn_ha(sa)``; ``sa`` with ``source`` set."""
    target = os.fspath(path)
    write_secret_text(target, dump_mn_ha(sa))
    return dataclasses.replace(sa, source=target)
