"""Fault tests on the real topology (scripts/cluster.sh): a streaming replica, nginx, two API
instances reading the replica, one Redis. Marker `cluster`, excluded by default (needs root for
`runuser -u postgres`, nginx, and ~2 minutes): `pytest -m cluster tests/cluster`.

The fixture brings a cluster up on free ports with its own state directory, replication slot and
Redis, over a throwaway database holding the hand-made fixture and its built marts; `down` at the
end. Streams of requests go through nginx's port without the micro-cache (CLUSTER_NOCACHE_PORT)
so that every request reaches an API instance."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.cache import Entry
from bench.procs import free_port
from pricecat.config import Settings, parse_database_url
from tests import helpers

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.sh"
PG_BIN = "/usr/lib/postgresql/15/bin"
SLUG = "azul"


@dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    state: Path
    http: str  # nginx with the micro-cache
    nocache: str  # nginx, same upstreams, no micro-cache
    replica_port: int
    redis_port: int

    def sh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
            check=check, timeout=300,
        )

    def status(self) -> dict[str, dict[str, Any]]:
        out = json.loads(self.sh("status", "--json").stdout)
        return {c["name"]: c for c in out["components"]}

    def pid(self, name: str) -> int:
        return int((self.state / "run" / f"{name}.pid").read_text())

    def replica_sql(self, sql: str) -> str:
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.replica_port), "-U", "postgres", "-XAtq",
             "-d", parse_database_url(self.settings.database_url).dbname, "-c", sql],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D",
             str(self.state / "replica"), "-w", *args],
            check=True, capture_output=True, timeout=120,
        )


@pytest.fixture(scope="module")
def cluster(base_settings: Settings) -> Iterator[Cluster]:
    from tests.fixtures.snapshots import ROWS

    if os.geteuid() != 0:
        pytest.skip("the cluster tests run the replica as the postgres OS user (root needed)")
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_cl"))
    helpers.create_database(settings)
    ports = {k: free_port() for k in ("http", "nocache", "replica", "redis")}
    # under the repo (gitignored), not /tmp/pytest-of-root: the postgres user must reach it
    state = REPO / f".cluster-test-{ports['replica']}"
    state.mkdir()
    env = {
        **os.environ,
        "CLUSTER_DIR": str(state),
        "CLUSTER_DATABASE": parse_database_url(settings.database_url).dbname,
        "CLUSTER_HTTP_PORT": str(ports["http"]),
        "CLUSTER_NOCACHE_PORT": str(ports["nocache"]),
        "CLUSTER_REPLICA_PORT": str(ports["replica"]),
        "CLUSTER_REDIS_PORT": str(ports["redis"]),
        "CLUSTER_REPLICATION_SLOT": f"pricecat_test_{ports['replica']}",
        "CLUSTER_PREFECT": "0",
        "API_DB_POOL_MAX": "4",
        "API_DB_POOL_MIN": "1",
    }
    c = Cluster(settings, env, state, f"http://127.0.0.1:{ports['http']}",
                f"http://127.0.0.1:{ports['nocache']}", ports["replica"], ports["redis"])
    try:
        helpers.load_rows(settings, ROWS)
        helpers.dbt_build_into(settings, "catalog")
        up = c.sh("up", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        _wait(lambda: all(x["healthy"] for x in c.status().values()), 60, "cluster healthy")
        yield c
    finally:
        c.sh("down", check=False)
        shutil.rmtree(state, ignore_errors=True)
        helpers.drop_database(settings)


def _wait(cond: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (httpx.HTTPError, subprocess.SubprocessError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Stream:
    """Clients sending GETs (a product, catalog pages) in a loop; every status is counted."""

    PATHS = (
        f"/api/v1/products/{SLUG}",
        "/api/v1/catalog?page=1&page_size=24",
        "/api/v1/catalog?page=2&page_size=24&sort=price_asc",
        "/api/v1/meta/categories",
    )

    def __init__(self, base: str, clients: int = 4) -> None:
        self.base = base
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, i: int) -> None:
        n = i
        with httpx.Client(base_url=self.base, timeout=15) as client:
            while not self._stop.is_set():
                path = self.PATHS[n % len(self.PATHS)]
                n += 1
                try:
                    r = client.get(path)
                    self.statuses[str(r.status_code)] += 1
                    if r.status_code != 200:
                        self.errors.append(f"{path}: {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.statuses["exception"] += 1
                    self.errors.append(f"{path}: {exc!r}")

    def __enter__(self) -> Stream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_status_lists_every_component_healthy_and_the_api_reads_the_replica(
    cluster: Cluster,
) -> None:
    status = cluster.status()
    assert {"nginx", "api-1", "api-2", "replica", "primary", "redis"} <= set(status)
    assert all(c["healthy"] for c in status.values()), status
    assert all(isinstance(status[n]["pid"], int) for n in ("nginx", "api-1", "api-2", "replica"))
    ready = httpx.get(cluster.http + "/readyz").json()
    assert ready["status"] == "ready"
    assert ready["role"] == "replica"
    # 0 once the replica has replayed everything it received. The primary is shared (other
    # databases, other test runs): a long transaction elsewhere streams WAL with no commit, and
    # until the replica has replayed it the lag is the time since the last replayed commit.
    _wait(lambda: httpx.get(cluster.http + "/readyz").json()["replay_lag_seconds"] == 0, 60,
          "the replica caught up (replay_lag_seconds 0)")


def test_an_instance_killed_under_load_loses_no_request(cluster: Cluster) -> None:
    with Stream(cluster.nocache, clients=6) as stream:
        time.sleep(1.5)
        os.killpg(cluster.pid("api-1"), signal.SIGKILL)
        time.sleep(3)
    assert stream.statuses["200"] > 50, stream.statuses
    assert set(stream.statuses) == {"200"}, (stream.statuses, stream.errors[:5])
    cluster.sh("up")  # brings api-1 back
    assert cluster.status()["api-1"]["healthy"]


def test_replica_stopped_reads_fall_back_to_the_primary(cluster: Cluster) -> None:
    api = cluster.status()["api-2"]["url"]
    try:
        with Stream(cluster.nocache) as stream:
            time.sleep(1)
            cluster.pg_ctl("stop", "-m", "fast")
            time.sleep(3)
        assert set(stream.statuses) == {"200"}, (stream.statuses, stream.errors[:5])
        ready = httpx.get(api + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded", ready.json()
        assert ready.json()["role"] == "primary"
        assert ready.json()["checks"]["database_target"]["ok"] is False
    finally:
        cluster.pg_ctl("start", "-l", str(cluster.state / "logs" / "replica.log"))
    # back on the replica once it answers (probed every 5 s)
    _wait(lambda: httpx.get(api + "/readyz").json()["role"] == "replica", 20, "back on replica")
    assert httpx.get(api + "/readyz").json()["status"] == "ready"


def _product_name(body: bytes) -> str:
    return str(json.loads(body)["name"])


def test_a_lagging_replica_never_caches_older_data_than_its_generation(cluster: Cluster) -> None:
    """recovery_min_apply_delay = 30 s on the replica; a publish on the primary (new build id +
    new product name in one transaction) must not show through the replica's API before it is
    replayed, and afterwards every cache key holds exactly its own build's data."""
    api = cluster.status()["api-1"]["url"]
    before = httpx.get(f"{api}/api/v1/products/{SLUG}").json()["name"]
    gen_before = httpx.get(api + "/readyz").json()["generation"]
    new_name = before + " (nové vydání)"
    cluster.replica_sql("alter system set recovery_min_apply_delay = '30s'")
    cluster.replica_sql("select pg_reload_conf()")
    try:
        time.sleep(0.5)
        helpers.fetch(
            cluster.settings,
            """
            with renamed as (
                update catalog.catalog_slug_summary set name = $1 where slug = $2 returning 1
            )
            update catalog.catalog_build_info
            set previous_build_id = build_id, build_id = nextval('catalog_ops.build_ids')
            where (select count(*) from renamed) = 1
            """,
            new_name, SLUG,
        )
        gen_new = int(helpers.fetch(
            cluster.settings, "select build_id from catalog.catalog_build_info")[0]["build_id"])
        assert gen_new > gen_before
        # 4 s: the API reads the replica, which has not replayed the publish
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            ready = httpx.get(api + "/readyz").json()
            assert ready["generation"] == gen_before
            for base in (api, cluster.http):
                assert httpx.get(f"{base}/api/v1/products/{SLUG}").json()["name"] == before
            time.sleep(0.2)
        assert ready["replay_lag_seconds"] > 0
    finally:
        cluster.replica_sql("alter system reset recovery_min_apply_delay")
        cluster.replica_sql("select pg_reload_conf()")
    _wait(lambda: httpx.get(api + "/readyz").json()["generation"] == gen_new, 40, "replay")
    # through nginx: + the cache generation's hold (1 s check + 0.5 s) + its 1 s validity
    _wait(lambda: httpx.get(f"{cluster.http}/api/v1/products/{SLUG}").json()["name"] == new_name,
          8, "the new name through nginx")
    # every cached product entry holds its own build's data
    r = redis.Redis(port=cluster.redis_port)
    seen = {}
    for key in r.scan_iter(match=f"*:product:{SLUG}"):
        generation = int(key.decode().split(":g")[1].split(":")[0])
        entry = Entry.decode(r.get(key) or b"", 60)
        seen[generation] = _product_name(entry.body)
    assert seen.get(gen_before) == before, seen
    assert seen.get(gen_new) == new_name, seen
    assert set(seen) <= {gen_before, gen_new}, seen


def _publish_renamed(cluster: Cluster, name: str) -> int:
    """One transaction on the primary: the product's new name + a new build id (a publish)."""
    helpers.fetch(
        cluster.settings,
        """
        with renamed as (
            update catalog.catalog_slug_summary set name = $1 where slug = $2 returning 1
        )
        update catalog.catalog_build_info
        set previous_build_id = build_id, build_id = nextval('catalog_ops.build_ids')
        where (select count(*) from renamed) = 1
        """,
        name, SLUG,
    )
    return int(helpers.fetch(
        cluster.settings, "select build_id from catalog.catalog_build_info")[0]["build_id"])


def test_the_micro_cache_shows_a_publish_and_never_keys_old_data_by_a_new_generation(
    cluster: Cluster,
) -> None:
    """nginx keys its cache by the newest data generation an API instance reports (polled every
    0.25 s; X-Pricecat-Cache-Generation names the key's): after a publish every answer nginx
    gives from its cache under the new generation holds the new data, the old data from the
    cache only ever under the old generation, never again once the new data showed, and the new
    data shows through nginx within a poll of the first API instance answering it. The warm key
    never reaches Python in the client's request: the previous build's entry answers until the
    background fill has stored the new build's answer."""
    status = cluster.status()
    apis = [status["api-1"]["url"], status["api-2"]["url"]]
    url = f"/api/v1/products/{SLUG}"
    with httpx.Client(base_url=cluster.http, timeout=10) as nginx:
        gen_before = httpx.get(apis[0] + "/readyz").json()["generation"]
        # warm: cached by nginx under the current generation
        _wait(lambda: nginx.get(url).headers.get("x-pricecat-cache-generation")
              == str(gen_before) and nginx.get(url).headers["x-cache-nginx"] == "HIT",
              10, "a cache hit under the current generation")
        before = nginx.get(url).json()["name"]
        new_name = before + " (micro)"
        gen_new = _publish_renamed(cluster, new_name)
        assert gen_new > gen_before
        started = time.monotonic()
        seen: list[tuple[float, str, str, str]] = []  # (t, name, cache generation, X-Cache-Nginx)
        api_new_at = None
        while time.monotonic() - started < 12:
            t = time.monotonic() - started
            if api_new_at is None and any(
                httpx.get(a + url).json()["name"] == new_name for a in apis
            ):
                api_new_at = t
            r = nginx.get(url)
            assert r.status_code == 200, r.text
            seen.append((t, r.json()["name"], r.headers.get("x-pricecat-cache-generation", ""),
                         r.headers["x-cache-nginx"]))
            if api_new_at is not None and seen[-1][1] == new_name and t > api_new_at + 4:
                break
            time.sleep(0.05)
    assert api_new_at is not None, "the API instances never answered the new build"
    for t, name, gen, cached in seen:
        assert gen in (str(gen_before), str(gen_new)), (t, name, gen, cached)
        if gen == str(gen_before):
            assert name == before, (t, name, gen, cached)
        elif cached != "MISS":
            # never the old data from the cache under the new generation's key (a MISS may be a
            # lagging instance's older answer, passed through and not stored)
            assert name == new_name, (t, name, gen, cached)
    first_new = next(t for t, name, _, _ in seen if name == new_name)
    # a warm key turns over without a request waiting on Python: the previous build's entry
    # answers (HIT under the old generation) until the background fill has stored the new
    # build's answer, which is then a HIT too (deploy/nginx/micro-cache-http.conf, the hold)
    assert all(cached == "HIT" for _, _, _, cached in seen), seen
    # once the new data showed, never the old again
    assert all(name == new_name for t, name, _, _ in seen if t >= first_new), seen
    # the poll interval (0.25 s) + one poll's round trips + this loop's own requests to both
    # instances (api_new_at is taken before nginx is asked), on a loaded machine
    assert first_new - api_new_at <= 1.0, (api_new_at, first_new)
    # and the new generation is served from nginx's cache again
    assert seen[-1][3] == "HIT", seen[-5:]
    # the hold ends once no request has needed the previous build for
    # CLUSTER_PUBLISH_HOLD_IDLE_SECONDS (5 s), long before its 180 s bound
    error_log = cluster.state / "nginx" / "error.log"
    ended = re.compile(rf"publish hold of build {gen_before} ended after ([\d.]+) s")
    _wait(lambda: ended.search(error_log.read_text()), 15, "the end of the publish's hold")
    assert f"publish hold of build {gen_before} began: build {gen_new} taken" in (
        error_log.read_text())
    match = ended.search(error_log.read_text())
    assert match and float(match.group(1)) < 30, match


def test_a_lagging_instances_answers_pass_through_and_are_never_stored_under_a_newer_build(
    cluster: Cluster,
) -> None:
    """api-1 reads the primary, api-2 the replica with recovery_min_apply_delay = 30 s: after a
    publish nginx keys by the new build (api-1 reports it) while api-2 still answers the old
    one. Misses and background fills alternate between the instances (round robin): api-2's old
    answers reach the client but are never stored under the new build's key (their
    X-Pricecat-Generation is not the key's), so every hit under it holds the new data; a key
    not filled yet is answered under the old build's key, with the old data."""
    status = cluster.status()
    port = int(status["api-1"]["url"].rsplit(":", 1)[1])
    db = parse_database_url(cluster.settings.database_url).dbname
    os.killpg(cluster.pid("api-1"), signal.SIGKILL)
    env = {
        **cluster.env,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{db}",
        "API_DATABASE_URL": f"postgresql://pricecat_api@127.0.0.1:5432/{db}",
        "REDIS_URL": f"redis://127.0.0.1:{cluster.redis_port}/0",
        "CACHE_NAMESPACE": f"pricecat:{db}",
    }
    env.pop("API_DATABASE_FALLBACK_URL", None)
    ahead = subprocess.Popen(
        ["pricecat", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env={**env, "PATH": f"{REPO / '.venv' / 'bin'}:{env['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    cluster.replica_sql("alter system set recovery_min_apply_delay = '30s'")
    cluster.replica_sql("select pg_reload_conf()")
    api1, api2 = f"http://127.0.0.1:{port}", status["api-2"]["url"]
    urls = [f"/api/v1/products/{SLUG}", f"/api/v1/products/{SLUG}?",
            *(f"/api/v1/catalog?q={SLUG}&page_size={n}" for n in range(1, 7))]
    try:
        _wait(lambda: httpx.get(api1 + "/readyz").json()["role"] == "primary", 30, "api-1 up")
        gen_before = httpx.get(api2 + "/readyz").json()["generation"]
        time.sleep(0.5)
        before = httpx.get(api2 + urls[0]).json()["name"]
        new_name = before + " (lag)"
        gen_new = _publish_renamed(cluster, new_name)
        _wait(lambda: httpx.get(api1 + urls[0]).json()["name"] == new_name, 10, "api-1 new")
        assert httpx.get(api2 + urls[0]).json()["name"] == before  # api-2 lags
        _wait(lambda: httpx.get(cluster.http + "/api/v1/meta/categories").headers.get(
            "x-pricecat-cache-generation") == str(gen_new), 5, "nginx keyed by the new build")
        # (url, new name, X-Cache-Nginx, X-Pricecat-Generation, X-Pricecat-Cache-Generation)
        seen: list[tuple[str, bool, str, str, str]] = []
        with httpx.Client(base_url=cluster.http, timeout=10) as nginx:
            for _ in range(12):  # until a whole round is answered from the cache
                round_ = []
                for url in urls:
                    r = nginx.get(url)
                    assert r.status_code == 200, r.text
                    key = r.headers["x-pricecat-cache-generation"]
                    assert key in (str(gen_before), str(gen_new)), key
                    round_.append((url, new_name in r.text, r.headers["x-cache-nginx"],
                                   r.headers.get("x-pricecat-generation", ""), key))
                    time.sleep(0.05)
                seen += round_
                if all(cached == "HIT" and key == str(gen_new)
                       for _, _, cached, _, key in round_):
                    break
        assert httpx.get(api2 + "/readyz").json()["generation"] == gen_before  # still lagging
    finally:
        cluster.replica_sql("alter system reset recovery_min_apply_delay")
        cluster.replica_sql("select pg_reload_conf()")
        os.killpg(ahead.pid, signal.SIGKILL)
        ahead.wait()
        cluster.sh("up")  # api-1 back on the replica
    # the lag was real: old data reached clients, from api-2 (passed through, never stored under
    # the new build's key) or from the old build's key during the publish's hold
    old = [row for row in seen if not row[1]]
    assert old, seen
    assert all(gen in ("", str(gen_before)) for _, _, _, gen, _ in old), old
    assert all(key == str(gen_before) or cached != "HIT" for _, _, cached, _, key in old), old
    # every hit under the new build's key is the new build's data, and every URL ends up
    # cached with it
    assert all(is_new for _, is_new, cached, _, key in seen
               if cached == "HIT" and key == str(gen_new)), seen
    assert [row[1:3] + row[4:] for row in seen[-len(urls):]] == [
        (True, "HIT", str(gen_new))] * len(urls), seen
    _wait(lambda: httpx.get(api2 + "/readyz").json()["generation"] == gen_new, 40, "replay")


def test_redis_restarted_instances_keep_answering(cluster: Cluster) -> None:
    with Stream(cluster.nocache) as stream:
        time.sleep(1)
        os.killpg(cluster.pid("redis"), signal.SIGKILL)
        time.sleep(2)
        cluster.sh("up")  # starts Redis again (only what is missing)
        time.sleep(2)
    assert set(stream.statuses) == {"200"}, (stream.statuses, stream.errors[:5])
    assert cluster.status()["redis"]["healthy"]
