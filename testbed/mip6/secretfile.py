"""Reading small secret files (keys) safely, and parsing them as strict YAML.

A secret file must be a regular file with no permission bit for group or others, at most
64 KiB of UTF-8. The YAML is read with every scalar as a string (no number or date
guessing) and a key given twice is an error. Every refusal is a ``ConfigError`` with one
line ``<file>: <reason>`` that never repeats a value that could be key material.
"""

from __future__ import annotations

import os
import re
import stat
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


def read_text_file(path: str | os.PathLike, what: str, max_bytes: int, *, secret: bool = False) -> str:
    """The UTF-8 text of the small file ``path``; ``what`` names its kind in errors.

    Refused at once, each with a ConfigError of one line: a path that cannot be opened, one
    that is not a regular file (a named pipe is never waited on: it is opened non-blocking
    and refused), more than ``max_bytes`` (judged by its size before anything is read), text
    that is not UTF-8, and with ``secret`` any permission bit for group or others."""
    source = os.fspath(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise fail(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fail(source, f"not a regular file, so not {what}")
        if secret and st.st_mode & 0o077:
            raise fail(
                source,
                f"mode {stat.S_IMODE(st.st_mode):04o} lets group or others access the keys; "
                "it must be 0600 or stricter (chmod 600)",
            )
        if st.st_size > max_bytes:
            raise fail(source, f"{st.st_size} bytes, too large for {what} (at most {max_bytes})")
        chunks = []
        total = 0
        while chunk := os.read(fd, max_bytes + 1):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise fail(source, f"too large for {what} (at most {max_bytes} bytes)")
    except OSError as exc:
        raise fail(source, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(source, f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def read_secret_text(path: str | os.PathLike, what: str) -> str:
    """The text of secret file ``path``; ``what`` names its kind in errors ("preconfigured data")."""
    return read_text_file(path, what, MAX_FILE_BYTES, secret=True)


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


def write_secret_text(path: str | os.PathLike, text: str) -> None:
    """Create ``path`` (0600, O_EXCL: never overwrites) holding ``text``; fsync it and its directory.

    ConfigError if the file exists or cannot be created; a file this call created is removed
    again if writing it fails.
    """
    target = os.fspath(path)
    payload = text.encode("utf-8")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise fail(target, "already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise fail(target, f"cannot create: {exc.strerror or exc}") from None
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
        raise fail(target, f"cannot write: {exc.strerror or exc}") from None
    _fsync_dir(os.path.dirname(os.path.abspath(target)))


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
