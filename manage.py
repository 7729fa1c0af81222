#!/usr/bin/env python
import importlib
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promptlooper.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    # A setting the environment got wrong is the operator's to fix, not a bug: its message (which
    # names the variable) without a traceback. Errors anywhere else keep theirs.
    try:
        importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
    except ImproperlyConfigured as e:
        sys.exit(f"Improperly configured: {e}")
    execute_from_command_line(sys.argv)
