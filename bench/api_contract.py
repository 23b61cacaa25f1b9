"""The API contract test's long run: schemathesis walks every operation of
/api/schema/ with the token of each role, many more examples than in CI.

    DATABASE_URL=postgres://... .venv/bin/python bench/api_contract.py [EXAMPLES]

EXAMPLES per operation, role and mode (positive and negative data; default
100, CI runs 3). It runs tests/web/test_api_contract.py (a test database of its
own) and prints its summary line: requests sent, seconds, mismatches (any
answer the schema does not document, by status, content type, body or header,
and any 5xx), statuses seen. Exits non-zero on a mismatch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(examples: int) -> int:
    env = {**os.environ, "ORCHESTRA_CONTRACT_EXAMPLES": str(examples)}
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "0",
            "-q",
            "-s",
            "tests/web/test_api_contract.py",
        ],
        cwd=ROOT,
        env=env,
    )
    print(f"wall time {time.monotonic() - started:.0f} s, exit {done.returncode}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
