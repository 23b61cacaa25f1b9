"""Account events that other code announces by signal."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model

from accounts import actions
from accounts.models import AccountAction


def record_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    """django-axes locked a username+address pair out: that is an account event."""
    user = get_user_model().objects.filter(username=username or "").first()
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    actions.record(
        actions.Who("login throttle", "system"),
        user,
        AccountAction.LOCKED_OUT,
        f"{username!r} from {ip_address} for {minutes} minutes",
        f"{settings.AXES_FAILURE_LIMIT} failed logins",
    )
