"""JSON encoding of database values: numerics as JSON numbers, timestamps as UTC ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson


def money(value: Decimal | None) -> float | None:
    """numeric(12,2) -> JSON number (exact for 2-decimal prices in this range)."""
    return None if value is None else float(value)


def timestamp(value: datetime | None) -> str | None:
    """timestamptz -> ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC), like the marts' price_points."""
    if value is None:
        return None
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)
