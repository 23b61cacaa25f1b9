"""What the script sandbox costs: start-to-exit time of a trivial script
(``/bin/sh -c true``) through each sandbox mode this machine can run, as the
worker starts it (guard, limits, bubblewrap), without the database.

    python bench/script_start.py [--runs 30]

Prints the median, 90th percentile and minimum per mode. ``plain`` is a bare
``sh -c true`` (the floor); ``none`` is the guard alone (the cost before
sandboxing existed); ``user`` and ``bwrap`` add the user switch and namespaces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")


def _time(argv_for, runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
        argv, prepare = argv_for(folder)
        prepare(folder)
        started = time.perf_counter()
        subprocess.run(
            argv,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
            check=True,
        )
        took.append((time.perf_counter() - started) * 1000)
        shutil.rmtree(folder, ignore_errors=True)
    return took


def main() -> int:
    import django

    django.setup()
    from orchestra.lib import sandbox

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    limits = sandbox.configured_limits()
    script = ["/bin/sh", "-c", "true"]
    modes = {"plain": lambda folder: (script, lambda f: None)}
    for mode in ("none", "user", "bwrap"):
        box = sandbox.resolve(mode, "", "host", tuple(sorted(limits.items())))
        if box.problem or box.mode != mode:
            print(f"{mode:>6}: not available here ({box.problem or box.mode})")
            continue
        modes[mode] = lambda folder, box=box: (
            sandbox.command(box, script, folder, limits),
            lambda f, box=box: sandbox.prepare_folder(box, f),
        )
    print(f"start-to-exit of '/bin/sh -c true', {args.runs} runs per mode (ms)")
    for name, argv_for in modes.items():
        took = sorted(_time(argv_for, args.runs))
        p90 = took[int(len(took) * 0.9) - 1]
        print(
            f"{name:>6}: median {statistics.median(took):6.1f}  p90 {p90:6.1f}  "
            f"min {took[0]:6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
