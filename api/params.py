"""Query-parameter parsing and validation for /api/v1 (HTTP-level, no I/O).

Policy (documented in the OpenAPI descriptions too):
- an unknown query parameter -> 400 ``unknown_parameter`` naming it (typos never silently change
  the answer, and they cannot create new cache keys);
- a repeated parameter (``?page=1&page=2``) -> 400 ``repeated_parameter``;
- an empty value (``?min_price=``) counts as absent (HTML forms send empty fields);
- every other problem -> 400 ``invalid_parameter`` with ``details.parameter`` naming it.

The parsed objects (``api.filters``: the query side imports those, never this module) are
canonical: defaults filled in, ``q`` normalized, categories sorted and
de-duplicated, prices quantized, so equal queries produce equal cache keys.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from api.errors import InvalidParameter

# re-exported for callers of the parser (api/reads.py, tests/api/test_params.py)
from api.filters import CatalogFilters
from api.filters import CatalogQuery as CatalogQuery
from api.filters import SuggestQuery as SuggestQuery
from api.filters import like_escape as like_escape
from api.lru import LRU

T = TypeVar("T")

AVAILABILITY = ("any", "available", "preorder", "unavailable")
SORTS = ("name", "price_asc", "price_desc", "newest", "relevance")
SLUG_RE = re.compile(r"[a-z0-9-]{1,200}")
MAX_PAGE = 100_000
MAX_PRICE = Decimal("9999999999.99")  # numeric(12,2)
MAX_Q = 100
MAX_CATEGORIES = 20
MAX_CATEGORY_LENGTH = 100

#: Characters NFKD does not decompose but PostgreSQL's unaccent maps (same result as the mart).
_EXTRA_UNACCENT = str.maketrans(
    {
        "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss", "æ": "ae",
        "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T",
    }
)
#: Blanks, the twin of the dbt macro ``blank_characters`` (tests/models/test_blanks.py checks that
#: both normalize alike): tab, LF, VT, FF, CR, space, U+0085, NBSP, U+1680, U+2000-U+200A,
#: U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF. Python's ``\s`` differs (it misses U+FEFF and
#: adds U+001C-U+001F), so the set is spelled out.
BLANKS = (
    "\t\n\v\f\r \u0085\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_WS_RE = re.compile(f"[{re.escape(BLANKS)}]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def unaccent(text: str) -> str:
    """Python twin of PostgreSQL ``unaccent`` for Latin text (Czech included)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA_UNACCENT))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_search(text: str) -> str:
    """trim, collapse blanks, lower-case, unaccent: the form of the mart's ``search_text``."""
    return _WS_RE.sub(" ", unaccent(text).lower()).strip(" ")


def normalize_category(text: str) -> str:
    """A category as the marts store it (dbt macro ``normalize_categories``): blanks collapsed to
    one space, trimmed, lower-case."""
    return _WS_RE.sub(" ", text).strip(" ").lower()


class Args:
    """Read access to one request's query string enforcing the policy above."""

    def __init__(self, raw: Mapping[str, Sequence[str]], allowed: Iterable[str]) -> None:
        # items() of Sanic's RequestParameters yields the full value lists (its get() does not)
        self._raw: dict[str, list[str]] = {k: list(v) for k, v in raw.items()}
        allowed_set = set(allowed)
        unknown = sorted(k for k in raw if k not in allowed_set)
        if unknown:
            raise InvalidParameter(
                f"Unknown query parameter '{unknown[0]}'",
                code="unknown_parameter",
                details={"parameter": unknown[0], "allowed": sorted(allowed_set)},
            )
        for key, values in self._raw.items():
            if len(values) > 1:
                raise InvalidParameter(
                    f"Query parameter '{key}' given more than once",
                    code="repeated_parameter",
                    details={"parameter": key},
                )

    def get(self, name: str) -> str | None:
        values = self._raw.get(name)
        if not values:
            return None
        value = values[0]
        if _CONTROL_RE.search(value):
            raise bad(name, "must not contain control characters", value)
        return value if value != "" else None


def bad(name: str, problem: str, value: Any = None) -> InvalidParameter:
    details: dict[str, Any] = {"parameter": name}
    if value is not None:
        details["value"] = value if not isinstance(value, str) else value[:200]
    return InvalidParameter(f"Invalid query parameter '{name}': {problem}", details=details)


def parse_int(args: Args, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not re.fullmatch(r"[+]?\d{1,9}", text):
        raise bad(name, f"must be an integer between {low} and {high}", raw)
    value = int(text)
    if not low <= value <= high:
        raise bad(name, f"must be an integer between {low} and {high}", raw)
    return value


def parse_price(args: Args, name: str) -> Decimal | None:
    raw = args.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not re.fullmatch(r"\d{1,10}(\.\d{0,2})?", text):
        raise bad(name, "must be a number >= 0 with at most 2 decimal places", raw)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards
        raise bad(name, "must be a number", raw) from exc
    if value > MAX_PRICE:
        raise bad(name, f"must be at most {MAX_PRICE}", raw)
    return value.quantize(Decimal("0.01"))


def parse_choice(args: Args, name: str, choices: Sequence[str], default: str | None) -> str | None:
    raw = args.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise bad(name, "must be one of " + ", ".join(choices), raw)
    return value


def parse_q(args: Args, name: str = "q", *, required: bool = False) -> str | None:
    raw = args.get(name)
    value = normalize_search(raw) if raw is not None else ""
    if not value:
        if required:
            raise bad(name, f"is required (1-{MAX_Q} characters)", raw)
        return None
    if len(value) > MAX_Q:
        raise bad(name, f"must be at most {MAX_Q} characters", raw)
    return value


def parse_categories(args: Args, name: str = "categories") -> tuple[str, ...]:
    raw = args.get(name)
    if raw is None:
        return ()
    items = sorted({normalize_category(part) for part in raw.split(",")} - {""})
    if len(items) > MAX_CATEGORIES:
        raise bad(name, f"at most {MAX_CATEGORIES} categories", raw)
    for item in items:
        if len(item) > MAX_CATEGORY_LENGTH:
            raise bad(name, f"each category must be at most {MAX_CATEGORY_LENGTH} characters", raw)
    return tuple(items)


def parse_slug(raw: str) -> str:
    if not SLUG_RE.fullmatch(raw):
        raise InvalidParameter(
            "Invalid path parameter 'slug': lower-case letters, digits and '-', 1-200 characters",
            details={"parameter": "slug", "value": raw[:200]},
        )
    return raw


CATALOG_PARAMS = (
    "page", "page_size", "availability", "min_price", "max_price", "categories", "q", "sort",
)


def parse_catalog(raw: Mapping[str, Sequence[str]]) -> CatalogQuery:
    args = Args(raw, CATALOG_PARAMS)
    page = parse_int(args, "page", 1, 1, MAX_PAGE)
    page_size = parse_int(args, "page_size", 24, 1, 100)
    availability = parse_choice(args, "availability", AVAILABILITY, "any") or "any"
    min_price = parse_price(args, "min_price")
    max_price = parse_price(args, "max_price")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidParameter(
            "Invalid query parameter 'min_price': must be less than or equal to max_price",
            details={"parameter": "min_price", "value": str(min_price),
                     "max_price": str(max_price)},
        )
    categories = parse_categories(args)
    q = parse_q(args)
    sort = parse_choice(args, "sort", SORTS, None)
    if sort is None:
        sort = "relevance" if q else "name"
    elif sort == "relevance" and not q:
        sort = "name"  # relevance without a query has nothing to rank by
    filters = CatalogFilters(availability, min_price, max_price, categories, q, sort)
    return CatalogQuery(filters=filters, page=page, page_size=page_size)


def parse_suggest(raw: Mapping[str, Sequence[str]]) -> SuggestQuery:
    args = Args(raw, ("q", "availability", "limit"))
    q = parse_q(args, required=True)
    assert q is not None
    availability = parse_choice(args, "availability", AVAILABILITY, "any") or "any"
    limit = parse_int(args, "limit", 8, 1, 20)
    return SuggestQuery(q=q, availability=availability, limit=limit)


def parse_recent(raw: Mapping[str, Sequence[str]]) -> int:
    args = Args(raw, ("limit",))
    return parse_int(args, "limit", 100, 1, 500)


def parse_none(raw: Mapping[str, Sequence[str]]) -> None:
    Args(raw, ())


class ParseMemo(Generic[T]):
    """Remembers successful parses by raw query string: hot queries repeat, and parsing +
    hashing costs more than the in-process cache hit itself. Errors are never memoized."""

    def __init__(self, parse: Callable[[Mapping[str, Sequence[str]]], T], size: int = 4096):
        self._parse = parse
        self._memo: LRU[str, T] = LRU(size)

    def __call__(
        self, query_string: str, raw: Callable[[], Mapping[str, Sequence[str]]]
    ) -> T:
        found = self._memo.get(query_string)
        if found is not None:
            return found
        parsed = self._parse(raw())
        self._memo.put(query_string, parsed)
        return parsed
