"""Issue 12 item 6 in a real browser: a user creates an API token (shown
once), sees it listed, revokes it and the API refuses it; then changes their
password. No page breaks the Content-Security-Policy on the way (no inline
script, no eval), and htmx still works under it (the flow editor validates
live, the confirm on revoke comes from the static script)."""

from __future__ import annotations

import httpx
from django.contrib.auth import get_user_model

from accounts.models import AccountEvent, ApiToken, Role
from flows.models import save_flow

from .conftest import FLOW
from .test_browser import browser, log_in  # noqa: F401  (browser: a fixture)


def test_tokens_page_and_password_change(live_server, transactional_db, browser):  # noqa: F811
    user = get_user_model().objects.create_user("tess", password="pw-tess-12345")
    Role.objects.create(user=user, role="editor", namespace="company")
    save_flow(FLOW, actor="test")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda m: (
            violations.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )
    page.goto(f"{live_server.url}/login/")
    log_in(page, "tess", "pw-tess-12345")

    # Create: the key is on this page only, in full.
    page.goto(f"{live_server.url}/account/")
    page.click("text=API tokens")
    page.fill("input[name=name]", "laptop")
    page.select_option("select[name=expires_days]", "30")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    key = page.input_value("#new-token-key")
    assert key.startswith("orc_") and len(key) > 30
    assert "shown only this once" in page.inner_text("#new-token")
    row = page.locator("#tokens tr[data-token=laptop]")
    assert "active" in row.inner_text() and key[:10] in row.inner_text()
    api = f"{live_server.url}/api/me"
    assert httpx.get(api, headers={"Authorization": f"Bearer {key}"}).status_code == 200

    # Listed on a later visit, the key itself never again.
    page.goto(f"{live_server.url}/account/tokens/")
    assert page.locator("#new-token").count() == 0
    assert key not in page.content()
    row = page.locator("#tokens tr[data-token=laptop]")
    assert "never" not in row.locator("td").nth(3).inner_text()  # used once

    # Revoke, confirming the dialog the static script opens.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector("text=Token 'laptop' revoked")
    assert "revoked" in page.locator("#tokens tr[data-token=laptop]").inner_text()
    refused = httpx.get(api, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("API token 'laptop' was revoked")
    assert ApiToken.objects.get(name="laptop").revoked_at is not None

    # Password: the old one is required, the rules apply, then it changes.
    page.goto(f"{live_server.url}/account/password/")
    page.fill("input[name=old_password]", "wrong-old-pass")
    page.fill("input[name=new_password1]", "fresh-secret-9876")
    page.fill("input[name=new_password2]", "fresh-secret-9876")
    page.click("button:has-text('Change password')")
    page.wait_for_selector("text=Your old password was entered incorrectly")
    page.fill("input[name=old_password]", "pw-tess-12345")
    page.fill("input[name=new_password1]", "12345678901")
    page.fill("input[name=new_password2]", "12345678901")
    page.click("button:has-text('Change password')")
    page.wait_for_selector("text=This password is entirely numeric")
    page.fill("input[name=old_password]", "pw-tess-12345")
    page.fill("input[name=new_password1]", "fresh-secret-9876")
    page.fill("input[name=new_password2]", "fresh-secret-9876")
    page.click("button:has-text('Change password')")
    page.wait_for_selector("text=Password changed.")
    user.refresh_from_db()
    assert user.check_password("fresh-secret-9876")
    history = page.inner_text("#account-events")
    assert "password changed" in history and "API token revoked" in history

    # htmx under the CSP: the editor validates as one types.
    page.goto(f"{live_server.url}/flows/company.data/etl/edit/")
    page.wait_for_selector(".validation.ok")
    page.fill("#source", "id: x\nnamespace: company.data\ntasks: []\nbogus: 1\n")
    page.wait_for_selector(".validation.bad")
    assert violations == []
    actions = list(
        AccountEvent.objects.filter(username="tess")
        .order_by("id")
        .values_list("action", "via")
    )
    assert actions == [
        ("token_created", "web"),
        ("token_revoked", "web"),
        ("password_changed", "web"),
    ]
