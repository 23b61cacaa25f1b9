"""Issue 16 item 7: `orchestra --help` answers without Django or Celery (its
figures are in docs/benchmarks.md); the table it prints from is the parser
the modules build, word for word."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestra import cli


def test_the_help_table_matches_the_real_parser(db):
    parser = cli.build_parser()
    groups = next(a for a in parser._actions if a.dest == "group")
    real = {choice.dest: choice.help for choice in groups._choices_actions}
    assert real == cli.COMMANDS
    assert cli.summary_parser().format_help() == parser.format_help()


@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
def test_help_imports_neither_django_nor_celery(args):
    probe = (
        "import sys\n"
        "from orchestra.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = sorted(m for m in ('django', 'celery', 'kombu') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    code, heavy = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert heavy == "[]"
    assert code == ("0" if args else "2")
    assert "COMMAND" in (done.stdout if args else done.stderr)
