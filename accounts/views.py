"""Account pages: roles, own API tokens (create, list, revoke), password,
and the page a locked-out login sees."""

from __future__ import annotations

import math
from datetime import timedelta

from axes.models import AccessAttempt
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import actions, roles
from accounts.models import AccountEvent, ApiToken, Role
from accounts.serializers import MeOut
from orchestra.lib.shapes import shaped

EXPIRY_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What it is for, e.g. ci-pipeline."
    )
    expires_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, initial=90, label="Expires after"
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name or "\x00" in name:
            raise forms.ValidationError("give the token a name")
        return name

    def clean_expires_days(self) -> int:
        days = self.cleaned_data["expires_days"]
        if days > settings.ORCHESTRA_TOKEN_MAX_DAYS:
            raise forms.ValidationError(
                f"at most {settings.ORCHESTRA_TOKEN_MAX_DAYS} days on this server"
            )
        return days


def _account_context(request) -> dict:
    user = request.user
    return {
        "roles": Role.objects.filter(user=user),
        "tokens": user.api_tokens.all()[:200],
        "events": AccountEvent.objects.filter(user=user)[:20],
        "now": timezone.now(),
    }


@require_GET
@login_required
def account(request):
    return render(request, "accounts/account.html", _account_context(request))


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def tokens(request):
    """List and create own tokens; a new key is on this one answer only."""
    form = TokenForm(request.POST or None)
    created = key = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_days"]
        created, key = actions.issue_token(
            actions.Who.from_request(request),
            request.user,
            form.cleaned_data["name"],
            expires_at=timezone.now() + timedelta(days=days),
            reason="created on the tokens page",
        )
        form = TokenForm()
    response = render(
        request,
        "accounts/tokens.html",
        {
            **_account_context(request),
            "form": form,
            "created": created,
            "key": key,
        },
        status=400 if form.errors else 200,
    )
    return response


@require_POST
@login_required
def revoke_token(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if actions.revoke_token(
        actions.Who.from_request(request), token, reason="revoked on the tokens page"
    ):
        messages.success(request, f"Token {token.name!r} revoked: it is refused now.")
    else:
        messages.info(request, f"Token {token.name!r} was already revoked.")
    return redirect("account-tokens")


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def change_password(request):
    """Old password required; the new one passes AUTH_PASSWORD_VALIDATORS."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        actions.set_password(
            actions.Who.from_request(request),
            request.user,
            form.cleaned_data["new_password1"],
            reason="changed by the user on the password page",
        )
        update_session_auth_hash(request, request.user)  # stay logged in here
        messages.success(request, "Password changed.")
        return redirect("account")
    return render(
        request,
        "accounts/password.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


def locked_out(request, original_response=None, credentials=None):
    """django-axes calls this instead of logging in a locked-out pair."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    ip = getattr(request, "axes_ip_address", None) or request.META.get("REMOTE_ADDR")
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=ip)
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    cool_off = settings.AXES_COOLOFF_TIME
    left = (last + cool_off - timezone.now()) if last else cool_off
    minutes = max(1, math.ceil(left.total_seconds() / 60))
    message = (
        f"Too many failed attempts for {username!r} from your address: try again "
        f"in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    form = AuthenticationForm(request)
    return render(
        request,
        "registration/login.html",
        {"form": form, "locked_out": message},
        status=429,
    )


@extend_schema(summary="Who am I: user and roles", responses=MeOut)
@api_view(["GET"])
def me(request):
    """The authenticated user and the namespace prefixes they hold each role on."""
    user = request.user
    return Response(
        shaped(
            MeOut,
            {
                "username": user.get_username(),
                "superuser": user.is_superuser,
                "roles": [
                    {"role": r.role, "namespace": r.namespace}
                    for r in Role.objects.filter(user=user)
                ],
                "viewer_prefixes": roles.prefixes(user, roles.VIEWER),
            },
        )
    )
