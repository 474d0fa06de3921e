"""Target files: how to run an implementation under test (IUT) in the conformance lab.

A target file (YAML; the built-in ``ours`` is ``targets/ours.yaml``, docs/conformance.md
explains each key) says which profiles the implementation claims (``rfc4449``: a
correspondent node with RFC 4449 preconfigured data; ``rr``: a correspondent node with
return routability; ``ha``: a home agent with RFC 4285 authentication; ``mn``: a mobile
node), and per role (``cn``, ``ha``, ``mn``) which files to write before it starts, how to
start it, how to tell that it serves, and where its event log is (optional); and how to
write the keys the suite gives it (``keys.preconfigured``, ``keys.mn_ha``).

Every string is a template: ``{name}`` is replaced by the suite's value (``{{`` for a
brace). Key material (``{kcn}``, ``{home_nonce}``, ``{careof_nonce}``, ``{key}``) may only
appear in the key files' ``text``: those are written with mode 0600 into a private
directory, never into an argument, the environment or a log. A target file that breaks a
rule is refused with one line naming the file and the problem.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from testbed.errors import ConfigError
from testbed.storage.secretfiles import read_text_file

PROFILES = ("rfc4449", "rr", "ha", "mn")
ROLE_OF = {"rfc4449": "cn", "rr": "cn", "ha": "ha", "mn": "mn"}
BUILTIN = {"ours": Path(__file__).with_name("targets") / "ours.yaml"}
MAX_TARGET_BYTES = 256 * 1024
SECRETS = frozenset({"kcn", "home_nonce", "careof_nonce", "key"})
COMMON = frozenset({"python", "iface", "work_dir", "state_dir", "socket_dir", "preconfigured_dir", "mn_ha_dir",
                    "node", "test_weaken", "mac"})
ROLE_PLACEHOLDERS = {
    "cn": COMMON | {"address", "prefix_len"},
    "ha": COMMON | {"address", "prefix_len", "home_prefix", "mn_ha_files"},
    "mn": COMMON | {"home_address", "home_agent", "home_prefix", "correspondents", "mn_ha_file"},
}
KEY_PLACEHOLDERS = {
    "preconfigured": COMMON | {"index", "home_address", "correspondent"} | {"kcn", "home_nonce", "careof_nonce"},
    "mn_ha": COMMON | {"index", "home_address", "home_agent", "spi"} | {"key"},
}
TOP = ("name", "description", "profiles", "settings", "roles", "keys")
ROLE_KEYS = ("files", "setup", "start", "ready", "ready_timeout", "stop_signal", "events", "reload")
SETTINGS = ("precomputed_max_lifetime", "restartable")
SIGNALS = ("TERM", "INT", "KILL", "HUP")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RoleSpec:
    files: dict[str, str]
    setup: list[list[str]]
    start: list[str]
    ready: list[str] | None
    ready_timeout: float = 15.0
    stop_signal: str = "TERM"
    events: str | None = None
    reload: list[str] | None = None  # a command that makes it read its key files again


@dataclass(frozen=True)
class KeySpec:
    path: str
    text: str


@dataclass(frozen=True)
class Target:
    name: str
    source: str
    description: str
    profiles: tuple[str, ...]
    roles: dict[str, RoleSpec]
    keys: dict[str, KeySpec] = field(default_factory=dict)
    precomputed_max_lifetime: int | None = None
    restartable: bool = True

    def claims(self, profile: str) -> bool:
        return profile in self.profiles


def resolve(name_or_path: str) -> Path:
    """``ours`` (or another built-in name) or a target file's path."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigError(f"--target {name_or_path}: no such file, and not a built-in target "
                          f"({', '.join(BUILTIN)})")
    return path


def load_target(name_or_path: str) -> Target:
    path = resolve(name_or_path)
    source = os.fspath(path)
    text = read_text_file(source, "a target file", MAX_TARGET_BYTES)
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a YAML mapping")
    return parse_target(doc, source)


def _fail(source: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {problem}")


def _strings(source: str, where: str, value, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value) \
            or (not value and not allow_empty):
        raise _fail(source, f"{where}: expected a list of strings (a command and its arguments)")
    return [str(v) for v in value]


def _placeholders(source: str, where: str, template: str, allowed: frozenset[str]) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise _fail(source, f"{where}: bad template: {exc}") from None
    for name in names:
        if name in SECRETS and name not in allowed:
            raise _fail(source, f"{where}: {{{name}}} is key material; it may only appear in a key file's text")
        if name not in allowed:
            raise _fail(source, f"{where}: unknown placeholder {{{name}}} (known here: {', '.join(sorted(allowed))})")


def parse_target(doc: dict, source: str) -> Target:
    unknown = [k for k in doc if k not in TOP]
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r}; allowed: {', '.join(TOP)}")
    name = doc.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,40}$", name):
        raise _fail(source, "name: expected a short name (letters, digits, '_.-')")
    profiles = doc.get("profiles")
    if not isinstance(profiles, list) or not profiles or not all(p in PROFILES for p in profiles):
        raise _fail(source, f"profiles: expected a list of {', '.join(PROFILES)}")
    settings = doc.get("settings") or {}
    if not isinstance(settings, dict) or any(k not in SETTINGS for k in settings):
        raise _fail(source, f"settings: allowed keys are {', '.join(SETTINGS)}")
    lifetime = settings.get("precomputed_max_lifetime")
    if lifetime is not None and (type(lifetime) is not int or not 1 <= lifetime <= 0xFFFF):
        raise _fail(source, "settings.precomputed_max_lifetime: expected 1..65535 (units of 4 s)")
    restartable = settings.get("restartable", True)
    if type(restartable) is not bool:
        raise _fail(source, "settings.restartable: expected true or false")
    raw_roles = doc.get("roles")
    if not isinstance(raw_roles, dict):
        raise _fail(source, "roles: expected a mapping of cn, ha, mn")
    needed = {ROLE_OF[p] for p in profiles}
    missing = sorted(needed - set(raw_roles))
    if missing:
        raise _fail(source, f"roles: the claimed profiles need role {missing[0]!r}")
    roles = {}
    for role, spec in raw_roles.items():
        if role not in ROLE_PLACEHOLDERS:
            raise _fail(source, f"roles: unknown role {role!r} (cn, ha, mn)")
        roles[role] = _role(source, role, spec)
    keys = {}
    raw_keys = doc.get("keys") or {}
    if not isinstance(raw_keys, dict) or any(k not in KEY_PLACEHOLDERS for k in raw_keys):
        raise _fail(source, "keys: allowed keys are preconfigured, mn_ha")
    for kind, spec in raw_keys.items():
        if not isinstance(spec, dict) or set(spec) != {"path", "text"} or not all(isinstance(v, str) for v in spec.values()):
            raise _fail(source, f"keys.{kind}: expected path and text (strings)")
        _placeholders(source, f"keys.{kind}.path", spec["path"], KEY_PLACEHOLDERS[kind] - SECRETS)
        _placeholders(source, f"keys.{kind}.text", spec["text"], KEY_PLACEHOLDERS[kind])
        keys[kind] = KeySpec(spec["path"], spec["text"])
    if "rfc4449" in profiles or "mn" in profiles:
        if "preconfigured" not in keys:
            raise _fail(source, "keys.preconfigured: the rfc4449 and mn profiles need it")
    if ("ha" in profiles or "mn" in profiles) and "mn_ha" not in keys:
        raise _fail(source, "keys.mn_ha: the ha and mn profiles need it")
    return Target(name, source, str(doc.get("description") or ""), tuple(profiles), roles, keys,
                  lifetime, restartable)


def _role(source: str, role: str, spec) -> RoleSpec:
    where = f"roles.{role}"
    if not isinstance(spec, dict):
        raise _fail(source, f"{where}: expected a mapping")
    unknown = [k for k in spec if k not in ROLE_KEYS]
    if unknown:
        raise _fail(source, f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(ROLE_KEYS)}")
    allowed = ROLE_PLACEHOLDERS[role]
    files = spec.get("files") or {}
    if not isinstance(files, dict):
        raise _fail(source, f"{where}.files: expected a mapping of file name to text")
    for name, text in files.items():
        if not isinstance(name, str) or not _FILE_NAME.match(name) or not isinstance(text, str):
            raise _fail(source, f"{where}.files: {name!r}: expected a plain file name and its text")
        _placeholders(source, f"{where}.files.{name}", text, allowed)
    setup = spec.get("setup") or []
    if not isinstance(setup, list):
        raise _fail(source, f"{where}.setup: expected a list of commands")
    setup = [_strings(source, f"{where}.setup", c) for c in setup]
    if "start" not in spec:
        raise _fail(source, f"{where}: missing key 'start'")
    start = _strings(source, f"{where}.start", spec["start"])
    ready = _strings(source, f"{where}.ready", spec["ready"]) if spec.get("ready") is not None else None
    reload = _strings(source, f"{where}.reload", spec["reload"]) if spec.get("reload") is not None else None
    for i, cmd in enumerate(setup + [start] + ([ready] if ready else []) + ([reload] if reload else [])):
        for arg in cmd:
            _placeholders(source, f"{where} (command {i + 1})", arg, allowed)
    timeout = spec.get("ready_timeout", 15.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        raise _fail(source, f"{where}.ready_timeout: expected seconds, 0 < t <= 120")
    stop = spec.get("stop_signal", "TERM")
    if stop not in SIGNALS:
        raise _fail(source, f"{where}.stop_signal: expected one of {', '.join(SIGNALS)}")
    events = spec.get("events")
    if events is not None:
        if not isinstance(events, str):
            raise _fail(source, f"{where}.events: expected a path")
        _placeholders(source, f"{where}.events", events, allowed)
    return RoleSpec(dict(files), setup, start, ready, float(timeout), stop, events, reload)


def render(template: str, values: dict) -> str:
    return template.format_map(values)

