"""The cluster (scripts/cluster.sh) under wrk: same run, same mix as bench/bench_api.py.

    CLUSTER_DATABASE=pricecat CLUSTER_NOCACHE_PORT=8081 bash scripts/cluster.sh up
    python -m bench.bench_cluster --duration 30 --write-docs

Phases, one after the other, same wrk script (bench/lua/mix.lua), paths and connections:
1. static   nginx serving one file of the mix's mean answer size (the physical limit);
2. direct   one API instance (api-1), no nginx;
3. nginx    nginx over the API instances, no micro-cache (CLUSTER_NOCACHE_PORT);
4. micro    nginx with the micro-cache keyed by the API's cache generation (CLUSTER_HTTP_PORT),
            after one request per distinct path through it (warm, like the API's cache);
5. refresh  the micro-cached path while `pricecat refresh` builds and publishes on the primary
            (after `pricecat seed --append-cycle`: one new scrape cycle to publish)
            and the replica replays it (errors, p99, and when the new build showed in the
            API and through nginx).
The database is the cluster's (CLUSTER_DATABASE, published read models needed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.bench_api import PathMaker, prefill, run_wrk, sample_inputs, write_paths
from bench.common import REPO_ROOT, git_commit, machine, replace_section, today
from bench.procs import PRICECAT

SECTION = "Cluster: nginx micro-cache over 2 API instances reading a replica (bench_cluster)"
SCRIPT = REPO_ROOT / "scripts" / "cluster.sh"


def log(msg: str) -> None:
    print(f"bench_cluster: {msg}", file=sys.stderr, flush=True)


def cluster_status() -> dict[str, dict[str, Any]]:
    out = subprocess.run(["bash", str(SCRIPT), "status", "--json"], capture_output=True,
                         text=True, check=True).stdout
    return {c["name"]: c for c in json.loads(out)["components"]}


def readyz(base: str) -> dict[str, Any]:
    """The instance's /readyz ({} when it does not answer in time: saturated by a publish)."""
    try:
        return dict(httpx.get(base + "/readyz", timeout=5).json())
    except httpx.HTTPError:
        return {}


def nginx_generation(base: str) -> str:
    """The cache generation nginx keys its answers by now (header of any micro-cached answer)."""
    try:
        r = httpx.get(base + "/api/v1/meta/categories", timeout=5)
    except httpx.HTTPError:  # a slow answer under load: ask again
        return ""
    return str(r.headers.get("x-pricecat-cache-generation", ""))


async def prefill_as_wrk(base: str, paths: list[str], concurrency: int, gzip: bool) -> None:
    """One request per path with wrk's Accept-Encoding (none, or gzip with --gzip): nginx keeps
    one variant per Accept-Encoding value (Vary), so warming another variant would leave the
    measured one cold."""
    queue = list(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            try:
                await client.get(queue.pop())
            except httpx.HTTPError:
                pass

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        if gzip:
            client.headers["accept-encoding"] = "gzip"
        else:
            del client.headers["accept-encoding"]
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("rps", "latency_ms", "errors_total", "statuses", "x_cache",
                              "x_cache_nginx", "generations", "mean_ok_body_bytes",
                              "cpu_us_per_request", "client_cpu_us_per_request", "command")}


#: nginx's own lines about a publish's hold (deploy/nginx/micro-cache-http.conf)
HOLD_LINE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) .*pricecat publish hold of build (\d+) "
                       r"(began|ended after ([\d.]+) s(: its bound)?(?:.*?; (\d+) keys filled)?)")


def hold_events(error_log: Path, since: float) -> list[dict[str, Any]]:
    """The hold's start and end lines nginx logged after `since` (epoch seconds)."""
    events: list[dict[str, Any]] = []
    if not error_log.exists():
        return events
    for line in error_log.read_text(errors="replace").splitlines():
        m = HOLD_LINE.match(line)
        if not m:
            continue
        at = time.mktime(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"))
        if at + 1 < since:
            continue
        events.append({"at_s": round(at - since), "held_build": int(m.group(2)),
                       "event": "began" if m.group(3) == "began" else "ended",
                       "held_for_s": float(m.group(4)) if m.group(4) else None,
                       "bound": bool(m.group(5)),
                       "filled": int(m.group(6)) if m.group(6) else None})
    return events


async def published_at(database_url: str) -> float | None:
    """When the newest published refresh run finished (epoch seconds)."""
    conn = await asyncpg.connect(database_url)
    try:
        at = await conn.fetchval("select max(finished_at) from catalog_ops.refresh_runs "
                                 "where status = 'published'")
    finally:
        await conn.close()
    return at.timestamp() if at else None


def refresh_phase(base: str, api: str, paths_file: Path, workdir: Path,
                  args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    """wrk on the micro-cached path while a refresh publishes; watch the API's generation."""
    gen_before = readyz(api)["generation"]
    wall_start = time.time()
    env = {**os.environ, "DATABASE_URL": database_url}
    # one new scrape cycle, so the refresh has new data and publishes a new build
    subprocess.run([PRICECAT, "seed", "--append-cycle"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    refresh = subprocess.Popen([PRICECAT, "refresh"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    long_args = argparse.Namespace(**{**vars(args), "duration": args.refresh_duration})
    result: dict[str, Any] = {}

    def drive() -> None:
        result.update(run_wrk(base, paths_file, workdir, "refresh", long_args))

    import threading

    t = threading.Thread(target=drive)
    t.start()
    _, err = refresh.communicate()
    published_after = round(time.monotonic() - started, 1)
    seen_after = nginx_after = None
    while t.is_alive() and (seen_after is None or nginx_after is None):
        now = round(time.monotonic() - started, 1)
        if seen_after is None and readyz(api).get("generation", gen_before) != gen_before:
            seen_after = now
        if nginx_after is None and nginx_generation(base) not in ("", str(gen_before)):
            nginx_after = now
        time.sleep(0.1)
    t.join()
    result["refresh_exit"] = refresh.returncode
    result["refresh_tail"] = (err or "").strip().splitlines()[-1:] if err else []
    result["published_after_s"] = published_after
    result["replica_api_new_generation_after_s"] = seen_after
    result["nginx_new_generation_after_s"] = nginx_after
    result["generation_before"] = gen_before
    result["generation_after"] = readyz(api).get("generation")
    nginx_dir = Path(os.environ.get("CLUSTER_DIR", REPO_ROOT / ".cluster")) / "nginx"
    result["hold"] = hold_events(nginx_dir / "error.log", wall_start)
    published = asyncio.run(published_at(database_url))
    result["publish_after_s"] = (round(published - wall_start, 1)
                                 if published and published >= wall_start else None)
    return result


def hold_sentence(rf: dict[str, Any]) -> str:
    """The publish's turn-over: when it published, nginx's hold, answers per build."""
    parts = [f"The refresh run published {rf.get('publish_after_s')} s after the start "
             "(`catalog_ops.refresh_runs.finished_at`)."]
    for e in rf.get("hold", []):
        if e["event"] == "began":
            parts.append(f"nginx took the new build and began holding build {e['held_build']} "
                         f"{e['at_s']} s after the start;")
        else:
            why = ("its bound, `CLUSTER_PUBLISH_HOLD_SECONDS`" if e.get("bound") else
                   "no request needed the previous build for `CLUSTER_PUBLISH_HOLD_IDLE_SECONDS`")
            parts.append(f"the hold ended {e['at_s']} s after the start, after "
                         f"{e['held_for_s']} s ({why}; {e.get('filled')} keys filled meanwhile).")
    if not rf.get("hold"):
        parts.append("nginx logged no hold in the window.")
    gens = rf.get("generations") or {}
    total = sum(gens.values())
    if total:
        split = ", ".join(f"build {g}: {n:,} ({n / total:.0%})" for g, n in sorted(gens.items()))
        parts.append(f"Answers by the build their data is from (`X-Pricecat-Generation`): {split}.")
    return " ".join(parts)


def round_ratios(phases: dict[str, Any]) -> list[tuple[float, float]]:
    """(static req/s, micro req/s) of every round that ran both (`--rounds`)."""
    out = []
    for n in range(1, 100):
        suffix = "" if n == 1 else f"#{n}"
        if f"static{suffix}" not in phases or f"micro{suffix}" not in phases:
            break
        out.append((phases[f"static{suffix}"]["rps"], phases[f"micro{suffix}"]["rps"]))
    return out


def render(report: dict[str, Any]) -> str:
    p = report["phases"]
    static = p["static"]["rps"]
    rows = []
    names = {"static": "nginx, static file of the mean answer size (limit)",
             "direct": "one API instance direct (1 worker)",
             "nginx": "nginx + 2 instances, no micro-cache",
             "micro": "nginx + 2 instances + generation-keyed micro-cache"}
    for key, label in names.items():
        r = p[key]
        lat = r["latency_ms"]
        rows.append(f"| {label} | {r['rps']:,.0f} | {lat['p50']} | {lat['p99']} | "
                    f"{r['errors_total']} | {r['rps'] / static:.2f}× | "
                    f"{r['load_before']} → {r['load_after']} |")
    rf = p["refresh"]
    a = report["args"]
    ratios = round_ratios(p)
    rounds = (
        f"Static and micro phases in {len(ratios)} rounds, in turn (`--rounds`): "
        + "; ".join(f"round {n}: {s:,.0f} → {m:,.0f} req/s, {m / s:.2f}×"
                    for n, (s, m) in enumerate(ratios, 1))
        + f"; **median ratio {statistics.median(m / s for s, m in ratios):.2f}×**."
        if len(ratios) > 1 else ""
    )
    return "\n".join([
        f"Command: `{report['command']}` on commit `{report['commit']}`, {report['date']}.",
        f"Machine: {report['machine']}; everything (wrk, nginx, 2 API instances with "
        f"{report['api_workers']} Sanic worker each, Redis, primary, replica) on this host.",
        f"wrk: {a['threads']} threads, {a['connections']:,} connections, {a['duration']} s per "
        f"phase, the bench_api mix ({a['paths']:,} paths, Zipf {a['zipf']}); mean 2xx body "
        f"{p['micro']['mean_ok_body_bytes']:,} B (the static file's size).",
        "",
        "| path | req/s | p50 ms | p99 ms | errors | × static | load avg (1 min) before → after |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        *([rounds, ""] if rounds else []),
        f"**During a refresh** (micro-cached path; wrk for {a['refresh_duration']} s from the "
        f"start of `pricecat refresh` on the primary, which exited {rf['refresh_exit']} after "
        f"{rf['published_after_s']} s, build {rf['generation_before']} → "
        f"{rf['generation_after']}; the replica's API "
        + (f"served the new build {rf['replica_api_new_generation_after_s']} s after the start, "
           f"nginx keyed its cache by it {rf['nginx_new_generation_after_s']} s after the start "
           "(both polled every 0.1 s once the refresh had exited)"
           if rf["replica_api_new_generation_after_s"] is not None
           else "published no new build"
           if rf["generation_before"] == rf["generation_after"]
           else "served the new build only after wrk had stopped: this window covers the build, "
                "not the publish")
        + f"): {rf['rps']:,.0f} req/s, p50 {rf['latency_ms']['p50']} ms, p99 "
        f"{rf['latency_ms']['p99']} ms, {rf['errors_total']} errors; statuses "
        f"{rf['statuses']}; load average "
        f"{rf['load_before']} → {rf['load_after']}.",
        "",
        hold_sentence(rf),
        "",
        "The micro-cache (`deploy/nginx/micro-cache*.conf`) keys answers by the data generation "
        "that one nginx worker polls from every API instance every 0.25 s (Lua, shared dict) "
        "and stores an answer only when its `X-Pricecat-Generation` is the key's: no "
        "per-request subrequest. Before the micro phase the bench sends one request per "
        "distinct path through nginx with wrk's `Accept-Encoding` (nginx keeps one variant "
        "per value), so the phase measures warm hits. The static and micro phases share the "
        "machine with whatever else runs on it: compare their ratio, not the absolute rates.",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--refresh-duration", type=int, default=90)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", type=int, default=50000)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--zipf", type=float, default=0.8)
    ap.add_argument("--slugs", type=int, default=6000)
    ap.add_argument("--timeout", default="10s")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--no-refresh", action="store_true")
    ap.add_argument("--phases", default="static,direct,nginx,micro",
                    help="comma-separated subset of static,direct,nginx,micro to run (A/B runs of "
                         "the nginx config: static,micro); --write-docs needs them all")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the static and micro phases (of those chosen) this many times "
                         "in turn (static, micro, static, micro, ...; direct and nginx once): "
                         "the median ratio of neighbours is less exposed to the swings of the "
                         "static phase and to other processes on the machine")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--json", default=str(REPO_ROOT / "test-output" / "bench_cluster.json"))
    args = ap.parse_args(argv)

    status = cluster_status()
    if not all(c["healthy"] for n, c in status.items() if n.startswith(("api", "nginx"))):
        raise SystemExit(f"bench_cluster: cluster not healthy: {status}")
    micro = status["nginx"]["url"]
    # nginx's master: its CPU per request (with its workers) is compared across phases
    nginx_pid = int(status["nginx"]["pid"]) if status["nginx"].get("pid") else None
    nocache_port = os.environ.get("CLUSTER_NOCACHE_PORT")
    if not nocache_port:
        raise SystemExit("bench_cluster: set CLUSTER_NOCACHE_PORT (as for cluster.sh up)")
    plain = f"http://127.0.0.1:{nocache_port}"
    api = status["api-1"]["url"]
    dbname = status["primary"]["url"].rsplit("/", 1)[1]
    database_url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"

    workdir = REPO_ROOT / "test-output" / "bench_cluster"
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = asyncio.run(sample_inputs(database_url, args.slugs, args.seed))
    reqs = PathMaker(inputs, args.seed).mix(args.paths, args.pool, args.zipf)
    paths_file = workdir / "paths.txt"
    write_paths(reqs, paths_file)
    paths = [r.path for r in reqs]
    log(f"prefilling the cache ({len(set(paths)):,} distinct paths)")
    asyncio.run(prefill(api, sorted(set(paths)), 32))

    phases: dict[str, Any] = {}
    # the static file first needs the mix's mean answer size: measure it on the micro path
    probe = run_wrk(micro, paths_file, workdir, "size-probe",
                    argparse.Namespace(**{**vars(args), "duration": 5, "connections": 50}))
    size = probe["mean_ok_body_bytes"]
    nginx_dir = Path(os.environ.get("CLUSTER_DIR", REPO_ROOT / ".cluster")) / "nginx"
    (nginx_dir / "static-bench.json").write_bytes(b"x" * size)
    static_paths = workdir / "static_paths.txt"
    static_paths.write_text("/static-bench\n")

    def phase(name: str, run: Any) -> None:
        before = load_average()
        phases[name] = {**run(), "load_before": before, "load_after": load_average()}

    chosen = [p for p in ("static", "direct", "nginx", "micro") if p in args.phases.split(",")]
    for n in range(1, args.rounds + 1):
        suffix = "" if n == 1 else f"#{n}"
        for name in chosen:
            if n > 1 and name not in ("static", "micro"):
                continue
            if name == "static":
                phase("static" + suffix,
                      lambda: run_wrk(micro, static_paths, workdir, "static", args,
                                      server_pid=nginx_pid))
            elif name == "direct":
                phase("direct" + suffix, lambda: run_wrk(api, paths_file, workdir, "direct", args))
            elif name == "nginx":
                phase("nginx" + suffix, lambda: run_wrk(plain, paths_file, workdir, "nginx", args))
            else:
                if n == 1:
                    # as the API's cache above: warm nginx's cache (one request per distinct
                    # path; this also waits out the requests the no-micro-cache phase left
                    # queued in the instances)
                    log("prefilling nginx's micro-cache")
                    asyncio.run(prefill_as_wrk(micro, sorted(set(paths)), 32, args.gzip))
                phase("micro" + suffix, lambda: run_wrk(micro, paths_file, workdir, "micro", args,
                                                        server_pid=nginx_pid))
    if not args.no_refresh:
        phase("refresh", lambda: refresh_phase(micro, api, paths_file, workdir, args,
                                               database_url))
    static_rps = 0.0
    for k, r in phases.items():
        static_rps = r["rps"] if k.startswith("static") else static_rps
        ratio = f" ({r['rps'] / static_rps:.2f}x the static before it)" if static_rps else ""
        log(f"{k}: {r['rps']:,.0f} req/s p50 {r['latency_ms']['p50']} ms "
            f"p99 {r['latency_ms']['p99']} ms errors {r['errors_total']}{ratio} "
            f"X-Cache-Nginx {r.get('x_cache_nginx') or '-'} "
            f"CPU us/request nginx {r.get('cpu_us_per_request')} wrk "
            f"{r.get('client_cpu_us_per_request')} "
            f"load {r['load_before']} -> {r['load_after']}")
    commit = git_commit()
    report = {
        "command": "python -m bench.bench_cluster " + " ".join(shlex.quote(a) for a in
                                                               (argv or sys.argv[1:])),
        "commit": commit, "date": today(), "machine": machine(),
        "api_workers": os.environ.get("CLUSTER_API_WORKERS", "1"),
        "args": vars(args), "phases": {k: v for k, v in phases.items()},
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    if args.write_docs and "refresh" in phases and all(
        p in phases for p in ("static", "direct", "nginx", "micro")
    ):
        replace_section(SECTION, render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
