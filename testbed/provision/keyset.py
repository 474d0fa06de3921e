"""The keys of one deployment, made and checked on the controller before anything is pushed.

A ``KeySet`` holds RFC 4449 preconfigured data for each enabled MN-CN pair and an RFC 4285
MN-HA security association for each MN, keyed by the nodes' inventory names. ``check``
applies to the whole set what the agents apply to one node: every Kcn and MN-HA key at
least 20 octets and not low-entropy (R1, R3), nonces of 8 octets, each pair's addresses
those of its nodes, and no key used twice anywhere in the set (R10: every MN-CN pair has its
own Kcn; no MN-HA key equals another or a Kcn). New keys come from the OS CSPRNG (R3).

A key store is a directory on the controller (0700) holding the set as the agents' own
file format, one 0600 file per key, so that a user can bring their own keys and a second
push installs the same ones::

    <store>/<mn>/mn-ha.yaml          the MN's MN-HA key (RFC 4285 file)
    <store>/<mn>/cn-<cn>.yaml        preconfigured data of the pair (mn, cn) (RFC 4449 file)

Every refusal is one ``ConfigError`` line naming the file or pair and the reason, never a
secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from testbed.errors import ConfigError
from testbed.mip6 import keys as pre
from testbed.mip6.mnha import (
    MnHaSecurityAssociation,
    dump_mn_ha,
    generate_mn_ha,
    parse_mn_ha,
)
from testbed.storage.keyfiles import load_mn_ha, load_preconfigured
from testbed.storage.secretfiles import write_secret_text

Pair = tuple[str, str]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_node_name(name: str, what: str = "node") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{what} name {name!r} must be 1-63 letters, digits, '.', '_' or '-' "
                          "(it names files on the controller and the nodes)")
    return name


@dataclass(frozen=True)
class Peers:
    """Who needs keys (no secrets): each MN's home address and home agent, each CN's address,
    the enabled pairs."""

    mobiles: dict[str, tuple[str, str]]  # mn -> (home address, home agent address)
    correspondents: dict[str, str]  # cn -> address
    pairs: tuple[Pair, ...] = ()

    def __post_init__(self) -> None:
        for name in (*self.mobiles, *self.correspondents):
            check_node_name(name)
        for mn, cn in self.pairs:
            if mn not in self.mobiles:
                raise ConfigError(f"pair {mn}:{cn}: {mn!r} is not a mobile node (MNs: {', '.join(self.mobiles) or 'none'})")
            if cn not in self.correspondents:
                raise ConfigError(f"pair {mn}:{cn}: {cn!r} is not a correspondent node "
                                  f"(CNs: {', '.join(self.correspondents) or 'none'})")
        if len(set(self.pairs)) != len(self.pairs):
            raise ConfigError("a pair is enabled twice")


@dataclass
class KeySet:
    preconfigured: dict[Pair, pre.PreconfiguredData] = field(default_factory=dict, repr=False)
    mn_ha: dict[str, MnHaSecurityAssociation] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"KeySet(pairs={sorted(self.preconfigured)}, mobiles={sorted(self.mn_ha)})"

    def key_ids(self) -> dict[str, str]:
        """A fingerprint per key (safe to show and log)."""
        return {f"{mn}:{cn}": d.key_id for (mn, cn), d in sorted(self.preconfigured.items())}

    def check(self, peers: Peers) -> None:
        """ConfigError (one line) unless the set fits ``peers`` and passes R1, R3 and R10."""
        for mn, (home, agent) in peers.mobiles.items():
            sa = self.mn_ha.get(mn)
            if sa is None:
                raise ConfigError(f"no MN-HA key for mobile node {mn}")
            _recheck_mn_ha(sa)
            if sa.home_address != ipaddress.IPv6Address(home) or sa.home_agent != ipaddress.IPv6Address(agent):
                raise ConfigError(f"{sa.source}: MN-HA key is for home address {sa.home_address} and home agent "
                                  f"{sa.home_agent}, but {mn} has {home} and {agent}")
        for pair in peers.pairs:
            data = self.preconfigured.get(pair)
            if data is None:
                raise ConfigError(f"no preconfigured data for pair {pair[0]}:{pair[1]}")
            _recheck_preconfigured(data)
            home, cn = peers.mobiles[pair[0]][0], peers.correspondents[pair[1]]
            if data.home_address != ipaddress.IPv6Address(home) or data.correspondent != ipaddress.IPv6Address(cn):
                raise ConfigError(f"{data.source}: preconfigured data is for home address {data.home_address} and "
                                  f"correspondent {data.correspondent}, but the pair {pair[0]}:{pair[1]} is "
                                  f"{home} and {cn}")
        extra = sorted(set(self.preconfigured) - set(peers.pairs))
        if extra:
            raise ConfigError(f"preconfigured data for pair {extra[0][0]}:{extra[0][1]}, which is not enabled")
        pre.check_distinct_pairs(self.preconfigured.values())
        check_distinct_secrets(self.preconfigured.values(), self.mn_ha.values())


def _recheck_preconfigured(data: pre.PreconfiguredData) -> None:
    """Every check of the agents' loader (R1, R3, nonce lengths) on data held in memory."""
    pre.parse_preconfigured(pre.dump(data), data.source)


def _recheck_mn_ha(sa: MnHaSecurityAssociation) -> None:
    parse_mn_ha(dump_mn_ha(sa), sa.source)


def check_distinct_secrets(preconfigured: Iterable[pre.PreconfiguredData],
                           mn_ha: Iterable[MnHaSecurityAssociation]) -> None:
    """R10 over everything: no Kcn or MN-HA key appears twice, in any role."""
    seen: dict[bytes, str] = {}
    items = [(d.kcn, f"{d.source} (Kcn, key {d.key_id})") for d in preconfigured]
    items += [(s.key, f"{s.source} (MN-HA key)") for s in mn_ha]
    for secret, where in items:
        if secret in seen:
            raise ConfigError(f"{where} and {seen[secret]} hold the same key; R10 needs a different key "
                              "for every pair and every MN-HA association")
        seen[secret] = where


def generate_keyset(peers: Peers, *, keep: KeySet | None = None) -> KeySet:
    """Fresh keys from the CSPRNG for everything ``peers`` needs that ``keep`` does not have."""
    keep = keep or KeySet()
    out = KeySet(dict(keep.preconfigured), dict(keep.mn_ha))
    for mn, (home, agent) in peers.mobiles.items():
        if mn not in out.mn_ha:
            out.mn_ha[mn] = dataclasses.replace(generate_mn_ha(home, agent), source=f"<generated MN-HA key of {mn}>")
    for mn, cn in peers.pairs:
        if (mn, cn) not in out.preconfigured:
            data = pre.generate(peers.mobiles[mn][0], peers.correspondents[cn])
            out.preconfigured[(mn, cn)] = dataclasses.replace(data, source=f"<generated data of {mn}:{cn}>")
    return out


def rekeyed(keyset: KeySet, peers: Peers, pairs: Iterable[Pair]) -> KeySet:
    """A copy of ``keyset`` with new Kcn and nonces for ``pairs`` (R8, R13), checked."""
    pairs = list(pairs)
    if not pairs:
        raise ConfigError("rekey: name at least one pair (MN:CN)")
    for pair in pairs:
        if pair not in peers.pairs:
            raise ConfigError(f"rekey: pair {pair[0]}:{pair[1]} is not enabled")
    keep = KeySet({p: d for p, d in keyset.preconfigured.items() if p not in pairs}, dict(keyset.mn_ha))
    out = generate_keyset(peers, keep=keep)
    out.check(peers)
    return out


# ---------------------------------------------------------------- the key store


def store_paths(store: Path, peers: Peers) -> tuple[dict[str, Path], dict[Pair, Path]]:
    return ({mn: store / mn / "mn-ha.yaml" for mn in peers.mobiles},
            {(mn, cn): store / mn / f"cn-{cn}.yaml" for mn, cn in peers.pairs})


def check_store_dir(store: Path) -> None:
    """ConfigError unless ``store`` is a directory only its owner can enter (or does not exist)."""
    try:
        st = store.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"key store {store}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"key store {store}: not a directory")
    if st.st_mode & 0o077:
        raise ConfigError(f"key store {store}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others in; "
                          "it must be 0700 (chmod 700)")


def load_store(store: Path, peers: Peers, *, generate_missing: bool) -> tuple[KeySet, list[Path]]:
    """The key set in ``store`` for ``peers`` (each file checked as the agents check it), with
    keys made for what is missing when ``generate_missing`` (else ConfigError naming the file).
    Returns the set (checked as a whole) and the files still to be written (``save_new``)."""
    check_store_dir(store)
    mn_ha_paths, pair_paths = store_paths(store, peers)
    found = KeySet()
    missing: list[Path] = []
    for mn, path in mn_ha_paths.items():
        if path.exists() or path.is_symlink():
            found.mn_ha[mn] = load_mn_ha(path)
        elif generate_missing:
            missing.append(path)
        else:
            raise ConfigError(f"{path}: missing (the MN-HA key of {mn}); push with --generate to make it")
    for pair, path in pair_paths.items():
        if path.exists() or path.is_symlink():
            found.preconfigured[pair] = load_preconfigured(path)
        elif generate_missing:
            missing.append(path)
        else:
            raise ConfigError(f"{path}: missing (preconfigured data of {pair[0]}:{pair[1]}); "
                              "push with --generate to make it")
    keyset = generate_keyset(peers, keep=found) if missing else found
    for mn, path in mn_ha_paths.items():
        if path in missing:
            keyset.mn_ha[mn] = dataclasses.replace(keyset.mn_ha[mn], source=str(path))
    for pair, path in pair_paths.items():
        if path in missing:
            keyset.preconfigured[pair] = dataclasses.replace(keyset.preconfigured[pair], source=str(path))
    keyset.check(peers)
    return keyset, missing


def save_store(store: Path, keyset: KeySet, peers: Peers, only: Iterable[Path] | None = None,
               replace: bool = False) -> None:
    """Write the files of ``keyset`` into ``store`` (0600 files, 0700 directories): the paths in
    ``only`` (default all), refusing to overwrite unless ``replace`` (a rekey: the new file is
    written beside the old and renamed over it, so a crash leaves one or the other whole)."""
    mn_ha_paths, pair_paths = store_paths(store, peers)
    texts = {path: dump_mn_ha(keyset.mn_ha[mn]) for mn, path in mn_ha_paths.items()}
    texts.update({path: pre.dump(keyset.preconfigured[pair]) for pair, path in pair_paths.items()})
    wanted = list(texts) if only is None else list(only)
    for path in wanted:
        for directory in (store, path.parent):
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                pass
            check_store_dir(directory)
        if replace and path.exists():
            tmp = path.with_name(f".{path.name}.new")
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            write_secret_text(tmp, texts[path])
            os.replace(tmp, path)
        else:
            write_secret_text(path, texts[path])
