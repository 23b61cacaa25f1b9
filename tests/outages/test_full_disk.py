"""A full disk while storing a file leaves nothing behind (a real, tiny tmpfs)."""

from __future__ import annotations

import os
import subprocess

import pytest

from executions.storage import StorageError, read_uri, save, save_input_file
from tests.conftest import need


@pytest.fixture
def tiny_disk(tmp_path, settings):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
    )
    need(done.returncode == 0, f"needs to mount a tmpfs (root): {done.stderr!r}")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(mount)},
        },
    }
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _files(root) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]


def test_a_file_that_does_not_fit_is_refused_and_leaves_nothing(tiny_disk):
    small = save("tests/small.txt", b"fits")
    with pytest.raises(StorageError, match="could not store big.bin: No space left"):
        save("tests/big.bin", b"x" * 200_000)
    with pytest.raises(StorageError, match="No space left"):
        save_input_file("tests.disk", "flow", "upload.csv", b"y" * 200_000)
    assert [os.path.basename(f) for f in _files(tiny_disk)] == ["small.txt"]
    assert read_uri(small) == b"fits"
