"""Test settings: the real settings with a throwaway secret and a fast password hasher."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-key-for-tests-only")

from promptlooper.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Set here, not only by the test runner: the websocket origin check reads it at import time.
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: the worker thread's connection must wait on locks
    # (busy timeout) the way it does in production, not fail with "table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}  # noqa: F405

# The tests serve plain http on 127.0.0.1, as a local install does; production assumes HTTPS.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
