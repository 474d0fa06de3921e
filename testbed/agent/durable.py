"""The agent's sequence store, timed: how long each durable write took, for the event log.

A durable write (one pwrite and one fdatasync) sits on the send path: the agent carries out
the engine's ``Persist`` before the packet it guards leaves (R4). ``TimedStore`` notes when
each ``put`` began and ended; the agent logs them as ``durable_write`` events after the
packets have left, so that a handover's time can be split into processing and durable writes
without slowing it down.
"""

from __future__ import annotations

import time

from testbed.mip6.persistence import SeqRecord
from testbed.storage.sequences import FileSequenceStore, StoredRecords


class TimedStore:
    def __init__(self, store: FileSequenceStore) -> None:
        self.store = store
        self._writes: list[tuple[int, int, str]] = []

    @property
    def read_only(self) -> str | None:
        """Why the store could only be opened read-only (every write then fails), or None."""
        return self.store.read_only

    def load(self) -> StoredRecords:
        return self.store.load()

    def get(self, key: str) -> SeqRecord | None:
        return self.store.get(key)

    def put(self, key: str, record: SeqRecord) -> None:
        start = time.monotonic_ns()
        self.store.put(key, record)
        self._writes.append((start, time.monotonic_ns(), key))

    def take(self) -> list[tuple[int, int, str]]:
        """The writes since the last call: (start, end in time.monotonic_ns(), store key)."""
        writes, self._writes = self._writes, []
        return writes

    def close(self) -> None:
        self.store.close()
