"""Secret values: encryption at rest, global secrets from the environment, masking.

Where a secret comes from (flows/secrets.py decides, nearest first):

1. a secret of the flow's namespace or of one of its parents, stored
   encrypted with Fernet (``cryptography``) under ``ORCHESTRA_SECRETS_KEY``;
2. a **global** secret: the environment variable ``SECRET_<NAME>`` (base64
   of the value, Kestra's convention), but only when the operator lists
   ``NAME`` in ``ORCHESTRA_GLOBAL_SECRETS`` (comma-separated; ``*`` marks
   every ``SECRET_*`` variable global, for single-team instances).
   ``SECRET_KEY`` and ``SECRET_KEY_FILE`` are Django's own settings and are
   never readable this way.

Masking: ``mask()`` is the one function every writer calls before a value is
stored (logs, outputs and their keys, labels, loop values, child inputs,
errors, state history reasons). It replaces with ``******`` every known
secret value (every ``SECRET_*`` variable, every value a ``secret()`` call
resolved in this process, every namespace secret) and its common
transformations: upper and lower case, base64 (standard and URL-safe, with
and without padding), URL encoding, reversed; and any run of at least
``SUBSTRING_MIN`` characters taken from a secret (or from its reverse),
whatever its case, so slices and partial ``replace`` do not leak it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

PREFIX = "SECRET_"
RESERVED = {"KEY", "KEY_FILE"}
GLOBAL_LIST = "ORCHESTRA_GLOBAL_SECRETS"
KEY_VARIABLE = "ORCHESTRA_SECRETS_KEY"
MASK = "******"
MIN_MASKED = 4
# A slice of a secret this long or longer is masked (secrets shorter than
# this are masked whole and in their transformations only).
SUBSTRING_MIN = 8
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class SecretError(ValueError):
    pass


class SecretsKeyMissing(SecretError):
    pass


def check_name(name: Any) -> str:
    name = str(name)
    if not NAME_RE.fullmatch(name):
        raise SecretError(
            f"secret name {name[:60]!r} is not valid: use letters, digits and '_' "
            "(at most 128, not starting with a digit)"
        )
    return name


# --- encryption at rest -------------------------------------------------------------
_fernet_lock = threading.Lock()
_fernet: tuple[str, Any] | None = None


def _key(local_mode: bool, home: Path | None) -> str:
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if key:
        return key
    if not local_mode or home is None:
        raise SecretsKeyMissing(
            f"namespace secrets need {KEY_VARIABLE} (a Fernet key: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key()'
            '.decode())") on every web and worker process; it is not set'
        )
    # Local mode: one key per data folder, readable by its owner only.
    path = home / "secrets_key"
    if not path.exists():
        from cryptography.fernet import Fernet

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def fernet(local_mode: bool = False, home: Path | None = None):
    """The Fernet of ``ORCHESTRA_SECRETS_KEY`` (or local mode's kept key);
    SecretsKeyMissing with what to do when there is none or it is not a key."""
    global _fernet
    from cryptography.fernet import Fernet

    key = _key(local_mode, home)
    with _fernet_lock:
        if _fernet is None or _fernet[0] != key:
            try:
                _fernet = (key, Fernet(key.encode()))
            except (ValueError, binascii.Error):
                raise SecretsKeyMissing(
                    f"{KEY_VARIABLE} is not a Fernet key (32 url-safe base64-encoded "
                    "bytes); generate one with Fernet.generate_key()"
                ) from None
        return _fernet[1]


def encrypt(box, value: str) -> bytes:
    return box.encrypt(value.encode("utf-8"))


def decrypt(box, token: bytes) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return box.decrypt(bytes(token)).decode("utf-8")
    except InvalidToken:
        raise SecretError(
            f"a stored secret cannot be decrypted with this {KEY_VARIABLE}: "
            "the key changed since it was written"
        ) from None


# --- global secrets from the environment ---------------------------------------
def global_names() -> set[str] | None:
    """Names the operator marked global; None means every SECRET_* variable."""
    raw = os.environ.get(GLOBAL_LIST, "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if "*" in names:
        return None
    return names


def read_global(name: str) -> str | None:
    """The decoded ``SECRET_<name>`` when it is marked global, else None.
    SecretError when it is marked global but malformed."""
    name = check_name(name)
    if name.upper() in RESERVED:
        raise SecretError(
            f"secret({name!r}) is reserved: SECRET_{name} is the web server's "
            "own key; pick another name"
        )
    allowed = global_names()
    if allowed is not None and name not in allowed:
        return None
    variable = PREFIX + name
    raw = os.environ.get(variable)
    if raw is None:
        return None
    try:
        value = base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise SecretError(
            f"{variable} is not base64: store base64 of the value, e.g. "
            f"export {variable}=$(printf %s 'value' | base64)"
        ) from None
    remember(value)
    return value


# --- masking ---------------------------------------------------------------------
_resolved: set[str] = set()
_resolved_lock = threading.Lock()
# Values of stored secrets: set by flows/secrets.py (lib imports no app).
_stored_source: Callable[[], Iterable[str]] | None = None
_stored: tuple[float, frozenset[str]] = (0.0, frozenset())
STORED_TTL = 2.0  # seconds a process trusts its copy of the stored values


def remember(value: str) -> None:
    """A value this process resolved: masked from now on, whatever its source."""
    if isinstance(value, str) and len(value) >= MIN_MASKED:
        with _resolved_lock:
            _resolved.add(value)


def set_stored_source(source: Callable[[], Iterable[str]] | None) -> None:
    global _stored_source, _stored
    _stored_source, _stored = source, (0.0, frozenset())


def _stored_values() -> frozenset[str]:
    global _stored
    if _stored_source is None:
        return frozenset()
    at, values = _stored
    if time.monotonic() - at > STORED_TTL:
        try:
            values = frozenset(_stored_source())
        except Exception:  # no database yet, no key: keep what we had
            pass
        _stored = (time.monotonic(), values)
    return values


_env_cache: tuple[tuple, frozenset[str]] = ((), frozenset())


def _env_values() -> frozenset[str]:
    global _env_cache
    # os.environ's Mapping iteration costs ~1 µs a variable; its plain dict
    # of bytes is read in C. Decoding runs only when a SECRET_* changed.
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        key = tuple((k, v) for k, v in data.items() if k[:7] in (b"SECRET_", "SECRET_"))
    else:  # pragma: no cover - other platforms
        key = tuple((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))
    if key == _env_cache[0]:
        return _env_cache[1]
    values = set()
    for k, raw in key:
        name = os.fsdecode(k) if isinstance(k, bytes) else k
        raw = os.fsdecode(raw) if isinstance(raw, bytes) else raw
        values.add(raw)
        if name[len(PREFIX) :] in RESERVED:
            continue
        try:
            values.add(base64.b64decode(raw.strip(), validate=True).decode("utf-8"))
        except (binascii.Error, ValueError):
            pass
    _env_cache = (key, frozenset(values))
    return _env_cache[1]


def variants(value: str) -> set[str]:
    """The forms of ``value`` masked whole."""
    raw = value.encode("utf-8")
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    forms = {
        value,
        value.upper(),
        value.lower(),
        value[::-1],
        std,
        std.rstrip("="),
        url,
        url.rstrip("="),
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    return {f for f in forms if len(f) >= MIN_MASKED}


def _automaton(words: Iterable[str]):
    """Aho-Corasick (pyahocorasick): every occurrence of every word in one
    pass over the text, overlapping ones included. A regex alternation of the
    few hundred forms and slices of a handful of secrets took seconds on a
    1 MB output; this takes milliseconds."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, len(word))
    automaton.make_automaton()
    return automaton


class _Masker:
    def __init__(self, values: frozenset[str]):
        whole: set[str] = set()
        windows: set[str] = set()
        for value in values:
            whole |= variants(value)
            if len(value) >= SUBSTRING_MIN:
                for text in (value.lower(), value[::-1].lower()):
                    for i in range(len(text) - SUBSTRING_MIN + 1):
                        windows.add(text[i : i + SUBSTRING_MIN])
        self.whole = _automaton(whole) if whole else None
        self.windows = _automaton(windows) if windows else None

    def __call__(self, text: str) -> str:
        spans: list[tuple[int, int]] = []
        if self.whole is not None:
            spans += [(end - n + 1, end + 1) for end, n in self.whole.iter(text)]
        if self.windows is not None and len(text) >= SUBSTRING_MIN:
            lowered = text.lower()
            if len(lowered) != len(text):  # a few characters lower to two
                lowered = text
            spans += [(end - n + 1, end + 1) for end, n in self.windows.iter(lowered)]
        if not spans:
            return text
        # Overlapping and touching matches become one masked run.
        spans.sort()
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            if start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out, last = [], 0
        for start, end in merged:
            out.append(text[last:start])
            out.append(MASK)
            last = end
        out.append(text[last:])
        return "".join(out)


_cache: tuple[frozenset[str], _Masker] | None = None


def _masker() -> _Masker | None:
    global _cache
    with _resolved_lock:
        resolved = frozenset(_resolved)
    values = frozenset(
        v
        for v in (_env_values() | resolved | _stored_values())
        if isinstance(v, str) and len(v) >= MIN_MASKED
    )
    if not values:
        return None
    if _cache is None or _cache[0] != values:
        _cache = (values, _Masker(values))
    return _cache[1]


def mask(value: Any) -> Any:
    """``value`` with every secret (and its common transformations) replaced by
    ``******``, through lists and dicts, keys included."""
    masker = _masker()
    if masker is None:
        return value
    return _mask(value, masker)


def _mask(value: Any, masker: _Masker) -> Any:
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, list | tuple):
        return [_mask(v, masker) for v in value]
    if isinstance(value, dict):
        return {
            (masker(k) if isinstance(k, str) else k): _mask(v, masker)
            for k, v in value.items()
        }
    return value
