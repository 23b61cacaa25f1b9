"""No import cycles among the project's modules, imports inside functions
included: grimp's graph has both. A function-local import is no way around a
circle; restructure instead (see the layers in pyproject.toml, checked by
``lint-imports``)."""

from __future__ import annotations

import grimp

ROOTS = ("orchestra", "flows", "executions", "sla", "accounts")


def _project_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*ROOTS, include_external_packages=False, cache_dir=None)
    modules = {
        m
        for m in graph.modules
        if ".migrations" not in f"{m}." and not m.startswith("tests")
    }
    return {
        m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules}
        for m in modules
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module, or
    of one module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["e"]]


def test_no_import_cycles():
    graph = _project_graph()
    assert len(graph) > 100  # the graph really holds the project
    cycles = strongly_connected(graph)
    report = []
    for component in cycles:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        report.append(", ".join(component) + "\n    " + "\n    ".join(edges))
    assert not cycles, "import cycles:\n" + "\n".join(report)
