"""A warm dbt for the refresh: a fork server that has imported dbt once and forks one fresh
child per `dbt` invocation.

Why: a `dbt build` subprocess spends ~2.5 s importing dbt before it reads the project (more on
a busy machine), on every refresh. Calling `dbtRunner` repeatedly in one long-lived process
would avoid that, but dbt-postgres 1.11 slows down over repeated in-process invocations
(dbt-adapters #2136). A fork server gets the first without the second: this process imports
dbt and never invokes it; each request gets a child forked from that clean, imported state,
which runs exactly one dbt command-line invocation (`dbt.cli.main.cli`, the `dbt` script's
entry point) and exits. Nothing a child does reaches the server or the next child.

What the child gets, as a `dbt` subprocess would: the client's environment (os.environ is
replaced, libpq and dbt's env_var() read the new one), working directory, arguments and CPU
niceness; stdin /dev/null; stdout and stderr into one pipe that the server relays to the client;
its own session (so a kill reaches anything it started); default SIGINT/SIGTERM handling; at
the end the atexit handlers (logging flush) as a normal interpreter exit would run them. dbt's
invocation id is reset by dbt itself at every invocation; `random` reseeds itself after a fork.
The project is read, and partially parsed, by every child from scratch: a changed model, macro,
seed, profile or variable cannot be missed. What stays from the server is dbt's code as it was
when the server started: restart the server after upgrading dbt (`pricecat schedule` does so
whenever it is restarted).

Protocol (a Unix socket, only the server's own user or root may connect): the client sends one
JSON line {"args": [...], "env": {...}, "cwd": "...", "nice": N}; the server answers one JSON
line {"pid": N}, then the child's output as it comes, then EXIT_MARK + the exit code (negative:
killed by that signal) + newline. The client may send "kill\\n" (or close the connection): the
server SIGKILLs the child's process group and still sends the exit line.

`pricecat dbt-server --socket PATH` runs it in the foreground (scripts/cluster.sh runs it beside
the Prefect worker); `pricecat schedule` starts one for its own flow runs. The refresh uses it
when DBT_FORK_SERVER names its socket, and otherwise (or when it does not answer) runs dbt as a
plain subprocess (pricecat/dbt.py).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pricecat.config import Settings

log = logging.getLogger(__name__)

#: What a `dbt build` of this project imports that is slow; the rest comes with them.
PRELOAD = (
    "dbt.cli.main",
    "dbt.adapters.postgres",
    "dbt.adapters.postgres.impl",
    "dbt.task.build",
    "dbt.parser.manifest",
    "dbt.compilation",
    "dbt.adapters.postgres.__version__",
    "google.protobuf.descriptor_pb2",
    "psycopg2",
    "agate",
    "_strptime",
)
#: dbt validates project files against JSON schemas that it builds lazily, once per class and
#: process (`dbtClassMixin.json_schema`, an lru_cache): ~1-2 s of every `dbt build`, even with a
#: partial parse. Built once in the server (a pure function of the class), inherited by every
#: child. The classes a `dbt build` of this project validates (dbt-core 1.11); one that a later
#: dbt no longer has is skipped.
PRELOAD_SCHEMAS = (
    "dbt.contracts.project:ProjectFlags",
    "dbt.adapters.postgres.connections:PostgresCredentials",
    "dbt.contracts.project:ProfileConfig",
    "dbt.contracts.project:Project",
    "dbt.contracts.project:PackageConfig",
    "dbt.contracts.selection:SelectorFile",
    "dbt.contracts.project:Configuration",
    "dbt.artifacts.resources.v1.model:ModelConfig",
    "dbt.contracts.graph.nodes:ModelNode",
    "dbt.artifacts.resources.v1.components:Contract",
    "dbt.artifacts.resources.v1.config:TestConfig",
    "dbt.contracts.graph.nodes:SingularTestNode",
    "dbt.artifacts.resources.v1.seed:SeedConfig",
    "dbt.contracts.graph.nodes:SeedNode",
    "dbt.contracts.graph.unparsed:UnparsedNodeUpdate",
    "dbt.contracts.graph.nodes:GenericTestNode",
    "dbt.contracts.graph.unparsed:UnparsedMacroUpdate",
    "dbt.contracts.graph.unparsed:UnparsedModelUpdate",
    "dbt.contracts.graph.unparsed:UnparsedUnitTest",
    "dbt.artifacts.resources.v1.unit_test_definition:UnitTestConfig",
    "dbt.contracts.graph.unparsed:UnparsedSourceDefinition",
    "dbt.artifacts.resources.v1.source_definition:SourceConfig",
    "dbt.task.test:TestResultData",
)
#: Starts the last line of a response: EXIT_MARK + exit code + newline (dbt never prints NUL).
EXIT_MARK = b"\0exit "
#: DBT_FORK_SERVER=off: no warm dbt anywhere (`pricecat schedule` starts none).
OFF = "off"
#: Seconds a killed child gets to be reaped before the client gives up waiting for its exit line.
KILL_WAIT_SECONDS = 10.0


# --- server --------------------------------------------------------------------------------------


def preload() -> float:
    """Import dbt and build its JSON schemas (what every child would do first); the seconds it
    took."""
    started = time.monotonic()
    for module in PRELOAD:
        importlib.import_module(module)
    for name in PRELOAD_SCHEMAS:
        module, _, cls = name.partition(":")
        try:
            getattr(importlib.import_module(module), cls).json_schema()
        except (ImportError, AttributeError) as exc:
            log.info("dbt fork server: no JSON schema preloaded for %s: %s", name, exc)
    return time.monotonic() - started


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _read_line(conn: socket.socket) -> bytes:
    """One request line, read byte-wise: what follows it ("kill") stays in the socket."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            break
        line += byte
    return bytes(line)


@dataclass
class _Job:
    conn: socket.socket
    pid: int
    pidfd: int
    out: int  # read end of the child's stdout+stderr pipe
    killed: bool = False
    output_open: bool = True
    pending: list[bytes] = field(default_factory=list)


class ForkServer:
    """The server loop: single-threaded (a selector), so forking is safe."""

    def __init__(self, socket_path: Path, *, parent_pid: int | None = None) -> None:
        self.socket_path = socket_path
        self.parent_pid = parent_pid  # exit when this process is gone (pricecat schedule)
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, _Job] = {}
        self.listener: socket.socket | None = None

    def bind(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        listener.listen(16)
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, ("accept", None))

    def serve_forever(self) -> None:
        assert self.listener is not None
        try:
            while self.parent_pid is None or os.getppid() == self.parent_pid:
                for key, _ in self.selector.select(timeout=2.0):
                    kind, job = key.data
                    try:
                        if kind == "accept":
                            self._accept()
                        elif kind == "out":
                            self._relay(job)
                        elif kind == "control":
                            self._control(job)
                        elif kind == "exit":
                            self._finish(job)
                    except OSError as exc:  # one client's trouble never stops the server
                        log.warning("dbt fork server: %s", exc)
                        if job is not None:
                            self._kill(job)
        finally:
            self.close()

    def close(self) -> None:
        for job in list(self.jobs.values()):
            self._kill(job)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(job.pid, 0)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    # --- one request ---

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        try:
            uid = _peer_uid(conn)
            if uid not in (0, os.getuid()):
                raise PermissionError(f"uid {uid} may not use this dbt fork server")
            conn.settimeout(10)
            request = json.loads(_read_line(conn))
            args = [str(a) for a in request["args"]]
            env = {str(k): str(v) for k, v in request["env"].items()}
            cwd = str(request["cwd"])
            nice = int(request.get("nice", os.getpriority(os.PRIO_PROCESS, 0)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("dbt fork server: bad request: %s", exc)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            conn.close()
            return
        conn.settimeout(None)
        out, child_out = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns
            _run_child(args, env, cwd, nice, child_out)
        os.close(child_out)
        os.set_blocking(out, False)
        job = _Job(conn=conn, pid=pid, pidfd=os.pidfd_open(pid), out=out)
        self.jobs[pid] = job
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        conn.setblocking(False)
        self.selector.register(out, selectors.EVENT_READ, ("out", job))
        self.selector.register(conn, selectors.EVENT_READ, ("control", job))
        self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", job))
        log.info("dbt fork server: pid %s runs dbt %s", pid, " ".join(args[:3]))

    def _send(self, job: _Job, data: bytes) -> None:
        job.conn.setblocking(True)  # the client reads as fast as dbt writes
        try:
            job.conn.sendall(data)
        except OSError:  # the client is gone: nobody reads the output, stop the work
            self._kill(job)
        finally:
            job.conn.setblocking(False)

    def _relay(self, job: _Job) -> None:
        try:
            data = os.read(job.out, 1 << 16)
        except BlockingIOError:
            return
        if data:
            self._send(job, data)
        else:
            job.output_open = False
            self.selector.unregister(job.out)

    def _control(self, job: _Job) -> None:
        try:
            data = job.conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client went away (its process was killed): stop the child
            self.selector.unregister(job.conn)
        self._kill(job)

    def _kill(self, job: _Job) -> None:
        if not job.killed:
            job.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)

    def _finish(self, job: _Job) -> None:
        _, status = os.waitpid(job.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        while job.output_open:  # what the child wrote before it exited
            try:
                data = os.read(job.out, 1 << 16)
            except BlockingIOError:
                break  # something it started still holds the pipe: do not wait for it
            if not data:
                break
            self._send(job, data)
        self._send(job, EXIT_MARK + str(code).encode() + b"\n")
        for fd in (job.out, job.pidfd, job.conn):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
        os.close(job.out)
        os.close(job.pidfd)
        job.conn.close()
        del self.jobs[job.pid]
        log.info("dbt fork server: pid %s exited %s", job.pid, code)


def _die_with_parent() -> None:
    """SIGKILL this process when the server dies (Linux prctl PR_SET_PDEATHSIG): a dbt whose
    server is gone has nobody reading its output and must not keep building."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _run_child(args: list[str], env: dict[str, str], cwd: str, nice: int, out: int) -> None:
    """In the forked child: become a `dbt <args>` process, run it, exit with its code."""
    code = 1
    try:
        server = os.getppid()
        _die_with_parent()
        if os.getppid() != server:  # the server died before the line above took effect
            os._exit(1)
        os.setsid()
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        # the server's sockets, pipes and selector are not the child's business
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
        # a `dbt` process starts with logging unconfigured (the server's CLI configured it)
        for handler in list(logging.root.handlers):
            logging.root.removeHandler(handler)
        logging.root.setLevel(logging.WARNING)
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        os.chdir(cwd)
        if nice != os.getpriority(os.PRIO_PROCESS, 0):
            with contextlib.suppress(OSError):  # lowering needs privileges; raising never fails
                os.setpriority(os.PRIO_PROCESS, 0, nice)
        sys.argv = ["dbt", *args]
        from dbt.cli.main import cli

        try:
            cli.main(args=args, prog_name="dbt")  # standalone mode: always ends in SystemExit
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - as an uncaught exception would end `dbt`
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()  # what a normal interpreter exit runs (e.g. logging's flush)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(socket_path: Path, *, with_parent: bool = False) -> int:
    """`pricecat dbt-server`: import dbt, then fork one child per request until SIGTERM/SIGINT
    (or, `with_parent`, until the process that started it is gone)."""
    parent = os.getppid() if with_parent else None
    seconds = preload()
    server = ForkServer(socket_path, parent_pid=parent)
    server.bind()

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(
        f"pricecat dbt-server: dbt imported in {seconds:.1f} s; listening on {socket_path} "
        f"(pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


@contextlib.contextmanager
def server_for_runs(settings: Settings) -> Iterator[str | None]:
    """Beside a long-lived process whose flow runs are subprocesses (`pricecat schedule`): start
    a fork server that exits with this process and point the runs at it (DBT_FORK_SERVER is set
    in this process's environment, which they inherit). Yields its socket; none when
    DBT_FORK_SERVER already names one (it is used as it is) or is `off`."""
    if settings.dbt_fork_server:
        yield socket_path(settings)
        return
    tmp = tempfile.mkdtemp(prefix="pricecat-dbt-")
    path = str(Path(tmp) / "dbt.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pricecat.cli", "dbt-server", "--socket", path, "--with-parent"]
    )
    os.environ["DBT_FORK_SERVER"] = path
    try:
        yield path
    finally:
        os.environ.pop("DBT_FORK_SERVER", None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def socket_path(settings: Settings) -> str | None:
    """The fork server the refresh should use: DBT_FORK_SERVER unless unset or `off`."""
    value = settings.dbt_fork_server
    return None if not value or value == OFF else value


# --- client --------------------------------------------------------------------------------------


class ServerUnavailable(OSError):
    """No fork server answers on that socket (the caller falls back to a subprocess)."""


class ForkedDbt:
    """One dbt run in a fork server's child, shaped like an asyncio subprocess: `lines()` yields
    its output, `wait()` its exit code, `kill()` stops it (and waits until it is reaped)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pid: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    async def start(
        cls, socket_path: str, args: list[str], env: dict[str, str], cwd: str
    ) -> ForkedDbt:
        try:
            reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 22)
        except OSError as exc:
            raise ServerUnavailable(f"no dbt fork server on {socket_path}: {exc}") from exc
        request = {
            "args": args, "env": env, "cwd": cwd, "nice": os.getpriority(os.PRIO_PROCESS, 0),
        }
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            header = json.loads(await reader.readline() or b"{}")
        except (OSError, ValueError) as exc:
            writer.close()
            raise ServerUnavailable(f"dbt fork server on {socket_path}: {exc}") from exc
        if "pid" not in header:
            writer.close()
            raise ServerUnavailable(f"dbt fork server refused: {header.get('error', header)}")
        return cls(reader, writer, int(header["pid"]))

    async def lines(self) -> AsyncIterator[bytes]:
        async for raw in self.reader:
            if raw.startswith(EXIT_MARK):
                self.returncode = int(raw[len(EXIT_MARK):])
                self.writer.close()
                return
            yield raw
        if self.returncode is None:  # the server died mid-run: its child was killed with it
            raise ConnectionError(f"the dbt fork server went away while pid {self.pid} ran")

    async def wait(self) -> int:
        if self.returncode is None:
            async for _ in self.lines():
                pass
        assert self.returncode is not None
        return self.returncode

    async def kill(self) -> None:
        """SIGKILL the child's process group (through the server) and wait for its exit."""
        if self.returncode is not None:
            return
        try:
            self.writer.write(b"kill\n")
            await self.writer.drain()
            await asyncio.wait_for(self.wait(), KILL_WAIT_SECONDS)
        except (TimeoutError, OSError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        finally:
            self.writer.close()
