"""The API's /metrics page, read with prometheus_client's own text-format parser: the one
/metrics reader of the tests and benchmarks."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, labels) -> value; sample names keep their suffix (`_total`, `_bucket`, ...)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


def metric_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0.0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """label set -> value of the samples called `name`."""
    return {ls: v for (n, ls), v in samples.items() if n == name}


def scrape(base_url: str, timeout: float = 10.0) -> Samples | None:
    """GET {base_url}/metrics and parse it; None when the server does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=timeout) as r:  # noqa: S310
            return parse_metrics(r.read().decode())
    except OSError:
        return None
