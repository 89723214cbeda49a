"""What a parsed request asks for: the types the HTTP parser (``api.params``) builds and the
query side (``api.reads``, ``api.queries``) consumes. No parsing and no HTTP here, so
``api/queries`` never imports the parser."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from api.encoding import dumps


def like_escape(text: str) -> str:
    """Escape LIKE metacharacters (backslash is PostgreSQL's default LIKE escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class CatalogFilters:
    """Everything but pagination; its canonical JSON hashes into the cache key."""

    availability: str
    min_price: Decimal | None
    max_price: Decimal | None
    categories: tuple[str, ...]
    q: str | None
    sort: str
    _hash: list[str] = field(default_factory=list, compare=False, repr=False)

    def canonical(self) -> dict[str, Any]:
        return {
            "availability": self.availability,
            "categories": list(self.categories),
            "max_price": None if self.max_price is None else str(self.max_price),
            "min_price": None if self.min_price is None else str(self.min_price),
            "q": self.q,
            "sort": self.sort,
        }

    def filters_hash(self) -> str:
        if not self._hash:  # computed once per parsed query (parses are memoized)
            payload = dumps(self.canonical())  # orjson: stable key order as written above
            self._hash.append(hashlib.sha256(payload).hexdigest()[:20])
        return self._hash[0]


@dataclass(frozen=True)
class CatalogQuery:
    filters: CatalogFilters
    page: int
    page_size: int


@dataclass(frozen=True)
class SuggestQuery:
    q: str
    availability: str
    limit: int
