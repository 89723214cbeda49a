"""The `pricecat` command line: every subcommand and option says what it does in `--help`, and the
API side never imports the refresh side (an API host installs `pricecat[api]` only, without
Prefect or dbt)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

import pytest

from pricecat.cli import build_parser
from tests.conftest import REPO_ROOT


def _walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    """(command path, action) for every action of `parser` and of its subcommands."""
    out: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            out.append((path, action))
            for name, sub in action.choices.items():
                out += _walk(sub, f"{path} {name}")
        else:
            out.append((path, action))
    return out


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """Options, positionals and subcommands that have no help text."""
    missing: list[str] = []
    for path, action in _walk(parser, parser.prog):
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            helped = {a.dest: a.help for a in action._choices_actions}  # noqa: SLF001
            missing += [f"{path} {name}" for name in action.choices if not helped.get(name)]
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_and_option_has_help() -> None:
    parser = build_parser()
    assert undocumented(parser) == []
    # the walk reaches every command and option (a walk that saw nothing would pass too)
    seen = {f"{path} {'/'.join(a.option_strings) or a.dest}"
            for path, a in _walk(parser, "pricecat")}
    assert {"pricecat seed --rows", "pricecat serve --workers", "pricecat dbt dbt_args",
            "pricecat schedule --cron", "pricecat migrate --no-indexes"} <= seen


def test_the_walk_finds_an_option_without_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    sub.choices["serve"].add_argument("--quiet", action="store_true")
    extra = sub.add_parser("bare")
    assert undocumented(parser) == ["pricecat bare", "pricecat serve --quiet"]
    assert extra.prog.endswith("bare")


def test_help_shows_defaults_that_mean_something() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]  # noqa: SLF001,E501
    assert "TCP port to listen on (default: 8000)" in text
    assert "(default: False)" not in text and "(default: None)" not in text


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


REFRESH_SIDE = ("prefect", "dbt", "flows")


def test_serve_and_the_api_import_neither_prefect_nor_dbt() -> None:
    proc = _python(f"""
        import sys
        from pricecat import cli
        try:
            cli.main(["serve", "--help"])
        except SystemExit:
            pass
        import api.server
        from pricecat.config import Settings
        api.server.create_app(Settings.from_env())
        assert "sanic" in sys.modules  # the app was really built
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({REFRESH_SIDE!r}))
        print("LOADED", loaded)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]


def test_refresh_side_does_not_import_sanic() -> None:
    proc = _python("""
        import sys
        import flows.refresh, flows.schedule
        print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & {"sanic", "sanic_ext"}))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize(
    ("argv", "hidden", "extra"),
    [(["refresh"], "prefect", "refresh"), (["dbt", "--", "debug"], "prefect", "refresh"),
     (["schedule"], "prefect", "refresh"), (["serve"], "sanic_ext", "api")],
)
def test_a_missing_extra_is_named_not_a_traceback(argv: list[str], hidden: str, extra: str) -> None:
    # sys.modules[name] = None is how Python spells "not installed" to find_spec and import
    proc = _python(f"""
        import sys
        sys.modules[{hidden!r}] = None
        from pricecat import cli
        raise SystemExit(cli.main({argv!r}))
    """)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"pip install 'pricecat[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
