import pytest
from django.contrib.auth import get_user_model
from executions.models import Execution, LogEntry, TaskRun
pytestmark = pytest.mark.django_db

def test_smoke(client, deploy):
    rev = deploy(open("examples/flows/hello_world.yml").read())
    u = get_user_model().objects.create_superuser("root", "", "pw")
    client.force_login(u)
    e = Execution.objects.create(namespace=rev.flow.namespace, flow_id=rev.flow.flow_id, flow_revision=rev, state="RUNNING")
    LogEntry.objects.create(execution=e, message="hello")
    for url in ["/", "/executions/", f"/executions/{e.pk}/", f"/executions/{e.pk}/live/", f"/executions/{e.pk}/logs/?after=0",
                f"/executions/{e.pk}/status/", "/namespaces/", "/audit/", "/flows/", f"/flows/{rev.flow.namespace}/{rev.flow.flow_id}/",
                f"/flows/{rev.flow.namespace}/{rev.flow.flow_id}/edit/", f"/flows/{rev.flow.namespace}/{rev.flow.flow_id}/execute/", "/flows/new/",
                "/api/schema/", "/api/docs/"]:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.content[:3000])
    r = client.get("/executions/", headers={"HX-Request": "true"})
    assert b"<html" not in r.content and str(e.pk).encode() in r.content
