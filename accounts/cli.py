"""``orchestra users ...``: accounts, namespace roles and API tokens."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import timedelta

from orchestra.lib.output import UsageError, print_json, table

# Spelled out, not read from accounts.models: building the parser must not
# import Django models (`orchestra --help` starts without Django).
ROLE_NAMES = ["viewer", "operator", "editor", "admin"]


def register(group, groups=None) -> None:
    users = group("users", "user accounts, namespace roles and API tokens")
    p = users.add_parser(
        "create", help="create a user (prints a generated password unless given)"
    )
    p.add_argument("username")
    p.add_argument("--email", default="")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input",
    )
    p.add_argument(
        "--superuser", action="store_true", help="may do everything everywhere"
    )
    p.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE[:NAMESPACE]",
        help=f"grant a role ({', '.join(ROLE_NAMES)}) on a namespace prefix; no prefix = all; repeatable",
    )
    p.set_defaults(func=create)

    p = users.add_parser(
        "grant", help="give a user a role on a namespace prefix (replaces the old one)"
    )
    p.add_argument("username")
    p.add_argument("role", choices=ROLE_NAMES)
    p.add_argument(
        "namespace",
        nargs="?",
        default="",
        help="namespace prefix; omit for all namespaces",
    )
    p.set_defaults(func=grant)

    p = users.add_parser("revoke", help="remove a user's role on a namespace prefix")
    p.add_argument("username")
    p.add_argument("namespace", nargs="?", default="")
    p.set_defaults(func=revoke)

    p = users.add_parser("list", help="users with their roles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_users)

    p = users.add_parser(
        "token", help="issue an API token (shown once) for 'Authorization: Bearer'"
    )
    p.add_argument("username")
    p.add_argument(
        "--name", required=True, help="what the token is for, e.g. ci-pipeline"
    )
    p.add_argument(
        "--expires-days",
        type=int,
        default=None,
        help="days until it expires (default ORCHESTRA_TOKEN_DAYS, 90)",
    )
    p.add_argument("--reason", default="", help="why, for the audit trail")
    p.set_defaults(func=token)

    p = users.add_parser(
        "password", help="set a user's password (checked by the password rules)"
    )
    p.add_argument("username")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (otherwise one is generated)",
    )
    p.add_argument("--reason", default="", help="why, for the audit trail")
    p.set_defaults(func=set_password)
    for verb in ("create", "grant", "revoke"):
        users.choices[verb].add_argument(
            "--reason", default="", help="why, for the audit trail"
        )


def _who():
    from accounts.actions import Who

    return Who.cli()


def _read_password(args) -> tuple[str, bool]:
    """(password, generated): from standard input, or a new random one."""
    if not args.password_stdin:
        return secrets.token_urlsafe(12), True
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("empty password on standard input")
    return password, False


def _validated(call):
    """Run ``call``; a password the rules refuse is a usage error naming them."""
    from django.core.exceptions import ValidationError

    try:
        return call()
    except ValidationError as exc:
        raise UsageError("password refused: " + " ".join(exc.messages)) from None


def _user(username: str):
    from django.contrib.auth import get_user_model

    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise UsageError(
            f"no user named {username!r}; create it with: orchestra users create {username}"
        ) from None


def _parse_role(text: str) -> tuple[str, str]:
    role, _, namespace = text.partition(":")
    if role not in ROLE_NAMES:
        raise UsageError(
            f"unknown role {role!r} in --role {text!r}; use one of {', '.join(ROLE_NAMES)}"
        )
    return role, namespace


def create(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model

    from accounts import actions

    roles = [_parse_role(r) for r in args.role]
    if get_user_model().objects.filter(username=args.username).exists():
        raise UsageError(f"user {args.username!r} already exists")
    password, generated = _read_password(args)
    user = _validated(
        lambda: actions.create_user(
            _who(),
            args.username,
            password,
            email=args.email,
            superuser=args.superuser,
            roles=roles,
            reason=args.reason,
        )
    )
    print(f"Created user {user.username}" + (" (superuser)" if args.superuser else ""))
    if generated:
        print(f"Password: {password}")
    for role, namespace in roles:
        print(f"  {role} on {namespace or 'all namespaces'}")
    if not roles and not args.superuser:
        print(
            "  no roles yet: this user sees nothing until granted one (orchestra users grant)"
        )
    return 0


def set_password(args: argparse.Namespace) -> int:
    from accounts import actions

    user = _user(args.username)
    password, generated = _read_password(args)
    reason = args.reason or "set with orchestra users password"
    _validated(lambda: actions.set_password(_who(), user, password, reason))
    print(f"Password of {user.username} changed")
    if generated:
        print(f"Password: {password}")
    return 0


def grant(args: argparse.Namespace) -> int:
    from accounts import actions

    user = _user(args.username)
    actions.grant_role(_who(), user, args.role, args.namespace, reason=args.reason)
    print(f"{user.username} is now {args.role} on {args.namespace or 'all namespaces'}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    from accounts import actions

    user = _user(args.username)
    if not actions.revoke_role(_who(), user, args.namespace, reason=args.reason):
        print(
            f"{user.username} had no role on {args.namespace or 'all namespaces'}",
            file=sys.stderr,
        )
        return 1
    print(f"removed {user.username}'s role on {args.namespace or 'all namespaces'}")
    return 0


def list_users(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.order_by("username").prefetch_related("roles")
    rows = [
        {
            "username": u.username,
            "email": u.email,
            "active": u.is_active,
            "superuser": u.is_superuser,
            "roles": [
                {"role": r.role, "namespace": r.namespace} for r in u.roles.all()
            ],
        }
        for u in users
    ]
    if args.json:
        print_json(rows)
        return 0
    print(
        table(
            [
                [
                    r["username"],
                    r["email"],
                    "yes" if r["superuser"] else "",
                    ", ".join(
                        f"{x['role']}:{x['namespace'] or '*'}" for x in r["roles"]
                    ),
                ]
                for r in rows
            ],
            ["USER", "EMAIL", "SUPERUSER", "ROLES"],
        )
    )
    return 0


def token(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.utils import timezone

    from accounts import actions

    user = _user(args.username)
    days = (
        settings.ORCHESTRA_TOKEN_DAYS
        if args.expires_days is None
        else args.expires_days
    )
    if not 1 <= days <= settings.ORCHESTRA_TOKEN_MAX_DAYS:
        raise UsageError(
            f"--expires-days must be between 1 and {settings.ORCHESTRA_TOKEN_MAX_DAYS} "
            "(ORCHESTRA_TOKEN_MAX_DAYS)"
        )
    expires = timezone.now() + timedelta(days=days)
    _, key = actions.issue_token(
        _who(), user, args.name, expires_at=expires, reason=args.reason
    )
    print(key)
    print(
        f"API token {args.name!r} for {user.username}, expires {expires:%Y-%m-%d}. "
        "It is shown only now; send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0
