"""The notification settings read from the environment, each case in a fresh interpreter
(tests/test_settings.py's helpers)."""

from __future__ import annotations

import json

import pytest

from tests.test_settings import KEY, refused, run_python

DUMP = """
import json, promptlooper.settings as s
print(json.dumps({name: getattr(s, name) for name in ("MAILERS", "PROMPTLOOPER_WEBHOOK_ALLOW",
    "PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS", "PROMPTLOOPER_WEBHOOK_ATTEMPTS", "PROMPTLOOPER_SITE_URL")}))
"""
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def load(**env: str) -> dict:
    result = run_python(DUMP, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults():
    s = load(SECRET_KEY=KEY, DATABASE_URL="postgres://db/pl")
    assert (s["PROMPTLOOPER_WEBHOOK_ALLOW"], s["PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS"]) == ("", 10.0)
    assert (s["PROMPTLOOPER_WEBHOOK_ATTEMPTS"], s["PROMPTLOOPER_SITE_URL"]) == (3, "http://localhost:8000")
    assert s["MAILERS"]["default"]["BACKEND"] == SMTP and s["MAILERS"]["default"]["OPTIONS"]["host"] == "localhost"


def test_a_local_install_prints_email_to_the_console():
    assert load(SECRET_KEY=KEY)["MAILERS"]["default"] == {
        "BACKEND": "django.core.mail.backends.console.EmailBackend", "OPTIONS": {}
    }  # fmt: skip


def test_email_settings_reach_the_smtp_mailer():
    mailer = load(SECRET_KEY=KEY, EMAIL_HOST="smtp.example.com", EMAIL_PORT="587", EMAIL_HOST_USER="pl",
                  EMAIL_HOST_PASSWORD="pw", EMAIL_USE_TLS="true")["MAILERS"]["default"]  # fmt: skip
    assert mailer["BACKEND"] == SMTP
    assert {k: mailer["OPTIONS"][k] for k in ("host", "port", "username", "password", "use_tls")} == {
        "host": "smtp.example.com", "port": 587, "username": "pl", "password": "pw", "use_tls": True
    }  # fmt: skip


def test_the_site_url_loses_its_trailing_slash():
    assert (
        load(SECRET_KEY=KEY, PROMPTLOOPER_SITE_URL="https://pl.example/")["PROMPTLOOPER_SITE_URL"]
        == "https://pl.example"
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("PROMPTLOOPER_WEBHOOK_ALLOW", "10.0.0.0/8, http://x/"),
        ("PROMPTLOOPER_WEBHOOK_ATTEMPTS", "0"),
        ("PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(name, value):
    assert name in refused(SECRET_KEY=KEY, **{name: value})
