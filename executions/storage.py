"""Internal storage: ``kestra:///path`` URIs over Django's default storage.

Files of an execution live under ``<namespace>/<flow>/executions/<id>/``;
uploaded FILE inputs under ``<namespace>/<flow>/inputs/<random>/<name>``. The
namespace is one folder, dots kept (``team.a/b/``): a namespace never contains
``/``, so namespace ``team.a.b`` and flow ``b`` of ``team.a`` cannot share a
folder. Files stored before (``team/a/b/...``, one folder per namespace part)
stay readable where they were: every check asks which namespace owns a path
(``owner_namespace``), never whether it starts with a namespace's folder.

A task, an expression (``read()``) or a download from the UI may only open a
file that belongs to its execution: see ``ExecutionFiles``.
"""

from __future__ import annotations

import contextvars
import mimetypes
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.http import FileResponse

from accounts import roles
from executions.models import Execution
from flows.namespaces import can_reach, refusal

PREFIX = "kestra://"


class StorageError(ValueError):
    pass


class BadStorageURI(StorageError):
    """Not a storage URI at all, or one that tries to leave the storage folder."""


def path_of(uri: str) -> str:
    if not isinstance(uri, str) or not uri.startswith(PREFIX):
        raise BadStorageURI(f"{uri!r} is not an internal storage URI (kestra:///...)")
    path = uri[len(PREFIX) :].lstrip("/")
    if not path or ".." in path.split("/") or "\x00" in path:
        raise BadStorageURI(f"{uri!r} leaves the storage folder")
    return path


def read_uri(uri: str) -> bytes:
    path = path_of(uri)
    if not default_storage.exists(path):
        raise StorageError(f"no file stored at {uri}")
    with default_storage.open(path, "rb") as handle:
        return handle.read()


def save(path: str, data: bytes | IO[bytes]) -> str:
    """Store bytes, or an open binary file read in chunks (large downloads).

    All or nothing: when writing fails (a full disk, a quota) the partial
    file is removed and StorageError says why, so no truncated file is ever
    left for a task or a download to read."""
    content = ContentFile(data) if isinstance(data, bytes | bytearray) else File(data)
    name = default_storage.get_available_name(path)
    try:
        saved = default_storage.save(name, content)
    except OSError as exc:
        try:
            default_storage.delete(name)
        except OSError:
            pass
        raise StorageError(
            f"could not store {path.rsplit('/', 1)[-1]}: {exc.strerror or exc}"
        ) from None
    return f"{PREFIX}/{saved}"


def flow_folder(namespace: str, flow_id: str) -> str:
    return f"{namespace}/{flow_id}"


def execution_folder(namespace: str, flow_id: str, execution_id: int) -> str:
    return f"{flow_folder(namespace, flow_id)}/executions/{execution_id}/"


def legacy_execution_folder(namespace: str, flow_id: str, execution_id: int) -> str:
    """Where files of an execution were stored before the namespace became one
    folder (``team/a/b/executions/7/`` for flow ``b`` of ``team.a``)."""
    return f"{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


def execution_folders(namespace: str, flow_id: str, execution_id: int) -> list[str]:
    """Both layouts: a file stored before the change stays readable."""
    return [
        execution_folder(namespace, flow_id, execution_id),
        legacy_execution_folder(namespace, flow_id, execution_id),
    ]


def in_namespace(owner: str | None, namespace: str) -> bool:
    """``owner`` is ``namespace`` or one of its children."""
    return owner is not None and (
        owner == namespace or owner.startswith(namespace + ".")
    )


def save_input_file(namespace: str, flow_id: str, name: str, data: bytes) -> str:
    """Store an uploaded FILE input (API, UI or CLI) before its execution exists."""
    safe = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    if safe in (".", "..") or "\x00" in safe:
        safe = "upload"
    uri = save(
        f"{flow_folder(namespace, flow_id)}/inputs/{uuid.uuid4().hex}/{safe}", data
    )
    pending = _uploads.get()
    if pending is not None:
        pending.append(uri)
    return uri


_uploads: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "orchestra_pending_uploads", default=None
)


@contextmanager
def uploads_discarded_on_error() -> Iterator[None]:
    """Files uploaded inside the block are deleted if it raises: inputs that
    were refused leave nothing on disk."""
    saved: list[str] = []
    token = _uploads.set(saved)
    try:
        yield
    except BaseException:
        for uri in saved:
            _delete_upload(uri)
        raise
    finally:
        _uploads.reset(token)


def _delete_upload(uri: str) -> None:
    path = path_of(uri)
    default_storage.delete(path)
    folder = path.rsplit("/", 1)[0]  # inputs/<random>/, made for this file
    try:
        os.rmdir(default_storage.path(folder))
    except (NotImplementedError, OSError):
        pass  # a remote storage has no folders; a local one may be in use


def uris_in(value: Any) -> set[str]:
    """Every kestra:// URI inside a JSON value (inputs, trigger variables)."""
    found: set[str] = set()
    if isinstance(value, str):
        if value.startswith(PREFIX):
            found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            found |= uris_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= uris_in(item)
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
                folders += execution_folders(
                    current.namespace, current.flow_id, current.pk
                )
                current = current.parent
            self._folders = folders
        return self._folders

    def _given_uris(self) -> set[str]:
        if self._given is None:
            # Inputs were checked when the execution was created (see
            # check_given_files); of the trigger's variables only the files
            # of the execution whose end triggered this one count: a webhook
            # body naming some other file gives no access to it.
            given = _paths_in(self.execution.inputs)
            sources = _trigger_source_folders(self.execution.trigger)
            given |= {
                p
                for p in _paths_in(self.execution.trigger)
                if any(p.startswith(source) for source in sources)
            }
            self._given = given
        return self._given

    def check(self, uri: str) -> str:
        """The storage path of ``uri``, or StorageError if this execution may not open it."""
        path = path_of(uri)
        if any(path.startswith(f) for f in self._allowed_folders()):
            return path
        if path in self._given_uris():
            # A file handed over (input, trigger) is read only if it belongs
            # to a namespace this flow may reach (flows/namespaces.py).
            owner = owner_namespace(path)
            if owner is None or can_reach(self.execution.namespace, owner):
                return path
            raise StorageError(
                refusal(self.execution.namespace, self.execution.flow_id, owner)
            )
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


def _trigger_source_folders(trigger: Any) -> list[str]:
    """The folders of the execution a Flow trigger reacted to, if any."""
    variables = (trigger or {}).get("variables") or {}
    try:
        return execution_folders(
            str(variables["namespace"]),
            str(variables["flowId"]),
            int(variables["executionId"]),
        )
    except (KeyError, TypeError, ValueError):
        return []


def check_given_files(
    namespace: str,
    inputs: dict[str, Any],
    *,
    user=None,
    parent=None,
    trigger: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Which inputs name a stored file the new execution may not be given;
    {input: why}. Allowed: uploads made for this flow, files of its own
    namespace, files its parent execution may open (subflows, ForEachItem),
    files of the execution that triggered it, and files in namespaces the
    user starting it can view. Anything else would let a run read another
    team's data by naming its URI."""
    sources = _trigger_source_folders(trigger)
    parent_files = ExecutionFiles(parent) if parent is not None else None
    problems: dict[str, str] = {}
    for name, value in inputs.items():
        for uri in sorted(uris_in(value)):
            try:
                path = path_of(uri)
            except BadStorageURI as exc:
                problems[name] = str(exc)
                break
            if any(path.startswith(source) for source in sources):
                continue
            # The namespace that owns the file decides, not its folder: with
            # the old layout ``team/a/b/`` held both namespace team.a.b and
            # flow b of team.a.
            # The first folder is the owner in the new layout, and the owner or
            # a parent of it in the old one: either way inside the subtree.
            owner = owner_namespace(path)
            if in_namespace(path.split("/", 1)[0], namespace) or in_namespace(
                owner, namespace
            ):
                continue
            if parent_files is not None:
                try:
                    parent_files.check(uri)
                    continue
                except StorageError:
                    pass
            if owner and user is not None and roles.has_role(user, owner):
                continue
            problems[name] = (
                f"{uri} is not a file this execution may use (upload it, or name a "
                f"file of namespace {namespace} or of a namespace you can view)"
            )
            break
    return problems


def _paths_in(value: Any) -> set[str]:
    """Storage paths of the well-formed kestra:// URIs inside a JSON value."""
    paths = set()
    for uri in uris_in(value):
        try:
            paths.add(path_of(uri))
        except StorageError:
            pass
    return paths


def open_execution_file(execution, uri: str) -> IO[bytes]:
    """For downloads (UI, API): the file behind ``uri`` if it belongs to ``execution``."""
    return ExecutionFiles(execution).open(uri)


_UPLOAD = re.compile(r"^(?P<folders>.+)/[^/]+/inputs/[0-9a-f]{32}/[^/]+$")
_EXECUTION_ID = re.compile(r"(?:^|/)executions/(\d+)/")


def owner_namespace(path: str) -> str | None:
    """The namespace whose folder holds ``path``: the execution whose folder it
    is in, or the flow an upload was made for. None when it is neither."""
    ids = {int(m) for m in _EXECUTION_ID.findall(path) if len(m) < 19}
    for row in Execution.objects.filter(pk__in=ids).only("pk", "namespace", "flow_id"):
        if any(
            path.startswith(folder)
            for folder in execution_folders(row.namespace, row.flow_id, row.pk)
        ):
            return row.namespace
    match = _UPLOAD.match(path)
    return match["folders"].replace("/", ".") if match else None


@dataclass
class Download:
    file: IO[bytes]
    name: str
    content_type: str
    size: int | None

    def response(self) -> FileResponse:
        """Streamed in chunks, always as an attachment (a stored HTML file
        must not run in the dashboard's origin)."""
        response = FileResponse(
            self.file,
            as_attachment=True,
            filename=self.name,
            content_type=self.content_type,
        )
        if self.size is not None:
            response["Content-Length"] = str(self.size)
        return response


def open_download(execution, uri: str, may_view: Callable[[str], bool]) -> Download:
    """The file behind ``uri`` for a download from ``execution``'s page.

    It must belong to the execution (its own files, its FILE inputs, files
    given by its trigger or parent), and ``may_view`` must accept the
    namespace that owns the file: a file handed over from another namespace
    is not shown to someone who cannot see that namespace. Raises
    BadStorageURI for a malformed URI, StorageError when the file is not
    there or not for this user.
    """
    path = ExecutionFiles(execution).check(uri)
    owner = owner_namespace(path)
    if owner is None or not may_view(owner):
        raise StorageError(f"{uri} does not belong to execution {execution.pk}")
    try:
        if not default_storage.exists(path):
            raise StorageError(f"no file stored at {uri}")
        handle = default_storage.open(path, "rb")
    except SuspiciousFileOperation:
        raise BadStorageURI(f"{uri!r} leaves the storage folder") from None
    name = path.rsplit("/", 1)[-1]
    try:
        size = default_storage.size(path)
    except (OSError, NotImplementedError):
        size = None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Download(handle, name, content_type, size)
