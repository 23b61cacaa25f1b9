"""Run the ``orchestra`` console script as a user would: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRA = str(Path(sys.executable).parent / "orchestra")
# Variables that would point a command at the developer's or CI's services.
SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL")


@dataclass(repr=False)
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # shown when an assertion fails
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Cli:
    """``orchestra`` with its own ORCHESTRA_HOME (and, unless told, SQLite)."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = env

    def __call__(
        self,
        *args: str,
        timeout: float = 60,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> Result:
        proc = subprocess.run(
            [ORCHESTRA, *args],
            env={**self.env, **(env or {})},
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(
            [ORCHESTRA, *args], env=self.env, cwd=self.home, text=True, **kwargs
        )


def local_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env["ORCHESTRA_HOME"] = str(home)
    return env


@pytest.fixture
def cli(tmp_path) -> Cli:
    """A fresh local installation: SQLite and the SQLite broker in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home, local_env(home))


@pytest.fixture
def cli_on_test_db(transactional_db, tmp_path) -> Cli:
    """``orchestra`` on pytest's database and broker, next to workers started
    with the ``start_worker`` fixture."""
    from tests.conftest import test_database_url

    env = {**os.environ, "DATABASE_URL": test_database_url()}
    return Cli(tmp_path, env)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path
