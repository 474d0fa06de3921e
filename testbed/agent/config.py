"""Agent configuration: one YAML file per agent (not secret; the key files it names are).

    role: mn | cn | ha
    node: mn                          # name in events (default: the role)
    interfaces: [mn-eth0]             # where packets are read (default: every interface); an MN
                                      # lists its NIC, or one NIC per access network (docs/multihost.md)
    state_dir: /var/lib/mip6/mn       # durable sequence numbers
    event_log: /var/log/mip6/mn.jsonl
    control_socket: /run/mip6/mn.sock
    probe_port: 7777
    persistence: strict               # or {reserve: 64}; how sequence numbers reach the disk
    keep_warm_ms: 0                   # rehearse the per-BU code when idle this long (0: off)
    test_weaken: []                   # TEST ONLY, see testbed/mip6/weakening.py: refused unless
                                      # MIP6_TESTBED_ALLOW_WEAKENING=1 is in the environment

    # mn
    home_address: 2001:db8:1::100
    home_agent: 2001:db8:1::1
    home_prefix: 2001:db8:1::/64
    correspondents: [2001:db8:3::1]
    preconfigured: [/etc/mip6/cn.yaml]   # RFC 4449 data, one file per peer that uses it
    mn_ha_keys: [/etc/mip6/mnha.yaml]    # exactly one for an MN
    home_token_reuse: true               # false: no home keygen token is reused at a move (measurements)
    # cn
    address: 2001:db8:3::1
    preconfigured: [...]                 # one file per MN
    preconfigured_dir: /etc/mip6/peers   # and/or: every *.yaml / *.yml file in this directory
    precomputed_max_lifetime: 65535      # binding lifetime policy for precomputed peers (units of 4 s)
    # ha
    address: 2001:db8:1::1
    home_prefix: 2001:db8:1::/64
    mn_ha_keys: [...]                    # one file per MN

``preconfigured_dir`` (MN and CN) names a directory whose ``*.yaml`` and ``*.yml`` files
(not hidden ones, not subdirectories) are preconfigured data too, read in name order after
the files of ``preconfigured``; the directory is listed again on SIGHUP, so a peer is added
by dropping its file there and reloading. It is what a correspondent with thousands of
mobile nodes wants instead of a list of thousands of paths.

``persistence`` (every role) says how the node's sequence numbers reach ``state_dir`` (R4;
docs/protocol.md, "Persistence of sequence numbers"):

- ``strict`` (the default): each number is durable (one fdatasync) before the BA or BU that
  carries it leaves. A restart costs nothing; every accepted BU pays the write, about 0.1 ms
  on a local SSD and far more on a slow disk or a busy machine.
- ``{reserve: N}`` (N from 1 to 4096): log-ahead, as PostgreSQL's sequences. The record holds
  a high-water mark N numbers ahead, and is written again only when a number passes it: one
  write per N BUs. After a crash (or any restart) a CN or HA refuses everything up to the
  mark with BA 135 carrying it, and the MN resynchronises: one extra round trip. An MN goes
  on after its own mark. No number is ever accepted or sent twice. Each restart costs up to
  N numbers of sequence space, counted against a precomputed key's R13 limit of 2^15 (a
  restart every day with N = 64 spends 64 of the 32,768 a day).

``keep_warm_ms`` (every role; 0, the default, is off; else 0.5 to 1000): when no input came
for that many milliseconds the agent rehearses its per-BU code on throwaway engines
(testbed/agent/rehearsal.py), so that a BU after a pause finds it warm. On these VMs code
that sat idle 10 ms or more runs 5-8 times slower on its first pass, and a handover's BU
always comes after a pause. The price: a rehearsal's CPU (about 0.1 ms) every
``keep_warm_ms`` while idle, and a BU that arrives during one waits for its end; figures in
docs/agent-latency.md. Nothing of a rehearsal leaves the process or touches a file.

Errors are ConfigError, one line ``<file>: <problem>``. The file is read only if it is a
regular file of at most MAX_CONFIG_BYTES of UTF-8 text; anything else is refused at once.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed.errors import ConfigError
from testbed.mip6.persistence import MAX_RESERVE, STRICT, Persistence
from testbed.storage.secretfiles import read_text_file

ROLES = ("mn", "cn", "ha")
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # room for a list of tens of thousands of key paths
COMMON = ("role", "node", "interfaces", "state_dir", "event_log", "control_socket", "probe_port", "test_weaken", "persistence",
          "keep_warm_ms")
PER_ROLE = {
    "mn": ("home_address", "home_agent", "home_prefix", "correspondents", "preconfigured", "preconfigured_dir",
           "mn_ha_keys", "home_token_reuse"),
    "cn": ("address", "preconfigured", "preconfigured_dir", "precomputed_max_lifetime"),
    "ha": ("address", "home_prefix", "mn_ha_keys"),
}
KEY_FILE_SUFFIXES = (".yaml", ".yml")
MIN_KEEP_WARM_MS = 0.5  # shorter: the rehearsals would compete with the BUs they prepare for
MAX_KEEP_WARM_MS = 1000.0  # longer: the code has gone cold long before
REQUIRED = {
    "mn": ("home_address", "home_agent", "home_prefix", "mn_ha_keys"),
    "cn": ("address",),
    "ha": ("address", "home_prefix", "mn_ha_keys"),
}


@dataclass(frozen=True)
class AgentConfig:
    source: str
    role: str
    node: str
    state_dir: Path
    event_log: Path
    control_socket: Path
    interfaces: tuple[str, ...] = ()
    probe_port: int = 7777
    address: ipaddress.IPv6Address | None = None
    home_address: ipaddress.IPv6Address | None = None
    home_agent: ipaddress.IPv6Address | None = None
    home_prefix: ipaddress.IPv6Network | None = None
    correspondents: tuple[ipaddress.IPv6Address, ...] = ()
    preconfigured: tuple[Path, ...] = ()
    mn_ha_keys: tuple[Path, ...] = field(default=())
    precomputed_max_lifetime: int = 0xFFFF
    preconfigured_dir: Path | None = None
    test_weaken: frozenset[str] = frozenset()  # test-only: defences turned off (testbed/mip6/weakening.py)
    home_token_reuse: bool = True
    persistence: Persistence = STRICT
    keep_warm_ms: float = 0.0  # 0: off; else rehearse the per-BU code after this much idleness

    def preconfigured_paths(self) -> list[Path]:
        """The files of ``preconfigured``, then the key files in ``preconfigured_dir`` (listed now)."""
        paths = list(self.preconfigured)
        if self.preconfigured_dir is not None:
            directory = self.preconfigured_dir
            try:
                names = sorted(e.name for e in os.scandir(directory)
                               if not e.name.startswith(".") and e.name.endswith(KEY_FILE_SUFFIXES)
                               and not e.is_dir())
            except OSError as exc:
                raise _fail(self.source, f"preconfigured_dir: cannot list {directory}: {exc.strerror or exc}") from None
            paths += [directory / name for name in names]
        return paths


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _fail(source: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {problem}")


def _address(source: str, key: str, value) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(str(value))
    except ValueError:
        raise _fail(source, f"{key}: {value!r} is not an IPv6 address") from None


def _list(source: str, key: str, value) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list):
        raise _fail(source, f"{key}: expected a list")
    return value


def _path(source: str, key: str, value, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(source, f"{key}: expected a path")
    p = Path(value)
    return p if p.is_absolute() else base / p


def _weakenings(source: str, role: str, value) -> frozenset[str]:
    """``test_weaken`` (test-only): refused unless MIP6_TESTBED_ALLOW_WEAKENING=1 is set."""
    from testbed.mip6.weakening import ENV, check_names

    if os.environ.get(ENV) != "1":
        raise _fail(source, f"test_weaken turns defences off and is for tests only; it is refused unless {ENV}=1 "
                            "is set in the environment")
    return check_names(role, _list(source, "test_weaken", value), source)


def parse_persistence(source: str, value) -> Persistence:
    """``strict``, or a mapping ``{reserve: N}``; ConfigError naming ``source`` otherwise."""
    if value == "strict":
        return STRICT
    if isinstance(value, dict) and list(value) == ["reserve"]:
        reserve = value["reserve"]
        if type(reserve) is int and 1 <= reserve <= MAX_RESERVE:
            return Persistence(reserve)
        raise _fail(source, f"persistence: reserve {reserve!r} is not a whole number in 1..{MAX_RESERVE}")
    raise _fail(source, f"persistence: {value!r} is neither 'strict' nor a mapping {{reserve: N}}")


def parse_keep_warm(source: str, value) -> float:
    """``keep_warm_ms``: 0 (off) or MIN_KEEP_WARM_MS..MAX_KEEP_WARM_MS; ConfigError otherwise."""
    if type(value) in (int, float) and (value == 0 or MIN_KEEP_WARM_MS <= value <= MAX_KEEP_WARM_MS):
        return float(value)
    raise _fail(source, f"keep_warm_ms: {value!r} is neither 0 (off) nor a number of milliseconds in "
                        f"{MIN_KEEP_WARM_MS:g}..{MAX_KEEP_WARM_MS:g}")


def load_agent_config(path: str | os.PathLike) -> AgentConfig:
    source = os.fspath(path)
    text = read_text_file(source, "an agent configuration", MAX_CONFIG_BYTES)
    try:  # libyaml when PyYAML has it: a list of 10,000 key paths parses in 0.1 s, not 1 s
        doc = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    except RecursionError:
        raise _fail(source, "not a usable configuration: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _fail(source, "expected a YAML mapping")
    return parse_agent_config(doc, source)


def parse_agent_config(doc: dict, source: str) -> AgentConfig:
    role = doc.get("role")
    if role not in ROLES:
        raise _fail(source, f"role: {role!r} is not one of {', '.join(ROLES)}")
    allowed = COMMON + PER_ROLE[role]
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r} for role {role}; allowed: {', '.join(allowed)}")
    missing = [k for k in ("state_dir", "event_log", "control_socket") + REQUIRED[role] if k not in doc]
    if missing:
        raise _fail(source, f"missing key {missing[0]!r}")
    base = Path(source).resolve().parent
    kw: dict = {}
    for key in ("address", "home_address", "home_agent"):
        if key in doc:
            kw[key] = _address(source, key, doc[key])
    if "home_prefix" in doc:
        try:
            kw["home_prefix"] = ipaddress.IPv6Network(str(doc["home_prefix"]))
        except ValueError:
            raise _fail(source, f"home_prefix: {doc['home_prefix']!r} is not an IPv6 prefix") from None
    if "correspondents" in doc:
        kw["correspondents"] = tuple(_address(source, "correspondents", v) for v in _list(source, "correspondents", doc["correspondents"]))
    for key in ("preconfigured", "mn_ha_keys"):
        if key in doc:
            kw[key] = tuple(_path(source, key, v, base) for v in _list(source, key, doc[key] or []))
    if "preconfigured_dir" in doc:
        kw["preconfigured_dir"] = _path(source, "preconfigured_dir", doc["preconfigured_dir"], base)
    if "interfaces" in doc:
        names = _list(source, "interfaces", doc["interfaces"])
        if not all(isinstance(n, str) and 0 < len(n) < 16 for n in names):
            raise _fail(source, "interfaces: expected interface names (1-15 characters)")
        kw["interfaces"] = tuple(names)
    for key, lo, hi in (("probe_port", 1, 65535), ("precomputed_max_lifetime", 1, 0xFFFF)):
        if key in doc:
            value = doc[key]
            if type(value) is not int or not lo <= value <= hi:
                raise _fail(source, f"{key}: {value!r} is not a whole number in {lo}..{hi}")
            kw[key] = value
    if doc.get("test_weaken"):
        kw["test_weaken"] = _weakenings(source, role, doc["test_weaken"])
    if "home_token_reuse" in doc:
        if type(doc["home_token_reuse"]) is not bool:
            raise _fail(source, f"home_token_reuse: {doc['home_token_reuse']!r} is not true or false")
        kw["home_token_reuse"] = doc["home_token_reuse"]
    if "persistence" in doc:
        kw["persistence"] = parse_persistence(source, doc["persistence"])
    if "keep_warm_ms" in doc:
        kw["keep_warm_ms"] = parse_keep_warm(source, doc["keep_warm_ms"])
    node = doc.get("node", role)
    if not isinstance(node, str) or not node or len(node) > 32:
        raise _fail(source, "node: expected a short name")
    if role == "mn":
        interfaces = kw.get("interfaces", ())
        if not interfaces:
            raise _fail(source, "interfaces: a mobile node needs its interface (or one per access network)")
        if len(set(interfaces)) != len(interfaces):
            raise _fail(source, "interfaces: an interface is named twice")
        if len(kw["mn_ha_keys"]) != 1:
            raise _fail(source, "mn_ha_keys: a mobile node has exactly one MN-HA key file")
        if kw["home_address"] not in kw["home_prefix"]:
            raise _fail(source, f"home_address {kw['home_address']} is not in home_prefix {kw['home_prefix']}")
    if role == "ha" and kw["address"] not in kw["home_prefix"]:
        raise _fail(source, f"address {kw['address']} is not in home_prefix {kw['home_prefix']}")
    return AgentConfig(
        source=source,
        role=role,
        node=node,
        state_dir=_path(source, "state_dir", doc["state_dir"], base),
        event_log=_path(source, "event_log", doc["event_log"], base),
        control_socket=_path(source, "control_socket", doc["control_socket"], base),
        **kw,
    )
