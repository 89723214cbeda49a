"""Retry policy of the refresh flow: which failures are transient (retried with backoff by every
task through `retry_if_transient`) and which never retry (a failing dbt model or test)."""

from __future__ import annotations

from typing import Any

import asyncpg
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

#: SQLSTATEs worth a retry: serialization failure, deadlock, lock timeout, shutdown/start-up,
#: too many connections, connection failures.
TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300",
     "08000", "08001", "08003", "08004", "08006"}
)
#: Phrases in dbt's output that mean the database was unreachable or a transaction lost a race.
TRANSIENT_DBT_MARKERS = (
    "connection refused",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "too many clients",
    "deadlock detected",
    "could not serialize access",
)

class RefreshError(RuntimeError):
    """A refresh step failed."""


class TransientError(RefreshError):
    """A failure worth retrying (the database was unreachable, a lock race was lost)."""


class DbtBuildFailed(RefreshError):
    """dbt reported failing models or tests: never retried, never published."""

    def __init__(self, failures: list[str], detail: str = "") -> None:
        self.failures = failures
        summary = "; ".join(failures) if failures else detail or "dbt build failed"
        super().__init__(f"dbt build failed: {summary}")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure: connection refused/lost, deadlock, serialization."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, DbtBuildFailed):
        return False
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    # ConnectionRefusedError, ConnectionResetError, socket timeouts (asyncpg.connect)
    return isinstance(exc, OSError | TimeoutError)


def _state_exception(state: State[Any]) -> BaseException | None:
    data = state.data
    if isinstance(data, BaseException):
        return data
    inner = getattr(data, "result", None)  # a ResultRecord wrapping the exception
    return inner if isinstance(inner, BaseException) else None


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry transient database errors only."""
    exc = _state_exception(state)
    return exc is not None and is_transient(exc)


#: Options shared by every task: no result caching or persistence, retry transient errors only.
TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": retry_if_transient,
}
RETRY_DELAYS: list[float] = [2.0, 5.0, 15.0]
