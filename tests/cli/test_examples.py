"""Starting local mode again keeps a user's edits of the example flows: an
example is deployed only where the flow is new or still the examples' own,
and the start-up says which it left alone."""

from __future__ import annotations

import pytest

from flows.models import Flow, delete_flow, save_flow
from orchestra.server import deploy_examples
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

EXAMPLES = sorted((ROOT / "examples" / "flows").glob("*.yml"))


def test_a_restart_keeps_the_users_edit_of_an_example():
    first, skipped = deploy_examples()
    assert (first, skipped) == (len(EXAMPLES), [])

    hello = Flow.objects.get(namespace="company.team", flow_id="hello_world")
    edited = hello.latest.source + "\n# my own edit\n"
    save_flow(edited, actor="admin")
    branching = Flow.objects.get(namespace="company.team", flow_id="branching")
    delete_flow(branching, actor="admin")

    again, skipped = deploy_examples()
    assert again == len(EXAMPLES) - 2
    assert skipped == [
        "company.team.branching (deleted by a user)",
        "company.team.hello_world (revision 2 by admin)",
    ]
    hello.refresh_from_db()
    assert hello.revision == 2 and hello.latest.source == edited
    assert hello.latest.created_by == "admin"
    branching.refresh_from_db()
    assert branching.deleted


def test_an_example_still_its_own_gets_the_newer_example_text(tmp_path, settings):
    deploy_examples()
    flow = Flow.objects.get(namespace="company.team", flow_id="hello_world")
    # A newer Orchestra ships a changed example: it replaces the old one.
    folder = tmp_path / "examples" / "flows"
    folder.mkdir(parents=True)
    newer = flow.latest.source + "\n# newer example\n"
    (folder / "hello_world.yml").write_text(newer)
    settings.BASE_DIR = tmp_path
    assert deploy_examples() == (1, [])
    flow.refresh_from_db()
    assert flow.revision == 2 and flow.latest.source == newer
