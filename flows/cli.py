"""CLI verbs for namespaces and flows (definitions only; runs live in executions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.db.models import Count

from flows import namespace_cli
from flows.models import Flow, Namespace, save_flow
from flows.namespaces import reach_warnings
from flows.spec import FlowInvalid, parse_flow
from orchestra.lib.output import print_json, table
from orchestra.lib.users import os_username


def register(group) -> None:
    ns = group("namespaces", "namespaces and their flows")
    p = ns.add_parser("list", help="list namespaces with flow counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_namespaces)

    flows = group("flows", "validate, deploy, list, run and test flows")
    p = flows.add_parser("list", help="list deployed flows")
    p.add_argument("--namespace", help="only this namespace and its children")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_flows)

    p = flows.add_parser(
        "validate", help="check flow files; print every error (exit 1 if any)"
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=validate)

    p = flows.add_parser(
        "deploy", help="validate and store flows from files or folders"
    )
    p.add_argument("paths", nargs="+", metavar="DIR|FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=deploy)

    p = flows.add_parser("export", help="print the YAML of a deployed flow")
    p.add_argument("--namespace", required=True)
    p.add_argument("--flow", required=True)
    p.add_argument("--revision", type=int)
    p.set_defaults(func=export)

    namespace_cli.register(group)


def list_namespaces(args: argparse.Namespace) -> int:
    counts = dict(
        Flow.objects.live()
        .values_list("namespace")
        .annotate(n=Count("id"))
        .values_list("namespace", "n")
    )
    names = list(Namespace.objects.values_list("name", flat=True))
    rows = [
        {
            "namespace": n,
            "flows": counts.get(n, 0),
            "flows_with_children": sum(
                c for ns, c in counts.items() if ns == n or ns.startswith(n + ".")
            ),
        }
        for n in names
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print("No namespaces yet. Deploy flows with: orchestra flows deploy DIR")
    else:
        print(
            table(
                [[r["namespace"], r["flows"], r["flows_with_children"]] for r in rows],
                ["NAMESPACE", "FLOWS", "WITH CHILDREN"],
            )
        )
    return 0


def list_flows(args: argparse.Namespace) -> int:
    qs = Flow.objects.live()
    if args.namespace:
        qs = qs.in_namespace(args.namespace)
    rows = [
        {
            "namespace": f.namespace,
            "id": f.flow_id,
            "revision": f.revision,
            "disabled": f.disabled,
            "description": f.description.strip().splitlines()[0]
            if f.description.strip()
            else "",
        }
        for f in qs
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print(
            "No flows deployed"
            + (f" in {args.namespace}" if args.namespace else "")
            + "."
        )
    else:
        print(
            table(
                [
                    [
                        r["namespace"],
                        r["id"],
                        r["revision"],
                        "yes" if r["disabled"] else "",
                        r["description"][:60],
                    ]
                    for r in rows
                ],
                ["NAMESPACE", "FLOW", "REV", "DISABLED", "DESCRIPTION"],
            )
        )
    return 0


def _flow_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    files, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
            )
        elif path.is_file():
            files.append(path)
        else:
            missing.append(raw)
    return files, missing


def validate(args: argparse.Namespace) -> int:
    files, missing = _flow_files(args.files)
    results = []
    for raw in missing:
        results.append(
            {
                "file": raw,
                "valid": False,
                "errors": [
                    {
                        "path": "",
                        "message": "no such file or folder",
                        "line": None,
                        "column": None,
                    }
                ],
            }
        )
    for path in files:
        try:
            spec = parse_flow(path.read_text())
            results.append(
                {
                    "file": str(path),
                    "valid": True,
                    "flow": f"{spec.namespace}.{spec.id}",
                    "warnings": [*spec.warnings, *reach_warnings(spec)],
                    "errors": [],
                }
            )
        except FlowInvalid as exc:
            results.append(
                {
                    "file": str(path),
                    "valid": False,
                    "errors": [e.as_dict() for e in exc.errors],
                }
            )
        except UnicodeDecodeError:
            results.append(
                {
                    "file": str(path),
                    "valid": False,
                    "errors": [
                        {
                            "path": "",
                            "message": "not a UTF-8 text file",
                            "line": None,
                            "column": None,
                        }
                    ],
                }
            )
    if args.json:
        print_json(results)
    else:
        for r in results:
            if r["valid"]:
                print(f"✓ {r['file']}: {r['flow']} is valid")
                for w in r.get("warnings", []):
                    print(f"  warning: {w}")
            else:
                for e in r["errors"]:
                    where = f":{e['line']}:{e['column']}" if e.get("line") else ""
                    path = f"{e['path']}: " if e.get("path") else ""
                    print(
                        f"✗ {r['file']}{where}: {path}{e['message']}", file=sys.stderr
                    )
        bad = sum(1 for r in results if not r["valid"])
        if len(results) > 1 or bad:
            print(
                f"{len(results) - bad} valid, {bad} invalid",
                file=sys.stderr if bad else sys.stdout,
            )
    return 1 if any(not r["valid"] for r in results) else 0


def deploy(args: argparse.Namespace) -> int:
    files, missing = _flow_files(args.paths)
    if missing:
        for raw in missing:
            print(f"✗ {raw}: no such file or folder", file=sys.stderr)
        return 1
    if not files:
        print("No .yml or .yaml files found.", file=sys.stderr)
        return 1
    # Validate everything first: a folder deploys completely or not at all.
    parsed, failed = [], False
    for path in files:
        try:
            source = path.read_text()
            parse_flow(source)
            parsed.append((path, source))
        except FlowInvalid as exc:
            failed = True
            for e in exc.errors:
                where = f":{e.line}:{e.column}" if e.line else ""
                print(f"✗ {path}{where}: {e.path}: {e.message}", file=sys.stderr)
    if failed:
        print("Nothing deployed: fix the errors above.", file=sys.stderr)
        return 1
    from django.db import transaction

    results = []
    with transaction.atomic():
        for path, source in parsed:
            flow, revision, changed = save_flow(source, actor=os_username())
            results.append(
                {
                    "file": str(path),
                    "flow": f"{flow.namespace}.{flow.flow_id}",
                    "revision": revision.revision,
                    "changed": changed,
                }
            )
    if args.json:
        print_json(results)
    else:
        for r in results:
            status = (
                f"revision {r['revision']}"
                if r["changed"]
                else f"unchanged (revision {r['revision']})"
            )
            print(f"✓ {r['flow']}: {status}")
    return 0


def export(args: argparse.Namespace) -> int:
    flow = Flow.objects.filter(namespace=args.namespace, flow_id=args.flow).first()
    if flow is None:
        print(f"flow {args.namespace}.{args.flow} does not exist", file=sys.stderr)
        return 1
    revision = flow.revisions.filter(revision=args.revision or flow.revision).first()
    if revision is None:
        print(
            f"flow {args.namespace}.{args.flow} has no revision {args.revision}",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(
        revision.source if revision.source.endswith("\n") else revision.source + "\n"
    )
    return 0
