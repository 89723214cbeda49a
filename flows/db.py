"""The settings a flow run uses, and its database connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from pricecat.config import Settings

_override: Settings | None = None


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Run the flow in this process against `settings` instead of the environment.

    The flow takes no parameters on purpose: a database URL (with its password) would otherwise be
    stored with every flow run in Prefect's database. Served deployments read the environment.
    """
    global _override
    previous, _override = _override, settings
    try:
        yield
    finally:
        _override = previous


def current_settings() -> Settings:
    return _override if _override is not None else Settings.from_env()


async def connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(
        settings.database_url,
        timeout=10,
        server_settings={"application_name": "pricecat-refresh"},
    )

