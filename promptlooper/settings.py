"""Settings read the environment and fail loudly on values they do not understand.

Embedded mode (the default): SQLite file + in-process worker + in-memory channel layer.
Production: DATABASE_URL (PostgreSQL) + REDIS_URL (RQ queue and channel layer).
"""

from __future__ import annotations

import os
import re
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from sweeps.engine.webhooks import AllowList

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.getenv(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use True or False")


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.getenv(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_seconds(name: str, default: float) -> float:
    raw = os.getenv(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ImproperlyConfigured(f"{name}={raw} must be a positive number of seconds")
    return value


def env_request_header(name: str) -> str | None:
    """A request header as Django's request.META names it: X-Forwarded-Proto is HTTP_X_FORWARDED_PROTO."""
    raw = os.getenv(name, "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", raw):
        meta = re.sub(r"[^A-Z0-9]+", "_", re.split(r"[,=\s]", raw)[0].upper()).strip("_")
        meta = meta if meta.startswith("HTTP_") else f"HTTP_{meta}"
        raise ImproperlyConfigured(f"{name}={raw!r} is not a header as Django names it: write e.g. {meta}")
    return raw


def local_secret_key() -> str:
    """Generated once into an ignored file, so sessions survive restarts of a local install."""
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
# Local mode: no database server and no Redis, as a fresh clone runs. `make run` and every
# manage.py command then share the generated key file, with or without DEBUG.
LOCAL_MODE = not os.getenv("DATABASE_URL", "").strip() and not os.getenv("REDIS_URL", "").strip()
# Production: a server database or Redis, and DEBUG off. It needs a SECRET_KEY and assumes HTTPS.
PRODUCTION = not (DEBUG or LOCAL_MODE)
SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL or REDIS_URL is set and DEBUG is off")
    SECRET_KEY = local_secret_key()

ALLOWED_HOSTS = [h.strip() for h in os.getenv("ALLOWED_HOSTS", "").split(",") if h.strip()]
if DEBUG and not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]

# HTTPS. Production redirects plain http to https, keeps the session and CSRF cookies off plain
# http and asks browsers to come back over https only (HSTS); a local install and DEBUG serve
# plain http on 127.0.0.1. Plain http on a trusted network turns the first three off (README).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
# An hour, as Django advises for a first deployment: a mistake (HTTPS dropped, a certificate left
# to expire) shuts browsers out for an hour, not for a year. Raise it once HTTPS has proved itself.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600 if PRODUCTION else 0, minimum=0)
# Both reach beyond this app (every subdomain of its host; the list built into browsers), so they
# are the domain owner's call: off unless set, and `check --deploy` does not ask for them.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
# Behind a proxy that ends TLS, a request counts as https when this header (which the proxy sets,
# replacing any the client sent) says "https"; without it the redirect above would loop.
_proxy_ssl_header = env_request_header("SECURE_PROXY_SSL_HEADER")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "ninja",  # serves the API docs' assets from its package: /api/v1/docs works offline
    "sweeps",
]

MIDDLEWARE = [
    "promptlooper.middleware.ApiErrorsAsJson",
    "promptlooper.query_guard.RefuseUnusableQueryText",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # daphne serves /static/ itself: no web server needed in front
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "promptlooper.urls"
WSGI_APPLICATION = "promptlooper.wsgi.application"
ASGI_APPLICATION = "promptlooper.asgi.application"

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

# SQLite must let the web process and the embedded worker write together: WAL, IMMEDIATE
# transactions (no lock upgrades that deadlock) and a busy timeout instead of "database is locked".
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASE_URL = os.getenv("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'promptlooper.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as e:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL I understand: {e}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Without REDIS_URL everything runs in one process: sweeps in a background thread, events
# through the in-memory channel layer.
REDIS_URL = os.getenv("REDIS_URL", "").strip()
EMBEDDED_WORKER = not REDIS_URL
RQ_QUEUES = {
    # No job timeout: a sweep job lives as long as its sweep; pause and stop are cooperative.
    "sweeps": {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": -1},
}
RQ = {"WORKER_CLASS": "sweeps.runner.worker.SweepWorker"}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Capacity well above the default 100: a slow browser tab must not drop bursts.
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

# Wrong passwords: after this many from one address for one username, or this many from one
# address in all, sign-in from there is refused until the window ends (sweeps/web/login.py).
AUTHENTICATION_BACKENDS = ["sweeps.web.login.ThrottledModelBackend"]
PROMPTLOOPER_LOGIN_ATTEMPTS_PER_USER = env_int("PROMPTLOOPER_LOGIN_ATTEMPTS_PER_USER", 10)
PROMPTLOOPER_LOGIN_ATTEMPTS_PER_ADDRESS = env_int("PROMPTLOOPER_LOGIN_ATTEMPTS_PER_ADDRESS", 50)
PROMPTLOOPER_LOGIN_WINDOW_SECONDS = env_int("PROMPTLOOPER_LOGIN_WINDOW_SECONDS", 300)
# Behind a reverse proxy REMOTE_ADDR is the proxy's: the header it sets names the client instead.
PROMPTLOOPER_CLIENT_ADDRESS_HEADER = env_request_header("PROMPTLOOPER_CLIENT_ADDRESS_HEADER")
# Throttles (sign-ins, notification tests) count in Redis when there is one (shared by every web
# process), else in memory.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "promptlooper"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}
    ),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "experiment_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files are found where they lie (no collectstatic step to forget); whitenoise caches the lookups.
WHITENOISE_USE_FINDERS = True
# ...so STATIC_ROOT only exists after collectstatic, and its absence is no news.
warnings.filterwarnings("ignore", message="No directory at: .*staticfiles")

# A grid larger than this is refused with advice to use random, guided or tpe search.
PROMPTLOOPER_MAX_GRID = env_int("PROMPTLOOPER_MAX_GRID", 10_000)
# How much work one spec may ask for: refused with a 422 naming the field above these.
PROMPTLOOPER_MAX_TRIALS = env_int("PROMPTLOOPER_MAX_TRIALS", 10_000)  # sweep.n_trials
PROMPTLOOPER_MAX_REPEATS = env_int("PROMPTLOOPER_MAX_REPEATS", 100)  # repeats
PROMPTLOOPER_MAX_SAMPLES = env_int("PROMPTLOOPER_MAX_SAMPLES", 1_000_000)  # configurations x rows x repeats per sweep
# Python modules (and their submodules) whose functions specs may name as scorers, comma-separated;
# the project's scorers/ folder by default. Packages add theirs by entry point (README).
PROMPTLOOPER_SCORER_MODULES = tuple(
    name.strip() for name in os.environ.get("PROMPTLOOPER_SCORER_MODULES", "scorers").split(",") if name.strip()
)
# The largest request body accepted (an inline dataset counts): a clear 413 beyond it.
PROMPTLOOPER_MAX_BODY_BYTES = env_int("PROMPTLOOPER_MAX_BODY_BYTES", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PROMPTLOOPER_MAX_BODY_BYTES

# Rate limits (requests/tokens per minute on each Provider) let this many seconds' worth of
# calls go at once before pacing the rest.
PROMPTLOOPER_RATE_BURST_SECONDS = env_int("PROMPTLOOPER_RATE_BURST_SECONDS", 5)

# A sample claimed by a worker that stops renewing its lease (it died) is taken over after this.
PROMPTLOOPER_LEASE_SECONDS = env_int("PROMPTLOOPER_LEASE_SECONDS", 60)

# With RQ, a job runs a sweep for at most this long, then hands it to a fresh job: deploys and
# restarts never wait on hours-long jobs, and the work spreads over workers started later.
PROMPTLOOPER_JOB_SLICE_SECONDS = env_int("PROMPTLOOPER_JOB_SLICE_SECONDS", 900)

# Every template render (prompts, scorer values, the estimate, validation) stops past this many
# steps (loop iterations, calls), this many seconds, or this many characters built: a clear error.
PROMPTLOOPER_TEMPLATE_MAX_STEPS = env_int("PROMPTLOOPER_TEMPLATE_MAX_STEPS", 1_000_000)
PROMPTLOOPER_TEMPLATE_MAX_SECONDS = env_seconds("PROMPTLOOPER_TEMPLATE_MAX_SECONDS", 2.0)
PROMPTLOOPER_TEMPLATE_MAX_CHARS = env_int("PROMPTLOOPER_TEMPLATE_MAX_CHARS", 1_000_000)
# A stage's output is stored up to this many characters (the rest is cut, and marked as cut);
# pages and API responses show this many characters of a text, with a link to the full text.
PROMPTLOOPER_STORED_TEXT_MAX_CHARS = env_int("PROMPTLOOPER_STORED_TEXT_MAX_CHARS", 1_000_000)
PROMPTLOOPER_SHOWN_TEXT_CHARS = env_int("PROMPTLOOPER_SHOWN_TEXT_CHARS", 10_000)

# A Provider row may only read its key from an environment variable whose whole name matches
# this (and never from one of the application's own settings: sweeps/providers/keys.py).
PROMPTLOOPER_PROVIDER_KEY_PATTERN = (
    os.getenv("PROMPTLOOPER_PROVIDER_KEY_PATTERN", "").strip() or r"[A-Z][A-Z0-9_]*_API_KEY"
)
try:
    re.compile(PROMPTLOOPER_PROVIDER_KEY_PATTERN)
except re.error as e:
    raise ImproperlyConfigured(f"PROMPTLOOPER_PROVIDER_KEY_PATTERN is not a regular expression: {e}") from None

# Notifications (sweeps/services/notifications.py). Webhooks may not reach internal addresses
# (loopback, private, link-local...) except the hosts and networks listed here, comma-separated.
PROMPTLOOPER_WEBHOOK_ALLOW = os.getenv("PROMPTLOOPER_WEBHOOK_ALLOW", "").strip()
try:
    AllowList.parse(PROMPTLOOPER_WEBHOOK_ALLOW)
except ValueError as e:
    raise ImproperlyConfigured(f"PROMPTLOOPER_WEBHOOK_ALLOW: {e}") from None
PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS = env_seconds("PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS", 10.0)
PROMPTLOOPER_WEBHOOK_ATTEMPTS = env_int("PROMPTLOOPER_WEBHOOK_ATTEMPTS", 3)
# Links in webhook payloads and e-mails start with this (workers have no request to take it from).
PROMPTLOOPER_SITE_URL = os.getenv("PROMPTLOOPER_SITE_URL", "").strip().rstrip("/") or "http://localhost:8000"
# E-mail through Django's MAILERS, from the usual EMAIL_* variables: SMTP (to EMAIL_HOST, by
# default localhost:25), except that a local install or DEBUG without EMAIL_HOST prints e-mail to
# the console. EMAIL_BACKEND picks any other backend.
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
smtp_host = os.getenv("EMAIL_HOST", "").strip()
mail_backend = os.getenv("EMAIL_BACKEND", "").strip() or (
    SMTP_BACKEND if smtp_host or not (DEBUG or LOCAL_MODE) else "django.core.mail.backends.console.EmailBackend"
)
MAILERS = {
    "default": {
        "BACKEND": mail_backend,
        "OPTIONS": {
            "host": smtp_host or "localhost",
            "port": env_int("EMAIL_PORT", 25),
            "username": os.getenv("EMAIL_HOST_USER", ""),
            "password": os.getenv("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "use_ssl": env_bool("EMAIL_USE_SSL", False),
            "timeout": env_seconds("EMAIL_TIMEOUT_SECONDS", 10.0),
        }
        if mail_backend == SMTP_BACKEND
        else {},
    }
}
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "").strip() or "promptlooper@localhost"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"kv": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"level": "INFO"}, "httpx": {"level": "WARNING"}},
}
