from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from accounts.models import Role
from accounts.serializers import MeOut
from orchestra.lib.shapes import shaped


@login_required
def account(request):
    return render(
        request,
        "accounts/account.html",
        {
            "roles": Role.objects.filter(user=request.user),
            "tokens": request.user.api_tokens.all(),
        },
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
