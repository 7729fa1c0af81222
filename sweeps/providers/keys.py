"""Which environment variables a Provider row may name as its key.

A provider sends its key as a Bearer token to its base URL, which whoever edits the row
chooses: a row naming DATABASE_URL or SECRET_KEY would hand that secret to any server. So the
name must match PROMPTLOOPER_PROVIDER_KEY_PATTERN (default: `..._API_KEY`) and may never be one
of the variables the application itself reads. Checked when a row is saved (API and admin both
validate the model) and again when the key is read, for rows saved before the rule existed.
"""

from __future__ import annotations

import re

from django.conf import settings

# Read by the settings, the database driver or the tools around them, whatever the pattern says.
RESERVED = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "LOG_LEVEL"}
RESERVED_PREFIXES = ("DJANGO_", "PROMPTLOOPER_", "PG", "REDIS_", "DATABASE_", "RQ_")


def key_env_problem(name: str) -> str | None:
    """Why a provider may not read its key from the variable `name`; None when it may.
    The empty name is a keyless server (no Authorization header is sent)."""
    if not name:
        return None
    if name in RESERVED or name.startswith(RESERVED_PREFIXES) or hasattr(settings, name):
        return f"{name} is one of the application's own settings; name the variable that holds the provider's key"
    pattern = settings.PROMPTLOOPER_PROVIDER_KEY_PATTERN
    if not re.fullmatch(pattern, name):
        return f"{name} does not match the allowed key variable names {pattern!r} (PROMPTLOOPER_PROVIDER_KEY_PATTERN)"
    return None
