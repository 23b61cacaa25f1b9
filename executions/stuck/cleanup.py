"""Cleanup of stuck executions: preview, then cancel exactly what was previewed.

``preview`` stores a CleanupRun with the verdicts of ``detect``; ``confirm``
cancels those ids only, in batches: each batch locks its rows, judges them
again with the same function, and skips (with the reason) any execution that
ended, moved or progressed since the preview. The CLI, the REST API, the web
page and the automatic sweep all go through here.

Cancelling goes through ``lifecycle.stop``, the path every kill takes:
waiting task runs are cancelled and their queued messages revoked, task runs
held by dead workers are cancelled, children go with their parent, and an
execution whose worker only went silent goes KILLING with stop state
CANCELLED, so the worker stops it if it wakes, and the liveness sweep forces
CANCELLED after ORCHESTRA_KILL_GRACE_SECONDS if it does not."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from executions.lifecycle import stop
from executions.lifecycle.actor import Actor
from executions.models import (
    TERMINAL,
    AutoCleanup,
    Cause,
    CleanupRun,
    Execution,
    State,
    StateChange,
)
from executions.stuck.detect import Detection, Verdict, detect

BATCH = 1000
# Spared executions listed in a CLI/REST answer (all are counted).
SPARED_LISTED = 1000
# Ten years: a larger threshold means nothing and would overflow dates.
MAX_MINUTES = 10 * 366 * 24 * 60
# The largest cap ("cancel at most N") a request may ask for.
MAX_CAP = 1_000_000
# A preview older than this cannot be confirmed: what it showed is history.
PREVIEW_TTL = timedelta(hours=1)


class CleanupError(ValueError):
    """The cleanup cannot go ahead; the message says why."""


def _row(v: Verdict) -> dict[str, Any]:
    return {
        "id": v.id,
        "namespace": v.namespace,
        "flow_id": v.flow_id,
        "state": v.state,
        "created_at": v.created_at.isoformat(),
        "progress_at": v.progress_at.isoformat(),
        "kind": v.kind,
        "reason": v.reason,
        "worker": v.worker,
    }


def preview(
    *,
    older_than_minutes: int = 5,
    namespace: str = "",
    flow: str = "",
    max_count: int | None = None,
    actor: Actor,
    dry_run: bool = False,
    exclude_namespaces: tuple[str, ...] = (),
) -> tuple[CleanupRun, Detection]:
    """Detect and store what a confirm would cancel (oldest first, capped)."""
    if not 1 <= older_than_minutes <= MAX_MINUTES:
        raise CleanupError(f"older_than_minutes must be between 1 and {MAX_MINUTES}")
    if max_count is not None and not 1 <= max_count <= MAX_CAP:
        raise CleanupError(f"max must be between 1 and {MAX_CAP:,}")
    found = detect(
        older_than_minutes=older_than_minutes,
        namespace=namespace,
        flow=flow,
        user=actor.user,
        exclude_namespaces=exclude_namespaces,
    )
    planned = found.stuck if max_count is None else found.stuck[:max_count]
    run = CleanupRun.objects.create(
        created_by=actor.name,
        cause=actor.cause,
        older_than_minutes=older_than_minutes,
        namespace=namespace,
        flow_id=flow,
        max_count=max_count,
        dry_run=dry_run,
        user=actor.user if getattr(actor.user, "pk", None) else None,
        preview=[_row(v) for v in planned],
        spared_count=len(found.spared),
        spared=[_row(v) for v in found.spared[:SPARED_LISTED]],
        not_permitted=[_row(v) for v in found.forbidden[:SPARED_LISTED]],
        beyond_cap=len(found.stuck) - len(planned),
    )
    return run, found


def confirm(run: CleanupRun, *, actor: Actor) -> CleanupRun:
    """Cancel the previewed executions that are still stuck and unchanged.

    Runs once per preview: a second confirm (double click, replayed form)
    raises CleanupError and changes nothing.
    """
    if run.dry_run:
        raise CleanupError(f"cleanup #{run.pk} was a dry run; preview again to cancel")
    now = timezone.now()
    if run.status == CleanupRun.Status.PREVIEWED and now - run.created_at > PREVIEW_TTL:
        raise CleanupError(
            f"preview #{run.pk} is older than {PREVIEW_TTL}; preview again"
        )
    claimed = CleanupRun.objects.filter(
        pk=run.pk, status=CleanupRun.Status.PREVIEWED
    ).update(
        status=CleanupRun.Status.RUNNING, confirmed_at=now, confirmed_by=actor.name
    )
    if not claimed:
        raise CleanupError(f"cleanup #{run.pk} was already confirmed")
    run.refresh_from_db()
    rows = run.preview[: run.max_count] if run.max_count else run.preview
    cancelled: list[int] = []
    skipped: list[dict[str, Any]] = []
    for start in range(0, len(rows), BATCH):
        done, left = _cancel_batch(run, rows[start : start + BATCH], actor=actor)
        cancelled += done
        skipped += left
        # Each batch commits on its own; the run records it as it goes, so a
        # confirm cut short (process killed) still says what it cancelled.
        CleanupRun.objects.filter(pk=run.pk).update(
            cancelled_ids=cancelled, skipped=skipped
        )
    run.cancelled_ids = cancelled
    run.skipped = skipped
    run.status = CleanupRun.Status.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["cancelled_ids", "skipped", "status", "finished_at"])
    return run


def _moved(row: dict[str, Any], state: str, progress_at: datetime) -> str:
    if state != row["state"]:
        return f"moved from {row['state']} to {state} since the preview"
    # Compared as instants: the preview stored them from epoch seconds.
    if (
        abs(
            progress_at.timestamp()
            - datetime.fromisoformat(row["progress_at"]).timestamp()
        )
        > 5e-7
    ):
        return "made progress since the preview"
    return ""


@transaction.atomic
def _cancel_batch(
    run: CleanupRun, rows: list[dict[str, Any]], *, actor: Actor
) -> tuple[list[int], list[dict[str, Any]]]:
    ids = [row["id"] for row in rows]
    # Lock in id order (every cleanup does), so two confirms never deadlock.
    locked = {
        pk: (state, progress_at)
        for pk, state, progress_at in Execution.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "state", "progress_at")
    }
    now = timezone.now()
    found = detect(
        older_than_minutes=run.older_than_minutes, ids=ids, user=actor.user, now=now
    )
    verdicts = found.by_id
    go: list[Verdict] = []
    skipped: list[dict[str, Any]] = []
    for row in rows:
        pk = row["id"]
        if pk not in locked:
            skipped.append({"id": pk, "reason": "no longer exists"})
            continue
        state, progress_at = locked[pk]
        if state in TERMINAL:
            skipped.append({"id": pk, "reason": f"ended {state} since the preview"})
            continue
        moved = _moved(row, state, progress_at)
        verdict = verdicts.get(pk)
        if moved:
            skipped.append({"id": pk, "reason": moved})
        elif verdict is None:
            skipped.append({"id": pk, "reason": "no longer matches the filters"})
        elif not verdict.stuck:
            skipped.append({"id": pk, "reason": f"no longer stuck: {verdict.reason}"})
        elif not verdict.permitted:
            skipped.append(
                {
                    "id": pk,
                    "reason": f"you are not operator on namespace {verdict.namespace}",
                }
            )
        else:
            go.append(verdict)
    cancel_verdicts(go, actor=actor, run=run)
    return [v.id for v in go], skipped


def cancel_verdicts(
    verdicts: list[Verdict], *, actor: Actor, run: CleanupRun | None = None
) -> None:
    """Cancel stuck executions (rows already locked by the caller) and their
    active descendants, through the one stop path."""
    if not verdicts:
        return
    details = {
        v.id: {
            "cleanup_run": run.pk if run else None,
            "kind": v.kind,
            "worker": v.worker,
            "older_than_minutes": run.older_than_minutes if run else None,
        }
        for v in verdicts
    }
    reasons = {v.id: f"stuck ({v.kind}): {v.reason}" for v in verdicts}
    stop.stop_many(
        [(v.id, v.state) for v in verdicts if v.state != State.KILLING],
        actor=actor,
        final=State.CANCELLED,
        reasons=reasons,
        details=details,
    )
    # KILLING already: a stop nobody confirmed ends now, as its stop asked.
    for execution in Execution.objects.filter(
        pk__in=[v.id for v in verdicts if v.state == State.KILLING]
    ):
        stop.settle(execution, actor=actor, reason=reasons[execution.pk], force=True)


def message(count: int, older_than_minutes: int, dry_run: bool) -> str:
    noun = "execution" if count == 1 else "executions"
    verb = "Would cancel" if dry_run else "Cancelled"
    minutes = "minute" if older_than_minutes == 1 else "minutes"
    return f"{verb} {count} stuck {noun} older than {older_than_minutes} {minutes}"


def run_cleanup(
    *,
    older_than_minutes: int = 5,
    dry_run: bool = False,
    namespace: str = "",
    flow: str = "",
    max_count: int | None = None,
    actor: Actor,
) -> dict[str, Any]:
    """Preview and, unless ``dry_run``, confirm at once (CLI and REST).

    Returns ``cancelled_count``, ``execution_ids`` and ``message``, plus the
    reasons and what was spared, skipped or not permitted.
    """
    run, found = preview(
        older_than_minutes=older_than_minutes,
        namespace=namespace,
        flow=flow,
        max_count=max_count,
        actor=actor,
        dry_run=dry_run,
    )
    if not dry_run:
        run = confirm(run, actor=actor)
        ids = list(run.cancelled_ids)
    else:
        ids = run.preview_ids
    by_id = {row["id"]: row for row in run.preview}
    text = message(len(ids), older_than_minutes, dry_run)
    if run.beyond_cap:
        text += f" ({run.beyond_cap} more beyond the cap of {max_count})"
    if run.skipped:
        text += f"; skipped {len(run.skipped)} that changed since the preview"
    return {
        "cancelled_count": len(ids),
        "execution_ids": ids,
        "message": text,
        "dry_run": dry_run,
        "cleanup_id": run.pk,
        "reasons": {
            str(pk): f"{by_id[pk]['kind']}: {by_id[pk]['reason']}" for pk in ids
        },
        "stuck": [by_id[pk] for pk in ids],
        "skipped": run.skipped,
        "beyond_cap": run.beyond_cap,
        "not_permitted": [v.as_dict() for v in found.forbidden],
        "spared_count": len(found.spared),
        "spared": [
            {
                "id": v.id,
                "flow": v.flow,
                "kind": v.kind,
                "reason": v.reason,
                "worker": v.worker,
            }
            for v in found.spared[:SPARED_LISTED]
        ],
    }


def auto_cleanup() -> dict[str, int]:
    """The beat job: for each enabled AutoCleanup prefix, cancel what is stuck
    past its threshold, within its daily cap. A more specific enabled prefix
    owns its namespaces. Safe on several machines at once: each prefix is
    locked while it runs, and each execution is re-checked under its lock."""
    done: dict[str, int] = {}
    prefixes = list(
        AutoCleanup.objects.filter(enabled=True).values_list("namespace", flat=True)
    )
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for prefix in prefixes:
        more_specific = tuple(
            p
            for p in prefixes
            if p != prefix and (not prefix or p.startswith(prefix + "."))
        )
        with transaction.atomic():
            policy = (
                AutoCleanup.objects.select_for_update()
                .filter(namespace=prefix, enabled=True)
                .first()
            )
            if policy is None:
                continue
            used = StateChange.objects.filter(
                taskrun__isnull=True,
                cause=Cause.SWEEP,
                actor=policy.actor,
                at__gte=today,
                to_state__in=[State.CANCELLED, State.KILLING],
            ).count()
            left = policy.daily_cap - used
            if left <= 0:
                done[prefix or "*"] = 0
                continue
            actor = Actor.system(policy.actor, Cause.SWEEP)
            run, _ = preview(
                older_than_minutes=policy.older_than_minutes,
                namespace=prefix,
                max_count=left,
                actor=actor,
                exclude_namespaces=more_specific,
            )
            if run.preview:
                run = confirm(run, actor=actor)
            else:
                CleanupRun.objects.filter(pk=run.pk).delete()  # nothing to keep
                run.cancelled_ids = []
            done[prefix or "*"] = len(run.cancelled_ids)
    return done
