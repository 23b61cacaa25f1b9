"""Issue 12 item 5: live follows (SSE) cannot take every web thread. A user
has at most ORCHESTRA_SSE_PER_USER open at once (then 429 with what to do),
the server ORCHESTRA_SSE_MAX_STREAMS, and each stream ends after
ORCHESTRA_SSE_SECONDS, telling EventSource to reconnect."""

from __future__ import annotations

import pytest

from accounts.models import StreamLease


@pytest.fixture
def running(make_execution, settings):
    settings.ORCHESTRA_SSE_SECONDS = 1
    settings.ORCHESTRA_SSE_POLL_SECONDS = 0.05
    return make_execution(state="RUNNING", logs=["a"])


def _finish(response) -> str:
    """Read a stream to its end (a follow of a running execution ends after
    ORCHESTRA_SSE_SECONDS); the test client then closes it, as a server does."""
    return b"".join(response.streaming_content).decode()


def _follow(client, execution, headers):
    return client.get(f"/api/executions/{execution.pk}/follow", headers=headers)


def test_a_user_gets_four_follows_then_429_until_one_closes(
    client, alice, bob, token_for, running
):
    mine = token_for(alice)
    open_ = [_follow(client, running, mine) for _ in range(4)]
    assert [r.status_code for r in open_] == [200] * 4
    fifth = _follow(client, running, mine)
    assert fifth.status_code == 429
    assert fifth.json()["detail"].startswith(
        "you already follow 4 executions live, the most one user may"
    )
    assert fifth["Retry-After"]
    # Another user is not held back by alice's follows.
    theirs = _follow(client, running, token_for(bob))
    assert theirs.status_code == 200
    _finish(theirs)
    # A stream that ended gives its slot back.
    _finish(open_[0])
    again = _follow(client, running, mine)
    assert again.status_code == 200
    for response in [again, *open_[1:]]:
        _finish(response)
    assert not StreamLease.objects.exists()


def test_the_server_wide_cap_and_the_bounded_life(
    client, settings, alice, bob, token_for, running
):
    settings.ORCHESTRA_SSE_MAX_STREAMS = 2
    held = [_follow(client, running, token_for(alice)) for _ in range(2)]
    refused = _follow(client, running, token_for(bob))
    assert refused.status_code == 429
    assert "the server already serves 2 live follows" in refused.json()["detail"]
    # A stream of a still-running execution ends by itself, with a timeout
    # event saying where to resume, after announcing the reconnect delay.
    text = _finish(held[0])
    assert text.startswith("retry: 3000\n\n")
    assert "event: timeout" in text and '"after": ' in text
    last = _follow(client, running, token_for(bob))
    assert last.status_code == 200
    _finish(last)
    _finish(held[1])
