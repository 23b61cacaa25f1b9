"""PostgreSQL tasks with Kestra's names (psycopg 3).

``Query`` runs SQL with named ``:parameters`` and returns rows as Kestra's
``fetchType`` asks (NONE, FETCH_ONE → ``row``, FETCH → ``rows``, STORE → a
``uri`` of one row per line); ``size`` counts them. ``CopyIn`` loads a file
from internal storage with COPY; ``Load`` (the spelling some Kestra examples
use) is the same with CSV and a header row as defaults.

A running statement is cancelled on the server when the execution is killed or
the task times out.

Just over 500 lines: the task types share the connection, cancellation and
value-conversion code, which would otherwise be a module of its own imported
only from here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import threading
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from pydantic import Field, field_validator

from flows.expressions import format_native
from flows.tasks.context import RunContext, TaskFailed, TaskKilled
from flows.tasks.fields import BaseTask, DBool, DDict, DInt, DList, DStr, one_of
from flows.tasks.registry import register

FETCH_TYPES = ("NONE", "FETCH_ONE", "FETCH", "STORE")
COPY_FORMATS = ("TEXT", "CSV", "BINARY")
CONNECT_TIMEOUT = 10  # seconds
CHUNK = 256 * 1024


class Connection(BaseTask):
    url: DStr | None = None
    username: DStr | None = None
    password: DStr | None = None
    ssl: DBool | None = None
    sslMode: DStr | None = None
    sslRootCert: DStr | None = None
    sslCert: DStr | None = None
    sslKey: DStr | None = None
    sslKeyPassword: DStr | None = None
    timeZoneId: DStr | None = None

    def validation_warnings(self) -> list[str]:
        notes = super().validation_warnings()
        if self.url is None:
            notes.append(
                "no 'url': the task fails when it runs unless pluginDefaults give one"
            )
        return notes


class QueryTask(Connection):
    sql: DStr
    parameters: DDict | None = None
    fetchType: str = "NONE"
    fetch: DBool | None = None  # Kestra's older booleans for fetchType
    fetchOne: DBool | None = None
    store: DBool | None = None
    fetchSize: DInt | None = None
    autoCommit: DBool = True

    @field_validator("fetchType", mode="before")
    @classmethod
    def _check_fetch_type(cls, value: Any) -> str:
        return one_of(value, FETCH_TYPES, "fetchType")

    def fetch_mode(self) -> str:
        if self.fetchType != "NONE":
            return self.fetchType
        if self.store is True:
            return "STORE"
        if self.fetchOne is True:
            return "FETCH_ONE"
        if self.fetch is True:
            return "FETCH"
        return "NONE"


class CopyInTask(Connection):
    from_: DStr = Field(alias="from")  # ``from`` is a Python keyword
    table: DStr
    format: str = "TEXT"
    header: DBool | None = None
    delimiter: DStr | None = None
    quote: DStr | None = None
    escape: DStr | None = None
    nullString: DStr | None = None
    columns: DList | None = None
    forceNotNull: DList | None = None
    forceNull: DList | None = None
    encoding: DStr | None = None
    freeze: DBool | None = None
    oids: DBool | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _check_format(cls, value: Any) -> str:
        return one_of(value, COPY_FORMATS, "format")


class LoadTask(CopyInTask):
    format: str = "CSV"
    header: DBool | None = True


# --- connections ----------------------------------------------------------------
def connection_params(props: Connection) -> dict[str, Any]:
    """``jdbc:postgresql://host:port/db?k=v`` (or ``postgres://``) → psycopg's keywords."""
    if not props.url:
        raise TaskFailed(
            "no 'url' for the database: give one such as "
            "jdbc:postgresql://host:5432/db (or set it with pluginDefaults)"
        )
    url = str(props.url).strip()
    raw = url.removeprefix("jdbc:")
    parsed = urlparse(raw)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise TaskFailed(
            f"url {url!r} is not a PostgreSQL address "
            "(jdbc:postgresql://host:port/database)"
        )
    try:
        port = parsed.port or 5432
    except ValueError:
        raise TaskFailed(f"url {url!r} has an invalid port") from None
    params: dict[str, Any] = {
        "host": parsed.hostname or "localhost",
        "port": port,
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "orchestra",
    }
    database = unquote(parsed.path.lstrip("/"))
    if database:
        params["dbname"] = database
    for key, value in parse_qsl(parsed.query):
        key = {
            "user": "user",
            "password": "password",
            "sslmode": "sslmode",
            "currentSchema": "options",
        }.get(key, key)
        if key == "options":
            value = f"-c search_path={value}"
        params[key] = value
    if parsed.username:
        params["user"] = unquote(parsed.username)
    if parsed.password:
        params["password"] = unquote(parsed.password)
    if props.username:
        params["user"] = str(props.username)
    if props.password:
        params["password"] = str(props.password)
    if props.sslMode:
        params["sslmode"] = str(props.sslMode).lower().replace("_", "-")
    elif props.ssl is True:
        params.setdefault("sslmode", "require")
    for key, prop in (
        ("sslrootcert", props.sslRootCert),
        ("sslcert", props.sslCert),
        ("sslkey", props.sslKey),
        ("sslpassword", props.sslKeyPassword),
    ):
        if prop:
            params[key] = str(prop)
    if props.timeZoneId:
        params["options"] = (
            params.get("options", "") + f" -c TimeZone={props.timeZoneId}"
        ).strip()
    return params


def connect(props: Connection, autocommit: bool = True):
    import psycopg

    params = connection_params(props)
    try:
        return psycopg.connect(autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        where = f"{params['host']}:{params['port']}/{params.get('dbname', '')}"
        raise TaskFailed(
            f"cannot connect to PostgreSQL at {where}: "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from None


@contextlib.contextmanager
def cancel_on_stop(ctx: RunContext, conn):
    """Watch for kill/timeout while a statement runs and cancel it on the server."""
    stopped: list[TaskKilled] = []
    done = threading.Event()

    def watch() -> None:
        try:
            while not done.wait(0.2):
                try:
                    ctx.check_alive()
                except TaskKilled as exc:
                    stopped.append(exc)
                    with contextlib.suppress(Exception):
                        conn.cancel()
                    return
        finally:
            _close_thread_connections()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    except Exception:
        if stopped:
            raise stopped[0] from None
        raise
    finally:
        done.set()
        watcher.join(2)
    if stopped:
        raise stopped[0]


def _close_thread_connections() -> None:
    # The watcher thread used the ORM through ctx.check_alive.
    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()


def _sql_error(exc: Exception) -> TaskFailed:
    diag = getattr(exc, "diag", None)
    message = str(exc).strip()
    position = getattr(diag, "statement_position", None) if diag else None
    if position:
        message += f" (at character {position})"
    return TaskFailed(f"SQL error: {message}")


# --- Query ------------------------------------------------------------------------
def named_parameters(
    sql: str, parameters: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """Turn ``:name`` placeholders into psycopg's ``%(name)s``, leaving string
    literals, quoted identifiers, comments and ``::type`` casts alone."""
    if not parameters:
        return sql, {}
    out: list[str] = []
    used: set[str] = set()
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            name = sql[i + 1 : end]
            if name not in parameters:
                raise TaskFailed(
                    f"sql uses :{name} but parameters has no '{name}' "
                    f"(parameters: {', '.join(sorted(parameters))})"
                )
            used.add(name)
            out.append(f"%({name})s")
            i = end
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), {k: v for k, v in parameters.items() if k in used}


def plain(value: Any) -> Any:
    """A database value as a JSON-friendly value."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and abs(value) < 1 << 53
            else float(value)
        )
    if isinstance(value, datetime | date | time):
        return format_native(value)
    if isinstance(value, timedelta):
        return format_native(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _record(columns: list[str], row: tuple) -> dict[str, Any]:
    return dict(zip(columns, (plain(v) for v in row), strict=False))


def _collect(cur, mode: str) -> tuple[Any, int]:
    """The rows of the current result as ``mode`` wants them, and their count.
    STORE writes one JSON object per line to a spooled file, batch by batch,
    so a large result never sits in memory."""
    columns = [d.name for d in cur.description]
    if mode == "FETCH_ONE":
        row = cur.fetchone()
        return (_record(columns, row) if row is not None else None), int(
            row is not None
        )
    if mode == "FETCH":
        rows = [_record(columns, row) for row in cur.fetchall()]
        return rows, len(rows)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    count = 0
    while batch := cur.fetchmany(1000):
        for row in batch:
            spool.write(
                json.dumps(_record(columns, row), ensure_ascii=False).encode() + b"\n"
            )
        count += len(batch)
    return spool, count


def run_query(ctx: RunContext, props: QueryTask) -> dict[str, Any]:
    import psycopg

    mode = props.fetch_mode()
    sql, params = named_parameters(str(props.sql), props.parameters)
    result, size, returned_rows = None, 0, False
    conn = connect(props, autocommit=props.autoCommit is not False)
    try:
        with cancel_on_stop(ctx, conn), conn.cursor() as cur:
            try:
                ctx.check_alive()  # the lease, right before the side effect
                cur.execute(sql, params or None)
                # Several statements: the last one that returns rows answers.
                while True:
                    if cur.description is not None:
                        returned_rows = True
                        if mode != "NONE":
                            if hasattr(result, "close"):
                                result.close()
                            result, size = _collect(cur, mode)
                    if not cur.nextset():
                        break
                affected = cur.rowcount
                if props.autoCommit is False:
                    conn.commit()
            except psycopg.Error as exc:
                raise _sql_error(exc) from None
    finally:
        conn.close()
    if not returned_rows:
        ctx.log(
            "INFO",
            f"query done ({affected} rows affected)" if affected >= 0 else "query done",
        )
    if mode == "NONE":
        return {}
    if mode == "FETCH_ONE":
        return {"row": result, "size": size}
    if mode == "FETCH":
        return {"rows": result or [], "size": size}
    if result is None:
        return {"uri": ctx.put_file("result.ion", b""), "size": 0}
    with result:
        result.seek(0)
        return {"uri": ctx.put_file("result.ion", result), "size": size}


# --- CopyIn / Load ------------------------------------------------------------------
def copy_statement(props: CopyInTask):
    from psycopg import sql

    table = sql.Identifier(*str(props.table).split("."))
    columns = sql.SQL("")
    if props.columns:
        columns = sql.SQL(" ({})").format(
            sql.SQL(", ").join(sql.Identifier(str(c)) for c in props.columns)
        )
    options = [sql.SQL("FORMAT {}").format(sql.SQL(props.format))]
    if props.header is not None and props.format == "CSV":
        options.append(
            sql.SQL("HEADER {}").format(sql.SQL("true" if props.header else "false"))
        )
    for name, value in (
        ("DELIMITER", props.delimiter),
        ("QUOTE", props.quote),
        ("ESCAPE", props.escape),
        ("NULL", props.nullString),
        ("ENCODING", props.encoding),
    ):
        if value is not None:
            options.append(sql.SQL(name + " {}").format(sql.Literal(str(value))))
    for name, cols in (
        ("FORCE_NOT_NULL", props.forceNotNull),
        ("FORCE_NULL", props.forceNull),
    ):
        if cols:
            options.append(
                sql.SQL(name + " ({})").format(
                    sql.SQL(", ").join(sql.Identifier(str(c)) for c in cols)
                )
            )
    if props.freeze is not None:
        options.append(
            sql.SQL("FREEZE {}").format(sql.SQL("true" if props.freeze else "false"))
        )
    return sql.SQL("COPY {}{} FROM STDIN WITH ({})").format(
        table, columns, sql.SQL(", ").join(options)
    )


def run_copy_in(ctx: RunContext, props: CopyInTask) -> dict[str, Any]:
    import psycopg

    source = str(props.from_).strip()
    try:
        data = ctx.read_file(source)
    except ValueError as exc:
        raise TaskFailed(f"from: {exc}") from None
    if props.oids:
        ctx.log("WARN", "oids is not supported by PostgreSQL 12 and later; ignored")
    statement = copy_statement(props)
    conn = connect(props, autocommit=False)
    try:
        with cancel_on_stop(ctx, conn), conn.cursor() as cur:
            try:
                ctx.check_alive()  # the lease, right before the side effect
                with cur.copy(statement) as copy:
                    for start in range(0, len(data), CHUNK):
                        copy.write(data[start : start + CHUNK])
                count = cur.rowcount
                conn.commit()
            except psycopg.Error as exc:
                raise _sql_error(exc) from None
    finally:
        conn.close()
    ctx.log("INFO", f"copied {count} rows into {props.table}")
    return {"rowCount": count}


register(
    "io.kestra.plugin.jdbc.postgresql.Query",
    QueryTask,
    run=run_query,
    summary="Run SQL on PostgreSQL; fetchType NONE, FETCH_ONE, FETCH or STORE",
)
register(
    "io.kestra.plugin.jdbc.postgresql.CopyIn",
    CopyInTask,
    run=run_copy_in,
    summary="Load a file from internal storage into a PostgreSQL table with COPY",
)
register(
    "io.kestra.plugin.jdbc.postgresql.Load",
    LoadTask,
    run=run_copy_in,
    summary="Load a CSV file (with a header row) into a PostgreSQL table with COPY",
)
