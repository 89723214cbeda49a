"""One meaning of "blank" in the marts and in the API: the dbt macros (blank_characters via
normalize_categories / trim_blanks) and api.params agree on every Unicode blank.

The SQL side is the macro itself: `dbt compile --inline` renders it, and the rendered expression
runs in Postgres with the test strings bound as a parameter, so nothing is copied from the macro.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata

import asyncpg
import pytest

from api.params import BLANKS, Args, normalize_category, parse_categories
from pricecat.config import Settings
from pricecat.dbt import run_dbt

#: raw category strings as a shop (or a URL) may write them
CATEGORY_STRINGS = [
    "rodinné\u00a0hry",
    "\u00a0Rodinné hry\u00a0",
    "pro\u20072\u2009hráče",
    "Pro\u202f2  hráče",
    "\tPárty\t",
    "karetní\u3000\u205fhry",
    "\ufeffstrategické",
    "a\u2028b\u2029c",
    " \u00a0\u2007\u2009\u202f\t ",
    "x\u1680y\u0085z",
    "Mixed \u00a0\t\u2009 BLANKS\u202f, ,\u00a0,druhá",
    "no-blank",
]

#: every blank alone and between two letters
SINGLE_BLANKS = [f"a{ch}b" for ch in BLANKS] + [f"{ch}x{ch}" for ch in BLANKS] + list(BLANKS)


def _compile(settings: Settings, expression: str) -> str:
    proc = run_dbt(
        settings,
        ["compile", "--inline", f"select {expression} as result", "--output", "json", "--quiet"],
        schema="catalog",
        capture=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    start = proc.stdout.index("{")
    compiled: str = json.loads(proc.stdout[start:])["compiled"]
    return compiled


def _run(settings: Settings, sql: str, values: list[str]) -> list[object]:
    async def go() -> list[object]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return [await conn.fetchval(sql, value) for value in values]
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def sql_normalize_categories(fixture_settings: Settings) -> str:
    return _compile(fixture_settings, "{{ normalize_categories('$1::text') }}")


@pytest.fixture(scope="module")
def sql_trim_blanks_collapse(fixture_settings: Settings) -> str:
    return _compile(fixture_settings, "{{ trim_blanks('$1::text', collapse=true) }}")


def test_the_blank_set_is_the_documented_one() -> None:
    """Hand-written list (issue 10): NBSP, U+2007, U+2009, U+202F, U+1680, U+2000-U+200A,
    U+2028, U+2029, U+205F, U+3000, U+FEFF, U+0085 and the ASCII whitespace."""
    want = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F,
            0x205F, 0x3000, 0xFEFF, *range(0x2000, 0x200B)}
    assert {ord(ch) for ch in BLANKS} == want
    assert len(BLANKS) == len(want)


def test_categories_sql_and_api_agree(
    fixture_settings: Settings, sql_normalize_categories: str
) -> None:
    sql_tags = _run(fixture_settings, sql_normalize_categories, CATEGORY_STRINGS)
    for raw, tags in zip(CATEGORY_STRINGS, sql_tags, strict=True):
        api_tags = list(_api_categories(raw))
        assert tags == api_tags, f"{raw!r}: SQL {tags!r} != API {api_tags!r}"
    # hand-computed anchors, so agreement on a shared mistake cannot pass
    by_raw = dict(zip(CATEGORY_STRINGS, sql_tags, strict=True))
    assert by_raw["rodinné\u00a0hry"] == ["rodinné hry"]
    assert by_raw["pro\u20072\u2009hráče"] == ["pro 2 hráče"]
    assert by_raw["Mixed \u00a0\t\u2009 BLANKS\u202f, ,\u00a0,druhá"] == ["druhá", "mixed blanks"]
    assert by_raw[" \u00a0\u2007\u2009\u202f\t "] == []


def _api_categories(raw: str) -> tuple[str, ...]:
    """The API's parse of ?categories=<raw> (sorted, distinct, blank items dropped)."""
    return parse_categories(Args({"categories": [raw]}, ("categories",)))


def test_every_single_blank_collapses_alike(
    fixture_settings: Settings, sql_trim_blanks_collapse: str
) -> None:
    sql_values = _run(fixture_settings, sql_trim_blanks_collapse, SINGLE_BLANKS)
    wrong = []
    for raw, got in zip(SINGLE_BLANKS, sql_values, strict=True):
        api = normalize_category(raw)
        # normalize_category also lower-cases; the test strings have no upper case
        if got != api:
            name = ", ".join(unicodedata.name(c, hex(ord(c))) for c in raw if c in BLANKS)
            wrong.append(f"{raw!r} ({name}): SQL {got!r}, API {api!r}")
    assert not wrong, "\n".join(wrong)
    assert sql_values[:2] == ["a b", "a b"]
    assert set(sql_values[-len(BLANKS):]) == {""}
