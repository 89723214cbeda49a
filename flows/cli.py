"""`pricecat refresh`: run the flow once in the foreground with readable progress lines."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from prefect.client.schemas.objects import State

from flows.db import using_settings
from pricecat.config import Settings
from pricecat.priority import lower_process_priority, refresh_nice


class _RunLogFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL [task-run name] message`: Prefect's run names, no logger noise."""

    def format(self, record: logging.LogRecord) -> str:
        who = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        stamp = self.formatTime(record, "%H:%M:%S")
        text = f"{stamp} {record.levelname:<7} " + (f"[{who}] " if who else "")
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_cli_logging() -> None:
    """Readable foreground progress: one line per step or dbt line, HTTP chatter hidden."""
    for noisy in ("httpx", "httpcore", "prefect.events", "prefect._internal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # the CLI's own console handler only
            handler.setFormatter(_RunLogFormatter())


def _describe_result(state: State[Any]) -> str:
    try:
        summary = state.result(raise_on_failure=False)
    except Exception:  # the result is only a nicety here
        return "completed"
    if not isinstance(summary, dict):
        return "completed"
    rows = ", ".join(f"{k} {v}" for k, v in (summary.get("mart_rows") or {}).items())
    return (
        f"published (run {summary.get('run_id')}, {summary.get('duration_seconds')} s; {rows};"
        f" generation {summary.get('generation')})"
    )


def run_refresh(settings: Settings, *, full: bool = False) -> State[Any]:
    """Run the flow once in this process (ephemeral Prefect or PREFECT_API_URL); its final state.
    `full` rebuilds the incremental state from the whole history."""
    from flows.refresh import refresh_catalog

    with using_settings(settings):
        state: State[Any] = asyncio.run(
            refresh_catalog(full=full, return_state=True)  # type: ignore[arg-type]
        )
    return state


def run_refresh_cli(settings: Settings, args: Any = None) -> int:
    """`pricecat refresh [--full]`: 0 when published, skipped or a no-op, 1 when the run failed."""
    configure_cli_logging()
    # batch work: the API wins the CPU; Prefect's temporary server and dbt inherit the niceness
    lower_process_priority(refresh_nice())
    state = run_refresh(settings, full=bool(getattr(args, "full", False)))
    if state.is_completed():
        print(f"pricecat refresh: {state.message or _describe_result(state)}", file=sys.stderr)
        return 0
    print(f"pricecat refresh: FAILED ({state.type.value}): {state.message}", file=sys.stderr)
    return 1
