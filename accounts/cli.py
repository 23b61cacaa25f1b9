"""``orchestra users ...``: accounts, namespace roles and API tokens."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, Role, RoleName
from orchestra.lib.output import UsageError, print_json, table
from orchestra.lib.users import os_username

ROLE_NAMES = [r.value for r in RoleName]


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
    p.add_argument("--expires-days", type=int, default=None)
    p.set_defaults(func=token)


def _user(username: str):
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
    User = get_user_model()
    roles = [_parse_role(r) for r in args.role]
    if User.objects.filter(username=args.username).exists():
        raise UsageError(f"user {args.username!r} already exists")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise UsageError("empty password on standard input")
        generated = False
    else:
        password, generated = secrets.token_urlsafe(12), True
    with transaction.atomic():
        if args.superuser:
            user = User.objects.create_superuser(args.username, args.email, password)
        else:
            user = User.objects.create_user(args.username, args.email, password)
        for role, namespace in roles:
            Role.objects.update_or_create(
                user=user,
                namespace=namespace,
                defaults={"role": role, "granted_by": os_username()},
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


def grant(args: argparse.Namespace) -> int:
    user = _user(args.username)
    Role.objects.update_or_create(
        user=user,
        namespace=args.namespace,
        defaults={"role": args.role, "granted_by": os_username()},
    )
    print(f"{user.username} is now {args.role} on {args.namespace or 'all namespaces'}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    user = _user(args.username)
    deleted, _ = Role.objects.filter(user=user, namespace=args.namespace).delete()
    if not deleted:
        print(
            f"{user.username} had no role on {args.namespace or 'all namespaces'}",
            file=sys.stderr,
        )
        return 1
    print(f"removed {user.username}'s role on {args.namespace or 'all namespaces'}")
    return 0


def list_users(args: argparse.Namespace) -> int:
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
    user = _user(args.username)
    if args.expires_days is not None and args.expires_days < 1:
        raise UsageError("--expires-days must be at least 1")
    expires = (
        timezone.now() + timedelta(days=args.expires_days)
        if args.expires_days
        else None
    )
    _, key = ApiToken.issue(user, args.name, expires_at=expires)
    print(key)
    print(
        f"API token {args.name!r} for {user.username}"
        + (f", expires {expires:%Y-%m-%d}" if expires else "")
        + ". It is shown only now; send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0
