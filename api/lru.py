"""The one bounded cache helper of the API: an LRU mapping bounded by entry count and optionally by
total size, with an optional expiry per entry (monotonic clock).

Every per-worker memo uses it: the cache's in-process layer (api/cache.py: entries + bytes + hard
expiry), the raw-URL response memo and the gzip / Accept-Encoding memos (api/http.py), the rate
limiter's buckets, parsed query strings (api/params.py), catalog totals (api/reads.py) and failed
image fetches (api/images.py: expiry).

Why not ``cachetools``: its caches take one bound (``maxsize`` with ``getsizeof``), the local layer
needs two (entries and bytes) plus a per-entry expiry, and a hit is several Python calls deep
(``Cache.__getitem__`` -> ``__touch``); measured in docs/BENCHMARKS.md ("API hot path").
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_NEVER = float("inf")


class LRU(Generic[K, V]):
    """Least recently used entries go first once ``max_entries`` (or ``max_bytes``, counting the
    ``size`` given to ``put``) is exceeded; an entry put with ``ttl`` is gone ``ttl`` seconds
    later (``get`` drops it). ``max_entries`` 0 stores nothing."""

    __slots__ = ("max_entries", "max_bytes", "_items", "_bytes", "_clock", "_on_change")

    def __init__(
        self,
        max_entries: int,
        *,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[LRU[K, V]], None] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: key -> (value, expires at (clock) or inf, size)
        self._items: OrderedDict[K, tuple[V, float, int]] = OrderedDict()
        self._bytes = 0
        self._clock = clock
        #: called after every change of membership (e.g. to export the size as a metric)
        self._on_change = on_change

    def get(self, key: K) -> V | None:
        """The value (now the most recently used), or None when absent or expired."""
        slot = self._items.get(key)
        if slot is None:
            return None
        if slot[1] is not _NEVER and self._clock() >= slot[1]:
            self.pop(key)
            return None
        self._items.move_to_end(key)
        return slot[0]

    def put(self, key: K, value: V, *, ttl: float | None = None, size: int = 0) -> None:
        if self.max_entries <= 0:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[2]
        expires = _NEVER if ttl is None else self._clock() + ttl
        self._items[key] = (value, expires, size)
        self._bytes += size
        items = self._items
        while items and (
            len(items) > self.max_entries
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            _, evicted = items.popitem(last=False)
            self._bytes -= evicted[2]
        if self._on_change is not None:
            self._on_change(self)

    def pop(self, key: K) -> V | None:
        slot = self._items.pop(key, None)
        if slot is None:
            return None
        self._bytes -= slot[2]
        if self._on_change is not None:
            self._on_change(self)
        return slot[0]

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
        if self._on_change is not None:
            self._on_change(self)

    @property
    def bytes(self) -> int:
        """Sum of the ``size`` of the entries held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)
