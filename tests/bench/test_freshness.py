"""bench/bench_freshness.py's pure logic: probes, matching an API answer, the freshness summary
and its split at the publish, the goal verdicts. Values computed by hand."""

from __future__ import annotations

import math
from decimal import Decimal

from bench.bench_freshness import (
    Probe,
    ProbeBook,
    offer_price,
    publish_before,
    summarize,
    verdicts,
)


def test_one_pending_probe_per_listing_and_superseding() -> None:
    book = ProbeBook()
    first = Probe("catan", "tlamagames", Decimal("999.00"), committed=10.0)
    assert book.add(first)
    # the same listing again while the first is pending: not tracked
    assert not book.add(Probe("catan", "tlamagames", Decimal("899.00"), committed=12.0))
    # another listing of the same slug is
    other = Probe("catan", "ihrys", Decimal("1009.00"), committed=12.0)
    assert book.add(other)
    # a newer row with the same price keeps the probe; another price (or NULL) supersedes it
    book.written("catan", "tlamagames", Decimal("999"))
    assert not first.superseded and ("catan", "tlamagames") in book.pending
    book.written("catan", "ihrys", None)
    assert other.superseded and ("catan", "ihrys") not in book.pending
    book.seen(other, 50.0)  # too late: superseded probes are never seen
    assert other.seen is None
    book.seen(first, 42.5)
    assert first.freshness == 32.5
    assert book.done()
    # the listing is free again
    assert book.add(Probe("catan", "tlamagames", Decimal("949.00"), committed=60.0))
    assert len(book.probes) == 3


def test_offer_price_reads_the_sellers_current_price() -> None:
    body = {
        "slug": "catan",
        "sellers": [
            {"seller": "tlamagames", "current_price": 1299.9},
            {"seller": "ihrys", "current_price": None},
        ],
    }
    assert offer_price(body, "tlamagames") == Decimal("1299.90")
    assert offer_price(body, "ihrys") is None
    assert offer_price(body, "planetaher") is None
    assert offer_price({"sellers": None}, "tlamagames") is None


def test_publish_before() -> None:
    publishes = [10.0, 20.0, 30.0]
    assert publish_before(publishes, 25.0) == 20.0
    assert publish_before(publishes, 30.0) == 30.0
    assert publish_before(publishes, 5.0) is None
    assert publish_before([], 5.0) is None


def test_summary_counts_unseen_probes_as_infinitely_late() -> None:
    a = Probe("a", "s", Decimal(1), committed=0.0, seen=40.0)
    b = Probe("b", "s", Decimal(1), committed=10.0, seen=100.0)
    unseen = Probe("c", "s", Decimal(1), committed=0.0)
    dropped = Probe("d", "s", Decimal(1), committed=0.0, superseded=True)
    s = summarize([a, b, unseen, dropped], publishes=[35.0, 95.0])
    assert (s.probes, s.seen, s.unseen, s.superseded) == (4, 2, 1, 1)
    # freshness values 40, 90, inf: nearest rank p50 = 2nd, p95 = 3rd
    assert s.p50 == 90.0
    assert s.p95 == math.inf
    assert s.max == math.inf
    # a showed after the publish at 35, b after the one at 95
    assert s.to_publish == [35.0, 85.0]
    assert s.to_api == [5.0, 5.0]
    assert verdicts(s, reader_errors=0) == [
        ("p95 <= 90 s", False), ("max <= 120 s", False), ("readers: 0 errors", True),
    ]


def test_goals() -> None:
    def probes(values: list[float]) -> list[Probe]:
        return [Probe(str(i), "s", Decimal(1), committed=0.0, seen=v)
                for i, v in enumerate(values)]

    # 20 values 1..19 and 91: p95 = the 19th (19 s), max 91 s
    s = summarize(probes([*map(float, range(1, 20)), 91.0]), publishes=[])
    assert (s.p50, s.p95, s.max) == (10.0, 19.0, 91.0)
    assert s.to_publish == []  # no publish seen: no split
    assert verdicts(s, 0) == [
        ("p95 <= 90 s", True), ("max <= 120 s", True), ("readers: 0 errors", True),
    ]
    # four values: p95 = the 4th
    s = summarize(probes([30.0, 60.0, 89.0, 91.0]), publishes=[])
    assert s.p95 == 91.0
    assert verdicts(s, 3) == [
        ("p95 <= 90 s", False), ("max <= 120 s", True), ("readers: 0 errors", False),
    ]
    s = summarize(probes([30.0, 60.0, 89.0, 121.0]), publishes=[])
    assert verdicts(s, 0)[1] == ("max <= 120 s", False)
    # no probe at all meets nothing
    assert verdicts(summarize([], []), 0)[:2] == [("p95 <= 90 s", False), ("max <= 120 s", False)]
