"""The agents' durable sequence store (R4: stable storage of the last accepted number; R13
advance counters): records, keys, a torn slot, a torn creation, kill -9, and ``load``."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from testbed import errors
from testbed.mip6.persistence import RecordUnreadable, SeqRecord, check_key
from testbed.storage.sequences import FileSequenceStore, SequenceStoreError

KEY = "cn/2001:db8:0:1::1234/9fadd76c3b54daf8"


@pytest.fixture
def store(tmp_path):
    with FileSequenceStore(tmp_path / "st") as s:
        yield s


def test_store_get_put_overwrite(store):
    assert store.get(KEY) is None
    store.put(KEY, SeqRecord(last=10000, advance=1))
    assert store.get(KEY) == SeqRecord(10000, 1)
    store.put(KEY, SeqRecord(last=10001, advance=2))
    store.put("mn/2001:db8:0:3::1/0123456789abcdef", SeqRecord(5, 5))
    assert store.get(KEY) == SeqRecord(10001, 2)
    assert dict(store.load()) == {KEY: SeqRecord(10001, 2), "mn/2001:db8:0:3::1/0123456789abcdef": SeqRecord(5, 5)}
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
    with FileSequenceStore(tmp_path / "st") as s:
        s.put(KEY, SeqRecord(42768, 7))
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.load()[KEY] == SeqRecord(42768, 7)
        assert s.get(KEY) == SeqRecord(42768, 7)


def test_check_key_returns_good_keys():
    assert check_key(KEY) == KEY


def test_store_files_are_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        with FileSequenceStore(tmp_path / "st") as s:
            s.put(KEY, SeqRecord(1, 1))
        assert oct(os.stat(tmp_path / "st").st_mode & 0o777) == "0o700"
        for p in (tmp_path / "st").iterdir():
            assert oct(p.stat().st_mode & 0o777) == "0o600", p.name
    finally:
        os.umask(old)


def test_unwritable_location_is_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SequenceStoreError, match="cannot create") as err:
        FileSequenceStore(tmp_path / "file" / "st")
    assert isinstance(err.value, errors.TestbedError) and "\n" not in str(err.value)


def test_load_reads_every_record_and_names_the_unreadable_ones(tmp_path):
    """What an agent reads at start-up: every record by its key; a file that cannot be read
    (no intact slot, a header naming another key) is RecordUnreadable under the key whose file
    it is, never "no record" (which would let the key start afresh and accept a replay)."""
    other = "ha/20010db8000100000000000000000100"
    broken = "mn/ha/20010db8000100000000000000000001"
    with FileSequenceStore(tmp_path / "st") as s:
        s.put(KEY, SeqRecord(7, 1))
        s.put(other, SeqRecord(9, 9))
        s.put(broken, SeqRecord(3, 3))
        s.put(broken, SeqRecord(4, 4))
        path, foreign = s._file(broken), s._file(other)
    with open(path, "r+b") as f:  # spoil both slots
        for slot in range(2):
            f.seek(FileSequenceStore._HEADER + slot * FileSequenceStore._SLOT_SIZE + 9)
            f.write(b"\xff")
    with open(foreign, "r+b") as f:  # a header that names another key
        f.seek(8)
        f.write(b"cn/x")
    with FileSequenceStore(tmp_path / "st") as s:
        records = s.load()
        assert records[KEY] == SeqRecord(7, 1) and records.get("cn/none") is None
        assert type(records[broken]) is RecordUnreadable and "no intact record" in records[broken].reason
        assert type(records[other]) is RecordUnreadable and "not the sequence file" in records[other].reason
        assert sorted(records) == [KEY] and len(records.unreadable) == 2
        s.put(KEY, SeqRecord(8, 2))  # the files load opened serve the puts that follow
    with FileSequenceStore(tmp_path / "st") as s:
        assert s.load()[KEY] == SeqRecord(8, 2)


_WRITER = textwrap.dedent(
    """
    import sys
    from testbed.mip6.persistence import SeqRecord
    from testbed.storage.sequences import FileSequenceStore
    store = FileSequenceStore(sys.argv[1])
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


def test_r4_last_printed_value_survives_kill_9(tmp_path):
    """R4: a value put() returned for is on disk: SIGKILL a writer mid-stream, three times over.

    The writer prints each record after put() returns. After the kill the store holds the last
    printed record, or the one after it (put done, print not yet). Each restart continues from
    the stored value, like an agent that restarts.
    """
    path = str(tmp_path / "st")
    expected_start = (0, 0)
    for kill_after in (25, 60, 140):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, path, KEY],
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
        with FileSequenceStore(path) as s:
            got = s.load()[KEY]
        following = ((printed[0] + 1) & 0xFFFF, printed[1] + 1)
        assert (got.last, got.advance) in (printed, following)
        expected_start = (got.last, got.advance)


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


def test_a_store_on_a_read_only_file_system_reads_its_records_and_refuses_every_write(tmp_path, monkeypatch):
    """The state directory's file system read-only (remounted after an error, or so mounted):
    the records there still answer ``get``; every ``put`` fails, so nothing unrecorded is
    acknowledged. Simulated with the EROFS that chmod on such a directory gives."""
    import errno as _errno

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
