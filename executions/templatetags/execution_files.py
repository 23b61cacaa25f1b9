"""``json_with_files``: a JSON value as on the execution page, with every
internal-storage URI in it turned into a download link (and its size)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import template
from django.core.files.storage import default_storage
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from executions.storage import StorageError, path_of, uris_in

register = template.Library()

# Sizes are one stat (or HEAD request) each: only for the first few files.
MAX_SIZES = 50


def _size(uri: str) -> str:
    try:
        return filesizeformat(default_storage.size(path_of(uri)))
    except (StorageError, OSError, NotImplementedError):
        return ""


@register.filter
def json_with_files(value, execution_id: int) -> SafeString:
    text = escape(json.dumps(value, indent=2, sort_keys=True, default=str))
    base = reverse("executions:file", args=[execution_id])
    for index, uri in enumerate(sorted(uris_in(value))):
        size = _size(uri) if index < MAX_SIZES else ""
        link = (
            f'"<a class="file" href="{escape(base + "?" + urlencode({"path": uri}))}" '
            f'download>{escape(uri)}</a>"'
            + (f' <span class="hint">({size})</span>' if size else "")
        )
        text = text.replace(escape(json.dumps(uri)), link)
    return mark_safe(text)  # noqa: S308 — every piece above is escaped
