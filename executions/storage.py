"""Internal storage: ``kestra:///path`` URIs over Django's default storage.

Files of an execution live under ``<namespace as folders>/<flow>/executions/<id>/``;
uploaded FILE inputs under ``<namespace>/<flow>/inputs/<random>/<name>``. A task,
an expression (``read()``) or a download from the UI may only open a file that
belongs to its execution: see ``ExecutionFiles``.
"""

from __future__ import annotations

import uuid
from typing import IO, Any

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage

PREFIX = "kestra://"


class StorageError(ValueError):
    pass


def path_of(uri: str) -> str:
    if not isinstance(uri, str) or not uri.startswith(PREFIX):
        raise StorageError(f"{uri!r} is not an internal storage URI (kestra:///...)")
    path = uri[len(PREFIX) :].lstrip("/")
    if not path or ".." in path.split("/"):
        raise StorageError(f"{uri!r} leaves the storage folder")
    return path


def read_uri(uri: str) -> bytes:
    path = path_of(uri)
    if not default_storage.exists(path):
        raise StorageError(f"no file stored at {uri}")
    with default_storage.open(path, "rb") as handle:
        return handle.read()


def save(path: str, data: bytes | IO[bytes]) -> str:
    """Store bytes, or an open binary file read in chunks (large downloads)."""
    content = ContentFile(data) if isinstance(data, bytes | bytearray) else File(data)
    saved = default_storage.save(path, content)
    return f"{PREFIX}/{saved}"


def flow_folder(namespace: str, flow_id: str) -> str:
    return f"{namespace.replace('.', '/')}/{flow_id}"


def execution_folder(namespace: str, flow_id: str, execution_id: int) -> str:
    return f"{flow_folder(namespace, flow_id)}/executions/{execution_id}/"


def save_input_file(namespace: str, flow_id: str, name: str, data: bytes) -> str:
    """Store an uploaded FILE input (API, UI or CLI) before its execution exists."""
    safe = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    if safe in (".", ".."):
        safe = "upload"
    return save(
        f"{flow_folder(namespace, flow_id)}/inputs/{uuid.uuid4().hex}/{safe}", data
    )


def _uris_in(value: Any) -> set[str]:
    """Every kestra:// URI inside a JSON value (inputs, trigger variables)."""
    found: set[str] = set()
    if isinstance(value, str):
        if value.startswith(PREFIX):
            found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            found |= _uris_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= _uris_in(item)
    return found


class ExecutionFiles:
    """The files one execution may open: its own (and its parents', for
    subflows), its FILE inputs and files handed over by its trigger."""

    def __init__(self, execution) -> None:
        self.execution = execution
        self._folders: list[str] | None = None
        self._given: set[str] | None = None

    def _allowed_folders(self) -> list[str]:
        if self._folders is None:
            folders, current, seen = [], self.execution, set()
            while current is not None and current.pk not in seen:
                seen.add(current.pk)
                folders.append(
                    execution_folder(current.namespace, current.flow_id, current.pk)
                )
                current = current.parent
            self._folders = folders
        return self._folders

    def _given_uris(self) -> set[str]:
        if self._given is None:
            given = _uris_in(self.execution.inputs or {}) | _uris_in(
                self.execution.trigger or {}
            )
            self._given = {path_of(u) for u in given if _valid(u)}
        return self._given

    def check(self, uri: str) -> str:
        """The storage path of ``uri``, or StorageError if this execution may not open it."""
        path = path_of(uri)
        if path in self._given_uris() or any(
            path.startswith(f) for f in self._allowed_folders()
        ):
            return path
        raise StorageError(f"{uri} does not belong to execution {self.execution.pk}")

    def open(self, uri: str) -> IO[bytes]:
        """A file object for a download; the caller closes it."""
        path = self.check(uri)
        if not default_storage.exists(path):
            raise StorageError(f"no file stored at {uri}")
        return default_storage.open(path, "rb")

    def read(self, uri: str) -> bytes:
        with self.open(uri) as handle:
            return handle.read()

    def exists(self, uri: str) -> bool:
        return default_storage.exists(self.check(uri))

    def size(self, uri: str) -> int:
        path = self.check(uri)
        if not default_storage.exists(path):
            raise StorageError(f"no file stored at {uri}")
        return default_storage.size(path)

    def save(
        self, task_id: str, taskrun_id: int, name: str, data: bytes | IO[bytes]
    ) -> str:
        folder = execution_folder(
            self.execution.namespace, self.execution.flow_id, self.execution.pk
        )
        return save(f"{folder}tasks/{task_id}/{taskrun_id}/{name}", data)


def _valid(uri: str) -> bool:
    try:
        path_of(uri)
        return True
    except StorageError:
        return False


def open_execution_file(execution, uri: str) -> IO[bytes]:
    """For downloads (UI, API): the file behind ``uri`` if it belongs to ``execution``."""
    return ExecutionFiles(execution).open(uri)
