"""HTTP tasks with Kestra's names: ``core.http.Request`` and ``core.http.Download``."""

from __future__ import annotations

import io
import re
import tempfile
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
from pydantic import ConfigDict

from flows.tasks.context import RunContext, TaskFailed
from flows.tasks.fields import (
    BaseTask,
    DBool,
    DDict,
    DDuration,
    DInt,
    DList,
    DStr,
    Strict,
)
from flows.tasks.registry import register

DEFAULT_TIMEOUT = 60.0  # seconds, when neither options nor the task set one
MAX_BODY = 10 * 1024 * 1024  # bytes kept in the ``body`` output
CHUNK = 64 * 1024


class HttpOptions(Strict):
    # Kestra has more client options (proxy, SSL, ...); unknown ones are kept
    # and reported at validation instead of rejected.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    timeout: DDuration | None = None
    connectTimeout: DDuration | None = None
    readTimeout: DDuration | None = None
    followRedirects: DBool = True
    allowFailed: DBool = False
    allowedResponseCodes: DList | None = None
    maxContentLength: DInt | None = None
    basicAuthUser: DStr | None = None
    basicAuthPassword: DStr | None = None
    defaultCharset: DStr | None = None


class RequestBase(BaseTask):
    uri: DStr
    method: DStr = "GET"
    headers: DDict | None = None
    body: DStr | None = None
    formData: DDict | None = None
    contentType: DStr | None = None
    options: HttpOptions | None = None
    allowFailed: DBool | None = None  # Kestra's older top-level spelling
    sslOptions: dict[str, Any] | None = None

    def validation_warnings(self) -> list[str]:
        notes = super().validation_warnings()
        extra = sorted((self.options.model_extra or {}) if self.options else {})
        if extra:
            notes.append(
                f"HTTP options not supported here and ignored: {', '.join(extra)}"
            )
        if self.sslOptions:
            notes.append(
                "sslOptions are not supported here and ignored; the system's "
                "certificate store is used"
            )
        return notes


class RequestTask(RequestBase):
    encryptBody: DBool = False

    def validation_warnings(self) -> list[str]:
        notes = super().validation_warnings()
        if self.encryptBody is True:
            notes.append(
                "encryptBody is not supported here: the body output is stored as is"
            )
        return notes


class DownloadTask(RequestBase):
    failOnEmptyResponse: DBool = True
    saveAs: DStr | None = None


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else None


def _client(props: RequestBase) -> httpx.Client:
    options = props.options or HttpOptions()
    total = _seconds(options.timeout) or _seconds(props.timeout) or DEFAULT_TIMEOUT
    timeout = httpx.Timeout(
        total,
        connect=_seconds(options.connectTimeout) or total,
        read=_seconds(options.readTimeout) or total,
    )
    auth = None
    if options.basicAuthUser:
        auth = httpx.BasicAuth(
            str(options.basicAuthUser), str(options.basicAuthPassword or "")
        )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=options.followRedirects is not False,
        auth=auth,
    )


def _request(
    ctx: RunContext, client: httpx.Client, props: RequestBase
) -> httpx.Request:
    uri = str(props.uri).strip()
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TaskFailed(f"uri {uri!r} is not an http:// or https:// address")
    method = str(props.method or "GET").upper()
    headers = {str(k): str(v) for k, v in (props.headers or {}).items()}
    has_type = any(k.lower() == "content-type" for k in headers)
    kwargs: dict[str, Any] = {}
    content_type = str(props.contentType or "")
    if props.formData:
        files, data = {}, {}
        for key, value in props.formData.items():
            if isinstance(value, str) and value.startswith("kestra://"):
                name = value.rstrip("/").rsplit("/", 1)[-1]
                files[str(key)] = (name, _read(ctx, value, f"formData.{key}"))
            else:
                data[str(key)] = value if isinstance(value, str) else str(value)
        if files or content_type.startswith("multipart/"):
            # Plain fields as (no file name, value) parts: multipart even without files.
            kwargs["files"] = {**{k: (None, v) for k, v in data.items()}, **files}
            # httpx sets the multipart boundary itself.
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        else:
            kwargs["data"] = data
    elif props.body is not None:
        kwargs["content"] = str(props.body).encode()
        if not has_type:
            headers["Content-Type"] = content_type or "application/json"
    try:
        return client.build_request(method, uri, headers=headers, **kwargs)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise TaskFailed(f"cannot build the request to {uri}: {exc}") from None


def _read(ctx: RunContext, uri: str, what: str) -> bytes:
    try:
        return ctx.read_file(uri)
    except ValueError as exc:
        raise TaskFailed(f"{what}: {exc}") from None


def _status_ok(props: RequestBase, response: httpx.Response) -> bool:
    options = props.options or HttpOptions()
    code = response.status_code
    allowed = options.allowedResponseCodes
    if allowed:
        return code in {int(c) for c in allowed}
    return code < 400 or bool(options.allowFailed) or bool(props.allowFailed)


def _check_status(
    props: RequestBase, response: httpx.Response, body_hint: str = ""
) -> None:
    if not _status_ok(props, response):
        reason = response.reason_phrase or ""
        detail = f": {body_hint[:500]}" if body_hint.strip() else ""
        raise TaskFailed(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code} {reason}".rstrip()
            + detail
        )


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in response.headers.multi_items():
        out.setdefault(key.lower(), []).append(value)
    return out


def _send(
    ctx: RunContext, client: httpx.Client, request: httpx.Request
) -> httpx.Response:
    ctx.check_alive()  # the lease, right before the side effect
    try:
        return client.send(request, stream=True)
    except httpx.TimeoutException:
        raise TaskFailed(
            f"{request.method} {request.url}: no answer before the timeout"
        ) from None
    except httpx.HTTPError as exc:
        raise TaskFailed(f"{request.method} {request.url}: {exc}") from None


def _limit(props: RequestBase) -> int:
    options = props.options or HttpOptions()
    return (
        int(options.maxContentLength)
        if isinstance(options.maxContentLength, int)
        else MAX_BODY
    )


def _read_body(ctx: RunContext, response: httpx.Response, limit: int) -> bytes:
    body = io.BytesIO()
    _copy_body(ctx, response, body, limit, "; use Download to store it")
    return body.getvalue()


def run_request(ctx: RunContext, props: RequestTask) -> dict[str, Any]:
    with _client(props) as client:
        request = _request(ctx, client, props)
        response = _send(ctx, client, request)
        try:
            data = _read_body(ctx, response, _limit(props))
        finally:
            response.close()
    charset = (
        response.charset_encoding
        or (props.options.defaultCharset if props.options else None)
        or "utf-8"
    )
    body = data.decode(str(charset), errors="replace")
    _check_status(props, response, body)
    ctx.log("DEBUG", f"{request.method} {request.url} → {response.status_code}")
    return {
        "code": response.status_code,
        "headers": _headers(response),
        "body": body,
        "uri": str(request.url),
    }


def _file_name(props: DownloadTask, response: httpx.Response) -> str:
    if props.saveAs:
        name = str(props.saveAs)
    else:
        disposition = response.headers.get("content-disposition", "")
        match = re.search(
            r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", disposition, re.IGNORECASE
        )
        if match:
            name = unquote(match.group(1))
        else:
            name = unquote(urlparse(str(response.request.url)).path.rsplit("/", 1)[-1])
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name and name not in (".", "..") else "download"


def run_download(ctx: RunContext, props: DownloadTask) -> dict[str, Any]:
    with _client(props) as client:
        request = _request(ctx, client, props)
        response = _send(ctx, client, request)
        try:
            if not _status_ok(props, response):
                _check_status(
                    props, response, response.read()[:500].decode(errors="replace")
                )
            # Spooled to disk past a few MB: a large file never sits in memory.
            with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
                limit = (
                    _limit(props)
                    if props.options and props.options.maxContentLength
                    else None
                )
                length = _copy_body(ctx, response, spool, limit)
                if not length and props.failOnEmptyResponse is not False:
                    raise TaskFailed(
                        f"{request.url} answered {response.status_code} with an "
                        "empty body (set failOnEmptyResponse: false to accept it)"
                    )
                spool.seek(0)
                uri = ctx.put_file(_file_name(props, response), spool)
        finally:
            response.close()
    ctx.log("INFO", f"downloaded {length} bytes from {request.url} to {uri}")
    return {
        "uri": uri,
        "code": response.status_code,
        "length": length,
        "headers": _headers(response),
    }


def _copy_body(
    ctx: RunContext,
    response: httpx.Response,
    target,
    limit: int | None,
    hint: str = "",
) -> int:
    """Stream the body into ``target``, failing once it passes ``limit``."""
    size = 0
    try:
        for chunk in response.iter_bytes(CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                raise TaskFailed(
                    f"the response is larger than {limit} bytes "
                    f"(options.maxContentLength){hint}"
                )
            target.write(chunk)
            ctx.check_alive()
    except httpx.HTTPError as exc:
        raise TaskFailed(
            f"reading the answer of {response.request.url}: {exc}"
        ) from None
    return size


register(
    "io.kestra.plugin.core.http.Request",
    RequestTask,
    run=run_request,
    aliases=["io.kestra.plugin.fs.http.Request"],
    summary="Send an HTTP request; outputs code, headers, body",
)
register(
    "io.kestra.plugin.core.http.Download",
    DownloadTask,
    run=run_download,
    aliases=["io.kestra.plugin.fs.http.Download"],
    summary="Download a file over HTTP into internal storage; outputs uri, code, length",
)
