"""`orchestra ... | head`: the reader going away ends the command quietly."""

from __future__ import annotations

import subprocess

from tests.cli.conftest import ORCHESTRA
from tests.conftest import ROOT


def test_a_closed_pipe_ends_the_command_without_a_traceback(cli):
    examples = sorted(str(p) for p in (ROOT / "examples" / "flows").glob("*.yml"))
    proc = subprocess.Popen(
        [ORCHESTRA, "flows", "validate", *examples],
        env=cli.env,
        cwd=cli.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # as `| head` does once it has its lines
    err = proc.stderr.read().decode()
    code = proc.wait(60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141, err
