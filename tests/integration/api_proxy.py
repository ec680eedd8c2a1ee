"""A relay between one operator and the sandbox's API server that a test can cut, and that records
every request the operator sends (or tries to send) through it.

A plain TCP relay would only see TLS records, so this one ends TLS with the API server's own serving
certificate (valid for 127.0.0.1, signed by the sandbox CA the kubeconfig trusts) and opens its own
TLS connection upstream as the sandbox admin. In between it reads each HTTP/1.1 request (method,
path, body) and passes the bytes on unchanged; responses, watch streams included, are copied raw.

`cut()` models a network partition, not a refused connection: open connections stop passing bytes
either way and new ones are accepted but never answered, so the operator's requests hang until its
own timeouts. Requests sent meanwhile are still recorded (marked `forwarded=False`): they never
reached the API server, and they show what the operator tried to do while cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from mimo_sandbox.cluster import Sandbox


@dataclasses.dataclass(frozen=True)
class SeenRequest:
    at: float  # time.time() when the request's head arrived
    method: str
    path: str
    body: bytes
    forwarded: bool  # False: sent during a cut, never reached the API server

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass(eq=False)  # held in a set by identity
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None
    frozen: bool


class ApiProxy:
    def __init__(self, sandbox: Sandbox) -> None:
        assert sandbox.state_dir is not None
        pki = sandbox.state_dir / "pki"
        self._serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._serving.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self._upstream = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._upstream.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        target = urllib.parse.urlsplit(sandbox.server)
        self._target = (target.hostname or "127.0.0.1", target.port or 443)
        self._admin_kubeconfig = sandbox.kubeconfig
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self.closed_at: list[float] = []  # when each client connection ended (its side closed)
        self._links: set[_Link] = set()
        self._open = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # -- control, from the test's thread -------------------------------------------------------------

    def start(self) -> ApiProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._serving), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def kubeconfig(self, path: Path) -> Path:
        """The sandbox admin's kubeconfig, pointing at this proxy."""
        config = yaml.safe_load(self._admin_kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def cut(self) -> float:
        """Partition the client from the API server; returns the moment (time.time()) it happened."""
        return asyncio.run_coroutine_threadsafe(self._set_open(False), self._loop).result(timeout=10)

    def restore(self) -> float:
        """Connections frozen by the cut are dropped (as a TCP timeout would); new ones pass again."""
        return asyncio.run_coroutine_threadsafe(self._set_open(True), self._loop).result(timeout=10)

    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._links):
                self._drop(link)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the relay, on the proxy's own loop -----------------------------------------------------------

    async def _set_open(self, value: bool) -> float:
        moment = time.time()
        self._open = value
        for link in list(self._links):
            if value and link.frozen:
                self._drop(link)
            elif not value:
                link.frozen = True
        return moment

    def _drop(self, link: _Link) -> None:
        for writer in (link.client, link.upstream):
            if writer is not None:
                writer.transport.abort()
        self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer, None, frozen=not self._open)
        self._links.add(link)
        tasks: list[asyncio.Task[None]] = []
        try:
            if not link.frozen:
                host, port = self._target
                up_reader, up_writer = await asyncio.open_connection(
                    host, port, ssl=self._upstream, server_hostname=host
                )
                link.upstream = up_writer
                tasks.append(asyncio.create_task(self._responses(up_reader, link)))
            tasks.append(asyncio.create_task(self._requests_of(reader, link)))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except OSError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._drop(link)

    async def _responses(self, upstream: asyncio.StreamReader, link: _Link) -> None:
        while chunk := await upstream.read(65536):
            if link.frozen:
                continue  # lost in the partition
            link.client.write(chunk)
            await link.client.drain()

    async def _requests_of(self, client: asyncio.StreamReader, link: _Link) -> None:
        try:
            while True:
                head = await client.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                raw, body = await _body(client, headers)
                forward = not link.frozen and link.upstream is not None
                with self._lock:
                    self._requests.append(SeenRequest(arrived, method, path, body, forward))
                if forward and link.upstream is not None:
                    link.upstream.write(head + raw)
                    await link.upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed_at.append(time.time())


async def _body(client: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """The request body as sent (raw) and decoded from chunked encoding if it was."""
    if "content-length" in headers:
        body = await client.readexactly(int(headers["content-length"]))
        return body, body
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return b"", b""
    raw, body = b"", b""
    while True:
        size_line = await client.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        chunk = await client.readexactly(size + 2)  # data and its CRLF (no trailers are sent)
        raw += size_line + chunk
        body += chunk[:-2]
        if size == 0:
            return raw, body
