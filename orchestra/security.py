"""Production web settings: what `orchestra server web` insists on, and the
Secure flag on cookies of requests that came over HTTPS."""

from __future__ import annotations

import os

from django.conf import settings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def web_settings_problems() -> list[str]:
    """What stops `orchestra server web` from starting, one sentence each.

    Outside local mode the server must know its own names: with ``*`` any Host
    header is believed, so links in mails and redirects can point anywhere,
    and CSRF needs the origins the dashboard is reached at.
    """
    problems = []
    hosts = os.environ.get("ALLOWED_HOSTS", "").strip()
    if not hosts:
        problems.append(
            "ALLOWED_HOSTS is not set: list the host names this server answers "
            "to, e.g. ALLOWED_HOSTS=orchestra.example.com"
        )
    elif "*" in settings.ALLOWED_HOSTS:
        problems.append(
            "ALLOWED_HOSTS contains '*': name the hosts instead, so a forged Host "
            "header is refused"
        )
    if not os.environ.get("CSRF_TRUSTED_ORIGINS", "").strip():
        problems.append(
            "CSRF_TRUSTED_ORIGINS is not set: list the origins users open the "
            "dashboard at, e.g. CSRF_TRUSTED_ORIGINS=https://orchestra.example.com"
        )
    else:
        bad = [o for o in settings.CSRF_TRUSTED_ORIGINS if "://" not in o or "*" == o]
        if bad:
            problems.append(
                f"CSRF_TRUSTED_ORIGINS={','.join(bad)}: each origin needs its "
                "scheme, e.g. https://orchestra.example.com"
            )
    return problems


class SecureCookiesOverHttps:
    """Mark every cookie Secure on a response to an HTTPS request.

    ``request.is_secure()`` honours SECURE_PROXY_SSL_HEADER, so behind a TLS
    proxy the session and CSRF cookies are never sent back over plain HTTP,
    while local mode on http://127.0.0.1 keeps working.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
