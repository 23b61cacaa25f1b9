"""The one definition of "which executions": used by the pages, the REST API
and bulk actions alike, so a URL copied from the dashboard means the same
thing to ``GET /api/executions``.

Lists are bounded by a time window (last 7 days unless asked otherwise) and
paginated by keyset on (created_at, id): the database never counts or skips
rows, so page 500 costs what page 1 costs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import roles
from executions.models import Execution, State
from orchestra.lib.labels import LabelError, parse_labels

WINDOWS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT_WINDOW = "7d"
EXECUTION_STATES = [(s.value, s.label) for s in State if s != State.SKIPPED]


class LabelField(forms.Field):
    """Repeated ``labels=key:value`` parameters (or one comma-separated;
    ``key=value`` is read too)."""

    widget = forms.MultipleHiddenInput
    default_validators = [ProhibitNullCharactersValidator()]

    def to_python(self, value):
        if not value:
            return {}
        try:
            return parse_labels(value)
        except LabelError as exc:
            raise ValidationError(str(exc)) from None

    def validate(self, value):
        super().validate(value)
        for key, item in value.items():
            self.run_validators(key)
            self.run_validators(item)

    def run_validators(self, value):
        if isinstance(value, str):
            super().run_validators(value)


class UTCDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, converted to UTC; offsets or years the database cannot store are refused."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(f"{value!r} is out of range") from None


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class LabelFilter(django_filters.Filter):
    field_class = LabelField

    def filter(self, qs, value):
        return qs.with_labels(value) if value else qs


class ExecutionFilterSet(django_filters.FilterSet):
    namespace = django_filters.CharFilter(
        method="filter_namespace",
        help_text="Namespace; its child namespaces are included.",
    )
    flow = django_filters.CharFilter(field_name="flow_id", help_text="Flow id.")
    # distinct=False: one row per execution already; DISTINCT would make the
    # database sort every matching row before the LIMIT.
    state = django_filters.MultipleChoiceFilter(
        choices=EXECUTION_STATES,
        distinct=False,
        help_text="One or more states (repeat the parameter).",
    )
    labels = LabelFilter(help_text="key:value; repeat for several (all must match).")
    window = django_filters.ChoiceFilter(
        choices=[(k, v[0]) for k, v in WINDOWS.items()] + [("all", "Any time")],
        method="filter_noop",
        empty_label=None,
        help_text=f"Time window preset (default {DEFAULT_WINDOW}); ignored when "
        "after/before is given or an id is searched.",
    )
    after = UTCDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Created at or after (ISO 8601).",
    )
    before = UTCDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        help_text="Created before (ISO 8601).",
    )
    trigger = django_filters.CharFilter(
        field_name="trigger_id", help_text="Trigger id."
    )
    id = django_filters.NumberFilter(
        field_name="id", min_value=1, max_value=2**63 - 1, help_text="Execution id."
    )

    class Meta:
        model = Execution
        fields: list[str] = []

    def filter_namespace(self, qs, name, value):
        return qs.in_namespace(value.strip().rstrip("."))

    def filter_noop(self, qs, name, value):
        return qs  # applied in filter_queryset, together with after/before

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if data.get("id") or data.get("after") or data.get("before"):
            return queryset
        window = data.get("window") or DEFAULT_WINDOW
        if window == "all":
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - WINDOWS[window][1])

    @property
    def error_message(self) -> str:
        parts = []
        for field, errors in self.errors.items():
            parts.append(f"{field}: {' '.join(str(e) for e in errors)}")
        return "; ".join(parts)


def visible_executions(user, role: str = roles.VIEWER) -> QuerySet:
    """Executions in namespaces the user holds ``role`` on."""
    return Execution.objects.filter(roles.namespace_q(user, role))


def filter_executions(user, params) -> ExecutionFilterSet:
    """Bind the filters to ``params`` over what ``user`` may see.

    Check ``.is_valid()``; ``.qs`` is then the filtered queryset.
    """
    return ExecutionFilterSet(params, queryset=visible_executions(user))


# --- keyset pagination ------------------------------------------------------
@dataclass
class Page:
    rows: list
    next_cursor: str | None
    size: int


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, pk: int) -> str:
    raw = f"{created_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        stamp, _, pk = text.partition("|")
        when = parse_datetime(stamp)
        if when is None:
            raise ValueError(stamp)
        return when, int(pk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(
            "invalid cursor; use the 'next' link of the previous page"
        ) from exc


def keyset_page(qs: QuerySet, cursor: str | None, size: int = 25) -> Page:
    """Newest first, ``size`` rows after ``cursor`` (a value from a previous page)."""
    if cursor:
        when, pk = decode_cursor(cursor)
        qs = qs.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=pk))
    rows = list(qs.order_by("-created_at", "-id")[: size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = encode_cursor(last.created_at, last.pk)
    return Page(rows=rows, next_cursor=next_cursor, size=size)
