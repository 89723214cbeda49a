"""`pricecat` console script: one entry point so that ops, CI and tests drive everything alike."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from pricecat.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"pricecat: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


#: The optional-dependency group (pyproject.toml) each command needs beyond the core, and a module
#: that group brings. `serve` imports neither Prefect nor dbt; `refresh`, `schedule` and `dbt`
#: never import Sanic.
EXTRA_MODULES = {"api": "sanic_ext", "refresh": "prefect"}


def _require(extra: str, command: str) -> None:
    """Exit 2 with an install hint when the optional dependencies of `command` are missing."""
    module = EXTRA_MODULES[extra]
    if importlib.util.find_spec(module) is None:
        print(
            f"pricecat {command}: needs the '{extra}' dependencies ({module} is not installed): "
            f"pip install 'pricecat[{extra}]'",
            file=sys.stderr,
        )
        raise SystemExit(2)


def cmd_migrate(args: argparse.Namespace) -> int:
    from pricecat import migrate

    migrate.run(_settings(), indexes=not args.no_indexes)
    print("migrate: ok")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from pricecat import seed

    return seed.main(_settings(), args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pricecat import simulate

    return simulate.main(_settings(), args)


def cmd_refresh(args: argparse.Namespace) -> int:
    _require("refresh", "refresh")
    from flows.refresh import run_refresh_cli

    return run_refresh_cli(_settings(), args)


def cmd_schedule(args: argparse.Namespace) -> int:
    _require("refresh", "schedule")
    from flows.schedule import serve_schedule

    return serve_schedule(_settings(), args)


def cmd_dbt_server(args: argparse.Namespace) -> int:
    _require("refresh", "dbt-server")
    from pricecat.dbt_server import serve

    return serve(Path(args.socket), with_parent=args.with_parent)


def cmd_serve(args: argparse.Namespace) -> int:
    _require("api", "serve")
    from api.server import serve

    return serve(_settings(), host=args.host, port=args.port, workers=args.workers, dev=args.dev)


def cmd_dbt(args: argparse.Namespace) -> int:
    _require("refresh", "dbt")
    from pricecat.dbt import run_dbt

    settings = _settings()
    extra = [a for a in args.dbt_args if a != "--"]
    return run_dbt(settings, extra, schema=args.schema).returncode


class _HelpFormatter(argparse.HelpFormatter):
    """Appends an option's default to its help, unless the default says nothing (None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; every subcommand and option carries a help text (a test walks the
    parser and fails on one without)."""
    parser = argparse.ArgumentParser(
        prog="pricecat",
        description=__doc__,
        epilog="Settings come from the environment (DATABASE_URL, REDIS_URL, ...): README.md, "
        "'Configuration'.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands"
    )

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    p = command("migrate", "create/upgrade the raw table, its indexes and the API role")
    p.add_argument("--no-indexes", action="store_true",
                   help="skip the (slow) raw-table indexes, e.g. before a bulk seed")
    p.set_defaults(func=cmd_migrate)

    p = command("seed", "load deterministic synthetic snapshots (production shape) into the raw "
                        "table")
    p.add_argument("--rows", type=int, default=2_080_000, metavar="N",
                   help="number of snapshot rows to generate")
    p.add_argument("--slugs", type=int, default=11_059, metavar="N",
                   help="number of distinct products (slugs) the rows spread over")
    p.add_argument("--seed", type=int, default=42, metavar="N",
                   help="random seed: the same seed, rows and slugs give the same table")
    p.add_argument("--now", default=None, metavar="TIMESTAMP",
                   help="timestamp of the newest scrape (ISO 8601, UTC); default: now, to the "
                        "minute")
    p.add_argument("--history-multiplier", type=int, default=1, metavar="N",
                   help="the same catalogue (slugs, codes, sellers) over N times the 120-day "
                        "window, with N times --rows (10 = the benchmarks' 10x history, 20.8M "
                        "rows)")
    p.add_argument("--append-cycle", action="store_true",
                   help="append one scrape cycle after the newest snapshot instead of seeding")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the table has rows")
    p.add_argument("--truncate", action="store_true", help="empty the raw table first")
    p.set_defaults(func=cmd_seed)

    p = command("simulate-scraper", "append one scrape cycle (stamped now) every few seconds, "
                                    "like the scraper, so prices change on the site")
    p.add_argument("--every", type=float, default=300.0, metavar="SECONDS",
                   help="seconds between two scrape cycles")
    p.add_argument("--cycles", type=int, default=0, metavar="N",
                   help="stop after N cycles (0 = run until stopped)")
    p.add_argument("--seed", type=int, default=7, metavar="N",
                   help="random seed of the first cycle (cycle i uses seed + i)")
    p.set_defaults(func=cmd_simulate)

    p = command("refresh", "build, test and publish the read models once (Prefect flow; needs "
                           "pricecat[refresh])")
    p.add_argument("--full", action="store_true",
                   help="rebuild the incremental state from the whole raw history (dbt "
                        "--full-refresh) instead of merging only the new rows")
    p.set_defaults(func=cmd_refresh)

    p = command("schedule", "serve the refresh deployment on a cron schedule (needs a Prefect "
                            "server: PREFECT_API_URL; needs pricecat[refresh])")
    p.add_argument("--cron", default="* * * * *", metavar="EXPR",
                   help="cron expression (UTC) of the refresh runs")
    p.add_argument("--pool", default=None, metavar="NAME",
                   help="deploy to this work pool (a process worker runs it) instead of serving")
    p.set_defaults(func=cmd_schedule)

    p = command("serve", "serve the JSON API and the web UI (needs pricecat[api])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (one event loop each)")
    p.add_argument("--dev", action="store_true",
                   help="development mode: auto-reload on code changes, debug responses")
    p.set_defaults(func=cmd_serve)

    p = command("dbt-server", "keep a warm dbt for the refresh: import dbt once, fork one fresh "
                              "child per dbt run (needs pricecat[refresh])")
    p.add_argument("--socket", required=True, metavar="PATH",
                   help="Unix socket to listen on (the refresh finds it in DBT_FORK_SERVER)")
    p.add_argument("--with-parent", action="store_true",
                   help="exit when the process that started it exits (pricecat schedule)")
    p.set_defaults(func=cmd_dbt_server)

    p = command("dbt", "run dbt against DATABASE_URL in a given schema (needs pricecat[refresh])")
    p.add_argument("--schema", default="catalog_dev",
                   help="schema dbt builds into (the API reads 'catalog', published by refresh)")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER, metavar="DBT_ARGS",
                   help="arguments passed to dbt as they are, e.g. `-- build --select marts`")
    p.set_defaults(func=cmd_dbt)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
