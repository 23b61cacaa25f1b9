"""Dashboard pages for executions: list, detail, actions, bulk, namespaces, audit.

Views are thin: one access helper, one query or action call, then render or
redirect. Who may do what is decided by ``accounts.roles`` only. (Just over
500 lines: one module per interface, as ``api.py``.)
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.http import Http404, HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from executions import storage
from executions.access import get_execution_for_user
from executions.filters import (
    DEFAULT_WINDOW,
    EXECUTION_STATES,
    WINDOWS,
    BadCursor,
    filter_executions,
    keyset_page,
    visible_executions,
)
from executions.forms import ExecuteForm, ReplayForm, ResumeForm
from executions.lifecycle import bulk, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.machine import IllegalTransition, StaleState
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.resume import pending_inputs, resume
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Cause, LogEntry, StateChange
from executions.presenters import gantt
from flows.access import get_flow_for_user
from flows.models import Flow, Namespace
from flows.spec.inputs import InputError

PAGE_SIZE = 25
LOG_BATCH = 500


# --- list ----------------------------------------------------------------------
@require_GET
def list_executions(request):
    filterset = filter_executions(request.user, request.GET)
    context = {
        "nav": "executions",
        "filterset": filterset,
        "states": EXECUTION_STATES,
        "windows": [(k, v[0]) for k, v in WINDOWS.items()] + [("all", "Any time")],
        "default_window": DEFAULT_WINDOW,
        "selected_states": request.GET.getlist("state"),
        "namespaces": _visible_namespaces(request.user),
        "bulk_actions": bulk.BULK_ACTIONS,
        "query": _query_without(request.GET, "cursor"),
    }
    template = "executions/list.html"
    if request.htmx:
        template += "#rows"
    if not filterset.is_valid():
        context["error"] = filterset.error_message
        return render(request, template, context, status=400)
    try:
        page = keyset_page(filterset.qs, request.GET.get("cursor"), PAGE_SIZE)
    except BadCursor as exc:
        context["error"] = str(exc)
        return render(request, template, context, status=400)
    context["page"] = page
    if page.next_cursor:
        context["next_url"] = "?" + _query_with(request.GET, cursor=page.next_cursor)
    return render(request, template, context)


def _query_without(params: QueryDict, *names: str) -> str:
    copy = params.copy()
    for name in names:
        copy.pop(name, None)
    return copy.urlencode()


def _query_with(params: QueryDict, **values: str) -> str:
    copy = params.copy()
    for key, value in values.items():
        copy[key] = value
    return copy.urlencode()


def _visible_namespaces(user) -> list[str]:
    return list(
        Namespace.objects.filter(roles.namespace_q(user, field="name")).values_list(
            "name", flat=True
        )
    )


@require_GET
def execution_status(request, pk: int):
    """The state and duration cells of one list row (polled while it runs)."""
    execution = get_execution_for_user(request, pk)
    return render(request, "executions/list.html#status", {"e": execution})


# --- detail --------------------------------------------------------------------
def _seen(execution, taskruns) -> str:
    """What the page shows, in a few characters: the live poll sends it back,
    and a change of state (the execution's or a task run's) refreshes the
    outputs, task outputs and history too."""
    shown = [execution.state, *(f"{tr.pk}:{tr.state}" for tr in taskruns)]
    return hashlib.blake2s("|".join(shown).encode(), digest_size=6).hexdigest()


def _asks(execution) -> bool:
    try:
        return bool(pending_inputs(execution))
    except ActionError:
        return False


def _detail_context(request, execution) -> dict:
    taskruns = list(execution.taskruns.select_related("worker").order_by("id"))
    allowed = rules.allowed(request.user, execution)
    return {
        "nav": "executions",
        "e": execution,
        "taskruns": taskruns,
        "gantt": gantt(execution, taskruns),
        "allowed": allowed,
        # One choice per task, whatever its attempts or iterations.
        "task_ids": list(
            dict.fromkeys(tr.task_id for tr in taskruns if not tr.parent_id)
        ),
        "task_outputs": [tr for tr in taskruns if tr.outputs],
        "seen": _seen(execution, taskruns),
        # The Resume button opens the form when the pause asks for answers.
        "resume_asks": bool(allowed.get("resume") and _asks(execution)),
        "now": timezone.now(),
    }


@require_GET
def show_execution(request, pk: int):
    execution = get_execution_for_user(request, pk)
    context = _detail_context(request, execution)
    logs = list(LogEntry.objects.filter(execution=execution).order_by("id")[:LOG_BATCH])
    context.update(
        {
            "logs": logs,
            "last_log_id": logs[-1].pk if logs else 0,
            "more_logs": len(logs) == LOG_BATCH,
            **_history(request, execution),
            "children": execution.children.order_by("id")[:50],
        }
    )
    return render(request, "executions/detail.html", context)


HISTORY_SHOWN = 300


def _history(request, execution) -> dict:
    """The state history, capped unless asked for in full (a ForEach over
    thousands of items writes thousands of rows)."""
    qs = (
        StateChange.objects.filter(execution=execution)
        .select_related("taskrun")
        .only(
            "at",
            "from_state",
            "to_state",
            "cause",
            "actor",
            "reason",
            "taskrun__task_id",
            "taskrun__value",
        )
        .order_by("id")
    )
    if request.GET.get("history") == "all":
        return {"history": list(qs), "history_total": None}
    rows = list(qs[: HISTORY_SHOWN + 1])
    if len(rows) <= HISTORY_SHOWN:
        return {"history": rows, "history_total": None}
    return {"history": rows[:HISTORY_SHOWN], "history_total": qs.count()}


@require_GET
def execution_live(request, pk: int):
    """State, actions and Gantt; re-polled by the page until the execution ends."""
    execution = get_execution_for_user(request, pk)
    context = _detail_context(request, execution)
    if request.GET.get("seen") != context["seen"]:
        context.update(
            oob=True,
            children=execution.children.order_by("id")[:50],
            **_history(request, execution),
        )
    return render(request, "executions/detail.html#live", context)


@require_GET
def execution_logs(request, pk: int):
    """Log lines after ``after`` plus the poller that fetches the next ones."""
    execution = get_execution_for_user(request, pk)
    try:
        after = max(int(request.GET.get("after", 0)), 0)
    except ValueError:
        return HttpResponseBadRequest("after must be a log line id (an integer)")
    logs = list(
        LogEntry.objects.filter(execution=execution, id__gt=after).order_by("id")[
            :LOG_BATCH
        ]
    )
    return render(
        request,
        "executions/detail.html#loglines",
        {
            "e": execution,
            "logs": logs,
            "last_log_id": logs[-1].pk if logs else after,
            "more_logs": len(logs) == LOG_BATCH,
            "follow": True,
        },
    )


@require_GET
def download_file(request, pk: int):
    """A file of the execution (``?path=kestra:///...``) as an attachment."""
    execution = get_execution_for_user(request, pk)
    uri = request.GET.get("path", "")
    if not uri:
        return HttpResponseBadRequest(
            "path is required: the kestra:/// URI of one of this execution's files"
        )
    try:
        download = storage.open_download(
            execution, uri, lambda ns: roles.has_role(request.user, ns)
        )
    except storage.BadStorageURI as exc:
        return HttpResponseBadRequest(str(exc))
    except storage.StorageError as exc:
        raise Http404(str(exc)) from None
    return download.response()


# --- single actions ------------------------------------------------------------
def _run_action(request, pk: int, name: str, call):
    execution = get_execution_for_user(request, pk, roles.OPERATOR)
    try:
        result = call(execution)
    except (ActionError, IllegalTransition, StaleState) as exc:
        messages.error(request, f"Could not {name} execution {pk}: {exc}")
        return redirect("executions:show", pk=pk)
    messages.success(request, f"Execution {pk}: {name} requested.")
    target = getattr(result, "pk", pk) or pk
    return redirect("executions:show", pk=target)


def _reason(request) -> str:
    return request.POST.get("reason", "").strip()[:500]


@require_POST
def kill_execution(request, pk: int):
    return _run_action(
        request,
        pk,
        "kill",
        lambda e: kill(
            e.pk,
            reason=_reason(request) or "killed from the dashboard",
            actor=Actor.from_request(request, "web"),
        ),
    )


@require_POST
def restart_execution(request, pk: int):
    return _run_action(
        request,
        pk,
        "restart",
        lambda e: restart(
            e.pk,
            reason=_reason(request) or "restarted from the dashboard",
            actor=Actor.from_request(request, "web"),
        ),
    )


@require_POST
def replay_execution(request, pk: int):
    form = ReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Replay: {form.errors.as_text()}")
        return redirect("executions:show", pk=pk)
    return _run_action(
        request,
        pk,
        "replay",
        lambda e: replay(
            e.pk,
            from_task=form.cleaned_data["from_task"] or None,
            reason=_reason(request) or "replayed from the dashboard",
            actor=Actor.from_request(request, "web"),
        ),
    )


@require_http_methods(["GET", "POST"])
def resume_execution(request, pk: int):
    """The Resume form: the paused tasks' ``onResume`` inputs, typed and with
    the required ones marked; a Pause that asks nothing resumes on the POST."""
    execution = get_execution_for_user(request, pk, roles.OPERATOR)
    try:
        decls = pending_inputs(execution)
    except ActionError as exc:
        messages.error(request, f"Could not resume execution {pk}: {exc}")
        return redirect("executions:show", pk=pk)
    form = ResumeForm(decls, request.POST if request.method == "POST" else None)
    if request.method == "GET" and not rules.allowed(request.user, execution).get(
        "resume"
    ):
        messages.error(
            request, f"Execution {pk} is {execution.state}; there is nothing to resume."
        )
        return redirect("executions:show", pk=pk)
    if request.method == "POST" and form.is_valid():
        try:
            resume(
                execution.pk,
                inputs=form.input_values(),
                reason=form.cleaned_data["reason"].strip()
                or "resumed from the dashboard",
                actor=Actor.from_request(request, "web"),
            )
        except InputError as exc:
            form.add_input_errors(exc)
        except (ActionError, IllegalTransition, StaleState) as exc:
            messages.error(request, f"Could not resume execution {pk}: {exc}")
            return redirect("executions:show", pk=pk)
        else:
            messages.success(request, f"Execution {pk}: resume requested.")
            return redirect("executions:show", pk=pk)
    return render(
        request,
        "executions/resume.html",
        {"nav": "executions", "e": execution, "form": form},
        status=400 if form.is_bound and form.errors else 200,
    )


# --- bulk --------------------------------------------------------------------
def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except ValueError:
            continue
    return ids


@require_POST
def bulk_executions(request):
    """POST 1 previews (selected rows or all matching); POST 2 with confirm=yes acts."""
    name = request.POST.get("action", "")
    try:
        action = bulk.get_action(name)
    except ActionError as exc:
        messages.error(request, str(exc))
        return redirect("executions:list")
    back = reverse("executions:list") + "?" + request.POST.get("query", "")
    if request.POST.get("confirm") == "yes":
        result = bulk.apply(
            Actor.from_request(request, "web"),
            action.name,
            _ids(request.POST.getlist("ids")),
            reason=_reason(request) or f"bulk {action.name} from the dashboard",
        )
        messages.success(request, result.message + ".")
        for pk, why in list(result.skipped.items())[:20]:
            messages.warning(request, f"Execution {pk} skipped: {why}")
        return redirect(back)
    if request.POST.get("all_matching") == "yes":
        filterset = filter_executions(
            request.user, QueryDict(request.POST.get("query", ""))
        )
        if not filterset.is_valid():
            messages.error(request, filterset.error_message)
            return redirect(back)
        plan = bulk.preview(request.user, action.name, filterset.qs)
    else:
        ids = _ids(request.POST.getlist("ids"))
        if not ids:
            messages.error(
                request, "Select at least one execution, or choose all matching."
            )
            return redirect(back)
        plan = bulk.preview_ids(request.user, action.name, ids)
    return render(
        request,
        "executions/bulk_confirm.html",
        {
            "nav": "executions",
            "plan": plan,
            "query": request.POST.get("query", ""),
            "max_bulk": bulk.MAX_BULK,
        },
    )


# --- execute -------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
def execute_flow(request, namespace: str, flow_id: str):
    flow = get_flow_for_user(request, namespace, flow_id, roles.OPERATOR)
    revision = flow.latest
    spec = revision.spec
    form = ExecuteForm(
        spec,
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
    )
    if request.method == "POST" and form.is_valid():
        try:
            with storage.uploads_discarded_on_error():
                execution = create_execution(
                    revision,
                    inputs=form.input_values(),
                    labels=form.cleaned_data["labels"],
                    trigger={"type": "manual", "user": request.user.get_username()},
                    actor=Actor.from_request(request, "web"),
                )
        except InputError as exc:
            form.add_input_errors(exc)
        except ActionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Execution {execution.pk} created.")
            return redirect("executions:show", pk=execution.pk)
    return render(
        request,
        "executions/execute.html",
        {
            "nav": "flows",
            "flow": flow,
            "spec": spec,
            "form": form,
        },
        status=400 if form.is_bound and form.errors else 200,
    )


# --- namespaces and audit ------------------------------------------------------
@require_GET
def list_namespaces(request):
    user = request.user
    names = _visible_namespaces(user)
    flows_by_ns: dict[str, list[str]] = {}
    for ns, flow_id in (
        Flow.objects.live()
        .filter(roles.namespace_q(user))
        .order_by("namespace", "flow_id")
        .values_list("namespace", "flow_id")
    ):
        flows_by_ns.setdefault(ns, []).append(flow_id)
    since = timezone.now() - WINDOWS[DEFAULT_WINDOW][1]
    stats = (
        visible_executions(user)
        .filter(created_at__gte=since)
        .values("namespace")
        .annotate(
            total=Count("id"),
            failed=Count("id", filter=Q(state="FAILED")),
            running=Count("id", filter=Q(state="RUNNING")),
            last=Max("created_at"),
        )
    )
    by_ns = {row["namespace"]: row for row in stats}
    rows = [
        {
            "name": ns,
            "depth": ns.count("."),
            "flows": len(flows_by_ns.get(ns, [])),
            "flow_ids": flows_by_ns.get(ns, []),
            **{k: by_ns.get(ns, {}).get(k, 0) for k in ("total", "failed", "running")},
            "last": by_ns.get(ns, {}).get("last"),
        }
        for ns in names
    ]
    return render(
        request,
        "executions/namespaces.html",
        {
            "nav": "namespaces",
            "rows": rows,
            "window": WINDOWS[DEFAULT_WINDOW][0],
        },
    )


AUDIT_CAUSES = [Cause.USER, Cause.API, Cause.CLI, Cause.SWEEP, Cause.SLA]


@require_GET
def audit_log(request):
    """State changes of executions caused by people and sweeps, newest first."""
    qs = StateChange.objects.filter(
        roles.namespace_q(request.user, field="execution__namespace"),
        taskrun__isnull=True,
        cause__in=AUDIT_CAUSES,
    ).select_related("execution")
    cause = request.GET.get("cause", "")
    if cause:
        if cause not in AUDIT_CAUSES:
            return HttpResponseBadRequest(
                f"cause must be one of {', '.join(AUDIT_CAUSES)}"
            )
        qs = qs.filter(cause=cause)
    actor = request.GET.get("actor", "").strip()
    if actor:
        qs = qs.filter(actor=actor)
    try:
        before = int(request.GET.get("before", 0))
    except ValueError:
        return HttpResponseBadRequest("before must be an audit entry id")
    if before:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: PAGE_SIZE * 2 + 1])
    more = len(rows) > PAGE_SIZE * 2
    rows = rows[: PAGE_SIZE * 2]
    next_url = None
    if more:
        params = {k: v for k, v in {"cause": cause, "actor": actor}.items() if v}
        next_url = "?" + urlencode({**params, "before": rows[-1].pk})
    return render(
        request,
        "executions/audit.html",
        {
            "nav": "audit",
            "rows": rows,
            "next_url": next_url,
            "causes": AUDIT_CAUSES,
            "cause": cause,
            "actor": actor,
        },
    )
