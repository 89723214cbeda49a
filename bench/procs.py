"""Processes, ports and waits for the tests and the benchmarks: the one copy.

- `free_port()`, `port_open()`, `wait_until()`, `wait_for_port()`, `http_status()`;
- `Service`: a command in its own process group with its output in a log file; `wait_http()`
  polls a URL until it answers (failing early, with the log's tail, when the process exits);
  `stop()` sends SIGTERM to the process (as an operator or init system would), then SIGKILL to
  its whole group when it has not exited in time, so no worker outlives a test;
- `pricecat_serve()`: `pricecat serve` on a free port as a `Service`.

Standard library only (urllib for HTTP), so any test or benchmark can use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PRICECAT = str(VENV_BIN / "pricecat")


def run_step(cmd: list[str], env: Mapping[str, str], expect: str | None = None) -> float:
    """Run a set-up command in the repository (output captured); exit with its output when it
    fails (or, with `expect`, when its output lacks that text); the seconds it took."""
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or (expect and expect not in proc.stdout + proc.stderr):
        why = "failed" if proc.returncode != 0 else f"did not print {expect!r}"
        raise SystemExit(f"{' '.join(cmd)} {why}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return round(time.monotonic() - started, 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the socket is closed again before returning)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll `predicate` until it is truthy; TimeoutError after `timeout` seconds. An exception
    raised by the predicate ends the wait at once (e.g. "the process exited")."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    wait_until(lambda: port_open(port, host), timeout, 0.2, f"{host}:{port} to accept")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET of `url`, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - our own URLs
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


class ServiceError(RuntimeError):
    """A service exited early or did not become ready; the message ends with its log's tail."""


class Service:
    """`cmd` as a subprocess in a new session (its own process group), output to `log_path`."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.log_path = log_path
        self.env = dict(env) if env is not None else dict(os.environ)
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServiceError(f"{self.name} is not started")
        return self.proc.pid

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def fail(self, why: str) -> ServiceError:
        return ServiceError(f"{self.name} {why}; log {self.log_path}:\n{self.log()[-4000:]}")

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str = "") -> None:
        """Poll `check` until true; ServiceError (with the log) on early exit or time-out."""

        def ready() -> bool:
            if not self.alive():
                code = None if self.proc is None else self.proc.returncode
                raise self.fail(f"exited with {code} before it was ready")
            return check()

        try:
            wait_until(ready, timeout, 0.2, what or f"{self.name} to be ready")
        except TimeoutError as exc:
            raise self.fail(f"not ready after {timeout:g} s") from exc

    def wait_http(self, url: str, timeout: float = 60.0, status: int = 200) -> None:
        self.wait_ready(lambda: http_status(url) == status, timeout, f"{url} to answer {status}")

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM, group: bool = False) -> None:
        """`sig` to the process (to its whole group with `group`), then SIGKILL to the group
        after `timeout` s. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # whatever the leader left behind in its group (workers, a manager) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pricecat_serve(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    port: int | None = None,
    name: str = "pricecat serve",
) -> tuple[Service, str]:
    """`pricecat serve` on 127.0.0.1 and a free port (not started); returns it and its base URL."""
    port = port or free_port()
    cmd = [PRICECAT, "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    return Service(name, cmd, log_path, env), f"http://127.0.0.1:{port}"
