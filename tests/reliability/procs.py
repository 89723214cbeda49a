"""Real processes for the fault tests: a throwaway redis-server, a cuttable TCP proxy in front of
Postgres, `pricecat serve` and `pricecat refresh` as subprocesses, and a raw HTTP client.

Nothing here touches the shared Postgres (127.0.0.1:5432) or Redis (127.0.0.1:6379) run state:
Redis outages use our own redis-server on a free port; Postgres outages go through `PgProxy`, a
small asyncio TCP proxy the API connects through, which can refuse connections (listener closed,
live connections reset) or black-hole them (accepts, forwards nothing) and be restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from bench.common import descendants
from bench.procs import PRICECAT as PRICECAT  # re-exported for the tests
from bench.procs import REPO_ROOT as REPO_ROOT  # re-exported for the tests
from bench.procs import VENV_BIN as VENV_BIN  # re-exported for the tests
from bench.procs import Service, free_port, port_open, pricecat_serve, wait_until


class Started:
    """A context manager that runs `start()` on entering and `stop()` on leaving, and also when
    `start()` fails half-way (so a server that never became ready does not outlive the test)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------- redis


class RedisServer(Started):
    """Our own redis-server on a free port (no persistence); stop() and start() keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.redis_cli = shutil.which("redis-cli") or "redis-cli"
        self.service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.service = Service(
            f"redis-server :{self.port}",
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            Path(tempfile.gettempdir()) / f"pricecat-rel-redis-{self.port}.log",
        ).start()
        self.service.wait_ready(self.ping, 15, f"redis on {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> str:
        out = subprocess.run(
            [self.redis_cli, "-p", str(self.port), *args],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(sig=signal.SIGKILL)  # an abrupt outage, not a graceful shutdown
        self.service = None
        wait_until(lambda: not port_open(self.port), 10, what="redis port closed")


# ------------------------------------------------------------------------------- postgres proxy


@dataclass
class _ProxyState:
    mode: str = "up"  # up | refuse | blackhole
    server: asyncio.base_events.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class PgProxy:
    """A TCP proxy in front of Postgres that a test can cut and restore.

    - `refuse()`: closes the listener and resets every live connection (Postgres down/restarting);
    - `blackhole()`: resets live connections, then accepts new ones but never answers (a dead
      network path: the client only notices through its own timeouts);
    - `partition()`: keeps live connections open but forwards nothing either way, and
      black-holes new ones (in-flight queries only end through client-side timeouts);
    - `restore()`: forwards again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.state = _ProxyState()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        self._call(self._listen())
        wait_until(lambda: port_open(self.port), 10, what="proxy listening")

    def url_for(self, database_url: str) -> str:
        """`database_url` rewritten to go through the proxy."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        netloc = f"{user}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _listen(self) -> None:
        self.state.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.state.mode == "refuse":
                    break
                if self.state.mode != "up":
                    continue  # blackhole/partition: swallow the bytes, answer nothing
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.state.writers.add(writer)
        try:
            if self.state.mode in ("blackhole", "partition"):
                # hold the socket open, read and drop whatever the client sends
                while self.state.mode in ("blackhole", "partition"):
                    if not await reader.read(65536):
                        break
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self.state.writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            self.state.writers.discard(up_writer)
        finally:
            self.state.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _reset_all(self) -> None:
        for w in list(self.state.writers):
            sock = w.get_extra_info("socket")
            with contextlib.suppress(Exception):
                if sock is not None:
                    # RST instead of FIN: what a crashed server / dropped route looks like
                    linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                w.transport.abort()
        self.state.writers.clear()

    async def _refuse(self) -> None:
        self.state.mode = "refuse"
        if self.state.server is not None:
            self.state.server.close()
            self.state.server = None
        await self._reset_all()

    async def _blackhole(self) -> None:
        self.state.mode = "blackhole"
        await self._reset_all()
        if self.state.server is None:
            await self._listen()

    async def _partition(self) -> None:
        self.state.mode = "partition"
        if self.state.server is None:
            await self._listen()

    async def _restore(self) -> None:
        if self.state.mode in ("blackhole", "partition"):
            # bytes were swallowed on these: they can't resume, reset them (TCP would give up too)
            await self._reset_all()
        self.state.mode = "up"
        if self.state.server is None:
            await self._listen()

    def refuse(self) -> None:
        self._call(self._refuse())
        wait_until(lambda: not port_open(self.port), 10, what="proxy closed")

    def blackhole(self) -> None:
        self._call(self._blackhole())

    def partition(self) -> None:
        """Live connections stay open but nothing gets through any more (a silent network
        partition: in-flight queries only end through client-side timeouts)."""
        self._call(self._partition())

    def restore(self) -> None:
        self._call(self._restore())
        wait_until(lambda: port_open(self.port), 10, what="proxy reopened")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._refuse())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


# ------------------------------------------------------------------------------------- http


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def http_get(
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    method: str = "GET",
) -> Resp:
    """One request over a fresh connection; `path` is sent byte-for-byte (no re-encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def raw_request(port: int, data: bytes, timeout: float = 30.0) -> Resp:
    """Send raw bytes (request line + headers) and parse whatever HTTP answer comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        chunks: list[bytes] = []
        with contextlib.suppress(ConnectionResetError):
            while True:
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                raw = b"".join(chunks)
                if b"\r\n\r\n" in raw:
                    head, _, rest = raw.partition(b"\r\n\r\n")
                    length = _content_length(head)
                    if length is not None and len(rest) >= length:
                        break
    raw = b"".join(chunks)
    if not raw:
        raise ConnectionError("server closed the connection without an HTTP response")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Resp(status, headers, body)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v.strip())
    return None


# ------------------------------------------------------------------------------------- api


class ApiServer(Started):
    """`pricecat serve` as a subprocess on a free port with the given environment."""

    def __init__(self, env: Mapping[str, str], workers: int = 1, name: str = "api") -> None:
        self.workers = workers
        self.logdir = Path(tempfile.mkdtemp(prefix=f"pricecat-rel-{name}-"))
        self.log_path = self.logdir / "serve.log"
        self.service, self.base = pricecat_serve(
            self.log_path, {**os.environ, **env}, workers=workers
        )
        self.port = int(self.base.rsplit(":", 1)[1])

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.service.proc

    def start(self, timeout: float = 90.0) -> None:
        self.service.start()

        def up() -> bool:
            try:
                return http_get(self.port, "/healthz", timeout=2).status == 200
            except OSError:
                return False

        self.service.wait_ready(up, timeout, "pricecat serve /healthz")

    def log(self) -> str:
        return self.service.log()

    def get(self, path: str, headers: Mapping[str, str] | None = None,
            timeout: float = 30.0, method: str = "GET") -> Resp:
        return http_get(self.port, path, headers=headers, timeout=timeout, method=method)

    def alive(self) -> bool:
        return self.service.alive()

    def worker_pids(self) -> list[int]:
        """PIDs of the processes under the serve process (Sanic workers), recursively."""
        return descendants(self.service.pid) if self.service.alive() else []

    def stop(self) -> None:
        self.service.stop()
        if not os.environ.get("PRICECAT_KEEP_LOGS"):
            shutil.rmtree(self.logdir, ignore_errors=True)


@contextlib.contextmanager
def running_api(env: Mapping[str, str], workers: int = 1, name: str = "api") -> Iterator[ApiServer]:
    with ApiServer(env, workers=workers, name=name) as server:
        yield server
