"""The one process/port helper (bench/procs.py), the one /metrics reader (bench/prom.py) and the
one percentile (bench/common.py) that the tests and benchmarks share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.common import percentile
from bench.procs import (
    Service,
    ServiceError,
    free_port,
    http_status,
    port_open,
    wait_for_port,
    wait_until,
)
from bench.prom import metric_sum, parse_metrics, series


def test_percentile_is_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]  # the textbook nearest-rank example
    assert percentile(values, 5) == 15.0
    assert percentile(values, 30) == 20.0
    assert percentile(values, 40) == 20.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 100) == 50.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile(list(map(float, range(1, 101))), 99) == 99.0
    with pytest.raises(ValueError):
        percentile([], 50)


EXPOSITION = '''# HELP pricecat_http_requests_total Requests.
# TYPE pricecat_http_requests_total counter
pricecat_http_requests_total{route="/healthz",status="200"} 40.0
pricecat_http_requests_total{route="/api/v1/catalog",status="200"} 7.0
pricecat_http_requests_total{route="/api/v1/catalog",status="400"} 2.0
# HELP pricecat_worker_up Worker alive.
# TYPE pricecat_worker_up gauge
pricecat_worker_up{pid="101"} 1.0
pricecat_worker_up{pid="102"} 1.0
# HELP pricecat_http_request_duration_seconds Latency.
# TYPE pricecat_http_request_duration_seconds histogram
pricecat_http_request_duration_seconds_bucket{le="0.1",route="/healthz"} 39.0
pricecat_http_request_duration_seconds_bucket{le="+Inf",route="/healthz"} 40.0
pricecat_http_request_duration_seconds_count{route="/healthz"} 40.0
pricecat_http_request_duration_seconds_sum{route="/healthz"} 0.5
# HELP pricecat_db_errors_total Errors.
# TYPE pricecat_db_errors_total counter
pricecat_db_errors_total{kind="timeout",query="say \\"hi\\", then {go}"} 3.0
# HELP pricecat_data_age_seconds Age.
# TYPE pricecat_data_age_seconds gauge
pricecat_data_age_seconds 12.5
'''


def test_metrics_are_read_with_prometheus_clients_parser() -> None:
    samples = parse_metrics(EXPOSITION)
    assert metric_sum(samples, "pricecat_http_requests_total") == 49.0
    assert metric_sum(samples, "pricecat_http_requests_total", route="/api/v1/catalog") == 9.0
    assert metric_sum(samples, "pricecat_http_requests_total", status="400") == 2.0
    assert metric_sum(samples, "pricecat_http_requests_total", route="/nowhere") == 0.0
    assert {dict(ls)["pid"] for ls in series(samples, "pricecat_worker_up")} == {"101", "102"}
    assert metric_sum(samples, "pricecat_http_request_duration_seconds_bucket", le="+Inf") == 40
    assert metric_sum(samples, "pricecat_data_age_seconds") == 12.5
    # an escaped quote, a comma and braces inside a label value stay one label
    assert metric_sum(samples, "pricecat_db_errors_total", query='say "hi", then {go}') == 3.0


SERVER = """
import http.server, sys, time
time.sleep(float(sys.argv[2]))
print("listening", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
                                http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_service_waits_for_http_and_stops_its_process_group(tmp_path: Path) -> None:
    port = free_port()
    assert not port_open(port)
    # the server only listens after 1 s: the wait must really wait
    svc = Service("toy", [sys.executable, "-c", SERVER, str(port), "1"], tmp_path / "toy.log",
                  cwd=tmp_path)
    with svc.start():
        svc.wait_http(f"http://127.0.0.1:{port}/", timeout=30)
        wait_for_port("127.0.0.1", port, timeout=1)
        assert http_status(f"http://127.0.0.1:{port}/missing") == 404
        assert "listening" in svc.log()
        pid = svc.pid
    assert not svc.alive()
    assert not Path(f"/proc/{pid}").exists()
    assert http_status(f"http://127.0.0.1:{port}/") is None


def test_stop_leaves_no_child_behind(tmp_path: Path) -> None:
    # a leader that ignores SIGTERM and has a child: SIGKILL to the group after the timeout
    code = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(c.pid, flush=True)\n"
            "time.sleep(60)\n")
    svc = Service("stubborn", [sys.executable, "-c", code], tmp_path / "s.log").start()
    wait_until(lambda: svc.log().strip().isdigit(), 30, what="child pid")
    child = int(svc.log().strip())
    svc.stop(timeout=0.5)
    wait_until(lambda: not _running(child), 10, what="child gone")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def test_early_exit_fails_fast_with_the_log(tmp_path: Path) -> None:
    svc = Service("broken", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
                  tmp_path / "b.log").start()
    with pytest.raises(ServiceError, match=r"(?s)exited with 3.*bad config"):
        svc.wait_http(f"http://127.0.0.1:{free_port()}/", timeout=60)
    svc.stop()


def test_wait_until_times_out() -> None:
    with pytest.raises(TimeoutError, match="nothing"):
        wait_until(lambda: False, 0.3, what="nothing")
