"""The ``orchestra`` console command.

Words are grouped as users think of them (``orchestra flows execute``), but
each verb lives with the code it drives: ``flows execute`` creates an
execution, so it is implemented in ``executions/cli.py``.
"""

from __future__ import annotations

import argparse
import os
import sys

# Nothing else at the top: `orchestra --help` imports only these.


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with a one-line reason
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


DESCRIPTION = (
    "Declarative YAML workflows on Celery workers. "
    "Run 'orchestra server local' to start everything on this machine."
)
# The top-level words and their help, so `orchestra --help` (and a bare
# `orchestra`) answer without starting Django. tests/cli/test_cli_start.py
# checks this table against the parser the modules build.
COMMANDS = {
    "server": "run Orchestra's processes",
    "namespaces": "namespaces and their flows",
    "flows": "validate, deploy, list, run and test flows",
    "secrets": "namespace secrets (values are never shown)",
    "executions": "inspect and steer executions",
    "cleanup": "find and cancel stuck executions (preview with --dry-run)",
    "sla": "SLA/SLO rules, misses and the sweep",
    "users": "user accounts, namespace roles and API tokens",
    "manage": "run a Django management command (migrate, shell, ...)",
}


def summary_parser() -> argparse.ArgumentParser:
    """The top level only: every command word with its help, no verbs."""
    parser = Parser(prog="orchestra", description=DESCRIPTION)
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    groups.required = True
    for name, help_text in COMMANDS.items():
        groups.add_parser(name, help=help_text)
    return parser


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: these modules import models, which needs
    # django.setup() (main() runs it first, then builds the parser).
    from accounts import cli as accounts_cli
    from executions import cli as executions_cli
    from executions.stuck import cli as cleanup_cli
    from executions.triggers import cli as triggers_cli
    from flows import cli as flows_cli
    from orchestra import server
    from sla import cli as sla_cli

    parser = Parser(prog="orchestra", description=DESCRIPTION)
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    groups.required = True
    registry: dict[str, argparse._SubParsersAction] = {}

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        if name not in registry:
            sub = groups.add_parser(name, help=help_text, description=help_text)
            verbs = sub.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
            verbs.required = True
            registry[name] = verbs
        return registry[name]

    server.register(group)
    flows_cli.register(group)
    executions_cli.register(group)
    for module in (cleanup_cli, sla_cli, accounts_cli, triggers_cli):
        module.register(group, groups)
    manage = groups.add_parser(
        "manage", help="run a Django management command (migrate, shell, ...)"
    )
    manage.add_argument("args", nargs=argparse.REMAINDER)
    manage.set_defaults(func=_manage)
    return parser


def _manage(args: argparse.Namespace) -> int:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["orchestra manage", *args.args])
    return 0


def _ensure_local_database() -> None:
    """A fresh local data folder gets its tables on first use of any command."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    if "executions_execution" not in connection.introspection.table_names():
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if not words or words[0] in ("-h", "--help"):
        # Answered from the table above: no Django, no Celery, no database.
        summary_parser().parse_args(words)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    from django.core.exceptions import ImproperlyConfigured

    from orchestra.lib.output import UsageError

    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        print(f"orchestra: configuration error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    from django.db import DatabaseError

    try:
        if args.group not in ("server", "manage"):
            _ensure_local_database()
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except UsageError as exc:
        print(f"orchestra: error: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        # An unreachable or unmigrated database is an operator's problem, not
        # a bug: one line naming the setting instead of a traceback.
        print(
            f"orchestra: database error ({_database_label()}): {_first_line(exc)}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `orchestra executions get 29 | head`: the reader has all it wanted.
        # Point stdout at /dev/null so Python's flush at exit does not raise
        # again, and end as a process killed by SIGPIPE would (128 + 13).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _database_label() -> str:
    from django.conf import settings

    from orchestra.lib.env import hide_password

    url = settings.DATABASE_URL
    if "DATABASE_URL" not in os.environ:
        return f"local SQLite database {url.removeprefix('sqlite:///')}"
    return f"DATABASE_URL={hide_password(url)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "relation" in text and "does not exist" in text or "no such table" in text:
        return (
            f"{text.splitlines()[0]}; create the tables with: orchestra manage migrate"
        )
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
