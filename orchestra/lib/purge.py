"""Bounded, batched deletes for the retention sweeps (trigger events, cleanup
previews): no statement holds many row locks or runs for long, and a pass
stops after ``max_batches`` and says whether more is left (the Celery task
then enqueues itself again, as saleor's checkout cleanup does)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet


@dataclass
class Purge:
    deleted: int = 0
    more: bool = False

    def as_dict(self) -> dict:
        return {"deleted": self.deleted, "more": self.more}


def delete_in_batches(old: QuerySet, *, batch: int, max_batches: int) -> Purge:
    """Delete the rows of ``old`` (ordered oldest first) ``batch`` at a time."""
    result = Purge()
    for _ in range(max_batches):
        ids = list(old.values_list("pk", flat=True)[:batch])
        if ids:
            # Neither model has cascades or signals: one DELETE ... WHERE id IN.
            result.deleted += old.model.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            return result
    result.more = old.exists()
    return result
