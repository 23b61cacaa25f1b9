"""``Authorization: Bearer <token>`` for the REST API."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() not in ("bearer", "token"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "malformed Authorization header; send 'Authorization: Bearer <token>'"
            )
        token, problem = ApiToken.verify(parts[1])
        if problem:
            raise exceptions.AuthenticationFailed(problem)
        now = timezone.now()
        # One write per minute at most, not one per request.
        if token.last_used_at is None or now - token.last_used_at > timedelta(
            minutes=1
        ):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="orchestra"'
