"""The agent's control socket: JSON lines over a Unix socket, one request and one answer a line.

Request ``{"cmd": "status"}`` (plus arguments); answer ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``. ``request()`` is the client side (``testbed agent-ctl``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Awaitable, Callable

Handler = Callable[[dict], Awaitable[dict] | dict]
MAX_LINE = 64 * 1024


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # a stale socket of a previous run of this agent
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = _parse(line)
                    answer = self._handler(request)
                    if asyncio.iscoroutine(answer):
                        answer = await answer
                except (ValueError, KeyError, TypeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:  # noqa: BLE001 - a request must never end the connection unanswered
                    answer = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
                writer.write(json.dumps(answer, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


def _parse(line: bytes) -> dict:
    """One request line as a JSON object with a string ``cmd``; ValueError saying what is wrong."""
    try:
        request = json.loads(line)
    except RecursionError:  # nesting deeper than the parser's recursion limit
        raise ValueError("request nested too deeply: expected a flat JSON object") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ValueError("expected a JSON object with a string 'cmd'")
    return request


def request(path: str | os.PathLike, command: dict, timeout: float = 5.0) -> dict:
    """Send one request to an agent's control socket and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.sendall(json.dumps(command).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)
