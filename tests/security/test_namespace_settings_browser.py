"""A namespace admin manages allowed namespaces and secrets in the dashboard; an
editor of the same namespace sees the names but is refused any change."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role
from flows.models import NamespaceChange, NamespaceSecret, save_flow
from flows.namespaces import allowed_namespaces
from flows.secrets import resolve
from tests.web import test_browser as web

browser = web.browser  # the Chromium fixture
log_in = web.log_in

VALUE = "correct-Horse-battery-9"
FLOW = """
id: hello
namespace: team.a
tasks:
  - id: r
    type: Return
    format: hi
"""


@pytest.fixture
def people(transactional_db):
    for name, role in (("ada", "admin"), ("eve", "editor")):
        user = get_user_model().objects.create_user(name, password=f"pw-{name}-12345")
        Role.objects.create(user=user, namespace="team.a", role=role)
    save_flow(FLOW, actor="test")


def test_an_admin_manages_secrets_and_allowed_namespaces_and_an_editor_cannot(
    live_server,
    browser,
    people,
):
    admin = browser.new_context().new_page()
    admin.set_default_timeout(15_000)
    admin.goto(f"{live_server.url}/namespaces/")
    log_in(admin, "ada", "pw-ada-12345", then=r"/namespaces/$")
    admin.click("a[href='/namespaces/team.a/settings/']")
    admin.wait_for_selector("#allowed-namespaces")

    admin.fill("textarea[name=allowed_namespaces]", "team.b\nteam.c.etl")
    admin.fill("#allowed-namespaces input[name=reason]", "shared reports")
    admin.click("text=Save allowed namespaces")
    admin.wait_for_selector("ul.allowed code:text('team.c.etl')")
    assert allowed_namespaces("team.a") == ["team.b", "team.c.etl"]

    admin.fill("#secrets input[name=name]", "API_TOKEN")
    admin.fill("#secrets input[name=value]", VALUE)
    assert admin.get_attribute("#secrets input[name=value]", "type") == "password"
    admin.click("text=Save secret")
    admin.wait_for_selector("tr.secret-row code:text('API_TOKEN')")
    assert VALUE not in admin.content()
    assert resolve("team.a", "API_TOKEN") == VALUE
    changes = admin.inner_text("#changes")
    assert "allowed_namespaces.set" in changes and "secret.create" in changes
    assert "shared reports" in changes and "ada" in changes and "web" in changes

    editor = browser.new_context().new_page()
    editor.set_default_timeout(15_000)
    editor.goto(f"{live_server.url}/namespaces/team.a/settings/")
    log_in(editor, "eve", "pw-eve-12345", then=r"/namespaces/team.a/settings/$")
    assert "API_TOKEN" in editor.inner_text("#secrets")
    assert editor.locator("text=Save secret").count() == 0
    assert editor.locator("text=Save allowed namespaces").count() == 0
    assert "Only an admin of team.a" in editor.inner_text("#secrets")
    token = next(
        c["value"] for c in editor.context.cookies() if c["name"] == "csrftoken"
    )
    for path, form in (
        ("secrets/", {"name": "API_TOKEN", "value": "overwritten-by-eve"}),
        ("allowed/", {"allowed_namespaces": "*"}),
        ("secrets/API_TOKEN/delete/", {}),
    ):
        response = editor.request.post(
            f"{live_server.url}/namespaces/team.a/settings/{path}",
            form=form,
            headers={"X-CSRFToken": token, "Referer": live_server.url + "/"},
        )
        assert response.status == 403, path
    assert resolve("team.a", "API_TOKEN") == VALUE
    assert allowed_namespaces("team.a") == ["team.b", "team.c.etl"]

    # The admin deletes it again from the page.
    admin.reload()
    admin.click("button[aria-label='Delete API_TOKEN']")
    admin.wait_for_selector("text=Secret API_TOKEN deleted.")
    assert not NamespaceSecret.objects.exists()
    assert list(
        NamespaceChange.objects.order_by("id").values_list("action", "actor", "via")
    ) == [
        ("allowed_namespaces.set", "ada", "web"),
        ("secret.create", "ada", "web"),
        ("secret.delete", "ada", "web"),
    ]
