"""CLI verbs for a namespace's trust settings: allowed namespaces and secrets.

The CLI talks to the database directly, so it is the operator's tool; the
changes are recorded with the OS user as actor and ``cli`` as the way in.
Secret values are read from standard input (or a hidden prompt on a
terminal), never from the command line, where ``ps`` and shell history
would keep them, and are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from flows import namespaces, secrets
from flows.expressions import format_native
from orchestra.lib.output import UsageError, print_json, table
from orchestra.lib.secrets import SecretError
from orchestra.lib.users import os_username


def register(group) -> None:
    ns = group("namespaces", "namespaces and their flows")
    p = ns.add_parser(
        "show", help="allowed namespaces, secret names and recent changes of one"
    )
    p.add_argument("namespace")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=show)
    for verb, text in (
        ("allow", "let flows of other namespaces reach this one"),
        ("disallow", "stop flows of other namespaces reaching this one"),
    ):
        p = ns.add_parser(verb, help=text)
        p.add_argument("namespace", help="the namespace being reached")
        p.add_argument(
            "callers", nargs="+", metavar="CALLER", help="namespace prefixes, or *"
        )
        p.add_argument("--reason", default="")
        p.set_defaults(func=allow if verb == "allow" else disallow)

    sec = group("secrets", "namespace secrets (values are never shown)")
    p = sec.add_parser(
        "set", help="create or replace a secret; the value is read from stdin"
    )
    p.add_argument("--namespace", required=True)
    p.add_argument("name")
    p.add_argument("--reason", default="")
    p.set_defaults(func=set_secret)
    p = sec.add_parser("list", help="names of the secrets a namespace's flows see")
    p.add_argument("--namespace", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_secrets)
    p = sec.add_parser("delete", help="delete a secret of a namespace")
    p.add_argument("--namespace", required=True)
    p.add_argument("name")
    p.add_argument("--reason", default="")
    p.set_defaults(func=delete_secret)


def _checked(namespace: str) -> str:
    try:
        return namespaces.check_namespace_name(namespace)
    except namespaces.SettingError as exc:
        raise UsageError(str(exc)) from None


def show(args: argparse.Namespace) -> int:
    name = _checked(args.namespace)
    data = {
        "namespace": name,
        "allowed_namespaces": namespaces.allowed_namespaces(name),
        "secrets": [
            {**s, "updated_at": format_native(s["updated_at"])}
            for s in secrets.list_secrets(name)
        ],
        "changes": [
            {
                "at": format_native(c.at),
                "action": c.action,
                "detail": c.detail,
                "actor": c.actor,
                "via": c.via,
                "reason": c.reason,
            }
            for c in namespaces.changes(name, limit=20)
        ],
    }
    if args.json:
        print_json(data)
        return 0
    allowed = ", ".join(data["allowed_namespaces"]) or "none (own subtree only)"
    print(f"{name}\nallowed namespaces: {allowed}")
    if data["secrets"]:
        print(_secrets_table(data["secrets"]))
    for c in data["changes"]:
        print(f"{c['at']} {c['action']} {c['detail']} by {c['actor']} via {c['via']}")
    return 0


def _change(args: argparse.Namespace, add: bool) -> int:
    name = _checked(args.namespace)
    current = set(namespaces.allowed_namespaces(name))
    wanted = current | set(args.callers) if add else current - set(args.callers)
    try:
        allowed = namespaces.set_allowed_namespaces(
            name, sorted(wanted), actor=os_username(), via="cli", reason=args.reason
        )
    except namespaces.SettingError as exc:
        raise UsageError(str(exc)) from None
    print(f"{name} allows: {', '.join(allowed) or 'none (own subtree only)'}")
    return 0


def allow(args: argparse.Namespace) -> int:
    return _change(args, add=True)


def disallow(args: argparse.Namespace) -> int:
    return _change(args, add=False)


def _read_value() -> str:
    if sys.stdin.isatty():
        value = getpass.getpass("value (not shown): ")
    else:
        try:
            value = sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError("the value on standard input is not UTF-8 text") from None
        # `echo value | orchestra secrets set` adds one newline; keep the rest.
        if value.endswith("\n"):
            value = value[:-1]
    return value


def set_secret(args: argparse.Namespace) -> int:
    name = _checked(args.namespace)
    try:
        row, created = secrets.set_secret(
            name,
            args.name,
            _read_value(),
            actor=os_username(),
            via="cli",
            reason=args.reason,
        )
    except SecretError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"secret {row.name} of {row.namespace} {'created' if created else 'replaced'}"
    )
    return 0


def list_secrets(args: argparse.Namespace) -> int:
    rows = [
        {**s, "updated_at": format_native(s["updated_at"])}
        for s in secrets.list_secrets(_checked(args.namespace))
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"No secrets for {args.namespace}.")
    else:
        print(_secrets_table(rows))
    return 0


def _secrets_table(rows: list[dict]) -> str:
    return table(
        [[r["name"], r["namespace"], r["updated_at"], r["updated_by"]] for r in rows],
        ["SECRET", "FROM", "UPDATED", "BY"],
    )


def delete_secret(args: argparse.Namespace) -> int:
    name = _checked(args.namespace)
    try:
        secrets.delete_secret(
            name, args.name, actor=os_username(), via="cli", reason=args.reason
        )
    except SecretError as exc:
        raise UsageError(str(exc)) from None
    print(f"secret {args.name} of {name} deleted")
    return 0
