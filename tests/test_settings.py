"""promptlooper.settings read from the environment, each case in a fresh interpreter.

Every subprocess gets a clean environment (none of the variables the settings read is
inherited) plus what the case sets. SECRET_KEY is always passed unless the case is about it,
and then DEBUG is off, so local mode never writes `.secret_key` into the repository.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTTPS_VARS = (
    "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
)  # fmt: skip
SETTINGS_VARS = (
    "DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "PROMPTLOOPER_MAX_GRID",
    "DJANGO_SETTINGS_MODULE", "LOG_LEVEL", *HTTPS_VARS,
)  # fmt: skip
KEY = "test-secret-key-not-for-production"

DUMP = """
import json, promptlooper.settings as s
print(json.dumps({
    "DEBUG": s.DEBUG, "SECRET_KEY": s.SECRET_KEY, "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "DATABASES": s.DATABASES, "CHANNEL_LAYERS": s.CHANNEL_LAYERS, "EMBEDDED_WORKER": s.EMBEDDED_WORKER,
    "RQ_QUEUES": s.RQ_QUEUES, "PROMPTLOOPER_MAX_GRID": s.PROMPTLOOPER_MAX_GRID,
    **{name: getattr(s, name) for name in HTTPS_VARS},
}, default=str))
""".replace("HTTPS_VARS", repr(HTTPS_VARS))


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """This Python with these arguments, in the repository, with a clean environment plus env."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    clean.update(env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return run(["-c", code], **env)


def load(**env: str) -> dict[str, Any]:
    """The settings as a fresh process sees them with this environment."""
    result = run_python(DUMP, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def refused(**env: str) -> str:
    """Importing the settings fails loudly; returns the error output."""
    result = run_python(DUMP, **env)
    assert result.returncode != 0, f"settings accepted {env}: {result.stdout}"
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


# --- DEBUG and SECRET_KEY ---


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_debug_that_is_not_a_boolean_is_refused_naming_debug(value):
    error = refused(DEBUG=value, SECRET_KEY=KEY)
    assert f"DEBUG={value!r}" in error and "boolean" in error


@pytest.mark.parametrize(("raw", "expected"), [("True", True), ("1", True), ("yes", True), ("on", True),
                                              ("False", False), ("0", False), ("off", False), ("", False)])  # fmt: skip
def test_debug_accepts_the_usual_spellings(raw, expected):
    assert load(DEBUG=raw, SECRET_KEY=KEY)["DEBUG"] is expected


@pytest.mark.parametrize("debug", [None, "False", "0"])
@pytest.mark.parametrize("service", [{"DATABASE_URL": "postgres://u@db/x"}, {"REDIS_URL": "redis://r:6379/0"}])
def test_a_server_setup_without_secret_key_is_refused_and_writes_nothing(debug, service):
    """Only local mode (no DATABASE_URL, no REDIS_URL) falls back to the generated key file;
    tests/test_readme_commands.py runs that mode in a copy of the checkout."""
    secret_file = ROOT / ".secret_key"
    before = secret_file.stat().st_mtime_ns if secret_file.exists() else None
    env = service | ({} if debug is None else {"DEBUG": debug})

    error = refused(**env)

    assert "SECRET_KEY" in error
    after = secret_file.stat().st_mtime_ns if secret_file.exists() else None
    assert after == before  # the local-mode key file was neither created nor rewritten


def test_empty_secret_key_counts_as_missing():
    assert "SECRET_KEY" in refused(DEBUG="False", SECRET_KEY="", REDIS_URL="redis://r:6379/0")


def test_secret_key_from_the_environment_is_used():
    assert load(SECRET_KEY=KEY)["SECRET_KEY"] == KEY


def test_allowed_hosts_default_to_localhost_only_in_debug():
    debug = load(DEBUG="True", SECRET_KEY=KEY)["ALLOWED_HOSTS"]
    assert "localhost" in debug and "127.0.0.1" in debug
    assert load(DEBUG="False", SECRET_KEY=KEY)["ALLOWED_HOSTS"] == []
    listed = load(DEBUG="True", SECRET_KEY=KEY, ALLOWED_HOSTS=" lab.example.com, ,api.example.com ")
    assert listed["ALLOWED_HOSTS"] == ["lab.example.com", "api.example.com"]


# --- Redis: RQ queue and channel layer ---


def test_redis_url_selects_channels_redis_with_raised_capacity_and_rq():
    url = "redis://cache.internal:6380/2"
    s = load(SECRET_KEY=KEY, REDIS_URL=url)

    layer = s["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"]["hosts"] == [url]
    assert layer["CONFIG"]["capacity"] == 1000
    assert s["EMBEDDED_WORKER"] is False
    assert s["RQ_QUEUES"]["sweeps"]["URL"] == url


@pytest.mark.parametrize("redis_url", [None, "", "   "])
def test_without_redis_url_the_worker_and_channel_layer_are_embedded(redis_url):
    env = {"SECRET_KEY": KEY} | ({} if redis_url is None else {"REDIS_URL": redis_url})
    s = load(**env)

    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["EMBEDDED_WORKER"] is True


def test_the_redis_channel_layer_really_loads_from_the_settings():
    """The configured backend is importable and accepts the config (no connection is made)."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'promptlooper.settings'; django.setup();"
        "from channels.layers import get_channel_layer; layer = get_channel_layer();"
        "print(type(layer).__name__, layer.capacity)"
    )
    result = run_python(code, SECRET_KEY=KEY, REDIS_URL="redis://127.0.0.1:6399/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RedisChannelLayer", "1000"]


# --- databases ---


def test_postgres_database_url_selects_the_postgresql_engine():
    db = load(SECRET_KEY=KEY, DATABASE_URL="postgres://lab:pw@db.internal:5433/looper")["DATABASES"]["default"]

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["HOST"], int(db["PORT"])) == ("looper", "lab", "db.internal", 5433)
    assert "transaction_mode" not in db.get("OPTIONS", {})  # the SQLite options are SQLite's alone
    assert db["CONN_MAX_AGE"] > 0  # connections are reused on a server database


def test_sqlite_default_is_a_file_with_wal_immediate_transactions_and_a_busy_timeout():
    db = load(SECRET_KEY=KEY)["DATABASES"]["default"]

    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(db["NAME"]) == ROOT / "promptlooper.sqlite3"
    options = db["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]
    assert db["CONN_MAX_AGE"] == 0


def test_sqlite_options_take_effect_on_a_real_connection(tmp_path):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'promptlooper.settings'; django.setup();"
        "from django.db import connection;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]);"
        "c.execute('PRAGMA busy_timeout'); print(c.fetchone()[0]);"
        "print(connection.transaction_mode)"
    )
    result = run_python(code, SECRET_KEY=KEY, DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 0, result.stderr
    journal, busy_ms, mode = result.stdout.split()
    assert journal == "wal"
    assert int(busy_ms) >= 5000
    assert mode == "IMMEDIATE"


@pytest.mark.parametrize("url", ["nonsense://x", "not a url"])
def test_a_database_url_of_unknown_kind_is_refused_naming_it(url):
    assert "DATABASE_URL" in refused(SECRET_KEY=KEY, DATABASE_URL=url)


# --- PROMPTLOOPER_MAX_GRID ---


def test_max_grid_defaults_to_ten_thousand_and_reads_the_environment():
    assert load(SECRET_KEY=KEY)["PROMPTLOOPER_MAX_GRID"] == 10_000
    assert load(SECRET_KEY=KEY, PROMPTLOOPER_MAX_GRID=" 500 ")["PROMPTLOOPER_MAX_GRID"] == 500


@pytest.mark.parametrize("value", ["lots", "1e4", "10.5"])
def test_a_max_grid_that_is_not_a_number_is_refused_naming_it(value):
    error = refused(SECRET_KEY=KEY, PROMPTLOOPER_MAX_GRID=value)
    assert "PROMPTLOOPER_MAX_GRID" in error and value in error


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_max_grid_below_one_is_refused(value):
    assert "PROMPTLOOPER_MAX_GRID" in refused(SECRET_KEY=KEY, PROMPTLOOPER_MAX_GRID=value)


def test_a_provider_key_pattern_that_is_not_a_regular_expression_is_refused():
    error = refused(SECRET_KEY=KEY, PROMPTLOOPER_PROVIDER_KEY_PATTERN="[A-Z")
    assert "PROMPTLOOPER_PROVIDER_KEY_PATTERN" in error


# --- HTTPS ---

SERVER = {"SECRET_KEY": KEY, "DATABASE_URL": "postgres://u@127.0.0.1/x"}  # production; never connected to
SECURE_DEFAULTS = {
    "SECURE_SSL_REDIRECT": True, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
    "SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": False,
    "SECURE_PROXY_SSL_HEADER": None,
}  # fmt: skip
PLAIN_HTTP = SECURE_DEFAULTS | {"SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False,
                                "CSRF_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0}  # fmt: skip


def https_settings(**env: str) -> dict[str, Any]:
    s = load(**env)
    return {name: s[name] for name in HTTPS_VARS}


@pytest.mark.parametrize("service", [{"DATABASE_URL": "postgres://u@127.0.0.1/x"},
                                     {"REDIS_URL": "redis://127.0.0.1:6379/0"}])  # fmt: skip
def test_production_assumes_https_unless_told_otherwise(service):
    assert https_settings(SECRET_KEY=KEY, **service) == SECURE_DEFAULTS


@pytest.mark.parametrize("env", [{}, {"DEBUG": "True", "DATABASE_URL": "postgres://u@127.0.0.1/x"}],
                         ids=["local mode", "DEBUG on a server database"])  # fmt: skip
def test_a_local_install_and_debug_serve_plain_http(env):
    """What `make run` and the README's local commands need: http://127.0.0.1:8000 as it is."""
    assert https_settings(SECRET_KEY=KEY, **env) == PLAIN_HTTP


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("SECURE_SSL_REDIRECT", "False", False), ("SESSION_COOKIE_SECURE", "0", False),
    ("CSRF_COOKIE_SECURE", " off ", False), ("SECURE_HSTS_SECONDS", "31536000", 31_536_000),
    ("SECURE_HSTS_SECONDS", "0", 0), ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "True", True),
    ("SECURE_HSTS_PRELOAD", "yes", True),
    ("SECURE_PROXY_SSL_HEADER", " HTTP_X_FORWARDED_PROTO ", ["HTTP_X_FORWARDED_PROTO", "https"]),
])  # fmt: skip
def test_production_reads_each_https_setting_from_the_environment(name, raw, expected):
    assert https_settings(**SERVER, **{name: raw}) == SECURE_DEFAULTS | {name: expected}


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("SECURE_SSL_REDIRECT", "True", True), ("SESSION_COOKIE_SECURE", "1", True),
    ("CSRF_COOKIE_SECURE", "on", True), ("SECURE_HSTS_SECONDS", "60", 60),
    ("SECURE_PROXY_SSL_HEADER", "HTTP_X_SCHEME", ["HTTP_X_SCHEME", "https"]),
])  # fmt: skip
def test_a_local_install_reads_each_https_setting_from_the_environment(name, raw, expected):
    assert https_settings(SECRET_KEY=KEY, **{name: raw}) == PLAIN_HTTP | {name: expected}


@pytest.mark.parametrize(("name", "raw", "advice"), [
    ("SECURE_SSL_REDIRECT", "https", "not a boolean"), ("SESSION_COOKIE_SECURE", "secure", "not a boolean"),
    ("CSRF_COOKIE_SECURE", "2", "not a boolean"), ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "maybe", "not a boolean"),
    ("SECURE_HSTS_PRELOAD", "y", "not a boolean"), ("SECURE_HSTS_SECONDS", "1y", "not a whole number"),
    ("SECURE_HSTS_SECONDS", "-1", "at least 0"),
    ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto", "write e.g. HTTP_X_FORWARDED_PROTO"),
    ("SECURE_PROXY_SSL_HEADER", "http_x_forwarded_proto", "write e.g. HTTP_X_FORWARDED_PROTO"),
    ("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https", "write e.g. HTTP_X_FORWARDED_PROTO"),
])  # fmt: skip
def test_a_bad_https_setting_is_refused_naming_it(name, raw, advice):
    error = refused(**SERVER, **{name: raw})
    assert error.startswith(f"django.core.exceptions.ImproperlyConfigured: {name}=") and advice in error


def test_manage_py_names_a_bad_setting_without_a_traceback():
    result = run(["manage.py", "check"], **SERVER, SECURE_HSTS_SECONDS="a year")
    assert result.returncode == 1
    assert result.stderr.strip() == "Improperly configured: SECURE_HSTS_SECONDS='a year' is not a whole number"


def test_behind_the_proxy_requests_are_https_with_secure_cookies_and_hsts():
    """The settings take effect on a real request: plain http is redirected, a request the proxy
    marks https is served with a Secure CSRF cookie and an HSTS header. No database is touched."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'promptlooper.settings'; django.setup();"
        "import json; from django.test import Client; c = Client();"
        "plain = c.get('/login/'); proxied = c.get('/login/', headers={'X-Forwarded-Proto': 'https'});"
        "print(json.dumps([plain.status_code, plain.get('Location'), proxied.status_code,"
        " proxied.cookies['csrftoken']['secure'], proxied.get('Strict-Transport-Security')]))"
    )
    result = run_python(code, **SERVER, ALLOWED_HOSTS="testserver", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert result.returncode == 0, result.stderr
    plain_status, location, proxied_status, csrf_secure, hsts = json.loads(result.stdout.strip().splitlines()[-1])
    assert (plain_status, location) == (301, "https://testserver/login/")
    assert (proxied_status, csrf_secure, hsts) == (200, True, "max-age=3600")


def readme_production_environment(tmp_path: Path) -> dict[str, str]:
    """What README's Deploying block exports, its placeholders (…) given real values: a random
    SECRET_KEY, this run's kind of database (a SQLite file under tmp_path when DATABASE_URL is
    empty) and a Redis on 127.0.0.1, which `check` does not use. DEBUG stays unset, as in README."""
    block = re.search(r"## Deploying\n.*?```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    exports = " ".join(line.split("#")[0] for line in block.splitlines() if line.startswith("export "))
    exported = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", exports))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= exported.keys(), exports
    environment = {name: value for name, value in exported.items() if value != "…"}
    database_url = os.getenv("DATABASE_URL", "").strip() or f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return environment | {"SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": database_url,
                          "REDIS_URL": "redis://127.0.0.1:6379/0"}  # fmt: skip


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)


def test_check_deploy_passes_with_the_production_environment_readme_documents(tmp_path):
    result = check_deploy(**readme_production_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(("name", "off", "warning"), [
    ("SECURE_SSL_REDIRECT", "False", "security.W008"), ("SESSION_COOKIE_SECURE", "False", "security.W012"),
    ("CSRF_COOKIE_SECURE", "False", "security.W016"), ("SECURE_HSTS_SECONDS", "0", "security.W004"),
])  # fmt: skip
def test_check_deploy_fails_when_a_secure_default_is_turned_off(name, off, warning, tmp_path):
    result = check_deploy(**readme_production_environment(tmp_path) | {name: off})
    assert result.returncode == 1
    assert re.findall(r"\(security\.\w+\)", result.stderr) == [f"({warning})"], result.stderr
