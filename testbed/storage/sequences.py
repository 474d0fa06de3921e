"""The agents' durable store of sequence records (R4, R13; the MN's and the HA's records).

The engines (``testbed.mip6``) do no I/O: they are built from the records this store read
(``load``), keep their sequence state in memory, and return a ``Persist`` action in front of
each packet that needs a record durable; the agent carries it out with ``put``, which returns
only once the record is on disk and raises ``SequenceStoreError`` when it cannot be made
durable (the engine is then told, and nothing that depends on it is sent). Record keys are
strings the engines build (``testbed.mip6.persistence.check_key``: never key material).

``FileSequenceStore`` keeps a small file per key with two checksummed slots: one pwrite and
one fdatasync per ``put``. It is the only store; an SQLite one (about four times slower per
put) is gone, nothing but a benchmark used it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator, Mapping

from testbed.errors import TestbedError
from testbed.mip6.persistence import RecordUnreadable, SeqRecord, check_key


class SequenceStoreError(TestbedError):
    """The store cannot be opened, read or written; one line naming the file."""


def _check_record(record: SeqRecord) -> SeqRecord:
    if not isinstance(record, SeqRecord):
        raise TypeError(f"expected a SeqRecord, not {type(record).__name__}")
    return record


class StoredRecords(Mapping):
    """What ``FileSequenceStore.load`` read: key -> ``SeqRecord``, or ``RecordUnreadable`` for
    a key whose file is there but could not be read. A read-only snapshot in memory: looking a
    key up does no I/O."""

    def __init__(self, records: dict[str, SeqRecord], unreadable: dict[str, str], file_name) -> None:
        self._records = records
        self._unreadable = unreadable  # file name -> why
        self._file_name = file_name

    def __getitem__(self, key: str) -> SeqRecord | RecordUnreadable:
        record = self._records.get(key)
        if record is not None:
            return record
        reason = self._unreadable.get(self._file_name(key)) if self._unreadable else None
        if reason is not None:
            return RecordUnreadable(reason)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def unreadable(self) -> dict[str, str]:
        """File name -> why, for every file that could not be read."""
        return dict(self._unreadable)


class FileSequenceStore:
    """One small file per key under ``directory``: each ``put`` is one ``pwrite`` of a
    checksummed 32-octet record and one ``fdatasync`` (about 0.1 ms here, against about
    0.4 ms for an SQLite commit): the store on the agents' per-BU path. ``load`` reads every
    record once, when an agent starts.

    Layout: a 264-octet header (magic, the key, so the file names its owner) and two record
    slots written alternately, each with a generation number and a CRC-32. A write torn by a
    crash spoils at most the slot being written; a read takes the valid slot with the higher
    generation, i.e. the last record whose ``put`` returned (or the one being written, if it
    reached the disk whole). A file with no valid slot, or whose header names another key,
    cannot be read: its key is ``RecordUnreadable``, never taken as new.

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
        return os.path.join(self.path, self._name(key))

    @classmethod
    def _name(cls, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:32] + cls._SUFFIX

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
        found = self._read_file(self._name(key), key)
        if found is None:
            return None
        fd, _, best = found
        entry = self._files[key] = (fd, best[0])
        return entry

    def _read_file(self, name: str, key: str | None) -> tuple[int, str, tuple[int, int, int]] | None:
        """Open and read the record file ``name``: (fd, its key, its newest slot), or None when
        there is none (absent, or a creation that never completed, removed now). The file must
        name ``key`` (any key matching its name when None) and hold an intact slot; else
        SequenceStoreError."""
        path = os.path.join(self.path, name)
        try:
            fd = os.open(path, (os.O_RDONLY if self.read_only else os.O_RDWR) | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SequenceStoreError(f"{path}: cannot open: {exc.strerror or exc}") from None
        try:
            size = os.fstat(fd).st_size
            header = os.pread(fd, self._HEADER, 0)
            if size < self._FILE_SIZE and (header[:8] == self._MAGIC[: len(header[:8])] or not header.strip(b"\0")):
                # A creation that never completed (an older store created files in place): its
                # record never reached the disk whole, so it was never acknowledged.
                try:
                    os.unlink(path)
                except OSError as exc:
                    raise SequenceStoreError(f"{path}: cannot remove a torn record file: {exc.strerror or exc}") from None
                os.close(fd)
                return None
            named = header[8:].rstrip(b"\0").decode(errors="replace")
            if header[:8] != self._MAGIC or (named != key if key is not None else self._name(named) != name):
                what = f"key {key!r}" if key is not None else "the key it names"
                raise SequenceStoreError(f"{path}: not the sequence file of {what}")
            best = self._read_slots(fd)
            if best is None:
                raise SequenceStoreError(f"{path}: no intact record in either slot")
        except OSError as exc:
            os.close(fd)
            raise SequenceStoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except SequenceStoreError:
            os.close(fd)
            raise
        return fd, named, best

    def load(self) -> StoredRecords:
        """Every record in the store, read now (an agent's start, before its engine is built):
        key -> ``SeqRecord``; a file that cannot be read is ``RecordUnreadable`` under the key
        whose file it is. The files stay open for the ``put``s that follow."""
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise SequenceStoreError(f"{self.path}: cannot list the store: {exc.strerror or exc}") from None
        records: dict[str, SeqRecord] = {}
        unreadable: dict[str, str] = {}
        for name in names:
            if not name.endswith(self._SUFFIX):
                continue
            try:
                found = self._read_file(name, None)
            except SequenceStoreError as exc:
                unreadable[name] = str(exc)
                continue
            if found is None:
                continue
            fd, key, (gen, last, advance) = found
            old = self._files.get(key)
            if old is not None:
                os.close(old[0])
            self._files[key] = (fd, gen)
            records[key] = SeqRecord(last, advance)
        return StoredRecords(records, unreadable, self._name)

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
        """The record of ``key`` as it is on disk now (diagnostics and tests; the agents ``load``)."""
        entry = self._open(check_key(key))
        if entry is None:
            return None
        try:
            best = self._read_slots(entry[0])
        except OSError as exc:
            raise SequenceStoreError(f"{self._file(key)}: cannot read: {exc.strerror or exc}") from None
        if best is None:
            raise SequenceStoreError(f"{self._file(key)}: no intact record in either slot")
        return SeqRecord(best[1], best[2])

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
