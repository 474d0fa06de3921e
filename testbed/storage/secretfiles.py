"""Reading and writing small secret files (keys) safely.

A secret file must be a regular file with no permission bit for group or others, at most
64 KiB of UTF-8 (``testbed.mip6.keytext.MAX_FILE_BYTES``). New ones are created 0600 with
O_EXCL (never overwriting) and made durable (the file and its directory fsynced). Every
refusal is a ``ConfigError`` with one line ``<file>: <reason>`` that never repeats a value
that could be key material. What the text means is parsed by ``testbed.mip6``.
"""

from __future__ import annotations

import os
import stat

from testbed.mip6.keytext import MAX_FILE_BYTES, fail


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
