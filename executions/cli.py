"""CLI verbs that start, watch and stop executions.

Over 500 lines: the verbs of one CLI group (execute, test, list, logs, kill,
restart, replay, resume, workers) share the follow loop, the tables and the
argument helpers; each verb is a thin call into ``executions.lifecycle``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from django.db.models import Q
from django.utils import timezone

from executions.engine.inprocess import use_in_process
from executions.engine.lease import stop_current_worker
from executions.engine.scratch import scratch_database
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError, FlowNotFound
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.resume import resume
from executions.lifecycle.start import create_execution, get_flow
from executions.lifecycle.stop import kill
from executions.models import (
    TERMINAL,
    Execution,
    LogEntry,
    State,
    TaskRun,
    Worker,
    WorkerState,
)
from executions.presenters import execution_as_dict, log_as_dict
from executions.signals import in_process_tick
from executions.storage import save_input_file
from flows.spec import FlowInvalid, FlowSpec, parse_flow
from flows.spec.inputs import InputError
from orchestra.lib import levels
from orchestra.lib.durations import format_duration
from orchestra.lib.labels import format_labels
from orchestra.lib.output import (
    UsageError,
    add_label_option,
    label_options,
    parse_pairs,
    print_json,
    table,
)

SYMBOLS = {
    State.SUCCESS: "✔",
    State.WARNING: "!",
    State.FAILED: "✘",
    State.KILLED: "■",
    State.CANCELLED: "■",
    State.SKIPPED: "-",
    State.RUNNING: "▶",
}


def register(group) -> None:
    flows = group("flows", "validate, deploy, list, run and test flows")
    p = flows.add_parser("execute", help="run a deployed flow")
    p.add_argument("--namespace", "-n", required=True)
    p.add_argument("--flow", "-f", required=True)
    p.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="KEY=VALUE",
        help="an input; JSON for JSON/ARRAY inputs, a local path for FILE inputs",
    )
    add_label_option(p)
    p.add_argument(
        "--wait", "-w", action="store_true", help="follow task progress until it ends"
    )
    p.add_argument("--json", action="store_true", help="print the execution as JSON")
    p.set_defaults(func=execute)

    p = flows.add_parser(
        "test",
        help="run a flow file in this process, without deploying it "
        "(on a throwaway database: nothing shows in the installation)",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--input", "-i", action="append", metavar="KEY=VALUE")
    add_label_option(p)
    p.add_argument(
        "--json", action="store_true", help="print the final execution as JSON"
    )
    p.set_defaults(func=test)

    ex = group("executions", "inspect and steer executions")
    p = ex.add_parser("list", help="recent executions, newest first")
    p.add_argument("--namespace", "-n")
    p.add_argument("--flow", "-f")
    p.add_argument(
        "--state",
        "-s",
        action="append",
        type=str.upper,
        help="filter by state (repeatable)",
    )
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_executions)

    p = ex.add_parser("get", help="one execution with its task runs")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=get)

    p = ex.add_parser("logs", help="logs of an execution")
    p.add_argument("id", type=int)
    p.add_argument(
        "--follow", "-F", action="store_true", help="keep printing until it ends"
    )
    p.add_argument("--level", default="TRACE", type=str.upper)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=logs)

    p = ex.add_parser("kill", help="stop a running execution and its running tasks")
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=kill_execution)

    p = ex.add_parser(
        "restart",
        help="re-run the failed tasks of an ended execution "
        "(same execution, new attempt)",
    )
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=restart_execution)

    p = ex.add_parser(
        "replay",
        help="run an ended execution again as a new execution, optionally from a task",
    )
    p.add_argument("id", type=int)
    p.add_argument(
        "--from-task",
        "-t",
        metavar="TASK_ID",
        help="copy what ran before this task and start from it",
    )
    p.add_argument("--reason", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=replay_execution)

    p = ex.add_parser("resume", help="resume a PAUSED execution")
    p.add_argument("id", type=int)
    p.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="KEY=VALUE",
        help="an onResume input of the paused task (repeatable)",
    )
    p.add_argument("--reason", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=resume_execution)


def _inputs(pairs: list[str] | None, spec: FlowSpec) -> dict[str, Any]:
    raw = parse_pairs(pairs, "--input")
    declared = {d["id"]: d for d in spec.inputs}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        decl = declared.get(key, {})
        if decl.get("type") == "FILE":
            path = Path(value).expanduser()
            if not path.is_file():
                raise UsageError(f"--input {key}: no such file {value!r}")

            out[key] = save_input_file(
                spec.namespace, spec.id, path.name, path.read_bytes()
            )
        else:
            out[key] = value
    return out


def _report_input_error(exc: InputError) -> int:
    for name, message in exc.errors.items():
        print(f"✘ input '{name}': {message}", file=sys.stderr)
    return 2


def execute(args: argparse.Namespace) -> int:
    try:
        flow = get_flow(args.namespace, args.flow)
    except FlowNotFound as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    revision = flow.latest
    labels = label_options(args.label)
    try:
        execution = create_execution(
            revision,
            inputs=_inputs(args.input, revision.spec),
            labels=labels,
            trigger={"type": "cli"},
            actor=Actor.cli(),
        )
    except InputError as exc:
        return _report_input_error(exc)
    except ActionError as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    if not args.wait:
        if args.json:
            print_json(execution_as_dict(execution, taskruns=False))
        else:
            print(
                f"Execution {execution.pk} of {flow.namespace}.{flow.flow_id} created "
                f"(revision {revision.revision})."
            )
            _warn_no_worker()
        return 0
    if not args.json:
        print(
            f"Execution {execution.pk} of {flow.namespace}.{flow.flow_id} "
            f"(revision {revision.revision})"
        )
        _warn_no_worker()
    execution = _follow(execution.pk, quiet=args.json)
    return _conclude(execution, args.json)


def _warn_no_worker() -> None:
    if not Worker.objects.filter(state=WorkerState.ALIVE).exists():
        print(
            "  note: no live worker is registered yet; start one with "
            "'orchestra server local' or 'orchestra server worker'",
            file=sys.stderr,
        )


class Progress:
    """Prints each task run as it starts and ends."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.seen: dict[int, str] = {}
        self.waiting: list[str] | None = None

    def update(self, execution_id: int) -> None:
        if self.waiting is None:
            # Subflow, ForEachItem and Pause are resolved by the executor but
            # are steps a user waits on: show them too.
            spec = Execution.objects.get(pk=execution_id).spec
            self.waiting = [
                n.id for n in spec.all_tasks() if n.flowable and not n.type.children
            ]
        rows = TaskRun.objects.filter(
            Q(flowable=False) | Q(task_id__in=self.waiting), execution_id=execution_id
        ).order_by("id")
        for tr in rows:
            if self.seen.get(tr.pk) == tr.state:
                continue
            self.seen[tr.pk] = tr.state
            if self.quiet or tr.state in (State.CREATED, State.PAUSED):
                continue
            label = tr.task_id + (f"[{tr.value}]" if tr.value is not None else "")
            if tr.attempt > 1:
                label += f" (attempt {tr.attempt})"
            symbol = SYMBOLS.get(tr.state, "·")
            if tr.state == State.RUNNING:
                print(f"  {symbol} {label}", flush=True)
            else:
                took = format_duration(tr.duration())
                extra = f" — {tr.error}" if tr.error else ""
                print(f"  {symbol} {label} {tr.state} in {took}{extra}", flush=True)


def _follow(execution_id: int, quiet: bool = False, interval: float = 0.2) -> Execution:
    progress = Progress(quiet)
    last_state = ""
    while True:
        execution = Execution.objects.get(pk=execution_id)
        progress.update(execution_id)
        if execution.state in TERMINAL:
            return execution
        if execution.state != last_state and not quiet:
            if execution.state == State.PAUSED:
                paused = ", ".join(
                    TaskRun.objects.filter(
                        execution_id=execution_id, state=State.PAUSED
                    ).values_list("task_id", flat=True)
                )
                print(
                    f"  ⏸ paused by {paused or 'a task'}; resume with "
                    f"'orchestra executions resume {execution_id}'",
                    flush=True,
                )
            elif last_state == State.PAUSED:
                print("  ▶ resumed", flush=True)
        last_state = execution.state
        time.sleep(interval)


def _conclude(execution: Execution, as_json: bool) -> int:
    if as_json:
        print_json(execution_as_dict(execution))
    else:
        took = format_duration(execution.duration())
        print(
            f"{SYMBOLS.get(execution.state, '')} Execution {execution.pk} ended "
            f"{execution.state} in {took}"
        )
        if execution.error:
            print(f"  {execution.error}")
        if execution.outputs:
            print("Outputs:")
            for key, value in execution.outputs.items():
                shown = value if isinstance(value, str) else json.dumps(value)
                print(f"  {key}: {shown}")
    return 0 if execution.state == State.SUCCESS else 1


def test(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file {args.file!r}")
    try:
        spec = parse_flow(path.read_text())
    except FlowInvalid as exc:
        for e in exc.errors:
            where = f":{e.line}:{e.column}" if e.line else ""
            print(f"✘ {path}{where}: {e.path}: {e.message}", file=sys.stderr)
        return 1

    inputs = _inputs(args.input, spec)
    labels = label_options(args.label)
    # Nothing of a test run lands in the installation's database.
    with scratch_database():
        return _test_in_process(args, spec, inputs, labels)


def _test_in_process(args, spec, inputs, labels) -> int:
    with use_in_process() as runner:
        try:
            execution = create_execution(
                None,
                spec=spec,
                source=spec.source,
                inputs=inputs,
                labels=labels,
                trigger={"type": "test"},
                actor=Actor.cli(),
            )
        except InputError as exc:
            return _report_input_error(exc)
        if not args.json:
            print(
                f"Testing {spec.namespace}.{spec.id} (execution {execution.pk}, in this process)"
            )
        progress = Progress(args.json)
        next_tick = 0.0
        while True:
            if time.monotonic() >= next_tick:
                # No beat runs here: deadlines (flow sla:, SLA rules) of this
                # run fire on this tick, as a deployed run's do on beat's.
                in_process_tick.send(sender=Execution, execution_ids=[execution.pk])
                next_tick = time.monotonic() + 0.5
            execution.refresh_from_db()
            progress.update(execution.pk)
            if execution.state in TERMINAL and runner.idle():
                break
            if (
                execution.state == State.PAUSED
                and runner.idle()
                and _waits_for_a_person(execution)
            ):
                # Nobody can resume a run that lives in this process only.
                paused = ", ".join(
                    TaskRun.objects.filter(
                        execution=execution, state=State.PAUSED
                    ).values_list("task_id", flat=True)
                )
                print(
                    f"⏸ Execution {execution.pk} is paused by {paused} and waits for a "
                    "resume, which 'flows test' cannot give; deploy the flow and run it "
                    "with 'orchestra flows execute' to resume it",
                    file=sys.stderr,
                )
                stop_current_worker()
                return 1
            time.sleep(0.05)
        for error in runner.errors:
            print(f"engine error: {error!r}", file=sys.stderr)
    stop_current_worker()
    return _conclude(execution, args.json)


def _waits_for_a_person(execution: Execution, patience: float = 60.0) -> bool:
    """Paused with no wake-up within ``patience`` seconds."""
    wakes = [
        w
        for w in TaskRun.objects.filter(
            execution=execution, state=State.PAUSED
        ).values_list("scheduled_at", flat=True)
    ]
    if not wakes or any(w is None for w in wakes):
        return True
    return (min(wakes) - timezone.now()).total_seconds() > patience


def list_executions(args: argparse.Namespace) -> int:
    qs = Execution.objects.all()
    if args.namespace:
        qs = qs.in_namespace(args.namespace)
    if args.flow:
        qs = qs.filter(flow_id=args.flow)
    if args.state:
        bad = [s for s in args.state if s not in State.values]
        if bad:
            raise UsageError(
                f"unknown state {', '.join(bad)}; use one of {', '.join(State.values)}"
            )
        qs = qs.filter(state__in=args.state)
    rows = list(qs.order_by("-id")[: max(args.limit, 1)])
    if args.json:
        print_json([execution_as_dict(e, taskruns=False) for e in rows])
        return 0
    if not rows:
        print("No executions match.")
        return 0
    print(
        table(
            [
                [
                    e.pk,
                    e.namespace,
                    e.flow_id,
                    e.state,
                    timezone.localtime(e.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    format_duration(e.duration()),
                ]
                for e in rows
            ],
            ["ID", "NAMESPACE", "FLOW", "STATE", "CREATED", "DURATION"],
        )
    )
    return 0


def _get_execution(execution_id: int) -> Execution | None:
    execution = Execution.objects.filter(pk=execution_id).first()
    if execution is None:
        print(f"✘ execution {execution_id} does not exist", file=sys.stderr)
    return execution


def get(args: argparse.Namespace) -> int:
    execution = _get_execution(args.id)
    if execution is None:
        return 1
    data = execution_as_dict(execution)
    if args.json:
        print_json(data)
        return 0
    print(
        f"Execution {execution.pk}  {execution.namespace}.{execution.flow_id} rev {execution.revision}"
    )
    print(
        f"  state:   {execution.state}"
        + (f" — {execution.error}" if execution.error else "")
    )
    print(
        f"  started: {data['startDate'] or '—'}   ended: {data['endDate'] or '—'}   "
        f"duration: {format_duration(execution.duration())}"
    )
    if execution.labels:
        print("  labels:  " + format_labels(execution.labels))
    if execution.inputs:
        print("  inputs:  " + json.dumps(execution.inputs))
    if execution.outputs:
        print("  outputs: " + json.dumps(execution.outputs))
    _print_links(data)
    print()
    print(
        table(
            [
                [
                    t["id"],
                    t["taskId"] + (f"[{t['value']}]" if t["value"] is not None else ""),
                    t["attempt"],
                    t["state"],
                    format_duration(t["duration"])
                    if t["duration"] is not None
                    else "—",
                    (t["error"] or "")[:60],
                ]
                for t in data["taskRuns"]
            ],
            ["TASKRUN", "TASK", "ATTEMPT", "STATE", "DURATION", "ERROR"],
        )
    )
    return 0


def logs(args: argparse.Namespace) -> int:
    execution = _get_execution(args.id)
    if execution is None:
        return 1
    try:
        wanted = levels.at_least(args.level)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    last = 0
    while True:
        execution.refresh_from_db()
        batch = list(
            LogEntry.objects.filter(
                execution_id=args.id, id__gt=last, level__in=wanted
            ).order_by("id")[:1000]
        )
        for entry in batch:
            last = entry.pk
            if args.json:
                print(json.dumps(log_as_dict(entry)), flush=True)
            else:
                stamp = timezone.localtime(entry.timestamp).strftime("%H:%M:%S.%f")[:-3]
                task = f" [{entry.task_id}]" if entry.task_id else ""
                print(f"{stamp} {entry.level:5}{task} {entry.message}", flush=True)
        if len(batch) == 1000:
            continue
        if not args.follow or execution.state in TERMINAL:
            break
        time.sleep(0.3)
    if args.follow and not args.json:
        print(f"-- execution {execution.pk} ended {execution.state}")
    return 0


def kill_execution(args: argparse.Namespace) -> int:
    try:
        execution = kill(
            args.id, reason=args.reason or "killed from the CLI", actor=Actor.cli()
        )
    except Execution.DoesNotExist:
        print(f"✘ execution {args.id} does not exist", file=sys.stderr)
        return 1
    except ActionError as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(execution_as_dict(execution, taskruns=False))
    else:
        print(f"Execution {execution.pk} is {execution.state}.")
    return 0


def _print_links(data: dict[str, Any]) -> None:
    if data.get("attempt", 1) > 1:
        print(f"  attempt: {data['attempt']}")

    def brief(e: dict[str, Any]) -> str:
        return f"#{e['id']} {e['namespace']}.{e['flowId']} {e['state']}"

    if data.get("parent"):
        parent = data["parent"]
        print(
            f"  parent:  {brief(parent)} (task {parent['taskId'] or parent['taskRunId']})"
        )
    if data.get("original"):
        print(f"  replay of: {brief(data['original'])}")
    for key, label in (("children", "children"), ("replays", "replays")):
        rows = data.get(key) or []
        if not rows:
            continue
        more = data[f"{key}Count"] - len(rows)
        print(
            f"  {label}: "
            + ", ".join(brief(r) for r in rows)
            + (f" (and {more} more)" if more > 0 else "")
        )


def _act(args: argparse.Namespace, call, done: str) -> int:
    try:
        execution = call()
    except InputError as exc:
        return _report_input_error(exc)
    except ActionError as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(execution_as_dict(execution, taskruns=False))
    else:
        print(done.format(e=execution))
    return 0


def restart_execution(args: argparse.Namespace) -> int:
    return _act(
        args,
        lambda: restart(args.id, reason=args.reason, actor=Actor.cli()),
        "Execution {e.pk} restarted (attempt {e.attempt}); it is {e.state}.",
    )


def replay_execution(args: argparse.Namespace) -> int:
    start = f" from task '{args.from_task}'" if args.from_task else ""
    return _act(
        args,
        lambda: replay(
            args.id, from_task=args.from_task, reason=args.reason, actor=Actor.cli()
        ),
        "Execution {e.pk} created as a replay of execution "
        + str(args.id)
        + start
        + ".",
    )


def resume_execution(args: argparse.Namespace) -> int:
    inputs = parse_pairs(args.input, "--input")
    return _act(
        args,
        lambda: resume(args.id, inputs=inputs, reason=args.reason, actor=Actor.cli()),
        "Execution {e.pk} resumed; it is {e.state}.",
    )
