"""A source the refresh cannot build from, for the failed-run tests of tests/flows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pricecat.config import Settings
from tests import helpers


@contextmanager
def broken_source(settings: Settings) -> Iterator[None]:
    """The raw table without the column `availability` (renamed): the staging model fails, so
    a build fails; bad raw rows cannot do that (they are quarantined). Restored afterwards."""
    helpers.fetch(
        settings,
        "alter table public.product_price_snapshots rename column availability to availability_x",
    )
    try:
        yield
    finally:
        helpers.fetch(
            settings,
            "alter table public.product_price_snapshots"
            " rename column availability_x to availability",
        )
