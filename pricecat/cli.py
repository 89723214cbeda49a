"""`pricecat` console script: one entry point so that ops, CI and tests drive everything alike."""

from __future__ import annotations

import argparse
import logging
import sys

from pricecat.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"pricecat: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def cmd_migrate(args: argparse.Namespace) -> int:
    from pricecat import migrate

    migrate.run(_settings(), indexes=not args.no_indexes)
    print("migrate: ok")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from pricecat import seed

    return seed.main(_settings(), args)


def cmd_refresh(args: argparse.Namespace) -> int:
    from flows.refresh import run_refresh_cli

    return run_refresh_cli(_settings(), args)


def cmd_schedule(args: argparse.Namespace) -> int:
    from flows.schedule import serve_schedule

    return serve_schedule(_settings(), args)


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve

    return serve(_settings(), host=args.host, port=args.port, workers=args.workers, dev=args.dev)


def cmd_dbt(args: argparse.Namespace) -> int:
    from pricecat.dbt import run_dbt

    settings = _settings()
    extra = [a for a in args.dbt_args if a != "--"]
    return run_dbt(settings, extra, schema=args.schema).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pricecat", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="create/upgrade the raw table, its indexes and the API role")
    p.add_argument("--no-indexes", action="store_true", help="skip the (slow) raw-table indexes")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed", help="load deterministic synthetic snapshots (production shape)")
    p.add_argument("--rows", type=int, default=2_080_000)
    p.add_argument("--slugs", type=int, default=11_059)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--now", default=None, help="timestamp of the newest scrape (ISO 8601, UTC)")
    p.add_argument("--append-cycle", action="store_true",
                   help="append one scrape cycle after the newest snapshot instead of seeding")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the table has rows")
    p.add_argument("--truncate", action="store_true", help="empty the raw table first")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("refresh", help="build, test and publish the read models (Prefect flow)")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("schedule", help="serve the refresh deployment every 15 minutes")
    p.add_argument("--cron", default="*/15 * * * *")
    p.add_argument("--pool", default=None,
                   help="deploy to this work pool (a process worker runs it) instead of serving")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("serve", help="serve the JSON API and the web UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--dev", action="store_true", help="auto-reload, debug")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("dbt", help="run dbt against DATABASE_URL (default schema catalog_dev)")
    p.add_argument("--schema", default="catalog_dev")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
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
