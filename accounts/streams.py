"""Caps on live follows (server-sent events).

A follow holds one web thread for its whole life, so one user opening many
could take every thread of the server. Each open stream holds a lease row;
a user gets at most ORCHESTRA_SSE_PER_USER, the server ORCHESTRA_SSE_MAX_STREAMS,
and each lease ends with its stream (or, if the process died, at its expiry).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import StreamLease


class TooManyStreams(Exception):
    """The user or the server already has as many follows open as allowed."""


def open_lease(user, seconds: float) -> StreamLease:
    """A lease for one stream of ``seconds``; raises TooManyStreams with a
    message that says which limit was hit and what to do."""
    now = timezone.now()
    per_user = settings.ORCHESTRA_SSE_PER_USER
    total = settings.ORCHESTRA_SSE_MAX_STREAMS
    with transaction.atomic():
        # Two follows of one user opened at once count each other: the user
        # row lock makes them take turns here.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        StreamLease.objects.filter(expires_at__lte=now).delete()
        if StreamLease.objects.filter(user_id=user.pk).count() >= per_user:
            raise TooManyStreams(
                f"you already follow {per_user} executions live, the most one user "
                "may; close one (or wait: a follow ends after "
                f"{seconds:.0f} s) or poll GET /api/executions/<id>/logs?after=N"
            )
        if StreamLease.objects.count() >= total:
            raise TooManyStreams(
                f"the server already serves {total} live follows, its limit; try "
                "again shortly or poll GET /api/executions/<id>/logs?after=N"
            )
        # A little longer than the stream itself, so a lease is never gone
        # while its stream still runs.
        return StreamLease.objects.create(
            user_id=user.pk, expires_at=now + timedelta(seconds=seconds + 30)
        )


def close_lease(lease: StreamLease) -> None:
    StreamLease.objects.filter(pk=lease.pk).delete()
