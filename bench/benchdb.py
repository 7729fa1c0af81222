"""The throw-away databases the benchmarks run on, and the environment Django reads for them.

Each script names its own PostgreSQL database and never uses DATABASE_URL's, so running a
bench can never touch a real one. BENCH_PG_URL names the server.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def recreate_pg_database(name: str, *, drop_only: bool = False) -> str:
    """Drop the database `name` (whoever is connected) and, unless drop_only, create it empty.
    Returns its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {name}")
    return f"{PG_SERVER}/{name}"


def configure_django(database_url: str) -> None:
    """The environment of an embedded-mode process on `database_url`, set before django.setup():
    production settings, no query log, quiet logs, and no REDIS_URL (in-memory channel layer, no RQ)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "promptlooper.settings"
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(32))
    os.environ["DEBUG"] = "False"  # DEBUG would also keep a log of every query
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("REDIS_URL", None)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
