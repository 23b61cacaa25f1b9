from django import template

from orchestra.lib.durations import format_duration

register = template.Library()


@register.filter
def duration(value):
    """A timedelta as people read it: 45m 00s, 1h 30m; empty stays '—'."""
    return "—" if value is None or value == "" else format_duration(value)
