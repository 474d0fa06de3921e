"""The durable sequence store (R4: stable storage of the last accepted number; R13 use counters)."""

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from testbed import errors
from testbed.mip6.seqstore import (
    FileSequenceStore,
    MemorySequenceStore,
    SeqRecord,
    SequenceStore,
    SequenceStoreError,
    SqliteSequenceStore,
    check_key,
)

KEY = "cn/2001:db8:0:1::1234/9fadd76c3b54daf8"


@pytest.fixture(params=["memory", "sqlite-wal", "sqlite-delete"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemorySequenceStore()
    else:
        s = SqliteSequenceStore(tmp_path / "seq.db", journal_mode=request.param.split("-")[1])
    yield s
    s.close()


def test_store_interface_get_put_overwrite(store):
    assert isinstance(store, SequenceStore)
    assert store.get(KEY) is None
    store.put(KEY, SeqRecord(last=10000, advance=1))
    assert store.get(KEY) == SeqRecord(10000, 1)
    store.put(KEY, SeqRecord(last=10001, advance=2))
    store.put("mn/2001:db8:0:3::1/0123456789abcdef", SeqRecord(5, 5))
    assert store.get(KEY) == SeqRecord(10001, 2)
    assert store.items() == {KEY: SeqRecord(10001, 2), "mn/2001:db8:0:3::1/0123456789abcdef": SeqRecord(5, 5)}
    assert store.get("cn/other") is None


@pytest.mark.parametrize(
    "key",
    ["", "x" * 257, "cn/2001:db8::1/" + "0102030405060708090a0b0c0d0e0f1011121314", 5],
)
def test_keys_are_short_non_secret_strings(store, key):
    """A key holding a Kcn-like hex run (40+ digits) is refused: the store never holds secrets."""
    with pytest.raises(ValueError):
        store.put(key, SeqRecord(1, 1))
    with pytest.raises(ValueError):
        store.get(key)


def test_put_takes_only_seqrecords(store):
    with pytest.raises(TypeError):
        store.put(KEY, (1, 1))


@pytest.mark.parametrize(
    "last, advance", [(-1, 0), (65536, 0), (True, 0), (1.0, 0), (0, -1), (0, None)]
)
def test_seqrecord_refuses_out_of_range_values(last, advance):
    with pytest.raises(ValueError):
        SeqRecord(last, advance)


def test_r4_record_survives_close_and_reopen(tmp_path):
    path = tmp_path / "seq.db"
    with SqliteSequenceStore(path) as s:
        s.put(KEY, SeqRecord(42768, 7))
    with SqliteSequenceStore(path) as s:
        assert s.get(KEY) == SeqRecord(42768, 7)


def test_r4_store_is_configured_for_durability(tmp_path):
    """R4: synchronous=FULL (fsync on every commit) and the journal mode asked for."""
    with SqliteSequenceStore(tmp_path / "a.db") as s:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s.journal_mode == "wal"
        other = sqlite3.connect(tmp_path / "a.db")
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()
    with SqliteSequenceStore(tmp_path / "b.db", journal_mode="delete") as s:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_store_files_are_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        with SqliteSequenceStore(tmp_path / "seq.db") as s:
            s.put(KEY, SeqRecord(1, 1))
            created = sorted(p.name for p in tmp_path.iterdir())
            assert "seq.db" in created and "seq.db-wal" in created  # WAL side files exist while open
            for p in tmp_path.iterdir():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    finally:
        os.umask(old)


def test_a_file_that_is_not_a_store_is_refused_in_one_line(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("home_address: 2001:db8::1\n" * 100)
    with pytest.raises(SequenceStoreError) as err:
        SqliteSequenceStore(path)
    assert isinstance(err.value, errors.TestbedError)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert path.read_text() == "home_address: 2001:db8::1\n" * 100  # untouched


def test_unwritable_location_is_refused_in_one_line(tmp_path):
    with pytest.raises(SequenceStoreError, match="cannot create") as err:
        SqliteSequenceStore(tmp_path / "missing-dir" / "seq.db")
    assert "\n" not in str(err.value)


def test_closed_store_raises_store_error(tmp_path):
    s = SqliteSequenceStore(tmp_path / "seq.db")
    s.close()
    with pytest.raises(SequenceStoreError):
        s.put(KEY, SeqRecord(1, 1))


_WRITER = textwrap.dedent(
    """
    import sys
    from testbed.mip6.seqstore import FileSequenceStore, SeqRecord, SqliteSequenceStore
    if sys.argv[3] == "file":
        store = FileSequenceStore(sys.argv[1])
    else:
        store = SqliteSequenceStore(sys.argv[1], journal_mode=sys.argv[3])
    key = sys.argv[2]
    rec = store.get(key)
    last, uses = (rec.last, rec.advance) if rec else (0, 0)
    print("ready", last, uses, flush=True)
    while True:
        last, uses = (last + 1) & 0xFFFF, uses + 1
        store.put(key, SeqRecord(last, uses))
        print(last, uses, flush=True)
    """
)


def _reopen(path: str, journal: str):
    return FileSequenceStore(path) if journal == "file" else SqliteSequenceStore(path, journal_mode=journal)


@pytest.mark.parametrize("journal", ["wal", "delete", "file"])
def test_r4_last_printed_value_survives_kill_9(tmp_path, journal):
    """R4: a value put() returned for is on disk: SIGKILL a writer mid-stream, three times over.

    The writer prints each record after put() returns. After the kill the store holds the last
    printed record, or the one after it (put done, print not yet). Each restart continues from
    the stored value, like an agent that restarts.
    """
    path = str(tmp_path / "seq.db")
    expected_start = (0, 0)
    for kill_after in (25, 60, 140):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, path, KEY, journal],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            head = proc.stdout.readline().split()
            assert head[0] == "ready", proc.stderr.read()
            assert (int(head[1]), int(head[2])) == expected_start
            printed = None
            deadline = time.monotonic() + 60
            while printed is None or printed[1] - expected_start[1] < kill_after:
                assert time.monotonic() < deadline, "writer too slow"
                line = proc.stdout.readline()
                assert line, proc.stderr.read()
                printed = tuple(map(int, line.split()))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            for line in proc.stdout:  # what it managed to print before dying (whole lines only)
                fields = line.split()
                if line.endswith("\n") and len(fields) == 2:
                    printed = tuple(map(int, fields))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        with _reopen(path, journal) as s:
            got = s.get(KEY)
        following = ((printed[0] + 1) & 0xFFFF, printed[1] + 1)
        assert (got.last, got.advance) in (printed, following)
        expected_start = (got.last, got.advance)


@pytest.mark.benchmark(group="seqstore-put", min_rounds=50, max_time=0.5, warmup=False)
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_r4_put_latency_benchmark(benchmark, tmp_path, journal):
    """R4 cost: one durable put() (one fsynced SQLite transaction) per accepted precomputed BU."""
    counter = iter(range(1, 10**9))
    with SqliteSequenceStore(tmp_path / "seq.db", journal_mode=journal) as s:

        def put():
            n = next(counter)
            s.put(KEY, SeqRecord(n & 0xFFFF, n))

        benchmark.pedantic(put, rounds=100, iterations=1, warmup_rounds=3)
        n = next(counter) - 1
        assert s.get(KEY) == SeqRecord(n & 0xFFFF, n)


@pytest.mark.benchmark(group="seqstore-get")
def test_get_latency_benchmark(benchmark, tmp_path):
    with SqliteSequenceStore(tmp_path / "seq.db") as s:
        s.put(KEY, SeqRecord(7, 7))
        assert benchmark.pedantic(s.get, args=(KEY,), rounds=1000, iterations=1) == SeqRecord(7, 7)


def test_check_key_returns_good_keys():
    assert check_key(KEY) == KEY


def test_file_store_keeps_the_older_record_when_the_newer_slot_is_torn(tmp_path):
    with FileSequenceStore(tmp_path / "st") as s:
        s.put(KEY, SeqRecord(7, 1))
        s.put(KEY, SeqRecord(8, 2))
        path = s._file(KEY)
    assert oct(os.stat(tmp_path / "st").st_mode & 0o777) == "0o700"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.get(KEY) == SeqRecord(8, 2)
    # Tear the slot of generation 2 (the newer): the record of generation 1 is what remains.
    with open(path, "r+b") as f:
        f.seek(FileSequenceStore._HEADER + 0 * FileSequenceStore._SLOT_SIZE + 9)
        f.write(b"\xff")
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.get(KEY) == SeqRecord(7, 1)
        s.put(KEY, SeqRecord(9, 3))
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.get(KEY) == SeqRecord(9, 3)
        assert s.get("cn/other/key") is None


def test_file_store_refuses_secret_like_keys_and_a_foreign_file(tmp_path):
    with FileSequenceStore(tmp_path / "st") as s:
        with pytest.raises(ValueError):
            s.put("cn/" + "ab" * 20, SeqRecord(1, 1))
        s.put(KEY, SeqRecord(1, 1))
        path = s._file(KEY)
    with open(path, "r+b") as f:
        f.write(b"NOTMINE!")
    with FileSequenceStore(tmp_path / "st") as s, pytest.raises(SequenceStoreError):
        s.get(KEY)


@pytest.mark.benchmark(group="seqstore-put", min_rounds=50, max_time=0.5, warmup=False)
def test_r4_file_store_put_latency_benchmark(benchmark, tmp_path):
    """R4 cost with the agents' store: one pwrite and one fdatasync per accepted precomputed BU."""
    counter = iter(range(1, 10**9))
    with FileSequenceStore(tmp_path / "st") as s:
        benchmark(lambda: s.put(KEY, SeqRecord(next(counter) & 0xFFFF, 1)))
        assert s.get(KEY) is not None


def test_file_store_creation_cut_short_leaves_nothing_that_locks_the_key_out(tmp_path):
    """A key's first record is written under a temporary name and renamed into place: a crash
    or a full disk before the rename leaves a temporary file, which is never read and is
    removed when the store opens; the key then binds as a new one."""
    with FileSequenceStore(tmp_path / "st") as s:
        path = s._file(KEY)
    temp = path[: -len(".seq")] + ".seq-new"
    with open(temp, "wb") as f:  # a creation torn after some of its octets
        f.write(FileSequenceStore._MAGIC + KEY.encode())
    with FileSequenceStore(tmp_path / "st") as s:
        assert not os.path.exists(temp)
        assert s.get(KEY) is None
        s.put(KEY, SeqRecord(5, 1))
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.get(KEY) == SeqRecord(5, 1)


@pytest.mark.parametrize("content", [b"", b"MIP6SE", FileSequenceStore._MAGIC + b"cn/", bytes(100)])
def test_file_store_recovers_a_record_file_never_completely_written(tmp_path, content):
    """What an older store left when its first write failed (disk full) or was cut: a record
    file shorter than a whole one. It was never acknowledged: it is removed, not refused."""
    with FileSequenceStore(tmp_path / "st") as s:
        path = s._file(KEY)
    with open(path, "wb") as f:
        f.write(content)
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.get(KEY) is None and not os.path.exists(path)
        s.put(KEY, SeqRecord(9, 1))
        assert s.get(KEY) == SeqRecord(9, 1)


def test_file_store_write_failure_is_a_store_error_and_leaves_no_file(tmp_path, monkeypatch):
    with FileSequenceStore(tmp_path / "st") as s:
        real = os.pwrite

        def full(fd, data, offset):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full)
        with pytest.raises(SequenceStoreError, match="No space left on device"):
            s.put(KEY, SeqRecord(1, 1))
        monkeypatch.setattr(os, "pwrite", real)
        assert os.listdir(tmp_path / "st") == []
        s.put(KEY, SeqRecord(1, 1))
        assert s.get(KEY) == SeqRecord(1, 1)


def test_sqlite_store_of_schema_1_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE seq (key TEXT PRIMARY KEY, last INTEGER NOT NULL, uses INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO seq VALUES (?, 7, 3)", (KEY,))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with SqliteSequenceStore(path) as s:
        assert s.get(KEY) == SeqRecord(7, 3)
        s.put(KEY, SeqRecord(8, 4))
        assert s.get(KEY) == SeqRecord(8, 4)


def test_a_store_on_a_read_only_file_system_reads_its_records_and_refuses_every_write(tmp_path, monkeypatch):
    """The state directory's file system read-only (remounted after an error, or so mounted):
    the records there still answer ``get``; every ``put`` fails, so nothing unrecorded is
    acknowledged. Simulated with the EROFS that chmod on such a directory gives."""
    import errno as _errno

    from testbed.mip6.seqstore import FileSequenceStore, SeqRecord, SequenceStoreError

    with FileSequenceStore(tmp_path / "seq") as store:
        store.put("cn/peer/a", SeqRecord(7, 7))
    real_chmod = os.chmod

    def readonly_chmod(path, mode, *a, **kw):
        if os.fspath(path) == str(tmp_path / "seq"):
            raise OSError(_errno.EROFS, "Read-only file system")
        return real_chmod(path, mode, *a, **kw)

    monkeypatch.setattr(os, "chmod", readonly_chmod)
    with FileSequenceStore(tmp_path / "seq") as store:
        assert store.read_only and "Read-only file system" in store.read_only
        assert store.get("cn/peer/a") == SeqRecord(7, 7)
        with pytest.raises(SequenceStoreError, match="read-only file system"):
            store.put("cn/peer/a", SeqRecord(8, 8))
        with pytest.raises(SequenceStoreError, match="read-only file system"):
            store.put("cn/peer/b", SeqRecord(1, 1))
    monkeypatch.setattr(os, "chmod", lambda *a, **kw: (_ for _ in ()).throw(OSError(_errno.EACCES, "Permission denied")))
    with pytest.raises(SequenceStoreError, match="cannot create the store"):
        FileSequenceStore(tmp_path / "seq")
