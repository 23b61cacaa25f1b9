"""Account events that other code announces by signal."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import actions
from accounts.models import AccountAction, AccountEvent


def record_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    """django-axes locked a username+address pair out: that is an account event."""
    user = get_user_model().objects.filter(username=username or "").first()
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    detail = f"{username!r} from {ip_address} for {minutes} minutes"
    # Axes signals again for each attempt refused during the lockout: one row
    # per lockout is the event, not one per refused attempt.
    if AccountEvent.objects.filter(
        action=AccountAction.LOCKED_OUT,
        detail=detail,
        at__gte=timezone.now() - settings.AXES_COOLOFF_TIME,
    ).exists():
        return
    actions.record(
        actions.Who("login throttle", "system"),
        user,
        AccountAction.LOCKED_OUT,
        detail,
        f"{settings.AXES_FAILURE_LIMIT} failed logins",
    )
