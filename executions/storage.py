"""Internal storage: ``kestra:///path`` URIs over Django's default storage."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

PREFIX = "kestra://"


class StorageError(ValueError):
    pass


def path_of(uri: str) -> str:
    if not uri.startswith(PREFIX):
        raise StorageError(f"{uri!r} is not an internal storage URI (kestra:///...)")
    path = uri[len(PREFIX):].lstrip("/")
    if ".." in path.split("/"):
        raise StorageError(f"{uri!r} leaves the storage folder")
    return path


def read_uri(uri: str) -> bytes:
    path = path_of(uri)
    if not default_storage.exists(path):
        raise StorageError(f"no file stored at {uri}")
    with default_storage.open(path, "rb") as handle:
        return handle.read()


def save(path: str, data: bytes) -> str:
    saved = default_storage.save(path, ContentFile(data))
    return f"{PREFIX}/{saved}"


def save_input_file(namespace: str, flow_id: str, filename: str, data: bytes) -> str:
    """Store an uploaded FILE input; returns its kestra:// URI."""
    import uuid
    from pathlib import PurePath

    name = PurePath(filename or "upload").name or "upload"
    return save(f"{namespace.replace('.', '/')}/{flow_id}/inputs/{uuid.uuid4().hex}/{name}", data)
