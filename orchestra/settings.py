"""Django settings, all read from the environment.

Local mode (nothing set): SQLite in WAL mode and a SQLite-backed Celery broker
inside ``ORCHESTRA_HOME`` (default ``~/.orchestra``), so a laptop needs no
server. Production: ``DATABASE_URL=postgres://…`` and
``CELERY_BROKER_URL=redis://…``.
"""

from __future__ import annotations

import os
import secrets
import shlex
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestra.lib.env import envbool, envfloat, envint, envsecret, envstr, envurl

BASE_DIR = Path(__file__).resolve().parent.parent

ORCHESTRA_HOME = Path(
    os.environ.get("ORCHESTRA_HOME") or Path.home() / ".orchestra"
).expanduser()
try:
    ORCHESTRA_HOME.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(
        f"ORCHESTRA_HOME={str(ORCHESTRA_HOME)!r}: {exc}"
    ) from None


def _secret_key() -> str:
    key = envsecret("SECRET_KEY") or envsecret("ORCHESTRA_SECRET_KEY")
    if key:
        return key
    # Local mode: one random key per data folder, kept so sessions survive restarts.
    path = ORCHESTRA_HOME / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Local mode: no DATABASE_URL, everything under ORCHESTRA_HOME on this machine.
ORCHESTRA_LOCAL_MODE = not os.environ.get("DATABASE_URL")
# Flows of this namespace reach every namespace (flows/namespaces.py); "" = none.
ORCHESTRA_SYSTEM_NAMESPACE = envstr("ORCHESTRA_SYSTEM_NAMESPACE", "system")
DEBUG = envbool("DEBUG", False)
# Local mode answers only this machine's names; `orchestra server web` refuses
# to start until both are set (orchestra/security.py says why and how).
ALLOWED_HOSTS = [
    h.strip()
    for h in envstr("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "orchestra",
    "accounts",
    "flows",
    "executions",
    "executions.stuck",
    "sla",
    "axes",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orchestra.api.APIBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "orchestra.middleware.InputGuard",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginRequired",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "orchestra.security.SecureCookiesOverHttps",
    # Last, as django-axes asks: it turns a lockout raised in a view into a page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "orchestra.urls"
WSGI_APPLICATION = "orchestra.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
_default_db = f"sqlite:///{ORCHESTRA_HOME / 'orchestra.sqlite3'}"
DATABASE_URL = envurl(
    "DATABASE_URL", _default_db, {"sqlite", "postgres", "postgresql", "pgsql"}
)
try:
    # Each web thread and worker keeps at most one connection, for this long
    # (0 closes it after every request): `orchestra server web` thus holds at
    # most workers x threads connections, whatever the load.
    _db = dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=envint("ORCHESTRA_DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        # WAL lets the web, worker and scheduler read while one of them writes;
        # IMMEDIATE transactions take the write lock up front, which is SQLite's
        # stand-in for SELECT ... FOR UPDATE and avoids upgrade deadlocks.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    _db["TEST"] = {"NAME": str(ORCHESTRA_HOME / "test-orchestra.sqlite3")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_validators = "django.contrib.auth.password_validation."
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": _validators + "UserAttributeSimilarityValidator"},
    {
        "NAME": _validators + "MinimumLengthValidator",
        "OPTIONS": {
            "min_length": envint("ORCHESTRA_PASSWORD_MIN_LENGTH", 10, minimum=8)
        },
    },
    {"NAME": _validators + "CommonPasswordValidator"},
    {"NAME": _validators + "NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username+address before the
    # password is even checked, so the right password during a lockout fails.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = ORCHESTRA_HOME / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ORCHESTRA_HOME / "storage")},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Celery ---------------------------------------------------------------
CELERY_BROKER_URL = envurl(
    "CELERY_BROKER_URL",
    f"sqla+sqlite:///{ORCHESTRA_HOME / 'broker.sqlite3'}",
    {
        "redis",
        "rediss",
        "amqp",
        "amqps",
        "pyamqp",
        "sqla+sqlite",
        "sqla+postgresql",
        "memory",
        "filesystem",
    },
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith(("redis", "rediss")):
    # Redis redelivers an unacknowledged message after this long; the liveness
    # sweep normally recovers a lost task much sooner.
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = envint(
        "ORCHESTRA_VISIBILITY_TIMEOUT", 3600, minimum=10
    )
    # Installations sharing one Redis database keep apart by a key prefix (the
    # test suite gives each parallel test process its own).
    if _keyprefix := envstr("ORCHESTRA_BROKER_KEY_PREFIX", ""):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = _keyprefix

# --- Engine ---------------------------------------------------------------
ORCHESTRA_HEARTBEAT_SECONDS = envfloat("ORCHESTRA_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
# A worker is declared dead after this many heartbeats missed in a row.
ORCHESTRA_MISSED_HEARTBEATS = envint("ORCHESTRA_MISSED_HEARTBEATS", 3, minimum=2)
ORCHESTRA_LIVENESS_SWEEP_SECONDS = envfloat(
    "ORCHESTRA_LIVENESS_SWEEP_SECONDS", 15.0, minimum=0.1
)
ORCHESTRA_AUTO_RECOVER = envbool("ORCHESTRA_AUTO_RECOVER", True)
# Outcomes a worker could not record (database away) wait here, per host.
ORCHESTRA_OUTBOX_DIR = envstr("ORCHESTRA_OUTBOX_DIR", str(ORCHESTRA_HOME / "outbox"))
# A task run whose worker was lost goes to another worker this many times
# before it fails with "worker lost" (a task opts out: resubmitOnWorkerLoss).
ORCHESTRA_WORKER_LOST_RESUBMITS = envint(
    "ORCHESTRA_WORKER_LOST_RESUBMITS", 2, minimum=0
)
# How long a KILLING execution may wait for its worker before it is forced to KILLED.
ORCHESTRA_KILL_GRACE_SECONDS = envfloat(
    "ORCHESTRA_KILL_GRACE_SECONDS", 60.0, minimum=0.1
)
ORCHESTRA_BASE_URL = envstr("ORCHESTRA_BASE_URL", "http://127.0.0.1:8080")

# --- Script tasks (orchestra/lib/sandbox.py; README "What a script can reach")
ORCHESTRA_SCRIPT_SANDBOX = envstr("ORCHESTRA_SCRIPT_SANDBOX", "auto").strip().lower()
if ORCHESTRA_SCRIPT_SANDBOX not in ("auto", "bwrap", "user", "none"):
    raise ImproperlyConfigured(
        f"ORCHESTRA_SCRIPT_SANDBOX={ORCHESTRA_SCRIPT_SANDBOX!r}: use auto, bwrap, "
        "user or none"
    )
# Scripts run as this OS user when the worker can switch (it runs as root;
# then 'nobody' when unset: scripts never run as root).
ORCHESTRA_SCRIPT_USER = envstr("ORCHESTRA_SCRIPT_USER", "").strip()
ORCHESTRA_SCRIPT_NETWORK = envstr("ORCHESTRA_SCRIPT_NETWORK", "host").strip().lower()
if ORCHESTRA_SCRIPT_NETWORK not in ("host", "none"):
    raise ImproperlyConfigured(
        f"ORCHESTRA_SCRIPT_NETWORK={ORCHESTRA_SCRIPT_NETWORK!r}: use host or none"
    )
# Per script process (0 = no limit); a task may lower them with `limits:`.
ORCHESTRA_SCRIPT_CPU_SECONDS = envint("ORCHESTRA_SCRIPT_CPU_SECONDS", 3600, minimum=0)
ORCHESTRA_SCRIPT_MEMORY_MB = envint("ORCHESTRA_SCRIPT_MEMORY_MB", 2048, minimum=0)
ORCHESTRA_SCRIPT_PROCESSES = envint("ORCHESTRA_SCRIPT_PROCESSES", 1024, minimum=0)
ORCHESTRA_SCRIPT_OPEN_FILES = envint("ORCHESTRA_SCRIPT_OPEN_FILES", 1024, minimum=0)
ORCHESTRA_SCRIPT_OUTPUT_MB = envint("ORCHESTRA_SCRIPT_OUTPUT_MB", 16, minimum=0)

# --- Email ----------------------------------------------------------------
EMAIL_HOST = envstr("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
    EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10, minimum=1)
else:
    # Local mode: mails are written as files a newcomer can open.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(ORCHESTRA_HOME / "mail")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "orchestra@localhost")

# --- REST -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestra API",
    "VERSION": "0.1.0",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "WARNING")},
    "loggers": {
        "orchestra": {"level": envstr("LOG_LEVEL", "INFO"), "propagate": True},
    },
}

# Two queues: the work (task runs, executor passes) and the control rounds
# (liveness, schedules, SLA, cleanup, retention). A worker started without
# --queues consumes both, so recovery takes the next free slot instead of
# waiting behind the whole backlog; big installs run one small worker on the
# control queue alone (`orchestra server worker --queues orchestra.control`),
# so recovery never waits on work at all.
CELERY_TASK_DEFAULT_QUEUE = "celery"
ORCHESTRA_CONTROL_QUEUE = "orchestra.control"
CELERY_TASK_QUEUES = {"celery": {}, ORCHESTRA_CONTROL_QUEUE: {}}
CELERY_TASK_ROUTES = {
    name: {"queue": ORCHESTRA_CONTROL_QUEUE}
    for name in (
        "orchestra.liveness_sweep",
        "orchestra.evaluate_schedules",
        "orchestra.stuck_auto_cleanup",
        "orchestra.purge_trigger_events",
        "orchestra.sla_*",
    )
}
CELERY_BEAT_SCHEDULE = {
    "liveness-sweep": {
        "task": "orchestra.liveness_sweep",
        "schedule": ORCHESTRA_LIVENESS_SWEEP_SECONDS,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(ORCHESTRA_HOME / "celerybeat-schedule")
ORCHESTRA_LOCAL_POLLING_SECONDS = envfloat(
    "ORCHESTRA_LOCAL_POLLING_SECONDS", 0.05, minimum=0.005
)

# --- Stuck executions -----------------------------------------------------
# How often the beat checks the AutoCleanup rows (all off unless enabled).
ORCHESTRA_STUCK_SWEEP_SECONDS = envfloat(
    "ORCHESTRA_STUCK_SWEEP_SECONDS", 60.0, minimum=1
)
CELERY_BEAT_SCHEDULE["stuck-auto-cleanup"] = {
    "task": "orchestra.stuck_auto_cleanup",
    "schedule": ORCHESTRA_STUCK_SWEEP_SECONDS,
}
# Unconfirmed cleanup previews (dry runs) are deleted after this many hours
# (0: kept forever); confirmed cleanups are kept as the audit.
ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS = envint(
    "ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS", 24, minimum=0
)
CELERY_BEAT_SCHEDULE["purge-cleanup-previews"] = {
    "task": "orchestra.purge_cleanup_previews",
    "schedule": 3600.0,
}
# --- Triggers -------------------------------------------------------------
# How often beat evaluates schedules (and sweeps leftover flow-trigger events
# and queued executions); a cron date is "missed" (recoverMissedSchedules)
# when reached more than ORCHESTRA_SCHEDULE_MISSED_AFTER_SECONDS late.
ORCHESTRA_SCHEDULE_SECONDS = envfloat("ORCHESTRA_SCHEDULE_SECONDS", 5.0, minimum=0.1)
ORCHESTRA_SCHEDULE_MISSED_AFTER_SECONDS = envfloat(
    "ORCHESTRA_SCHEDULE_MISSED_AFTER_SECONDS", 60.0, minimum=1
)
CELERY_BEAT_SCHEDULE["evaluate-schedules"] = {
    "task": "orchestra.evaluate_schedules",
    "schedule": ORCHESTRA_SCHEDULE_SECONDS,
}
# Webhook calls per flow: a token bucket of ORCHESTRA_WEBHOOK_BURST tokens
# refilled at ORCHESTRA_WEBHOOK_RATE per second.
ORCHESTRA_WEBHOOK_RATE = envfloat("ORCHESTRA_WEBHOOK_RATE", 10.0, minimum=0.001)
ORCHESTRA_WEBHOOK_BURST = envfloat("ORCHESTRA_WEBHOOK_BURST", 20.0, minimum=1)
# Wrong webhook keys: after this many in one window, for one flow or from one
# client address, every call is answered 429 until the window ends. Counted in
# Django's cache (per process unless CACHES names a shared one, e.g. Redis).
ORCHESTRA_WEBHOOK_MISSES_PER_FLOW = envint(
    "ORCHESTRA_WEBHOOK_MISSES_PER_FLOW", 50, minimum=1
)
ORCHESTRA_WEBHOOK_MISSES_PER_CLIENT = envint(
    "ORCHESTRA_WEBHOOK_MISSES_PER_CLIENT", 10, minimum=1
)
ORCHESTRA_WEBHOOK_MISS_WINDOW_SECONDS = envint(
    "ORCHESTRA_WEBHOOK_MISS_WINDOW_SECONDS", 60, minimum=1
)
# Wall time a webhook's key and conditions may take to evaluate in the web process.
ORCHESTRA_WEBHOOK_EXPRESSION_SECONDS = envfloat(
    "ORCHESTRA_WEBHOOK_EXPRESSION_SECONDS", 1.0, minimum=0.01
)
# Trigger events (one row per fired, skipped or failed date and flow-trigger
# firing) are deleted after this many days; 0 keeps them forever. A backfill
# over a purged range starts those dates again.
ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS = envint(
    "ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS", 30, minimum=0
)
ORCHESTRA_TRIGGER_EVENT_PURGE_BATCH = envint(
    "ORCHESTRA_TRIGGER_EVENT_PURGE_BATCH", 5000, minimum=1
)
CELERY_BEAT_SCHEDULE["purge-trigger-events"] = {
    "task": "orchestra.purge_trigger_events",
    "schedule": 3600.0,
}

# --- Web dashboard and REST API -------------------------------------------
# Request bodies (orchestra/middleware.py answers 413 above these): JSON, YAML
# and forms; multipart file uploads (FILE inputs of at most 100 MiB each).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint(
    "ORCHESTRA_MAX_BODY_BYTES", 2_621_440, minimum=1024
)
ORCHESTRA_MAX_UPLOAD_BYTES = envint(
    "ORCHESTRA_MAX_UPLOAD_BYTES", 101 * 1024 * 1024, minimum=1024
)
REST_FRAMEWORK["EXCEPTION_HANDLER"] = "orchestra.api.api_exception_handler"
# JSON objects only by default (nested at most 64 deep); flows add YAML, execute adds forms (orchestra/lib/parsers.py).
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["orchestra.lib.parsers.ObjectJSONParser"]
# JSON answers only (no browsable HTML API: /api/docs/ is the page for people).
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = ["rest_framework.renderers.JSONRenderer"]
REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"] = (
    "orchestra.lib.parsers.JSONWhateverAccepted"
)
INSTALLED_APPS.append("drf_spectacular_sidecar")
SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": "Flows, executions, logs and bulk actions. Authenticate with a session "
        "or 'Authorization: Bearer <token>' (orchestra users token NAME --name WHAT).",
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "SERVE_INCLUDE_SCHEMA": False,
        # Like every page: the schema and its docs need a login (session or token).
        "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
        "COMPONENT_SPLIT_REQUEST": True,
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "orchestra.schema.add_error_responses",
        ],
    }
)
# Server-sent events: how long one follow connection lasts, and how often it polls.
ORCHESTRA_SSE_SECONDS = envfloat("ORCHESTRA_SSE_SECONDS", 60.0, minimum=1)
ORCHESTRA_SSE_POLL_SECONDS = envfloat("ORCHESTRA_SSE_POLL_SECONDS", 0.5, minimum=0.05)
# --- SLA ------------------------------------------------------------------
CELERY_BEAT_SCHEDULE["sla-sweep"] = {"task": "orchestra.sla_sweep", "schedule": 60.0}
# Deadlines fire at their time: a due-deadline scan this often (bench/sla_deadlines.py);
# the minute sweep above is the safety net. A tick older than two periods is dropped.
ORCHESTRA_SLA_TICK_SECONDS = envfloat("ORCHESTRA_SLA_TICK_SECONDS", 1.0, minimum=0.2)
CELERY_BEAT_SCHEDULE["sla-tick"] = {
    "task": "orchestra.sla_tick",
    "schedule": ORCHESTRA_SLA_TICK_SECONDS,
    "options": {"expires": 2 * ORCHESTRA_SLA_TICK_SECONDS},
}
# Backoff between attempts at an alert the server refused: 4, 8, 16 ... s, at most this.
ORCHESTRA_SLA_RETRY_MAX_SECONDS = envint(
    "ORCHESTRA_SLA_RETRY_MAX_SECONDS", 300, minimum=1
)
# After an alert for a rule, its next misses wait this long, then go out as one reminder.
ORCHESTRA_SLA_REMINDER_MINUTES = envint("ORCHESTRA_SLA_REMINDER_MINUTES", 30, minimum=0)
# A digest left "sending" by a crashed sweep is sent again (same Message-ID) after this.
ORCHESTRA_SLA_SENDING_LEASE_SECONDS = envint(
    "ORCHESTRA_SLA_SENDING_LEASE_SECONDS", 300, minimum=10
)
# Deployments without Celery beat: `orchestra manage crontab add` installs this.
# cron starts jobs with an empty environment: the line carries what this process had.
INSTALLED_APPS += ["django_crontab"]
CRONJOBS = [
    ("* * * * *", "sla.cron.check", f">> {ORCHESTRA_HOME / 'sla-cron.log'} 2>&1")
]
CRONTAB_DJANGO_MANAGE_PATH = str(BASE_DIR / "manage.py")
CRONTAB_DJANGO_PROJECT_NAME = "orchestra"
CRONTAB_COMMAND_PREFIX = " ".join(
    f"{name}={shlex.quote(os.environ[name])}"
    for name in (
        "ORCHESTRA_HOME",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "ORCHESTRA_BROKER_KEY_PREFIX",
        "ORCHESTRA_BASE_URL",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_USE_TLS",
        "EMAIL_USE_SSL",
        "EMAIL_HOST_PASSWORD_FILE",
        "DEFAULT_FROM_EMAIL",
        "ORCHESTRA_SLA_REMINDER_MINUTES",
    )
    if os.environ.get(name)
)

# --- Web security (issue 12) ----------------------------------------------
# Login throttling: this many failures for one username from one address lock
# that pair out for ORCHESTRA_LOGIN_LOCKOUT_MINUTES (a success resets the count).
AXES_FAILURE_LIMIT = envint("ORCHESTRA_LOGIN_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(
    minutes=envint("ORCHESTRA_LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_VERBOSE = False
# API tokens expire: this many days after creation unless asked otherwise.
ORCHESTRA_TOKEN_DAYS = envint("ORCHESTRA_TOKEN_DAYS", 90, minimum=1)
ORCHESTRA_TOKEN_MAX_DAYS = envint("ORCHESTRA_TOKEN_MAX_DAYS", 365, minimum=1)
# Live follows (SSE): at most this many open at once per user, and in all (a
# follow holds one web thread for its whole life, ORCHESTRA_SSE_SECONDS).
ORCHESTRA_SSE_PER_USER = envint("ORCHESTRA_SSE_PER_USER", 4, minimum=1)
ORCHESTRA_SSE_MAX_STREAMS = envint("ORCHESTRA_SSE_MAX_STREAMS", 8, minimum=1)

# HTTPS: behind a TLS-terminating proxy, SECURE_PROXY_SSL_HEADER names the
# header it sets ("X-Forwarded-Proto" means "X-Forwarded-Proto: https"; only
# set it when the proxy always overwrites that header). Requests that arrive
# over HTTPS then get Secure cookies and HSTS.
if _proxy_header := envstr("SECURE_PROXY_SSL_HEADER", "").strip():
    _name, _, _value = _proxy_header.partition(":")
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _name.strip().upper().replace("-", "_"),
        _value.strip() or "https",
    )
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from our own /static/
# (no inline scripts, no eval: htmx runs with allowEval false). Inline style
# attributes stay allowed: they carry widths of bars, not code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
