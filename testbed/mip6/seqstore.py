"""Durable store of sequence numbers and the R13 advance counters (R4, R13; the MN's restart safety).

R4: a CN keeps the most recent accepted Sequence Number of each precomputed peer in stable
storage, durable before the BA leaves and surviving a restart. The MN likewise persists what
it sent, so a restart never replays a number. Both keep, per key, the total advance of the
sequence number since the key was installed (R13, ``testbed.mip6.seqno``).

The engines talk to a ``SequenceStore``: ``get(key)`` and ``put(key, record)``, where
``put`` returns only once the record is on disk, and raises ``SequenceStoreError`` when it
cannot be made durable (the engines then acknowledge nothing). Keys are strings the engine
builds, e.g. ``"cn/<home address>/<key_id>"``; they never contain secrets (a key holding a
long hex run, which could be a Kcn, is refused).

``FileSequenceStore`` (the agents' store: one pwrite and one fdatasync per put) keeps a
small file per key with two checksummed slots; a key's file appears under its name only
once it is completely written (temporary file, fsync, rename), so a creation cut by a full
disk or a crash leaves nothing that could lock the key out. ``SqliteSequenceStore`` uses
SQLite with ``synchronous=FULL``: each ``put`` is one autocommit transaction, fsynced before
it returns, so a record survives ``kill -9`` of the process and power loss of the machine.
``MemorySequenceStore`` is for tests and in-process runs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sqlite3
import struct
import zlib
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from testbed.errors import TestbedError
from testbed.mip6.seqno import SEQ_MAX

MAX_KEY_LENGTH = 256
_SECRET_LIKE = re.compile(r"[0-9a-fA-F]{40,}")
SCHEMA_VERSION = 2  # 2: the counter column is "advance" (R13); version 1 called it "uses"


class SequenceStoreError(TestbedError):
    """The store cannot be opened, read or written; one line naming the file."""


@dataclass(frozen=True, slots=True)
class SeqRecord:
    """``last``: the last sequence number sent (MN) or accepted (CN), 0..65535.
    ``advance``: the total advance of the sequence number under this key so far (R13), >= 0."""

    last: int
    advance: int

    def __post_init__(self) -> None:
        if not isinstance(self.last, int) or isinstance(self.last, bool) or not 0 <= self.last <= SEQ_MAX:
            raise ValueError(f"SeqRecord.last must be an integer 0..{SEQ_MAX}, not {self.last!r}")
        if not isinstance(self.advance, int) or isinstance(self.advance, bool) or self.advance < 0:
            raise ValueError(f"SeqRecord.advance must be a non-negative integer, not {self.advance!r}")


@runtime_checkable
class SequenceStore(Protocol):
    """What the engines need: a record per key, durable once ``put`` returns."""

    def get(self, key: str) -> SeqRecord | None: ...

    def put(self, key: str, record: SeqRecord) -> None: ...


def check_key(key: str) -> str:
    """``key`` if it is an acceptable store key, else ValueError (empty, too long, secret-like)."""
    if not isinstance(key, str) or not key:
        raise ValueError("a sequence store key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"a sequence store key must be at most {MAX_KEY_LENGTH} characters")
    if _SECRET_LIKE.search(key):
        raise ValueError("a sequence store key must not contain key material (a run of 40+ hex digits)")
    return key


def _check_record(record: SeqRecord) -> SeqRecord:
    if not isinstance(record, SeqRecord):
        raise TypeError(f"expected a SeqRecord, not {type(record).__name__}")
    return record


class MemorySequenceStore:
    """A dict behind the ``SequenceStore`` interface (not durable: tests and in-process runs)."""

    def __init__(self) -> None:
        self._records: dict[str, SeqRecord] = {}

    def get(self, key: str) -> SeqRecord | None:
        return self._records.get(check_key(key))

    def put(self, key: str, record: SeqRecord) -> None:
        self._records[check_key(key)] = _check_record(record)

    def items(self) -> dict[str, SeqRecord]:
        """A copy of every record, by key."""
        return dict(self._records)

    def close(self) -> None:
        """Nothing to release (same interface as the SQLite store)."""

    def __enter__(self) -> MemorySequenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteSequenceStore:
    """Records in an SQLite file (created 0600), each ``put`` fsynced before it returns.

    ``journal_mode`` "wal" (default: one fsync per put) or "delete" (rollback journal); both
    are durable with ``synchronous=FULL``. Several processes may open one file, but a key
    should have one writer (the engine that owns it).
    """

    def __init__(self, path: str | os.PathLike, *, journal_mode: Literal["wal", "delete"] = "wal") -> None:
        self.path = os.fspath(path)
        if journal_mode not in ("wal", "delete"):
            raise ValueError(f"journal_mode must be 'wal' or 'delete', not {journal_mode!r}")
        self._create_file()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from None
        try:
            self._setup(journal_mode)
        except sqlite3.Error as exc:
            self._db.close()
            raise self._error("not a usable sequence store", exc) from None
        except SequenceStoreError:
            self._db.close()
            raise

    def _error(self, what: str, exc: BaseException) -> SequenceStoreError:
        return SequenceStoreError(f"{self.path}: {what}: {' '.join(str(exc).split())}")

    def _create_file(self) -> None:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise SequenceStoreError(f"{self.path}: cannot create: {exc.strerror or exc}") from None
        os.close(fd)
        try:  # make the new directory entry durable too
            dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def _setup(self, journal_mode: str) -> None:
        db = self._db
        got = db.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0]
        if str(got).lower() != journal_mode:
            raise SequenceStoreError(f"{self.path}: SQLite refused journal_mode={journal_mode} (got {got})")
        db.execute("PRAGMA synchronous=FULL")
        if db.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise SequenceStoreError(f"{self.path}: SQLite refused synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise SequenceStoreError(f"{self.path}: sequence store schema {version}, expected {SCHEMA_VERSION}")
        db.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:  # the counter was called "uses"; what it held never exceeds the advance
                db.execute("ALTER TABLE seq RENAME COLUMN uses TO advance")
            db.execute(
                "CREATE TABLE IF NOT EXISTS seq ("
                " key TEXT PRIMARY KEY,"
                " last INTEGER NOT NULL CHECK (last BETWEEN 0 AND 65535),"
                " advance INTEGER NOT NULL CHECK (advance >= 0)"
                ") WITHOUT ROWID"
            )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.journal_mode = journal_mode

    def get(self, key: str) -> SeqRecord | None:
        check_key(key)
        try:
            row = self._db.execute("SELECT last, advance FROM seq WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return None if row is None else SeqRecord(row[0], row[1])

    def put(self, key: str, record: SeqRecord) -> None:
        """Store ``record`` under ``key``; it is on disk (fsynced) when this returns."""
        check_key(key)
        _check_record(record)
        try:
            self._db.execute(
                "INSERT INTO seq (key, last, advance) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last = excluded.last, advance = excluded.advance",
                (key, record.last, record.advance),
            )
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def items(self) -> dict[str, SeqRecord]:
        """Every record, by key (diagnostics)."""
        try:
            rows = self._db.execute("SELECT key, last, advance FROM seq ORDER BY key").fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return {k: SeqRecord(last, advance) for k, last, advance in rows}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteSequenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSequenceStore:
    """One small file per key under ``directory``: each ``put`` is one ``pwrite`` of a
    checksummed 32-octet record and one ``fdatasync`` (about 0.1 ms here, against about
    0.4 ms for an SQLite commit): the store on the agents' per-BU path.

    Layout: a 264-octet header (magic, the key, so the file names its owner) and two record
    slots written alternately, each with a generation number and a CRC-32. A write torn by a
    crash spoils at most the slot being written; ``get`` takes the valid slot with the higher
    generation, i.e. the last record whose ``put`` returned (or the one being written, if it
    reached the disk whole).

    A key's first ``put`` writes the whole file (header and its first record) under a
    temporary name, fsyncs it and renames it into place: a creation cut short (disk full, a
    kill, power loss) leaves at most a temporary file, which is never read and is removed
    when the store is opened again. A record that was never completely written was never
    acknowledged, so nothing is lost by that. A file shorter than a complete one (left by an
    older version of this store that created files in place) is such a torn creation too
    and is removed the same way. Files and the directory are 0600/0700.
    """

    _MAGIC = b"MIP6SEQ1"
    _HEADER = 8 + 256
    _SLOT = struct.Struct("!QHQI")  # generation, last, advance, CRC-32 of the first 18 octets
    _SLOT_SIZE = 32
    _FILE_SIZE = _HEADER + 2 * _SLOT_SIZE
    _SUFFIX = ".seq"
    _TEMP_SUFFIX = ".seq-new"

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = os.fspath(directory)
        # Why the store can only be read (its file system is read-only), or None. Read-only, the
        # records there still guard against replays; every put fails (nothing is acknowledged
        # that is not durable), and the agent serves what needs no write.
        self.read_only: str | None = None
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            if exc.errno != errno.EROFS or not os.path.isdir(self.path):
                raise SequenceStoreError(f"{self.path}: cannot create the store: {exc.strerror or exc}") from None
            self.read_only = f"{self.path}: {exc.strerror or exc}"
        self._files: dict[str, tuple[int, int]] = {}  # key -> (fd, generation)
        if self.read_only is None:
            self._remove_torn_creations()

    def _file(self, key: str) -> str:
        return os.path.join(self.path, hashlib.sha256(key.encode()).hexdigest()[:32] + self._SUFFIX)

    def _remove_torn_creations(self) -> None:
        """Temporary files of creations that never completed (never acknowledged records)."""
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise SequenceStoreError(f"{self.path}: cannot list the store: {exc.strerror or exc}") from None
        for name in names:
            if name.endswith(self._TEMP_SUFFIX):
                try:
                    os.unlink(os.path.join(self.path, name))
                except OSError:
                    pass

    def _open(self, key: str) -> tuple[int, int] | None:
        """The open file of ``key`` and its newest generation, or None if it has none yet."""
        entry = self._files.get(key)
        if entry is not None:
            return entry
        path = self._file(key)
        try:
            fd = os.open(path, (os.O_RDONLY if self.read_only else os.O_RDWR) | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SequenceStoreError(f"{path}: cannot open: {exc.strerror or exc}") from None
        try:
            size = os.fstat(fd).st_size
            header = os.pread(fd, self._HEADER, 0)
        except OSError as exc:
            os.close(fd)
            raise SequenceStoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if size < self._FILE_SIZE and (header[:8] == self._MAGIC[: len(header[:8])] or not header.strip(b"\0")):
            # A creation that never completed (an older store created files in place): its
            # record never reached the disk whole, so it was never acknowledged.
            os.close(fd)
            try:
                os.unlink(path)
            except OSError as exc:
                raise SequenceStoreError(f"{path}: cannot remove a torn record file: {exc.strerror or exc}") from None
            return None
        if header[:8] != self._MAGIC or header[8:].rstrip(b"\0").decode(errors="replace") != key:
            os.close(fd)
            raise SequenceStoreError(f"{path}: not the sequence file of key {key!r}")
        best = self._read_slots(fd)
        entry = (fd, best[0] if best else 0)
        self._files[key] = entry
        return entry

    def _slot(self, gen: int, record: SeqRecord) -> bytes:
        head = struct.pack("!QHQ", gen, record.last, record.advance)
        return head + struct.pack("!I", zlib.crc32(head))

    def _create(self, key: str, record: SeqRecord) -> tuple[int, int]:
        """Write the file of ``key`` with ``record`` in slot 1 under a temporary name, make it
        durable, then rename it into place; (fd, generation 1)."""
        path = self._file(key)
        temp = path[: -len(self._SUFFIX)] + self._TEMP_SUFFIX
        first = self._slot(1, record)
        content = (self._MAGIC + key.encode().ljust(256, b"\0") + bytes(self._SLOT_SIZE)
                   + first + bytes(self._SLOT_SIZE - len(first)))
        fd = -1
        try:
            try:
                os.unlink(temp)  # left by a creation of this key that was cut short
            except FileNotFoundError:
                pass
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            view = memoryview(content)
            offset = 0
            while offset < len(content):
                offset += os.pwrite(fd, view[offset:], offset)
            os.fsync(fd)
            os.rename(temp, path)
            dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise SequenceStoreError(f"{path}: cannot create: {exc.strerror or exc}") from None
        return fd, 1

    def _read_slots(self, fd: int) -> tuple[int, int, int] | None:
        best = None
        data = os.pread(fd, 2 * self._SLOT_SIZE, self._HEADER)
        for i in range(2):
            raw = data[i * self._SLOT_SIZE : i * self._SLOT_SIZE + self._SLOT.size]
            if len(raw) < self._SLOT.size:
                continue
            gen, last, advance, crc = self._SLOT.unpack(raw)
            if gen and crc == zlib.crc32(raw[:18]) and (best is None or gen > best[0]):
                best = (gen, last, advance)
        return best

    def get(self, key: str) -> SeqRecord | None:
        entry = self._open(check_key(key))
        if entry is None:
            return None
        try:
            best = self._read_slots(entry[0])
        except OSError as exc:
            raise SequenceStoreError(f"{self._file(key)}: cannot read: {exc.strerror or exc}") from None
        return None if best is None else SeqRecord(best[1], best[2])

    def put(self, key: str, record: SeqRecord) -> None:
        """Store ``record`` under ``key``; it is on disk when this returns (SequenceStoreError if not)."""
        record = _check_record(record)
        if self.read_only is not None:
            raise SequenceStoreError(f"{self._file(check_key(key))}: cannot write: read-only file system")
        entry = self._open(check_key(key))
        if entry is None:
            self._files[key] = self._create(key, record)
            return
        fd, gen = entry
        gen += 1
        try:
            os.pwrite(fd, self._slot(gen, record), self._HEADER + (gen % 2) * self._SLOT_SIZE)
            os.fdatasync(fd)
        except OSError as exc:
            raise SequenceStoreError(f"{self._file(key)}: cannot write: {exc.strerror or exc}") from None
        self._files[key] = (fd, gen)

    def close(self) -> None:
        for fd, _ in self._files.values():
            os.close(fd)
        self._files.clear()

    def __enter__(self) -> FileSequenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
