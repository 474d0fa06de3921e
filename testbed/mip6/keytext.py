"""The text of key files, parsed: strict YAML, hex, and messages that never show a secret.

Pure: the files themselves are read and written by ``testbed.storage.secretfiles``. The YAML
is read with every scalar as a string (no number or date guessing) and a key given twice is
an error. Every refusal is a ``ConfigError`` with one line ``<file>: <reason>`` that never
repeats a value that could be key material.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml

from testbed.errors import ConfigError

MAX_FILE_BYTES = 64 * 1024


# libyaml's parser when PyYAML has it: 15 times faster than the pure-Python one (about 36
# against 560 us a key file), which is most of a correspondent's start-up with 10,000 peers.
_BASE_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


class _StrictLoader(_BASE_LOADER):
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


def fail(source: str, reason: str) -> ConfigError:
    return ConfigError(f"{one_line(source)}: {reason}")


def one_line(text: object) -> str:
    text = str(text)
    return " ".join(text.split()) if any(c in text for c in "\r\n\v\f\x85\u2028\u2029") else text


_HEX_RUN = re.compile(r"[0-9a-fA-F]{16,}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")


def shown(value: object) -> str:
    """``value`` quoted for a message, unless it might be (part of) a secret or is long."""
    text = str(value)
    if len(text) > 45 or _HEX_RUN.search(text):
        return "(value not shown)"
    return repr(one_line(text))


def shown_key(key: object) -> str:
    text = str(key)
    if _NAME.fullmatch(text) and not all(c in "0123456789abcdefABCDEF" for c in text):
        return repr(text)
    return "(a key not shown)"


def load_strict_yaml(text: str, source: str, fields: Sequence[str], *, required: Sequence[str] | None = None) -> dict:
    """Parse ``text`` as a mapping whose keys are among ``fields`` (all required by default)."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    except _DuplicateKey as dup:
        raise fail(source, f"key {shown_key(dup)} appears twice") from None
    except RecursionError:
        raise fail(source, "not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise fail(source, f"not valid YAML{where}: {one_line(problem)}") from None
    if not isinstance(doc, dict):
        raise fail(source, "not a YAML mapping of " + ", ".join(fields))
    unknown = [k for k in doc if k not in fields]
    if unknown:
        listed = ", ".join(shown_key(k) for k in unknown[:3])
        raise fail(source, f"unknown key {listed}; allowed: " + ", ".join(fields))
    missing = [k for k in (fields if required is None else required) if k not in doc]
    if missing:
        raise fail(source, "missing key " + ", ".join(missing))
    return doc


def parse_hex(value: object, name: str) -> bytes:
    """Hex digits to bytes, or ValueError naming ``name`` (the value itself is never shown)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is empty or not a hex string")
    if len(value) % 2:
        raise ValueError(f"{name} has an odd number of hex digits ({len(value)})")
    if any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"{name} is not a hex string (only 0-9 and a-f allowed, no prefix or spaces)")
    return bytes.fromhex(value)
